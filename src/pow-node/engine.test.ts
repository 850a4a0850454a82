/**
 * The engine on the real Node backends: WASM worker threads and Dawn WebGPU (llvmpipe through
 * OpenGL ES on a machine without a GPU). Low difficulties only; speed is not asserted.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createNodeEngine } from './engine.ts';
import { createNodeGpu, loadKernelSources } from './gpu.ts';
import { startNodeWasmPool } from './wasm-threads.ts';
import { PowEngine } from '../pow/engine.ts';
import { createWebGpuBackend } from '../pow/webgpu.ts';
import { validateWork } from '../pow/work.ts';
import { plainLogger } from '../log.ts';

const ROOT = '2387767168F9453DB0FCA1F4A2B0B2B7FB6F83E5EF5DE26A5BE2B3C2A1F0E9D8';
let engine: PowEngine | undefined;

afterEach(() => {
  engine?.dispose();
  engine = undefined;
});

describe('createNodeEngine', () => {
  it('finds validated work on WASM threads', async () => {
    engine = await createNodeEngine({ backend: 'wasm', threads: 2 });
    const result = await engine.generate(ROOT, 0xfff0000000000000n);
    expect(result.backend).toBe('wasm');
    expect(validateWork(ROOT, result.work, 'fff0000000000000').valid).toBe(true);
    expect((await engine.status()).label).toMatch(/WASM/);
  });

  it("'auto' finds validated work on Dawn WebGPU", async () => {
    engine = await createNodeEngine();
    const result = await engine.generate(ROOT, 0xffff000000000000n);
    expect(result.backend).toBe('webgpu');
    expect(validateWork(ROOT, result.work, 'ffff000000000000').valid).toBe(true);
  });

  it('still returns validated work when the GPU device is lost mid-job', async () => {
    engine = await createNodeEngine({ threads: 1 });
    const e = engine;
    // 2^22 hashes expected: long enough for the loss to land while the GPU is searching.
    const difficulty = 0xfffffc0000000000n;
    const job = e.generate(ROOT, difficulty);
    await vi.waitUntil(async () => {
      const s = await e.status();
      return s.backend === 'webgpu' && s.totalHashes > 0;
    }, { timeout: 30_000 });
    const midJob = (await e.status()).root !== null;
    expect(await e.simulateDeviceLoss()).toBe(true);
    const result = await job;
    expect(validateWork(ROOT, result.work, difficulty).valid).toBe(true);
    expect(['webgpu', 'wasm']).toContain(result.backend);
    if (!midJob) console.warn('device loss landed after the job finished; only the hook was exercised');
  });

  it('benchmarks WASM with the requested thread count', async () => {
    engine = await createNodeEngine({ backend: 'wasm' });
    const [row] = await engine.benchmark({ backend: 'wasm', seconds: 0.5, threads: 1 });
    expect(row).toMatchObject({ backend: 'wasm', threads: 1 });
    expect(row.hashes).toBeGreaterThan(0);
    expect(row.hashrate).toBeGreaterThan(0);
    expect(row.compileMs).toBeGreaterThan(0);
  });

  it('falls back to WASM threads and finishes the job when the GPU cannot be brought back', async () => {
    const gpu = await createNodeGpu();
    expect(gpu).not.toBeNull();
    // The real Dawn GPU, except that once `adapterGone` is set it has no adapter left, so the
    // backend's attempt to re-create a lost device fails as on a machine whose driver crashed.
    let adapterGone = false;
    const dyingGpu = new Proxy(gpu!, {
      get(target, key) {
        if (key === 'requestAdapter') {
          return (options?: GPURequestAdapterOptions) => (adapterGone ? Promise.resolve(null) : target.requestAdapter(options));
        }
        const value = Reflect.get(target, key);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const logs: string[] = [];
    const e = new PowEngine({
      webgpu: () => createWebGpuBackend({ gpu: dyingGpu, shaders: loadKernelSources() }),
      wasm: (threads) => startNodeWasmPool({ threads }),
      defaultThreads: 2,
      log: plainLogger((m) => logs.push(m)),
    });
    engine = e;
    const difficulty = 0xfffffc0000000000n; // 2^22 hashes expected
    for (let attempt = 0; attempt < 3; attempt++) {
      adapterGone = false;
      const root = ROOT.slice(0, 60) + attempt.toString(16).padStart(4, '0');
      const job = e.generate(root, difficulty, { backend: 'webgpu' });
      await vi.waitUntil(async () => {
        const s = await e.status();
        return s.backend === 'webgpu' && s.totalHashes > 0;
      }, { timeout: 30_000 });
      if ((await e.status()).root === null) {
        await job; // the GPU was faster than the test; try again with another root
        continue;
      }
      adapterGone = true;
      expect(await e.simulateDeviceLoss()).toBe(true);
      const result = await job;
      if (result.backend === 'webgpu') continue; // found in the last dispatch before the loss
      expect(result.backend).toBe('wasm');
      expect(validateWork(root, result.work, difficulty).valid).toBe(true);
      expect(logs.join('\n')).toMatch(/DeviceLostError.*continuing .* on WASM/);
      expect((await e.status()).label).toMatch(/WASM/);
      return;
    }
    throw new Error('the GPU finished every job before the device loss landed');
  });
});
