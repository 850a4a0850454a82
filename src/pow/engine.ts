/**
 * The PoW engine: one object that turns (root, difficulty) into validated work.
 *
 * Backends only search (types.ts PowBackend). The engine owns everything around them:
 *  - input checks with the reference rule (parse*) and the difficulty policy's ceiling,
 *  - backend choice ('auto' = WebGPU when a hardware adapter exists, else WASM: a software
 *    fallback adapter such as SwiftShader is slower than the CPU threads) and lazy creation,
 *  - a random 64-bit start nonce per search,
 *  - validating every kernel answer with `validateWork` before anyone sees it,
 *  - falling back from WebGPU to WASM mid-job when the GPU fails (device lost, driver error),
 *  - cancel by root, and a smoothed hashrate pushed to status listeners,
 *  - per backend, the rate sustained while computing and the capacity (sustained.ts), timed over
 *    the backend's searches only, so start-up is not counted and backends never blend.
 *
 * The engine computes exactly what it is given, one search at a time, and keeps no queue: which
 * job runs next, and whether a job is still wanted, is its caller's business (the DPoW work loop
 * owns each job's life; the lab page and the CLI send one job). A generate() or benchmark() while
 * a search runs is refused; cancel(root) stops the running search, whose generate() then rejects
 * with a PowCancelledError. The difficulty is a bigint all the way to the backend (bigints cross
 * Comlink / postMessage as they are). Plain TypeScript: no DOM, no Node APIs, so it runs in a
 * browser worker and in Node.
 */
import { logHash } from '../format.ts';
import { silentLogger, type Logger } from '../log.ts';
import { DEFAULT_POLICY, checkDifficulty, type DifficultyPolicy } from './difficulty.ts';
import { requireVariant } from './kernel-family.ts';
import { PEAK_MIN_BUSY_MS, SustainedMeter } from './sustained.ts';
import {
  PowInputError,
  parseRoot,
  toU64Hex,
  validateWork,
} from './work.ts';
import {
  PowCancelledError,
  type BackendChoice,
  type BackendName,
  type DeviceInfo,
  type BenchmarkOptions,
  type BenchmarkResult,
  type EngineApi,
  type EngineStatus,
  type GenerateOptions,
  type GenerateResult,
  type PowBackend,
} from './types.ts';

export interface EngineOptions {
  /** Creates the WebGPU backend; resolves null when there is no adapter. Omit where none can exist. */
  webgpu?: () => Promise<PowBackend | null>;
  /** Creates a WASM backend with this many worker threads. */
  wasm: (threads: number) => Promise<PowBackend>;
  /** WASM threads when a request does not name a count. */
  defaultThreads: number;
  /** Backend when a request does not name one. Default 'auto'. */
  defaultBackend?: BackendChoice;
  /** The difficulty bounds; share the client queue's. Default DEFAULT_POLICY (64x send threshold). */
  policy?: DifficultyPolicy;
  /** Status pushes per second while busy. Default 4. */
  statusPerSecond?: number;
  /** Where operational messages go (fallbacks, backend failures). Default silent. */
  log?: Logger;
}

/** A hashrate window: rates are averaged over about this long. */
const RATE_WINDOW_MS = 3000;
/** Unreachable in practice (value must be exactly 2^64 - 1): keeps a benchmark search running. */
const BENCH_DIFFICULTY = 0xffffffffffffffffn;
/** Wrong answers from one backend in one job before the engine stops trusting it. */
const MAX_MISMATCHES_PER_JOB = 4;
const U64_MAX = (1n << 64n) - 1n;
/** More WASM threads than this is a typo, not a machine. */
const MAX_THREADS = 256;

/** Throws a RangeError unless `intensity` is absent or in (0, 1]. */
function checkIntensity(intensity: number | undefined): void {
  if (intensity !== undefined && !(Number.isFinite(intensity) && intensity > 0 && intensity <= 1)) {
    throw new RangeError(`intensity must be in (0, 1], got ${intensity}`);
  }
}

