/**
 * The kernel tuner on a real adapter (Dawn; llvmpipe here): the choice is cached, reused without
 * re-tuning, re-run when the key changes, and a job arriving during calibration still gets
 * validated work at once.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNodeGpu, loadKernelSources } from '../pow-node/gpu.ts';
import { fileTuningStore } from '../pow-node/tuning-store.ts';
import { parseRoot, validateWork } from './work.ts';
import { createTunedBackend, tuningKey, type TuningStore } from './tuner.ts';
import { createWebGpuBackend, type WebGpuBackend } from './webgpu.ts';
import { randomRoot } from '../testkit/work.ts';

const CANDIDATES = ['plain-n64-w64', 'biased-n64-w64'];
const EASY = 0xfff0000000000000n;

describe.skipIf(process.env.DPOW_SKIP_GPU === '1')('kernel tuner (Dawn)', () => {
  let gpu: GPU;
  let dir: string;
  const backends: WebGpuBackend[] = [];

  /** A backend whose measure() calls are counted. */
  async function counted(): Promise<{ inner: WebGpuBackend; measured: string[] }> {
    const inner = await createWebGpuBackend({ gpu, shaders: loadKernelSources() });
    backends.push(inner);
    const measured: string[] = [];
    const measure = inner.measure.bind(inner);
    inner.measure = (variant, ms, signal) => {
      measured.push(variant);
      return measure(variant, ms, signal);
    };
    return { inner, measured };
  }

  beforeAll(async () => {
    const found = await createNodeGpu();
    if (!found) throw new Error('no WebGPU adapter: install libegl1 and libgl1-mesa-dri (llvmpipe), or set DPOW_SKIP_GPU=1');
    gpu = found;
    dir = mkdtempSync(join(tmpdir(), 'dpow-tuning-'));
  });

  afterAll(() => {
    for (const backend of backends) backend.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('calibrates on first use, caches the choice in the file, reuses it, and re-tunes when the key changes', async () => {
    const file = join(dir, 'kernel-tuning.json');
    const store = fileTuningStore(file);

    const first = await counted();
    const tuned = await createTunedBackend(first.inner, { runtime: 'dawn test', store, candidates: CANDIDATES, windowMs: 150, rounds: 1 });
    expect(tuned.kernel.state).toBe('calibrating');
    await tuned.calibrated;
    expect(first.measured).toEqual(CANDIDATES);
    expect(tuned.kernel.state).toBe('tuned');
    expect(CANDIDATES).toContain(tuned.kernel.variant);
    expect(first.inner.variant.name).toBe(tuned.kernel.variant);
    const saved = JSON.parse(readFileSync(file, 'utf8'));
    const key = tuningKey(first.inner.adapterInfo, 'dawn test');
    expect(saved[key].variant).toBe(tuned.kernel.variant);
    expect(saved[key].table.map((r: { variant: string }) => r.variant).sort()).toEqual([...CANDIDATES].sort());

    const second = await counted();
    const reused = await createTunedBackend(second.inner, { runtime: 'dawn test', store, candidates: CANDIDATES, windowMs: 150, rounds: 1 });
    await reused.calibrated;
    expect(reused.kernel).toEqual({ variant: tuned.kernel.variant, calibratedRate: saved[key].rate, state: 'cached' });
    expect(second.measured).toEqual([]);
    expect(second.inner.variant.name).toBe(tuned.kernel.variant);

    const third = await counted();
    const upgraded = await createTunedBackend(third.inner, { runtime: 'dawn test 2', store, candidates: CANDIDATES, windowMs: 150, rounds: 1 });
    await upgraded.calibrated;
    expect(third.measured).toEqual(CANDIDATES);
    expect(Object.keys(JSON.parse(readFileSync(file, 'utf8')))).toHaveLength(2);
  });

  it('computes a job that arrives during calibration at once, with validated work, then finishes calibrating', async () => {
    const saved = new Map<string, unknown>();
    const store: TuningStore = {
      load: async () => null,
      save: async (key, result) => void saved.set(key, result),
    };
    const { inner, measured } = await counted();
    const tuned = await createTunedBackend(inner, { runtime: 'dawn test', store, candidates: CANDIDATES, windowMs: 400, rounds: 1 });
    expect(tuned.kernel.state).toBe('calibrating');
    const root = parseRoot(randomRoot());
    const hit = await tuned.search({ root, difficulty: EASY, startNonce: 0n, signal: new AbortController().signal });
    expect(validateWork(root, hit!.work, EASY).valid).toBe(true);
    await tuned.calibrated;
    expect(tuned.kernel.state).toBe('tuned');
    expect(saved.size).toBe(1);
    // The interrupted measurement was taken again after the job, so every candidate has a rate.
    expect(new Set(measured)).toEqual(new Set(CANDIDATES));
  });

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
