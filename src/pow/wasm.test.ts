/**
 * The WASM backend: both kernels (scalar and SIMD) against the reference rule in work.ts, the
 * thread loop's nonce layout, and the Node worker_threads pool end to end (find, cancel, reuse).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kernelSource, KERNEL_FILES } from '../../kernels/gen-assembly.mjs';
import { startNodeWasmPool, loadNodeKernels, NodeWasmThread, startThreadWorker } from '../pow-node/wasm-threads.ts';
import { WasmPool, detectSimd, rootWords, type WasmBackend, type WasmThread } from './wasm.ts';
import { ThreadRuntime } from './wasm-thread-core.ts';
import { parseRoot, parseWork, validateWork, workValue } from './work.ts';
import type { Worker } from 'node:worker_threads';
import { plainLogger } from '../log.ts';

const EASY = 0xfff0000000000000n; // about 4096 hashes
const NEVER = 0xffffffffffffffffn; // about 2^64 hashes: only a cancel ends it
const U64_MAX = (1n << 64n) - 1n;

const vectors = JSON.parse(readFileSync(new URL('../../test/vectors/nano-work.json', import.meta.url), 'utf8')) as {
  valid: { root: string; work: string; value: string }[];
  byte_order_trap: { root: string; work: string; value_if_work_bytes_not_reversed: string; correct_value: string };
};

/** Deterministic bytes, so a failure can be replayed. */
function prng(seed: number) {
  let s = seed >>> 0;
  const byte = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) & 0xff;
  };
  return {
    root: () => Uint8Array.from({ length: 32 }, byte),
    u64: () => {
      let x = 0n;
      for (let i = 0; i < 8; i++) x = (x << 8n) | BigInt(byte());
      return x;
    },
  };
}

interface KernelExports {
  setRoot(m1: bigint, m2: bigint, m3: bigint, m4: bigint): void;
  value(nonce: bigint): bigint;
  valueHigh?(nonce: bigint): bigint;
  search(difficulty: bigint, start: bigint, count: number): number;
  /** SIMD only: times a scheduling fence's branch was taken (see kernels/gen-assembly.mjs). */
  fenceHits?: WebAssembly.Global;
}

const FLAVOURS = ['scalar', 'simd'] as const;
type Flavour = (typeof FLAVOURS)[number];

function loadKernel(flavour: Flavour): KernelExports {
  const bytes = readFileSync(new URL(`../../build/wasm/nano-pow-${flavour}.wasm`, import.meta.url));
  return new WebAssembly.Instance(new WebAssembly.Module(bytes), {}).exports as unknown as KernelExports;
}

const u64 = (x: bigint) => BigInt.asUintN(64, x);

const SPECIAL_NONCES = [
  0n,
  1n,
  0xffffffffn,
  0x100000000n,
  0x100000001n,
  0x7fffffffffffffffn,
  0x8000000000000000n,
  0x8000000000000001n,
  0xfffffffffffffffen,
  U64_MAX,
];

describe('generated kernel sources', () => {
  it.each(FLAVOURS)('assembly/%s kernel matches kernels/gen-assembly.mjs', (flavour) => {
    const onDisk = readFileSync(new URL(`../../assembly/${KERNEL_FILES[flavour]}`, import.meta.url), 'utf8');
    expect(onDisk).toBe(kernelSource(flavour));
  });
});

