/**
 * The kernel tuner on a real adapter (Dawn; llvmpipe through OpenGL ES here): the choice is
 * cached, reused without re-tuning, re-run when the key changes, and a job arriving during
 * calibration still gets validated work at once (src/testkit/tuner-suite.ts; the same suite runs
 * on SwiftShader in tuner.swiftshader.test.ts). Also: re-tuning after a slow job, and forcing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNodeGpu } from '../pow-node/gpu.ts';
import { parseRoot, validateWork } from './work.ts';
import { createTunedBackend, type TuningStore } from './tuner.ts';
import type { WebGpuBackend } from './webgpu.ts';
import { randomRoot } from '../testkit/work.ts';
import { TUNER_CANDIDATES as CANDIDATES, TUNER_EASY as EASY, countedBackend, tunerCacheSuite } from '../testkit/tuner-suite.ts';

describe.skipIf(process.env.DPOW_SKIP_GPU === '1')('kernel tuner (Dawn)', () => {
  let gpu: GPU;
  const backends: WebGpuBackend[] = [];
  const counted = () => countedBackend(gpu, backends);

  beforeAll(async () => {
    const found = await createNodeGpu();
    if (!found) throw new Error('no WebGPU adapter: install libegl1 and libgl1-mesa-dri (llvmpipe), or set DPOW_SKIP_GPU=1');
    gpu = found;
  });

  afterAll(() => {
    for (const backend of backends) backend.dispose();
  });

  tunerCacheSuite({ gpu: () => gpu, windowMs: 150 });

  it('re-tunes after the job when the chosen variant runs far below its calibrated rate', async () => {
    const saved: { variant: string; rate: number }[] = [];
    const store: TuningStore = {
      // A cached rate no adapter here reaches: the next job measures far below it.
      load: async () => ({ variant: 'plain-n64-w64', rate: 1e15, table: [], at: '2026-01-01T00:00:00Z' }),
      save: async (_key, result) => void saved.push(result),
    };
    const { inner, measured } = await counted();
    const tuned = await createTunedBackend(inner, {
      runtime: 'dawn test',
      store,
      candidates: CANDIDATES,
      windowMs: 150,
      rounds: 2,
      rateCheckMinMs: 1,
    });
    expect(tuned.kernel.state).toBe('cached');
    const root = parseRoot(randomRoot());
    const hit = await tuned.search({ root, difficulty: EASY, startNonce: 0n, signal: new AbortController().signal });
    expect(validateWork(root, hit!.work, EASY).valid).toBe(true);
    await tuned.calibrated;
    expect(measured).toEqual([...CANDIDATES, ...CANDIDATES]); // two interleaved rounds
    expect(tuned.kernel.state).toBe('tuned');
    expect(saved).toHaveLength(1);
    expect(saved[0].rate).toBeLessThan(1e15);
  });

  it('forcing a kernel during calibration stops it; un-forcing returns to the tuner', async () => {
    const saved: unknown[] = [];
    const store: TuningStore = { load: async () => null, save: async (_key, result) => void saved.push(result) };
    const { inner } = await counted();
    const tuned = await createTunedBackend(inner, { runtime: 'dawn test', store, candidates: CANDIDATES, windowMs: 400, rounds: 1 });
    expect(tuned.kernel.state).toBe('calibrating');
    tuned.forceKernel('plain-n8-w256');
    await tuned.calibrated;
    expect(tuned.kernel).toEqual({ variant: 'plain-n8-w256', calibratedRate: null, state: 'forced' });
    expect(inner.variant.name).toBe('plain-n8-w256');
    expect(saved).toHaveLength(0);
    tuned.forceKernel(null);
    await tuned.calibrated;
    expect(tuned.kernel.state).toBe('tuned');
    expect(CANDIDATES).toContain(inner.variant.name);
    expect(() => tuned.forceKernel('nonsense')).toThrow(RangeError);
  });

  it('a forced kernel is used without tuning', async () => {
    const { inner, measured } = await counted();
    const tuned = await createTunedBackend(inner, { runtime: 'dawn test', forced: 'plain-n8-w256', candidates: CANDIDATES });
    await tuned.calibrated;
    expect(tuned.kernel).toEqual({ variant: 'plain-n8-w256', calibratedRate: null, state: 'forced' });
    expect(inner.variant.name).toBe('plain-n8-w256');
    expect(measured).toEqual([]);
  });
});
