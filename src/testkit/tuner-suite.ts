/**
 * The kernel tuner's cache behaviour on a real Dawn adapter, as one suite that each adapter's
 * test file runs (src/pow/tuner.test.ts on llvmpipe through OpenGL ES,
 * src/pow/tuner.swiftshader.test.ts on SwiftShader through Vulkan): the choice is cached in the
 * file store, reused without measuring, re-tuned when the key changes, and a job that arrives
 * during calibration gets validated work at once. Test-only: imported by *.test.ts files.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadKernelSources } from '../pow-node/gpu.ts';
import { fileTuningStore } from '../pow-node/tuning-store.ts';
import { createTunedBackend, tuningKey, type TuningStore } from '../pow/tuner.ts';
import type { KernelState } from '../pow/types.ts';
import { createWebGpuBackend, type WebGpuBackend } from '../pow/webgpu.ts';
import { parseRoot, validateWork } from '../pow/work.ts';
import { randomRoot } from './work.ts';

/** Two candidates keep a calibration short on a software adapter. */
export const TUNER_CANDIDATES = ['plain-n64-w64', 'biased-n64-w64'];
/** About 4096 hashes: a few dispatches. */
export const TUNER_EASY = 0xfff0000000000000n;

/** A backend on `gpu` whose measure() calls are counted; disposed by `release`. */
export async function countedBackend(
  gpu: GPU,
  release: WebGpuBackend[],
): Promise<{ inner: WebGpuBackend; measured: string[] }> {
  const inner = await createWebGpuBackend({ gpu, shaders: loadKernelSources() });
  release.push(inner);
  const measured: string[] = [];
  const measure = inner.measure.bind(inner);
  inner.measure = (variant, ms, signal) => {
    measured.push(variant);
    return measure(variant, ms, signal);
  };
  return { inner, measured };
}

export interface TunerSuiteOptions {
  /** The adapter's GPU object; called inside the tests, after the caller's beforeAll. */
  gpu: () => GPU;
  /** Measuring time per candidate in the cache test (short: a software adapter). */
  windowMs: number;
}

/** Registers the cache and mid-calibration tests in the caller's describe block. */
export function tunerCacheSuite(options: TunerSuiteOptions): void {
  const backends: WebGpuBackend[] = [];
  let dir = '';
  const windowMs = options.windowMs;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'dpow-tuning-'));
  });

  afterAll(() => {
    for (const backend of backends) backend.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('calibrates on first use, caches the choice in the file, reuses it, and re-tunes when the key changes', async () => {
    const file = join(dir, 'kernel-tuning.json');
    const store = fileTuningStore(file);
    const tune = { store, candidates: TUNER_CANDIDATES, windowMs, rounds: 1 };

    const first = await countedBackend(options.gpu(), backends);
    const tuned = await createTunedBackend(first.inner, { runtime: 'dawn test', ...tune });
    const states: KernelState[] = [];
    tuned.onKernelChange(() => states.push(tuned.kernel.state));
    expect(tuned.kernel.state).toBe('calibrating');
    await tuned.calibrated;
    expect(first.measured).toEqual(TUNER_CANDIDATES);
    expect(tuned.kernel.state).toBe('tuned');
    // Listeners hear the end of the calibration (the page shows it without another job).
    expect(states.at(-1)).toBe('tuned');
    expect(TUNER_CANDIDATES).toContain(tuned.kernel.variant);
    expect(first.inner.variant.name).toBe(tuned.kernel.variant);
    const saved = JSON.parse(readFileSync(file, 'utf8'));
    const key = tuningKey(first.inner.adapterInfo, 'dawn test');
    expect(saved[key].variant).toBe(tuned.kernel.variant);
    expect(saved[key].table.map((r: { variant: string }) => r.variant).sort()).toEqual([...TUNER_CANDIDATES].sort());

    const second = await countedBackend(options.gpu(), backends);
    const reused = await createTunedBackend(second.inner, { runtime: 'dawn test', ...tune });
    await reused.calibrated;
    expect(reused.kernel).toEqual({ variant: tuned.kernel.variant, calibratedRate: saved[key].rate, state: 'cached' });
    expect(second.measured).toEqual([]);
    expect(second.inner.variant.name).toBe(tuned.kernel.variant);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(saved); // nothing stored again

    const third = await countedBackend(options.gpu(), backends);
    const upgraded = await createTunedBackend(third.inner, { runtime: 'dawn test 2', ...tune });
    await upgraded.calibrated;
    expect(third.measured).toEqual(TUNER_CANDIDATES);
    const after = JSON.parse(readFileSync(file, 'utf8'));
    expect(Object.keys(after)).toHaveLength(2);
    expect(after[key]).toEqual(saved[key]); // the first key's entry is untouched
  });

  it('computes a job that arrives during calibration at once, with validated work, then finishes calibrating', async () => {
    const saved = new Map<string, unknown>();
    const store: TuningStore = {
      load: async () => null,
      save: async (key, result) => void saved.set(key, result),
    };
    const { inner, measured } = await countedBackend(options.gpu(), backends);
    const tuned = await createTunedBackend(inner, { runtime: 'dawn test', store, candidates: TUNER_CANDIDATES, windowMs: windowMs * 2, rounds: 1 });
    expect(tuned.kernel.state).toBe('calibrating');
    const root = parseRoot(randomRoot());
    const hit = await tuned.search({ root, difficulty: TUNER_EASY, startNonce: 0n, signal: new AbortController().signal });
    expect(validateWork(root, hit!.work, TUNER_EASY).valid).toBe(true);
    // The job did not wait for the calibration: it is still going.
    expect(tuned.kernel.state).toBe('calibrating');
    await tuned.calibrated;
    expect(tuned.kernel.state).toBe('tuned');
    expect(saved.size).toBe(1);
    // The interrupted measurement was taken again after the job, so every candidate has a rate.
    expect(new Set(measured)).toEqual(new Set(TUNER_CANDIDATES));
  });
}