describe.each(FLAVOURS)('%s kernel', (flavour) => {
  const kernel = loadKernel(flavour);
  const load = (root: Uint8Array) => kernel.setRoot(...rootWords(root));

  it('computes the reference work value for many roots and nonces, past 2^32 and 2^63', () => {
    const rand = prng(flavour === 'simd' ? 7 : 3);
    for (let r = 0; r < 40; r++) {
      const root = rand.root();
      load(root);
      const nonces = [...SPECIAL_NONCES, ...Array.from({ length: 10 }, rand.u64)];
      for (const nonce of nonces) {
        const want = workValue(root, nonce);
        expect(u64(kernel.value(nonce)), `root ${r} nonce ${nonce.toString(16)}`).toBe(want);
        if (kernel.valueHigh) expect(u64(kernel.valueHigh(nonce)), `upper lane, nonce ${nonce.toString(16)}`).toBe(want);
      }
    }
  });

  it('reproduces every known vector and not the byte-order trap', () => {
    for (const v of vectors.valid) {
      load(parseRoot(v.root));
      expect(u64(kernel.value(parseWork(v.work))).toString(16).padStart(16, '0')).toBe(v.value);
    }
    const trap = vectors.byte_order_trap;
    load(parseRoot(trap.root));
    const value = u64(kernel.value(parseWork(trap.work))).toString(16).padStart(16, '0');
    expect(value).toBe(trap.correct_value);
    expect(value).not.toBe(trap.value_if_work_bytes_not_reversed);
  });

  it('search returns the first nonce whose value is >= the difficulty, in every lane and tail', () => {
    const rand = prng(flavour === 'simd' ? 11 : 13);
    const perStep = flavour === 'simd' ? 3 : 2;
    const positions = new Set<number>();
    for (let trial = 0; trial < 60; trial++) {
      const root = rand.root();
      load(root);
      // Starts near the wrap, and counts that are not multiples of the 2 (scalar) or 3 (SIMD: two
      // v128 lanes and one u64) nonces per step, so every position of a step is the answer somewhere.
      const start = trial % 5 === 0 ? U64_MAX - BigInt(trial % 7) : rand.u64();
      const count = 1 + (trial % 37);
      const values = Array.from({ length: count }, (_, i) => workValue(root, u64(start + BigInt(i))));
      // Aim at the value of one nonce, so the expected answer is an exact >= boundary.
      const target = values[trial % count];
      const expected = values.findIndex((v) => v >= target);
      expect(kernel.search(target, start, count), `trial ${trial}`).toBe(expected);
      positions.add(expected % perStep);
      const max = values.reduce((a, b) => (a > b ? a : b));
      if (max < U64_MAX) expect(kernel.search(max + 1n, start, count), `trial ${trial}, above all`).toBe(-1);
    }
    expect([...positions].sort()).toEqual([0, 1, 2].slice(0, perStep));
    // The SIMD kernel's scheduling fences branch only when two hashes share a 64-bit word.
    if (flavour === 'simd') expect(kernel.fenceHits?.value).toBe(0);
  });

  it('finds work that validates at fff0000000000000', () => {
    const rand = prng(flavour === 'simd' ? 17 : 19);
    for (let r = 0; r < 4; r++) {
      const root = rand.root();
      load(root);
      const start = rand.u64();
      const index = kernel.search(EASY, start, 1 << 20);
      expect(index).toBeGreaterThanOrEqual(0);
      expect(validateWork(root, u64(start + BigInt(index)), EASY).valid).toBe(true);
    }
  });
});

describe('thread loop nonce layout', () => {
  it('walks only its own chunks (offset, offset + stride, ...) and stops at the first hit there', async () => {
    const module = new WebAssembly.Module(readFileSync(new URL('../../build/wasm/nano-pow-scalar.wasm', import.meta.url)));
    const rand = prng(23);
    for (let trial = 0; trial < 6; trial++) {
      const root = rand.root();
      const start = trial === 0 ? U64_MAX - 20n : rand.u64();
      const [offset, stride, chunk] = [trial % 3, 3, 8];
      const difficulty = 0xf000000000000000n; // 1 in 16
      // The reference walk: chunk k = offset + j * stride, nonces start + k * chunk + i.
      let expected = 0n;
      let tested = 0;
      search: for (let j = 0n; ; j++) {
        const base = start + (BigInt(offset) + j * BigInt(stride)) * BigInt(chunk);
        for (let i = 0n; i < BigInt(chunk); i++) {
          tested++;
          if (workValue(root, u64(base + i)) >= difficulty) {
            expected = u64(base + i);
            break search;
          }
        }
      }
      const messages: { type: string; nonce?: bigint; count?: number }[] = [];
      const found = new Promise<void>((resolve) => {
        const runtime = new ThreadRuntime((message) => {
          const m = message as { type: string; nonce?: bigint; count?: number };
          messages.push(m);
          if (m.type === 'ready') {
            runtime.handle({ type: 'search', job: 1, words: rootWords(root), difficulty, start, offset, stride, chunk, duty: 1 });
          }
          if (m.type === 'found' || m.type === 'error') resolve();
        });
        runtime.handle({ type: 'init', module });
      });
      await found;
      const hit = messages.find((m) => m.type === 'found');
      expect(hit?.nonce, `trial ${trial}`).toBe(expected);
      const reported = messages.reduce((n, m) => n + (m.type === 'hashes' || m.type === 'found' ? (m.count ?? 0) : 0), 0);
      expect(reported).toBe(tested);
    }
  });
});

describe('WASM SIMD detection', () => {
  it('Node 20 validates WASM SIMD', () => {
    expect(detectSimd()).toBe(true);
  });
});

