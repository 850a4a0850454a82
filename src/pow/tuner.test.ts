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
import type { SearchRequest } from './types.ts';
import type { WebGpuBackend } from './webgpu.ts';
import { randomRoot } from '../testkit/work.ts';
import { TUNER_CANDIDATES as CANDIDATES, TUNER_EASY as EASY, countedBackend, tunerCacheSuite } from '../testkit/tuner-suite.ts';

const UNREACHABLE = 0xffffffffffffffffn;

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

  /** A cached rate no adapter here reaches: any long full-speed search measures far below it. */
  function absurdCache(saved: { variant: string; rate: number }[]): TuningStore {
    return {
      load: async () => ({ variant: 'plain-n64-w64', rate: 1e15, table: [], at: '2026-01-01T00:00:00Z' }),
      save: async (_key, result) => void saved.push(result),
    };
  }

  /** Searches an unreachable difficulty for `ms`: a long search, at whatever rate the adapter does. */
  async function longSearch(tuned: { search: (r: SearchRequest) => Promise<unknown> }, ms: number): Promise<void> {
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), ms);
    try {
      await tuned.search({ root: parseRoot(randomRoot()), difficulty: UNREACHABLE, startNonce: 0n, signal: stop.signal });
    } finally {
      clearTimeout(timer);
    }
  }

  it('re-tunes after the job when the chosen variant runs far below its calibrated rate', async () => {
    const saved: { variant: string; rate: number }[] = [];
    const { inner, measured } = await counted();
    const tune = { runtime: 'dawn test', store: absurdCache(saved), candidates: CANDIDATES, windowMs: 150, rounds: 2, rateCheckMinMs: 100 };
    const tuned = await createTunedBackend(inner, tune);
    expect(tuned.kernel.state).toBe('cached');
    await longSearch(tuned, 600);
    expect(tuned.kernel.state).toBe('calibrating');
    await tuned.calibrated;
    expect(measured).toEqual([...CANDIDATES, ...CANDIDATES]); // two interleaved rounds
    expect(tuned.kernel.state).toBe('tuned');
    expect(saved).toHaveLength(1);
    expect(saved[0].rate).toBeLessThan(1e15);
  });

  it('does not re-tune after a job too short to judge, or below full intensity', async () => {
    const saved: { variant: string; rate: number }[] = [];
    const { inner, measured } = await counted();
    const short = await createTunedBackend(inner, { runtime: 'dawn test', store: absurdCache(saved), candidates: CANDIDATES });
    // A few dispatches: far too short to judge (and the first one carries the compile).
    const root = parseRoot(randomRoot());
    const hit = await short.search({ root, difficulty: EASY, startNonce: 0n, signal: new AbortController().signal });
    expect(validateWork(root, hit!.work, EASY).valid).toBe(true);
    expect(short.kernel.state).toBe('cached');

    const throttled = await createTunedBackend(inner, { runtime: 'dawn test', store: absurdCache(saved), candidates: CANDIDATES, rateCheckMinMs: 100 });
    throttled.setIntensity(0.5);
    await longSearch(throttled, 600);
    expect(throttled.kernel.state).toBe('cached');
    await throttled.calibrated;
    expect(measured).toEqual([]);
    expect(saved).toEqual([]);
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

  it("with calibrateWhen 'first-search', an adapter no job runs on is never measured; the first job starts it", async () => {
    const saved: unknown[] = [];
    const store: TuningStore = { load: async () => null, save: async (_key, result) => void saved.push(result) };
    const { inner, measured } = await counted();
    const tuned = await createTunedBackend(inner, {
      runtime: 'dawn test',
      store,
      candidates: CANDIDATES,
      windowMs: 150,
      rounds: 1,
      calibrateWhen: 'first-search',
    });
    await tuned.calibrated;
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(tuned.kernel.state).toBe('default');
    expect(measured).toEqual([]);
    const root = parseRoot(randomRoot());
    const job = tuned.search({ root, difficulty: EASY, startNonce: 0n, signal: new AbortController().signal });
    expect(tuned.kernel.state).toBe('calibrating');
    const hit = await job;
    expect(validateWork(root, hit!.work, EASY).valid).toBe(true);
    await tuned.calibrated;
    expect(tuned.kernel.state).toBe('tuned');
    expect(measured).toEqual(CANDIDATES);
    expect(saved).toHaveLength(1);
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
