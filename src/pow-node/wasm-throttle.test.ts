/**
 * The CPU throttle is a real duty cycle: at intensity 0.5 the WASM threads use half the CPU time
 * they use at full speed over the same stretch of searching. Asserted on CPU time
 * (process.cpuUsage, which counts every worker thread of the process), never on speed; the
 * intensities alternate in short rounds so a neighbour's load falls on all of them alike.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { measureBackend } from '../pow/engine.ts';
import { startNodeWasmPool } from './wasm-threads.ts';
import type { WasmBackend } from '../pow/wasm.ts';

const cpuMs = () => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
};

let backend: WasmBackend | undefined;
afterAll(() => backend?.dispose());

describe('WASM CPU throttle', () => {
  it('halves the CPU time at intensity 0.5 and quarters it at 0.25', async () => {
    backend = await startNodeWasmPool({ threads: 1 });
    const used = new Map<number, { cpu: number; searching: number; hashes: number }>();
    for (let round = 0; round < 6; round++) {
      for (const intensity of [1, 0.5, 0.25]) {
        backend.setIntensity(intensity);
        const before = cpuMs();
        const result = await measureBackend(backend, 0.4);
        const sum = used.get(intensity) ?? { cpu: 0, searching: 0, hashes: 0 };
        used.set(intensity, { cpu: sum.cpu + cpuMs() - before, searching: sum.searching + result.ms, hashes: sum.hashes + result.hashes });
      }
    }
    // CPU time per millisecond of searching (one thread: at most about 1). A duty cycle is an
    // upper bound whatever the machine does: at intensity d the thread may compute at most d of
    // the time, and a neighbour's load only takes more away, so these hold on a busy machine too
    // (a small margin for the main thread and an idle debt not yet paid when a round ends).
    // Without the throttle, an idle machine reads about 1 for every intensity and fails them.
    const share = (intensity: number) => {
      const u = used.get(intensity)!;
      return u.cpu / u.searching;
    };
    const full = share(1);
    const seen = `CPU per ms searching: ${[1, 0.5, 0.25].map((i) => `${i}: ${share(i).toFixed(3)}`).join(', ')}`;
    expect(full, seen).toBeGreaterThan(0);
    expect(share(0.5), seen).toBeLessThan(0.5 + 0.12);
    expect(share(0.25), seen).toBeLessThan(0.25 + 0.1);
    // The shares relative to full speed say the throttle does not throttle too much, but only
    // when the machine let the full-speed rounds have most of a core: a loaded machine squeezes
    // full speed, and a thread that sleeps half the time is then favoured by the scheduler.
    if (full > 0.75) {
      expect(share(0.5) / full, seen).toBeGreaterThan(0.3);
      expect(share(0.25) / full, seen).toBeGreaterThan(0.1);
      expect(share(0.25), seen).toBeLessThan(share(0.5));
    } else {
      console.log(`wasm-throttle: the machine gave full speed ${full.toFixed(2)} of a core; only the upper bounds were checked (${seen})`);
    }
    // Throttled, it still hashes (it idles between kernel calls, it does not stop).
    expect(used.get(0.25)!.hashes).toBeGreaterThan(0);
  });

  it('refuses an intensity outside (0, 1]', async () => {
    backend ??= await startNodeWasmPool({ threads: 1 });
    expect(() => backend!.setIntensity(0)).toThrow(RangeError);
    expect(() => backend!.setIntensity(Number.NaN)).toThrow(RangeError);
  });
});