/** Records every message the pool sends to and receives from its threads. */
function recordingSpawn(sent: unknown[][], received: unknown[][]) {
  return (index: number): WasmThread => {
    const thread = new NodeWasmThread(startThreadWorker());
    sent[index] = [];
    received[index] = [];
    return {
      onError: (callback) => thread.onError(callback),
      setActive: (busy) => thread.setActive(busy),
      terminate: () => thread.terminate(),
      postMessage: (message) => {
        sent[index].push(message);
        thread.postMessage(message);
      },
      onMessage: (callback) =>
        thread.onMessage((message) => {
          received[index].push(message);
          callback(message);
        }),
    };
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
    }),
  ]);
}

describe.each([
  { preferSimd: false, threads: 1 },
  { preferSimd: false, threads: 2 },
  { preferSimd: true, threads: 1 },
  { preferSimd: true, threads: 2 },
])('Node pool, simd preferred: $preferSimd, $threads thread(s)', ({ preferSimd, threads }) => {
  let backend: WasmBackend;
  beforeAll(async () => {
    backend = await startNodeWasmPool({ threads, preferSimd });
  });
  afterAll(() => backend?.dispose());

  it('reports what it runs', () => {
    expect(backend.name).toBe('wasm');
    expect(backend.simd).toBe(preferSimd);
    expect(backend.threads).toBe(threads);
    expect(backend.label).toBe(`WASM ${preferSimd ? 'SIMD' : 'scalar'} x${threads}`);
    expect(backend.compileMs).toBeGreaterThan(0);
  });

  it('finds work that validates for several roots, counting hashes', async () => {
    const rand = prng(29 + threads);
    for (let r = 0; r < 4; r++) {
      const root = rand.root();
      let hashes = 0;
      const hit = await backend.search({
        root,
        difficulty: EASY,
        startNonce: rand.u64(),
        signal: new AbortController().signal,
        onHashes: (n) => (hashes += n),
      });
      expect(hit).not.toBeNull();
      expect(validateWork(root, hit!.work, EASY).valid).toBe(true);
      expect(hashes).toBeGreaterThan(0);
    }
  });

  it('cancels a search that cannot finish, then searches again', async () => {
    const root = prng(31).root();
    const controller = new AbortController();
    let hashes = 0;
    const pending = backend.search({
      root,
      difficulty: NEVER,
      startNonce: 0n,
      signal: controller.signal,
      onHashes: (n) => (hashes += n),
    });
    await new Promise((resolve) => setTimeout(resolve, 150));
    controller.abort();
    await expect(withTimeout(pending, 5_000, 'the cancelled search')).resolves.toBeNull();
    expect(hashes).toBeGreaterThan(0);

    const hit = await backend.search({ root, difficulty: EASY, startNonce: 0n, signal: new AbortController().signal });
    expect(validateWork(root, hit!.work, EASY).valid).toBe(true);
  });

  it('answers null at once for an already-aborted signal, and refuses a second concurrent search', async () => {
    const root = prng(37).root();
    const aborted = new AbortController();
    aborted.abort();
    await expect(backend.search({ root, difficulty: EASY, startNonce: 0n, signal: aborted.signal })).resolves.toBeNull();

    const controller = new AbortController();
    const first = backend.search({ root, difficulty: NEVER, startNonce: 0n, signal: controller.signal });
    await expect(backend.search({ root, difficulty: EASY, startNonce: 0n, signal: new AbortController().signal })).rejects.toThrow(
      /already searching/,
    );
    controller.abort();
    await expect(first).resolves.toBeNull();
  });

  it('rejects a root that is not 32 bytes', async () => {
    await expect(
      backend.search({ root: new Uint8Array(31), difficulty: EASY, startNonce: 0n, signal: new AbortController().signal }),
    ).rejects.toThrow(RangeError);
  });
});