/** An error from a backend (not an abort): a WebGPU one triggers the WASM fallback. */
function describeError(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

/** What a backend computes on, for the status. */
function deviceOf(backend: PowBackend): DeviceInfo {
  return backend.name === 'webgpu'
    ? { backend: 'webgpu', adapter: backend.adapterInfo ?? null }
    : { backend: 'wasm', threads: backend.threads ?? 1, simd: backend.simd ?? false };
}

/** A fresh random 64-bit start nonce, so two workers never walk the same range. */
export function randomNonce(): bigint {
  const words = crypto.getRandomValues(new Uint32Array(2));
  return (BigInt(words[0]) << 32n) | BigInt(words[1]);
}

/** Sliding-window hashrate: hashes reported in the last RATE_WINDOW_MS over the time covered. */
class RateMeter {
  #samples: { at: number; count: number }[] = [];
  #since = 0;

  start(now: number): void {
    this.#samples = [];
    this.#since = now;
  }

  add(now: number, count: number): void {
    this.#samples.push({ at: now, count });
    this.#trim(now);
  }

  rate(now: number): number {
    this.#trim(now);
    const from = Math.max(now - RATE_WINDOW_MS, this.#since);
    const span = now - from;
    if (span <= 0) return 0;
    let total = 0;
    for (const s of this.#samples) total += s.count;
    return (total * 1000) / span;
  }

  #trim(now: number): void {
    const cutoff = now - RATE_WINDOW_MS;
    let drop = 0;
    while (drop < this.#samples.length && this.#samples[drop].at < cutoff) drop++;
    if (drop > 0) this.#samples.splice(0, drop);
  }
}

/** The one search in progress. */
interface Running {
  /** Upper-case root for generate jobs (cancel matches on it); null for benchmarks. */
  root: string | null;
  controller: AbortController;
}

export class PowEngine implements EngineApi {
  readonly #options: EngineOptions;
  readonly #log: Logger;
  readonly #policy: DifficultyPolicy;

  /** undefined = not tried yet; null = no adapter (cached so 'auto' does not ask every job). */
  #webgpu: Promise<PowBackend | null> | undefined;
  #wasmBackend: { threads: number; backend: Promise<PowBackend> } | undefined;

  #running: Running | null = null;
  #disposed = false;

  readonly #listeners = new Set<(status: EngineStatus) => void>();
  readonly #meter = new RateMeter();
  /** One per backend that has computed: their rates never mix. */
  readonly #sustained = new Map<BackendName, SustainedMeter>();
  /** The backend of the job running or last run (for its kernel status). */
  #lastBackend: PowBackend | null = null;
  /** A kernel variant the user pinned (setKernel), or null for the tuner's choice. */
  #kernel: string | null = null;
  #statusTimer: ReturnType<typeof setInterval> | undefined;
  #current: { root: string | null; backend: BackendName | null; label: string } = {
    root: null,
    backend: null,
    label: '',
  };
  #totalHashes = 0;
  #kernelMismatches = 0;

  constructor(options: EngineOptions) {
    this.#options = options;
    this.#log = options.log ?? silentLogger;
    this.#policy = options.policy ?? DEFAULT_POLICY;
  }

  // ---- EngineApi -------------------------------------------------------------------------------

  generate(root: string, difficulty: bigint, options: GenerateOptions = {}): Promise<GenerateResult> {
    let rootBytes: Uint8Array;
    let target: bigint;
    try {
      rootBytes = parseRoot(root);
      if (typeof difficulty !== 'bigint' || difficulty < 0n || difficulty > U64_MAX) {
        throw new PowInputError('bad-difficulty', `difficulty must be a 64-bit unsigned bigint, got ${String(difficulty)}`);
      }
      target = checkDifficulty(difficulty, this.#policy);
    } catch (err) {
      return Promise.reject(err);
    }
    const intensity = options.intensity;
    try {
      checkIntensity(intensity);
    } catch (err) {
      return Promise.reject(err);
    }
    const choice = options.backend ?? this.#options.defaultBackend ?? 'auto';
    let threads: number;
    try {
      threads = this.#threadCount(options.threads);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#run(root.toUpperCase(), (signal) =>
      this.#runGenerate(root, rootBytes, target, choice, threads, intensity, signal),
    );
  }

  /** Stops the running search if it is for this root (any case); true when one was stopped. */
  async cancel(root: string): Promise<boolean> {
    const key = typeof root === 'string' ? root.toUpperCase() : '';
    const running = this.#running;
    if (!running || running.root !== key || running.controller.signal.aborted) return false;
    running.controller.abort();
    return true;
  }

  benchmark(options: BenchmarkOptions = {}): Promise<BenchmarkResult[]> {
    const seconds = options.seconds ?? 5;
    if (!Number.isFinite(seconds) || seconds <= 0) {
      return Promise.reject(new RangeError(`benchmark seconds must be positive, got ${seconds}`));
    }
    const choice = options.backend ?? 'auto';
    let threads: number;
    try {
      threads = this.#threadCount(options.threads);
      checkIntensity(options.intensity);
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#run(null, async (signal) => {
      const backends: PowBackend[] = [];
      if (choice !== 'wasm') {
        const gpu = await this.#getWebGpu();
        if (gpu) backends.push(gpu);
        else if (choice === 'webgpu') throw new Error('WebGPU is not available here (no adapter)');
      }
      if (choice !== 'webgpu') backends.push(await this.#getWasm(threads));
      const results: BenchmarkResult[] = [];
      for (const backend of backends) {
        if (signal.aborted) break;
        this.#current = { root: null, backend: backend.name, label: backend.label };
        this.#lastBackend = backend;
        if (options.intensity !== undefined) backend.setIntensity?.(options.intensity);
        results.push(
          await this.#computing(backend, () =>
            measureBackend(backend, seconds, { signal, onHashes: (n) => this.#countHashes(backend, n) }),
          ),
        );
      }
      return results;
    });
  }

  onStatus(callback: (status: EngineStatus) => void): void {
    this.#listeners.add(callback);
    this.#deliver(callback, this.#snapshot());
    this.#ensureStatusTimer();
  }

  async status(): Promise<EngineStatus> {
    return this.#snapshot();
  }

  // ---- test and lifecycle hooks ----------------------------------------------------------------

  /** Forces a GPU device loss on the WebGPU backend, if one is running. For tests and the lab page. */
  async simulateDeviceLoss(): Promise<boolean> {
    const gpu = this.#webgpu ? await this.#webgpu.catch(() => null) : null;
    const hook = (gpu as { simulateDeviceLoss?: () => unknown } | null)?.simulateDeviceLoss;
    if (!gpu || typeof hook !== 'function') return false;
    await hook.call(gpu);
    return true;
  }

  /** Stops everything and releases GPU devices and worker threads. The engine is unusable after. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#running?.controller.abort();
    this.#stopStatusTimer();
    this.#listeners.clear();
    void this.#webgpu?.then((b) => b?.dispose(), () => undefined);
    void this.#wasmBackend?.backend.then((b) => b.dispose(), () => undefined);
    this.#webgpu = undefined;
    this.#wasmBackend = undefined;
  }

  // ---- the one search ----------------------------------------------------------------------

  /** Runs one search now, or refuses: the engine never holds work back for later. */
  async #run<T>(root: string | null, search: (signal: AbortSignal) => Promise<T>): Promise<T> {
    if (this.#disposed) throw new Error('engine disposed');
    if (this.#running) {
      const what = this.#running.root ? `work for ${logHash(this.#running.root)}` : 'a benchmark';
      throw new Error(`the engine is busy with ${what}: cancel it or wait for it to end`);
    }
    const running: Running = { root, controller: new AbortController() };
    this.#running = running;
    this.#beginBusy(root);
    try {
      return await search(running.controller.signal);
    } finally {
      this.#running = null;
      this.#endBusy();
    }
  }

  /** The WASM thread count for a request; throws a RangeError for a nonsensical one. */
  #threadCount(requested: number | undefined): number {
    if (requested !== undefined) {
      if (!Number.isInteger(requested) || requested < 1 || requested > MAX_THREADS) {
        throw new RangeError(`threads must be an integer from 1 to ${MAX_THREADS}, got ${requested}`);
      }
      return requested;
    }
    const n = this.#options.defaultThreads;
    return Number.isInteger(n) && n >= 1 ? Math.min(n, MAX_THREADS) : 1;
  }

  // ---- backends --------------------------------------------------------------------------------

  #getWebGpu(): Promise<PowBackend | null> {
    const factory = this.#options.webgpu;
    if (!factory) return Promise.resolve(null);
    if (!this.#webgpu) {
      this.#webgpu = factory().then(
        (backend) => {
          if (backend && this.#kernel !== null) backend.forceKernel?.(this.#kernel);
          // The tuner finishes calibrating between jobs: listeners hear of it without a job.
          backend?.onKernelChange?.(() => {
            if (this.#lastBackend === backend) this.#broadcast();
          });
          return backend;
        },
        (err: unknown) => {
          this.#log.warn(`WebGPU backend unavailable: ${describeError(err)}`);
          return null;
        },
      );
    }
    return this.#webgpu;
  }

  async setKernel(variant: string | null): Promise<void> {
    if (variant !== null) requireVariant(variant);
    this.#kernel = variant;
    const backend = this.#webgpu ? await this.#webgpu : null;
    backend?.forceKernel?.(variant);
  }

  /** Forgets a failed WebGPU backend so the next job asks for a fresh device. */
  #dropWebGpu(backend: PowBackend): void {
    try {
      backend.dispose();
    } catch (err) {
      this.#log.warn(`disposing the failed WebGPU backend threw: ${describeError(err)}`);
    }
    this.#webgpu = undefined;
  }

  #getWasm(threads: number): Promise<PowBackend> {
    if (this.#wasmBackend && this.#wasmBackend.threads !== threads) {
      // One WASM pool at a time: a new thread count replaces the old pool.
      void this.#wasmBackend.backend.then((b) => b.dispose(), () => undefined);
      this.#wasmBackend = undefined;
    }
    if (!this.#wasmBackend) {
      const backend = this.#options.wasm(threads);
      this.#wasmBackend = { threads, backend };
      backend.catch(() => {
        if (this.#wasmBackend?.backend === backend) this.#wasmBackend = undefined;
      });
    }
    return this.#wasmBackend.backend;
  }

  #softwareNoted = false;

  async #pickBackend(choice: BackendChoice, threads: number): Promise<PowBackend> {
    if (choice === 'webgpu' || choice === 'auto') {
      const gpu = await this.#getWebGpu();
      if (gpu && (choice === 'webgpu' || !gpu.software)) return gpu;
      if (gpu && !this.#softwareNoted) {
        this.#softwareNoted = true;
        this.#log.info(`WebGPU adapter ${gpu.label} is a software fallback, slower than the CPU threads: Auto uses WASM`);
      }
      if (choice === 'webgpu') throw new Error('WebGPU is not available here (no adapter)');
    }
    return this.#getWasm(threads);
  }

  // ---- one generate job ------------------------------------------------------------------------

  async #runGenerate(
    rootText: string,
    root: Uint8Array,
    difficulty: bigint,
    choice: BackendChoice,
    threads: number,
    intensity: number | undefined,
    signal: AbortSignal,
  ): Promise<GenerateResult> {
    const started = performance.now();
    let hashes = 0;
    let backend = await this.#pickBackend(choice, threads);
    // Counted to the backend searching now (a fallback mid-job switches it).
    const onHashes = (count: number) => {
      hashes += count;
      this.#countHashes(backend, count);
    };
    let mismatches = 0;
    for (;;) {
      if (signal.aborted) throw new PowCancelledError(rootText);
      if (intensity !== undefined) backend.setIntensity?.(intensity);
      this.#current = { ...this.#current, backend: backend.name, label: backend.label };
      this.#lastBackend = backend;
      const startNonce = randomNonce();
      let hit;
      try {
        const searching = backend;
        hit = await this.#computing(searching, () => searching.search({ root, difficulty, startNonce, signal, onHashes }));
      } catch (err) {
        if (signal.aborted) throw new PowCancelledError(rootText);
        if (backend.name !== 'webgpu') throw err;
        this.#log.warn(`WebGPU failed mid-job (${describeError(err)}); continuing ${rootText} on WASM`);
        this.#dropWebGpu(backend);
        backend = await this.#getWasm(threads);
        continue;
      }
      if (hit === null) {
        if (signal.aborted) throw new PowCancelledError(rootText);
        throw new Error(`${backend.label} stopped without a result or an abort`);
      }
      const work = hit.work;
      const check = typeof work === 'bigint' && work >= 0n && work <= U64_MAX
        ? validateWork(root, work, difficulty)
        : null;
      if (check && check.valid) {
        const ms = performance.now() - started;
        return { work: toU64Hex(work), value: toU64Hex(check.value), hashes, ms, backend: backend.name };
      }
      // A kernel bug: never let it out. Say so loudly, count it, search again from elsewhere.
      this.#kernelMismatches++;
      mismatches++;
      console.error(
        `[pow-engine] KERNEL MISMATCH: ${backend.label} returned work that fails the reference check`,
        {
          root: rootText,
          nonce: typeof work === 'bigint' && check ? toU64Hex(work) : String(work),
          value: check ? toU64Hex(check.value) : null,
          difficulty: toU64Hex(difficulty),
        },
      );
      if (mismatches >= MAX_MISMATCHES_PER_JOB) {
        if (backend.name === 'webgpu') {
          this.#log.warn(`${backend.label} keeps returning invalid work; finishing ${rootText} on WASM`);
          this.#dropWebGpu(backend);
          backend = await this.#getWasm(threads);
          mismatches = 0;
        } else {
          throw new Error(`${backend.label} returned ${mismatches} invalid answers for ${rootText}`);
        }
      }
    }
  }

  // ---- status and hashrate ---------------------------------------------------------------------

  #countHashes(backend: PowBackend, count: number): void {
    if (!(count > 0)) return;
    this.#totalHashes += count;
    const now = performance.now();
    this.#meter.add(now, count);
    this.#meterOf(backend.name).add(now, count);
  }

  #meterOf(name: BackendName): SustainedMeter {
    let meter = this.#sustained.get(name);
    if (!meter) this.#sustained.set(name, (meter = new SustainedMeter()));
    return meter;
  }

  /** Runs a backend's search (or measurement) as that backend's computing time. */
  async #computing<T>(backend: PowBackend, search: () => Promise<T>): Promise<T> {
    const meter = this.#meterOf(backend.name);
    meter.begin(performance.now());
    try {
      return await search();
    } finally {
      meter.end(performance.now());
    }
  }

  #beginBusy(root: string | null): void {
    const now = performance.now();
    this.#meter.start(now);
    this.#current = { ...this.#current, root };
    this.#ensureStatusTimer();
    this.#broadcast();
  }

  #ensureStatusTimer(): void {
    if (this.#statusTimer !== undefined || this.#listeners.size === 0 || !this.#running) return;
    const every = 1000 / (this.#options.statusPerSecond ?? 4);
    this.#statusTimer = setInterval(() => this.#broadcast(), every);
  }

  #endBusy(): void {
    this.#current = { ...this.#current, root: null };
    this.#stopStatusTimer();
    this.#broadcast();
  }

  #stopStatusTimer(): void {
    if (this.#statusTimer !== undefined) clearInterval(this.#statusTimer);
    this.#statusTimer = undefined;
  }

  #snapshot(): EngineStatus {
    const busy = this.#running !== null;
    const backend = this.#lastBackend;
    const sustained = backend ? this.#sustained.get(backend.name)?.read(performance.now()) : undefined;
    const kernel = backend?.kernel ?? null;
    const calibratedRate = kernel?.calibratedRate ?? null;
    const best = Math.max(calibratedRate ?? 0, sustained?.peak ?? 0, sustained && sustained.busyMs >= PEAK_MIN_BUSY_MS ? sustained.rate : 0);
    return {
      sustainedHashrate: sustained?.rate ?? 0,
      busyShare: sustained?.busyShare ?? 0,
      busyOverMs: sustained?.busyOverMs ?? 0,
      // Never below the rate it sustained: a calibration is a short measurement, and a GPU
      // that boosts (or a shared CPU that frees up) can do more later.
      capacity: best > 0 ? Math.max(best, sustained?.rate ?? 0) : null,
      kernel: kernel?.variant ?? null,
      calibratedRate,
      kernelState: kernel?.state ?? null,
      totals: { hashes: sustained?.totalHashes ?? 0, busyMs: sustained?.totalBusyMs ?? 0 },
      device: backend ? deviceOf(backend) : null,
      hashrate: busy ? this.#meter.rate(performance.now()) : 0,
      backend: this.#current.backend,
      label: this.#current.label,
      root: busy ? this.#current.root : null,
      totalHashes: this.#totalHashes,
      kernelMismatches: this.#kernelMismatches,
    };
  }

  #broadcast(): void {
    if (this.#listeners.size === 0) return;
    const status = this.#snapshot();
    for (const listener of this.#listeners) this.#deliver(listener, status);
  }

  /** Calls a listener; one that throws (or a Comlink proxy whose page went away) is dropped. */
  #deliver(listener: (status: EngineStatus) => void, status: EngineStatus): void {
    const drop = (err: unknown) => {
      this.#listeners.delete(listener);
      this.#log.warn(`status listener removed after it failed: ${describeError(err)}`);
    };
    try {
      const result = listener(status) as unknown;
      if (result instanceof Promise) result.catch(drop);
    } catch (err) {
      drop(err);
    }
  }
}

