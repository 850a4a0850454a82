#!/usr/bin/env node
/**
 * `npm run kernel:ops`: the u32 ALU operations per nonce of each generated kernel, counted by
 * running the shader's own per-nonce path (nonce_at, mixed, meets) in kernels/wgsl-eval.mjs, and
 * checked on random inputs against a Blake2b library, so the count is of a correct kernel.
 *
 *   node kernels/kernel-ops.mjs [--samples N] [--json]
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { blake2b } from '@noble/hashes/blake2.js';
import { KERNEL_SOURCES, YARDSTICK_FILE } from './gen-wgsl.mjs';
import { createEvaluator, parseModule } from './wgsl-eval.mjs';

const MASK = (1n << 64n) - 1n;
const lo = (x) => Number(x & 0xffffffffn);
const hi = (x) => Number((x >> 32n) & 0xffffffffn);
const pair = (x) => [lo(x), hi(x)];
const join = ([l, h]) => (BigInt(h) << 32n) | BigInt(l);

function reference(rootBytes, nonce) {
  const message = new Uint8Array(40);
  new DataView(message.buffer).setBigUint64(0, nonce, true);
  message.set(rootBytes, 8);
  return new DataView(blake2b(message, { dkLen: 8 }).buffer).getBigUint64(0, true);
}

/** xorshift64*: reproducible random u64s. */
function random(seed) {
  let x = BigInt(seed) | 1n;
  return () => {
    x ^= x >> 12n;
    x ^= (x << 25n) & MASK;
    x ^= x >> 27n;
    return (x * 0x2545f4914f6cdd1dn) & MASK;
  };
}

/**
 * Evaluates the kernel's per-nonce path on `samples` random (root, nonce) pairs (nonces above
 * 2^32 and 2^63 included) and returns its op counts, or throws naming the first disagreement.
 */
export function countKernelOps(text, { samples = 64, seed = 1 } = {}) {
  const module = parseModule(text);
  const params = { root: [[0, 0, 0, 0], [0, 0, 0, 0]], difficulty: [0, 0], base: [0, 0], row_width: 0, count: 0 };
  const kernel = createEvaluator(module, { params });
  const next = random(seed);
  let perNonce = 0;
  let prepare = 0;
  for (let i = 0; i < samples; i++) {
    const root = new Uint8Array(32);
    const view = new DataView(root.buffer);
    for (let w = 0; w < 4; w++) view.setBigUint64(w * 8, next(), true);
    const words = Array.from({ length: 8 }, (_, k) => view.getUint32(k * 4, true));
    params.root = [words.slice(0, 4), words.slice(4, 8)];
    const nonce = [next(), next() & 0xffffffffn, 0xffffffff00000000n | (next() & 0xffn), (1n << 63n) | next()][i % 4];
    const offset = Number(next() & 0xffffn);
    params.base = pair((nonce - BigInt(offset)) & MASK);

    kernel.resetOps();
    const prepared = kernel.call('prepare', []);
    prepare = kernel.ops;
    kernel.resetOps();
    const m0 = kernel.call('nonce_at', [offset]);
    const m = kernel.call('mixed', [m0, prepared]);
    const want = reference(root, nonce);
    // A difficulty the value misses in the high word: the path nearly every nonce takes.
    params.difficulty = pair(want | 0xffffffff00000000n) ;
    if (hi(want) === 0xffffffff) params.difficulty = pair(MASK);
    const meets = kernel.call('meets', [m]);
    perNonce = kernel.ops;

    const nonceGot = join(m0);
    if (nonceGot !== nonce) throw new Error(`nonce_at gave ${nonceGot.toString(16)} for ${nonce.toString(16)}`);
    const value = join(kernel.call('work_value', [m0, prepared]));
    if (value !== want) {
      throw new Error(`work value of nonce ${nonce.toString(16)} is ${value.toString(16)}, reference ${want.toString(16)}`);
    }
    if (meets !== want >= join(params.difficulty)) throw new Error(`meets() is wrong for nonce ${nonce.toString(16)}`);
    // The compare's other cases: equal high words, then the low word decides (>=).
    for (const difficulty of [want, (want + 1n) & MASK, want & 0xffffffff00000000n, 0n]) {
      params.difficulty = pair(difficulty);
      if (kernel.call('meets', [m]) !== want >= difficulty) {
        throw new Error(`meets() is wrong at difficulty ${difficulty.toString(16)} for value ${want.toString(16)}`);
      }
    }
  }
  return { perNonce, prepare, samples };
}

/** The generated shaders, by kind. */
export function kernelFiles() {
  return [
    ...Object.entries(KERNEL_SOURCES).map(([kind, file]) => ({ kind, file })),
    { kind: 'yardstick', file: YARDSTICK_FILE },
  ].map((k) => ({ ...k, text: readFileSync(fileURLToPath(new URL(`../shaders/${k.file}`, import.meta.url)), 'utf8') }));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { samples: { type: 'string', default: '256' }, json: { type: 'boolean' } } });
  const rows = kernelFiles().map(({ kind, file, text }) => ({ kind, file, ...countKernelOps(text, { samples: Number(values.samples) }) }));
  if (values.json) {
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
  } else {
    const yardstick = rows.find((r) => r.kind === 'yardstick').perNonce;
    process.stdout.write('kernel source                 u32 ops/nonce   vs yardstick   prepare ops (once per invocation)\n');
    for (const r of rows) {
      process.stdout.write(
        `${`${r.kind} (${r.file})`.padEnd(30)}${String(r.perNonce).padStart(13)}   ${(r.perNonce / yardstick).toFixed(3).padStart(11)}x   ${r.prepare}\n`,
      );
    }
    process.stdout.write(`(each checked against Blake2b on ${values.samples} random (root, nonce) pairs)\n`);
  }
}
