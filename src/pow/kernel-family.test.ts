/**
 * Every member of the kernel family (and the bench's yardstick) against the reference rule, on a
 * real adapter (Dawn: llvmpipe through OpenGL ES here), each test named by its variant; and the
 * static op counter (kernels/kernel-ops.mjs), which evaluates the generated WGSL itself.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { countKernelOps, kernelFiles } from '../../kernels/kernel-ops.mjs';
import { createNodeGpu, loadBenchSources } from '../pow-node/gpu.ts';
import { findVariant, KERNEL_VARIANTS, requireVariant, YARDSTICK_VARIANT } from './kernel-family.ts';
import { createWebGpuBackend, type WebGpuBackend } from './webgpu.ts';
import { parseRoot, validateWork, workValue } from './work.ts';
import { randomRoot } from '../testkit/work.ts';

const U64_MASK = (1n << 64n) - 1n;
const never = new AbortController().signal;
const EASY = 0xfff0000000000000n; // 1 in 4096

describe('kernel family names', () => {
  it('parses a variant name into its parameters and refuses unknown names with the list', () => {
    expect(findVariant('plain-n32-w128')).toMatchObject({ source: 'plain', noncesPerInvocation: 32, workgroupSize: 128 });
    expect(findVariant('yardstick')).toBe(YARDSTICK_VARIANT);
    expect(findVariant('fancy-n1-w64')).toBeNull();
    expect(() => requireVariant('plain-n8-w100')).toThrow(/unknown kernel "plain-n8-w100": use one of .*biased-n64-w64/);
    expect(new Set(KERNEL_VARIANTS.map((v) => v.name)).size).toBe(KERNEL_VARIANTS.length);
  });
});

describe('static op counter (kernels/kernel-ops.mjs)', () => {
  const files = kernelFiles();

  for (const { kind, text } of files) {
    it(`${kind}: the counted WGSL path agrees with Blake2b on random inputs`, () => {
      const counted = countKernelOps(text, { samples: 8, seed: 3 });
      expect(counted.perNonce).toBeGreaterThan(3000);
    });
  }

  it('fails, naming the nonce, when the WGSL computes something else', () => {
    const plain = files.find((f) => f.kind === 'plain')!.text;
    const body = plain.indexOf('fn mixed(');
    const at = plain.indexOf('rotr24(', body);
    const broken = `${plain.slice(0, at)}rotr16(${plain.slice(at + 'rotr24('.length)}`;
    expect(() => countKernelOps(broken, { samples: 2 })).toThrow(/work value of nonce [0-9a-f]+ is [0-9a-f]+, reference/);
  });

  it('the plain kernel does fewer ops per nonce than the yardstick, the biased one its fixups more', () => {
    const count = (kind: string) => countKernelOps(files.find((f) => f.kind === kind)!.text, { samples: 1 }).perNonce;
    const [plain, biased, yardstick] = [count('plain'), count('biased'), count('yardstick')];
    expect(plain).toBeLessThan(yardstick);
    expect(biased).toBeGreaterThan(plain);
  });
});

describe.skipIf(process.env.DPOW_SKIP_GPU === '1')('kernel family on Dawn', () => {
  let backend: WebGpuBackend;

  beforeAll(async () => {
    const gpu = await createNodeGpu();
    if (!gpu) throw new Error('no WebGPU adapter: install libegl1 and libgl1-mesa-dri (llvmpipe), or set DPOW_SKIP_GPU=1');
    backend = await createWebGpuBackend({ gpu, shaders: loadBenchSources() });
  });

  afterAll(() => backend?.dispose());

  for (const variant of [...KERNEL_VARIANTS, YARDSTICK_VARIANT]) {
    it(`${variant.name}: work values match the reference, nonces above 2^32 and 2^63 included`, async () => {
      backend.setVariant(variant.name);
      const starts = [0x00000000ffffff00n, 0x7fffffffffffff80n, 0xffffffffffffff00n];
      let compared = 0;
      for (const [i, start] of starts.entries()) {
        const root = parseRoot(randomRoot());
        const values = await backend.computeValues(root, start, 700);
        for (let k = 0; k < values.length; k++) {
          const nonce = (start + BigInt(k)) & U64_MASK;
          expect(values[k], `${variant.name} root ${i} nonce ${nonce.toString(16)}`).toBe(workValue(root, nonce));
          compared++;
        }
      }
      expect(compared).toBe(2100);
    });

    it(`${variant.name}: finds work the reference rule accepts`, async () => {
      backend.setVariant(variant.name);
      for (const startNonce of [5n, 0xffffffffffff0000n]) {
        const root = parseRoot(randomRoot());
        const hit = await backend.search({ root, difficulty: EASY, startNonce, signal: never });
        expect(hit, variant.name).not.toBeNull();
        expect(validateWork(root, hit!.work, EASY).valid, `${variant.name} work ${hit!.work.toString(16)}`).toBe(true);
      }
    });
  }
});