/**
 * Measures one backend: searches at an unreachable difficulty for `seconds`, from a random start.
 * Shared by the engine's benchmark() and the CLI's per-variant runs.
 */
export async function measureBackend(
  backend: PowBackend,
  seconds: number,
  options: { signal?: AbortSignal; onHashes?: (count: number) => void } = {},
): Promise<BenchmarkResult> {
  const root = crypto.getRandomValues(new Uint8Array(32));
  const controller = new AbortController();
  const outer = options.signal;
  const stop = () => controller.abort();
  outer?.addEventListener('abort', stop, { once: true });
  let hashes = 0;
  const started = performance.now();
  const timer = setTimeout(stop, seconds * 1000);
  try {
    while (!controller.signal.aborted) {
      // A hit here is a (2^-64) fluke or a kernel bug; either way keep measuring from a new start.
      await backend.search({
        root,
        difficulty: BENCH_DIFFICULTY,
        startNonce: randomNonce(),
        signal: controller.signal,
        onHashes: (count) => {
          hashes += count;
          options.onHashes?.(count);
        },
      });
    }
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener('abort', stop);
  }
  const ms = performance.now() - started;
  return {
    backend: backend.name,
    label: backend.label,
    ...(backend.threads !== undefined ? { threads: backend.threads } : {}),
    hashrate: ms > 0 ? (hashes * 1000) / ms : 0,
    hashes,
    ms,
    compileMs: backend.compileMs ?? 0,
  };
}
