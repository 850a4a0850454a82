/**
 * The WGSL kernel and the WebGPU backend on a real adapter: Dawn in Node, which on a machine
 * without a GPU is Mesa's llvmpipe through OpenGL ES (CI installs libegl1 and libgl1-mesa-dri).
 * No adapter is a failure, not a skip, unless DPOW_SKIP_GPU=1.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNodeGpu, loadKernelSources } from '../pow-node/gpu.ts';
import { createWebGpuBackend, type WebGpuBackend } from './webgpu.ts';
import { parseRoot, parseWork, validateWork, workValue } from './work.ts';
import { plainLogger } from '../log.ts';

const U64_MASK = (1n << 64n) - 1n;
const vectors = JSON.parse(
  readFileSync(fileURLToPath(new URL('../../test/vectors/nano-work.json', import.meta.url)), 'utf8'),
) as {
  valid: { root: string; work: string; value: string }[];
  invalid: { root: string; work: string }[];
  byte_order_trap: { root: string; work: string; correct_value: string };
};

/** Deterministic pseudo-random bytes (xorshift), so a failure can be reproduced. */
function bytes(seed: number, length: number): Uint8Array {
  let x = seed | 1;
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function u64(seed: number): bigint {
  let value = 0n;
  for (const b of bytes(seed, 8)) value = (value << 8n) | BigInt(b);
  return value;
}

const never = new AbortController().signal;

describe.skipIf(process.env.DPOW_SKIP_GPU === '1')('WebGPU kernel (Dawn)', () => {
  let gpu: GPU;
  let backend: WebGpuBackend;
  const shaders = loadKernelSources();

  beforeAll(async () => {
    const found = await createNodeGpu();
    if (!found) {
      throw new Error(
        'no WebGPU adapter: install libegl1 and libgl1-mesa-dri (llvmpipe), or set DPOW_SKIP_GPU=1',
      );
    }
    gpu = found;
    backend = await createWebGpuBackend({ gpu, shaders });
  });

  afterAll(() => {
    backend?.dispose();
  });

  it('answers null, not an error, when an asked-for Node backend has no adapter', async () => {
    // On this project's machines Dawn refuses Mesa's lavapipe, so Vulkan has no adapter; on a
    // machine with a real Vulkan GPU the same call returns a working GPU object.
    const vulkan = await createNodeGpu({ backend: 'vulkan' });
    if (vulkan) expect(typeof vulkan.requestAdapter).toBe('function');
    else expect(vulkan).toBeNull();
  });

  it('rejects with the compiler message when the kernel does not compile', async () => {
    const source = backend.variant.source;
    const broken = shaders[source].replace('fn rotr24(x: vec2<u32>) -> vec2<u32> {', 'fn rotr24(x: vec2<u32>) -> vec2<u32> { let oops: u32 = 1.5;');
    expect(broken).not.toBe(shaders[source]);
    await expect(createWebGpuBackend({ gpu, shaders: { ...shaders, [source]: broken } })).rejects.toThrow(/nano-pow\.wgsl: \d+:\d+ /);
  });

  it('describes its adapter', () => {
    expect(backend.name).toBe('webgpu');
    expect(backend.label.length).toBeGreaterThan(0);
    expect(['core', 'compatibility']).toContain(backend.adapterInfo.featureLevel);
    expect(typeof backend.adapterInfo.isFallbackAdapter).toBe('boolean');
    expect(backend.compileMs).toBeGreaterThan(0);
  });

  it('computes the same work values as the reference rule, including nonces above 2^32', async () => {
    const starts = [
      0n,
      0x00000000fffffe00n, // crosses 2^32: the carry into the nonce's high word
      0x8000_0001_ffff_ff00n,
      0xffffffffffffff00n, // wraps through 2^64 back to 0
      u64(7),
      u64(8),
    ];
    let compared = 0;
    for (const [i, start] of starts.entries()) {
      const root = bytes(100 + i, 32);
      const values = await backend.computeValues(root, start, 768);
      expect(values.length).toBe(768);
      for (let k = 0; k < values.length; k++) {
        const nonce = (start + BigInt(k)) & U64_MASK;
        expect(values[k], `root ${i} nonce ${nonce.toString(16)}`).toBe(workValue(root, nonce));
        compared++;
      }
    }
    expect(compared).toBeGreaterThanOrEqual(4096);
  });

  it('covers every nonce when a dispatch needs a 2-D grid', async () => {
    const small = await createWebGpuBackend({ gpu, shaders, maxWorkgroupsPerDimension: 5 });
    try {
      const root = bytes(55, 32);
      const start = 0xffff_ffff_0000_0000n - 500n;
      const values = await small.computeValues(root, start, 1000); // 16 workgroups: a 5 x 4 grid
      for (let k = 0; k < values.length; k++) {
        expect(values[k], `nonce ${k}`).toBe(workValue(root, start + BigInt(k)));
      }
    } finally {
      small.dispose();
    }
  });

  it('computes the published test vectors (with the byte-order trap)', async () => {
    for (const vector of vectors.valid) {
      const [value] = await backend.computeValues(parseRoot(vector.root), parseWork(vector.work), 1);
      expect(value.toString(16).padStart(16, '0')).toBe(vector.value.toLowerCase());
    }
    for (const vector of vectors.invalid) {
      const [value] = await backend.computeValues(parseRoot(vector.root), parseWork(vector.work), 1);
      expect(value).toBe(workValue(vector.root, vector.work));
    }
    const trap = vectors.byte_order_trap;
    const [value] = await backend.computeValues(parseRoot(trap.root), parseWork(trap.work), 1);
    expect(value.toString(16).padStart(16, '0')).toBe(trap.correct_value.toLowerCase());
  });

  it('finds work that the reference rule accepts, for several roots', async () => {
    const cases = [
      ...[1, 2, 3, 4].map((seed) => ({ seed, difficulty: 0xfff0000000000000n })),
      { seed: 5, difficulty: 0xffff000000000000n },
    ];
    for (const { seed, difficulty } of cases) {
      const root = bytes(seed, 32);
      const startNonce = u64(seed + 50);
      let hashes = 0;
      const hit = await backend.search({
        root,
        difficulty,
        startNonce,
        signal: never,
        onHashes: (n) => {
          hashes += n;
        },
      });
      expect(hit).not.toBeNull();
      const { valid, value } = validateWork(root, hit!.work, difficulty);
      expect(valid, `work ${hit!.work.toString(16)} value ${value.toString(16)}`).toBe(true);
      expect(hashes).toBeGreaterThan(0);
    }
  });

  it('compares all 64 bits with >=: the low word decides when the high words are equal', async () => {
    // One dispatch of exactly 65536 nonces from `start`, so which nonces qualify is known; at
    // most 4 workgroups per dimension makes it a 4 x 4 grid, so the 2-D nonce layout is covered.
    const exact = await createWebGpuBackend({
      gpu,
      shaders,
      maxDispatchNonces: 65536,
      maxWorkgroupsPerDimension: 4,
    });
    try {
      const root = bytes(77, 32);
      const start = 0x0123_4567_ffff_8000n; // the range crosses a 2^32 boundary
      const values = await backend.computeValues(root, start, 65536);
      let best = 0;
      for (let k = 1; k < values.length; k++) if (values[k] > values[best]) best = k;
      const bestNonce = start + BigInt(best);
      const top = values[best];
      expect(top).toBe(workValue(root, bestNonce));
      expect(top & 0xffffffffn).not.toBe(0xffffffffn); // top + 1 keeps the same high word

      // difficulty == value: accepted, and it is the only such nonce in the first dispatch.
      const equal = await exact.search({ root, difficulty: top, startNonce: start, signal: never });
      expect(equal?.work).toBe(bestNonce);

      // difficulty == value + 1 (same high word): that nonce must not be reported.
      const above = await exact.search({ root, difficulty: top + 1n, startNonce: start, signal: never });
      expect(above).not.toBeNull();
      expect(above!.work).not.toBe(bestNonce);
      expect(validateWork(root, above!.work, top + 1n).valid).toBe(true);
    } finally {
      exact.dispose();
    }
  });

  it('keeps finding valid work at reduced intensity, and refuses intensities outside (0, 1]', async () => {
    const root = bytes(61, 32);
    backend.setIntensity(0.3);
    try {
      const hit = await backend.search({ root, difficulty: 0xfff0000000000000n, startNonce: 5n, signal: never });
      expect(validateWork(root, hit!.work, 0xfff0000000000000n).valid).toBe(true);
    } finally {
      backend.setIntensity(1);
    }
    expect(() => backend.setIntensity(0)).toThrow(RangeError);
    expect(() => backend.setIntensity(Number.NaN)).toThrow(RangeError);
  });

  it('resolves null promptly when the search is cancelled, and searches again afterwards', async () => {
    const root = bytes(9, 32);
    const controller = new AbortController();
    let hashes = 0;
    let working: () => void = () => {};
    const firstHashes = new Promise<void>((resolve) => (working = resolve));
    const search = backend.search({
      root,
      difficulty: 0xffffffffffffffffn, // practically unreachable
      startNonce: 0n,
      signal: controller.signal,
      onHashes: (n) => {
        hashes += n;
        working();
      },
    });
    await firstHashes;
    const abortedAt = performance.now();
    controller.abort();
    expect(await search).toBeNull();
    // Within a few dispatches (~50 ms each), with wide room for a loaded CI machine.
    expect(performance.now() - abortedAt).toBeLessThan(5000);
    expect(hashes).toBeGreaterThan(0);

    expect(await backend.search({ root, difficulty: 0n, startNonce: 0n, signal: controller.signal })).toBeNull();
    const again = await backend.search({ root, difficulty: 0xfff0000000000000n, startNonce: 0n, signal: never });
    expect(validateWork(root, again!.work, 0xfff0000000000000n).valid).toBe(true);
  });

  it('carries on after the device is lost mid-search and still returns valid work', async () => {
    const logs: string[] = [];
    const lossy = await createWebGpuBackend({ gpu, shaders, log: plainLogger((m) => logs.push(m)) });
    try {
      const root = bytes(31, 32);
      const difficulty = 0xfffff00000000000n; // ~2^20 hashes: several dispatches
      // A fresh backend's first dispatch is 65536 nonces: start where none of them qualifies, so
      // the loss always lands before the work is found.
      let startNonce = 0n;
      while ((await lossy.computeValues(root, startNonce, 65536)).some((v) => v >= difficulty)) {
        startNonce += 65536n;
      }
      let lost = false;
      let hashesAfterLoss = 0;
      const hit = await lossy.search({
        root,
        difficulty,
        startNonce,
        signal: never,
        onHashes: (n) => {
          if (lost) hashesAfterLoss += n;
          if (!lost) {
            lost = true;
            lossy.simulateDeviceLoss();
          }
        },
      });
      expect(lost).toBe(true);
      expect(hit).not.toBeNull();
      expect(validateWork(root, hit!.work, difficulty).valid).toBe(true);
      expect(logs.some((m) => m.includes('re-creating'))).toBe(true);
      expect(hashesAfterLoss).toBeGreaterThan(0);
    } finally {
      lossy.dispose();
    }
  });

  it('rejects with a DeviceLostError when the device cannot be re-created', async () => {
    // The real GPU, except that it has no adapter left to give after the first device.
    let requests = 0;
    const failing = {
      requestAdapter: (options?: GPURequestAdapterOptions) => (requests++ < 2 ? gpu.requestAdapter(options) : Promise.resolve(null)),
      getPreferredCanvasFormat: () => gpu.getPreferredCanvasFormat(),
      wgslLanguageFeatures: gpu.wgslLanguageFeatures,
    } as GPU;
    const doomed = await createWebGpuBackend({ gpu: failing, shaders });
    try {
      const search = doomed.search({
        root: bytes(41, 32),
        difficulty: 0xffffffffffffffffn,
        startNonce: 0n,
        signal: never,
        onHashes: () => doomed.simulateDeviceLoss(),
      });
      await expect(search).rejects.toMatchObject({ name: 'DeviceLostError' });
    } finally {
      doomed.dispose();
    }
  });

  it('lets a Node process exit once the backend is disposed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dpow-webgpu-'));
    const script = join(dir, 'exit.mts');
    const gpuModule = pathToFileURL(fileURLToPath(new URL('../pow-node/gpu.ts', import.meta.url))).href;
    const backendModule = pathToFileURL(fileURLToPath(new URL('./webgpu.ts', import.meta.url))).href;
    writeFileSync(
      script,
      `import { createNodeGpu, loadKernelSources } from ${JSON.stringify(gpuModule)};
import { createWebGpuBackend } from ${JSON.stringify(backendModule)};
const gpu = await createNodeGpu();
if (!gpu) process.exit(3);
const backend = await createWebGpuBackend({ gpu, shaders: loadKernelSources() });
const hit = await backend.search({ root: new Uint8Array(32), difficulty: 0xff00000000000000n, startNonce: 0n, signal: new AbortController().signal });
backend.dispose();
console.log('found', hit?.work.toString(16));
`,
    );
    try {
      const output = await new Promise<string>((resolve, reject) => {
        execFile(process.execPath, ['--import', 'tsx', script], { timeout: 45_000, cwd: process.cwd() }, (err, stdout, stderr) =>
          err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
        );
      });
      expect(output).toMatch(/^found [0-9a-f]+$/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('shaders/*.wgsl', () => {
  it('are what kernels/gen-wgsl.mjs generates (edit the generator, not the shaders)', async () => {
    const generator = fileURLToPath(new URL('../../kernels/gen-wgsl.mjs', import.meta.url));
    const result = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, [generator, '--check'], (err, _stdout, stderr) =>
        resolve({ code: err ? Number(err.code ?? 1) : 0, stderr }),
      );
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  });
});
