/**
 * How many threads really run side by side in this browser, measured: navigator.hardwareConcurrency
 * is only a claim (see pow/threads.ts). One busy-loop worker runs alone, then as many as the
 * browser claims run at once, then one alone again; the rates say how many cores they shared.
 * About 0.7 s of CPU, once per browser and claim: the result is remembered in localStorage.
 */
import { estimateParallelism, usableCores } from '../pow/threads.ts';

const STORAGE_KEY = 'dpow-web.parallelism.v1';
/** Each timed run; long enough for the OS scheduler to share the cores out evenly. */
const WINDOW_MS = 200;
/** Loads and compiles each worker before anything is timed. */
const WARM_UP_MS = 20;
/** At most this many probe threads; a claim above it is believed when all of them scale. */
const MAX_PROBE_THREADS = 16;

interface Remembered {
  claimed: number;
  agent: string;
  cores: number;
}

/** What the browser says about itself; the probe is redone when either changes. */
export interface BrowserClaim {
  hardwareConcurrency?: number;
  userAgent: string;
}

export function rememberedParallelism(storage: Storage | undefined, claim: BrowserClaim): number | null {
  try {
    const entry = JSON.parse(storage?.getItem(STORAGE_KEY) ?? 'null') as Partial<Remembered> | null;
    const claimed = usableCores(claim.hardwareConcurrency);
    if (entry?.claimed !== claimed || entry.agent !== claim.userAgent) return null;
    return Number.isInteger(entry.cores) && entry.cores! >= 1 && entry.cores! <= claimed ? entry.cores! : null;
  } catch {
    return null;
  }
}

/** One probe run on `worker`: resolves with its rate (iterations per ms). */
function run(worker: Worker, ms: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const done = () => {
      worker.removeEventListener('message', onMessage);
      worker.removeEventListener('error', onError);
    };
    const onMessage = (event: MessageEvent<[number, number]>) => {
      done();
      resolve(event.data[0]);
    };
    const onError = (event: ErrorEvent) => {
      done();
      reject(new Error(`parallelism probe worker failed: ${event.message}`));
    };
    worker.addEventListener('message', onMessage);
    worker.addEventListener('error', onError);
    worker.postMessage(ms);
  });
}

/** Measures the threads that run at once, up to what the browser claims. */
export async function measureParallelism(claimed: number): Promise<number> {
  const count = Math.min(claimed, MAX_PROBE_THREADS);
  const workers = Array.from(
    { length: count },
    (_, i) => new Worker(new URL('./parallelism.worker.ts', import.meta.url), { type: 'module', name: `parallelism-probe-${i}` }),
  );
  try {
    await Promise.all(workers.map((w) => run(w, WARM_UP_MS)));
    const before = await run(workers[0], WINDOW_MS);
    const together = await Promise.all(workers.map((w) => run(w, WINDOW_MS)));
    const after = await run(workers[0], WINDOW_MS);
    const measured = estimateParallelism([before, after], together);
    return measured >= count ? claimed : measured;
  } finally {
    for (const w of workers) w.terminate();
  }
}

/**
 * The cores to plan WASM threads for: the browser's claim, clamped, and capped by what was
 * measured here (now, if nothing is remembered for this claim). A claim of 1 or 2 is not measured:
 * the default of all cores but one is then 1 thread whatever the truth. A probe that cannot run
 * leaves the clamped claim.
 */
export async function usableCoreCount(claim: BrowserClaim, storage: Storage | undefined): Promise<number> {
  const claimed = usableCores(claim.hardwareConcurrency);
  if (claimed <= 2) return claimed;
  const remembered = rememberedParallelism(storage, claim);
  if (remembered !== null) return remembered;
  let cores: number;
  try {
    cores = await measureParallelism(claimed);
  } catch (err) {
    console.warn(`[parallelism] ${(err as Error).message}; using the browser's claim of ${claimed} cores`);
    return claimed;
  }
  try {
    const entry: Remembered = { claimed, agent: claim.userAgent, cores };
    storage?.setItem(STORAGE_KEY, JSON.stringify(entry));
  } catch {
    // Storage full or refused: measured again on the next visit.
  }
  return cores;
}