describe('Node pool nonce layout', () => {
  it('gives each thread its own offset and the thread count as stride; at difficulty 0 each reports its first chunk', async () => {
    const kernels = await loadNodeKernels();
    const sent: unknown[][] = [];
    const received: unknown[][] = [];
    const threads = 3;
    const backend = await WasmPool.start({ threads, module: kernels, chunk: 1000, spawn: recordingSpawn(sent, received) });
    try {
      const root = prng(41).root();
      const start = U64_MAX - 1500n; // thread 2's first chunk wraps past 2^64
      const hit = await backend.search({ root, difficulty: 0n, startNonce: start, signal: new AbortController().signal });
      const firsts = Array.from({ length: threads }, (_, i) => u64(start + BigInt(i) * 1000n));
      expect(firsts).toContain(hit!.work);

      const searches = sent.map((messages) => messages.find((m) => (m as { type: string }).type === 'search') as Record<string, unknown>);
      expect(searches.map((m) => m.offset)).toEqual([0, 1, 2]);
      expect(searches.every((m) => m.stride === threads && m.chunk === 1000 && m.start === start)).toBe(true);

      // Every thread hits at once at difficulty 0, each on the first nonce of its own chunk.
      await expect
        .poll(() => received.map((messages) => messages.filter((m) => (m as { type: string }).type === 'found').length))
        .toEqual([1, 1, 1]);
      const found = received.map((messages) => (messages.find((m) => (m as { type: string }).type === 'found') as { nonce: bigint }).nonce);
      expect(found).toEqual(firsts);
    } finally {
      backend.dispose();
    }
  });

  it('threads go quiet after a cancel (they stop hashing, not just the promise)', async () => {
    const kernels = await loadNodeKernels();
    const sent: unknown[][] = [];
    const received: unknown[][] = [];
    const backend = await WasmPool.start({ threads: 2, module: kernels, spawn: recordingSpawn(sent, received) });
    try {
      const controller = new AbortController();
      const pending = backend.search({ root: prng(43).root(), difficulty: NEVER, startNonce: 0n, signal: controller.signal });
      // Both threads are hashing: each posts hash counts every ~50 ms.
      await expect.poll(() => received.map((m) => m.filter((x) => (x as { type: string }).type === 'hashes').length > 0)).toEqual([true, true]);
      controller.abort();
      await expect(pending).resolves.toBeNull();
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const before = received.map((m) => m.length);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(received.map((m) => m.length)).toEqual(before);
    } finally {
      backend.dispose();
    }
  });

  it('a thread that dies fails the running search with the reason; the next search gets fresh threads', async () => {
    const kernels = await loadNodeKernels();
    const workers: Worker[] = [];
    const logs: string[] = [];
    const backend = await WasmPool.start({
      threads: 2,
      module: kernels,
      log: plainLogger((m) => logs.push(m)),
      spawn: () => {
        const worker = startThreadWorker();
        workers.push(worker);
        return new NodeWasmThread(worker);
      },
    });
    try {
      const root = prng(47).root();
      const pending = backend.search({ root, difficulty: NEVER, startNonce: 0n, signal: new AbortController().signal });
      await new Promise((resolve) => setTimeout(resolve, 100));
      await workers[1].terminate(); // as if the OS or the browser killed it
      await expect(pending).rejects.toThrow(/WASM thread 1 failed: the thread exited/);

      const hit = await backend.search({ root, difficulty: EASY, startNonce: 0n, signal: new AbortController().signal });
      expect(validateWork(root, hit!.work, EASY).valid).toBe(true);
      expect(workers).toHaveLength(4); // a whole fresh pool of 2
      expect(logs.some((m) => m.startsWith('restarting the WASM threads'))).toBe(true);
    } finally {
      backend.dispose();
    }
  });

  it('fails to start, naming the thread, when the module is not a kernel', async () => {
    const empty = new WebAssembly.Module(new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]));
    await expect(
      WasmPool.start({ threads: 2, module: { simd: null, scalar: empty }, spawn: recordingSpawn([], []) }),
    ).rejects.toThrow(/WASM thread \d failed: .*setRoot/);
  });

  it('refuses to search after dispose', async () => {
    const backend = await startNodeWasmPool({ threads: 1 });
    backend.dispose();
    await expect(
      backend.search({ root: new Uint8Array(32), difficulty: EASY, startNonce: 0n, signal: new AbortController().signal }),
    ).rejects.toThrow(/disposed/);
  });
});

describe('Node pool and the process lifetime', () => {
  it('holds the process open while searching, and an idle pool lets it exit without dispose()', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wasm-pool-'));
    const script = path.join(dir, 'idle-pool.mts');
    const pool = new URL('../pow-node/wasm-threads.ts', import.meta.url).href;
    writeFileSync(
      script,
      `import { startNodeWasmPool } from ${JSON.stringify(pool)};
const backend = await startNodeWasmPool({ threads: 2 });
const hit = await backend.search({ root: new Uint8Array(32), difficulty: 0xfff0000000000000n, startNonce: 0n, signal: new AbortController().signal });
console.log('found ' + hit.work.toString(16));
`,
    );
    try {
      const repo = fileURLToPath(new URL('../..', import.meta.url));
      const output = await new Promise<string>((resolve, reject) => {
        execFile(process.execPath, ['--import', 'tsx', script], { cwd: repo, timeout: 30_000 }, (error, stdout, stderr) =>
          error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout),
        );
      });
      const work = /found ([0-9a-f]+)/.exec(output)?.[1];
      expect(work, output).toBeDefined();
      expect(validateWork(new Uint8Array(32), BigInt(`0x${work}`), EASY).valid).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
