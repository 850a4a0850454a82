/**
 * The kernel tuner: on first use of an adapter it measures each candidate variant of the kernel
 * family (kernel-family.ts) for a short fixed window at an impossible difficulty, keeps the
 * fastest, and caches the choice in a store the edge hands in (src/pow-browser: IndexedDB;
 * src/pow-node: a file under the user's cache directory).
 *
 *   - The cache key is the adapter's vendor, architecture, device and description, whether it is
 *     a software fallback, the runtime (browser or Dawn version) and KERNEL_FAMILY_VERSION: any
 *     change re-tunes. Firefox leaves the adapter's names blank, so there the fallback flag is what
 *     keeps a software adapter's choice from being reused on a GPU.
 *   - Calibration never blocks a job: a search that arrives meanwhile stops the measurement in
 *     progress, runs at once with the best variant so far, and calibration resumes afterwards.
 *   - A chosen variant that later measures far below its calibrated rate (a driver update, a
 *     thermal limit, a different load) is re-tuned once the job is done.
 *   - `forced` pins a variant (--kernel, a setting) and skips tuning.
 */
import { silentLogger, type Logger } from '../log.ts';
import { formatMegahashes } from '../format.ts';
import { KERNEL_FAMILY_VERSION, KERNEL_VARIANTS, requireVariant } from './kernel-family.ts';
import type { KernelHit, KernelStatus, PowBackend, SearchRequest } from './types.ts';
import type { WebGpuAdapterInfo, WebGpuBackend } from './webgpu.ts';

export interface TuningResult {
  /** The chosen variant. */
  variant: string;
  /** Its calibrated raw rate in hashes/s. */
  rate: number;
  /** Every candidate's rate (hashes/s), fastest first. */
  table: { variant: string; rate: number }[];
  /** When it was measured (ISO time). */
  at: string;
}

/** Where tuning results live between runs (one entry per key). */
export interface TuningStore {
  load(key: string): Promise<TuningResult | null>;
  save(key: string, result: TuningResult): Promise<void>;
}

export type { KernelStatus } from './types.ts';

export interface TunerOptions {
  /** The runtime the adapter is reached through: the browser's user agent, or "dawn <version>". */
  runtime: string;
  store?: TuningStore;
  /** A variant name to use without tuning. */
  forced?: string;
  candidates?: readonly string[];
  /** Measuring time per candidate; default 300 ms on a GPU, 600 ms on a software adapter. */
  windowMs?: number;
  /**
   * The window is split over this many interleaved rounds (default 2), so a load change on the
   * machine (a software adapter shares the CPU) hits every candidate alike.
   */
  rounds?: number;
  /**
   * When a calibration (no cached choice) starts: 'created' (default: at once, for benches and
   * `dpow-web bench --tune`) or 'first-search' (the engine's: an adapter the engine never
   * computes on, e.g. a software fallback while Auto uses the CPU, is never measured, so the
   * calibration does not take CPU time from the WASM threads doing the work).
   */
  calibrateWhen?: 'created' | 'first-search';
  /** A chosen variant measuring below this share of its calibrated rate is re-tuned; default 0.5. */
  retuneBelow?: number;
  /**
   * Hashing time (from the first dispatch's report, so the compile and start-up are left out)
   * shorter than this says nothing about the rate; default 2000 ms.
   */
  rateCheckMinMs?: number;
  log?: Logger;
}

export interface TunedWebGpuBackend extends PowBackend {
  readonly name: 'webgpu';
  readonly inner: WebGpuBackend;
  readonly kernel: KernelStatus;
  onKernelChange(listener: () => void): void;
  setIntensity(intensity: number): void;
  /** Settles when the calibration in progress (if any) is done. */
  readonly calibrated: Promise<void>;
  /** Pins a variant (stops a calibration in progress); null returns to the tuner's choice. */
  forceKernel(variant: string | null): void;
  /** Measures every candidate now and stores the result (dpow-web bench --tune). */
  retune(): Promise<TuningResult>;
}

/** The cache key of an adapter + runtime + kernel family. */
export function tuningKey(info: WebGpuAdapterInfo, runtime: string): string {
  return JSON.stringify({
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    fallback: info.isFallbackAdapter,
    featureLevel: info.featureLevel,
    runtime,
    family: KERNEL_FAMILY_VERSION,
  });
}

const RATE_CHECK_MIN_MS = 2000;

class Tuner implements TunedWebGpuBackend {
  readonly name = 'webgpu' as const;
  #current!: KernelStatus;
  readonly #listeners = new Set<() => void>();
  #jobs = 0;
  #resumeCalibration: (() => void) | null = null;
  #measuring: AbortController | null = null;
  #needsRetune = false;
  /** Below 1 the GPU idles on purpose: its rate then says nothing about the kernel. */
  #intensity = 1;
  /** No cached choice, and calibrateWhen 'first-search': the first search starts calibrating. */
  #calibrationPending = false;
  #disposed = false;
  calibrated: Promise<void> = Promise.resolve();
  readonly #key: string;
  readonly #candidates: readonly string[];
  readonly #log: Logger;

  readonly #options: TunerOptions;

  constructor(
    readonly inner: WebGpuBackend,
    options: TunerOptions,
  ) {
    this.#options = options;
    this.#log = options.log ?? silentLogger;
    this.#key = tuningKey(inner.adapterInfo, options.runtime);
    this.#candidates = options.candidates ?? KERNEL_VARIANTS.map((v) => v.name);
    if (options.forced) {
      inner.setVariant(requireVariant(options.forced).name);
      this.#status = { variant: options.forced, calibratedRate: null, state: 'forced' };
    } else {
      this.#status = { variant: inner.variant.name, calibratedRate: null, state: 'default' };
    }
  }

  /** The kernel status; every change is told to the onKernelChange listeners. */
  get #status(): KernelStatus {
    return this.#current;
  }

  set #status(next: KernelStatus) {
    const before = this.#current;
    this.#current = next;
    if (before && before.variant === next.variant && before.calibratedRate === next.calibratedRate && before.state === next.state) return;
    for (const listener of this.#listeners) {
      try {
        listener();
      } catch (err) {
        this.#log.warn(`webgpu: a kernel status listener threw: ${(err as Error).message}`);
      }
    }
  }

  onKernelChange(listener: () => void): void {
    this.#listeners.add(listener);
  }

  /** Loads a cached choice, or starts calibrating in the background. */
  async start(): Promise<void> {
    if (this.#status.state === 'forced') return;
    const cached = await this.#options.store?.load(this.#key).catch(() => null);
    if (cached && this.#candidates.includes(cached.variant)) {
      this.inner.setVariant(cached.variant);
      this.#status = { variant: cached.variant, calibratedRate: cached.rate, state: 'cached' };
      this.#log.info(`webgpu: kernel ${cached.variant} (cached, ${formatMegahashes(cached.rate, 1)} calibrated)`);
      return;
    }
    if (this.#options.calibrateWhen === 'first-search') {
      this.#calibrationPending = true;
      return;
    }
    this.#beginCalibration();
  }

  /** Calibrates in the background; `calibrated` settles when it is done. */
  #beginCalibration(): void {
    this.#calibrationPending = false;
    this.calibrated = this.#calibrate().then(
      () => undefined,
      (err: unknown) => {
        if (this.#disposed || this.#status.state === 'forced') return; // stopped on purpose
        this.#log.warn(`webgpu: kernel calibration failed: ${(err as Error).message}`);
      },
    );
  }

  get label(): string {
    return this.inner.label;
  }

  get software(): boolean {
    return this.inner.software ?? false;
  }

  get adapterInfo(): WebGpuAdapterInfo {
    return this.inner.adapterInfo;
  }

  get compileMs(): number {
    return this.inner.compileMs;
  }

  get kernel(): KernelStatus {
    return { ...this.#status };
  }

  setIntensity(intensity: number): void {
    this.inner.setIntensity(intensity);
    this.#intensity = intensity;
  }

  forceKernel(variant: string | null): void {
    if (variant === null) {
      if (this.#status.state !== 'forced') return;
      this.#status = { variant: this.inner.variant.name, calibratedRate: null, state: 'default' };
      // Back to the cached choice, or a calibration; `calibrated` settles when that is known/done.
      const restart: Promise<void> = this.start().then(() => (this.calibrated === restart ? undefined : this.calibrated));
      this.calibrated = restart;
      return;
    }
    this.inner.setVariant(requireVariant(variant).name);
    this.#measuring?.abort();
    this.#status = { variant, calibratedRate: null, state: 'forced' };
  }

  /** Read afresh after every await: forceKernel() may have run meanwhile. */
  #isForced(): boolean {
    return this.#status.state === 'forced';
  }

  /** Tests and the lab page: loses the device as a driver reset would. */
  simulateDeviceLoss(): void {
    this.inner.simulateDeviceLoss();
  }

  dispose(): void {
    this.#disposed = true;
    this.#listeners.clear();
    this.#measuring?.abort();
    this.inner.dispose();
  }

  retune(): Promise<TuningResult> {
    const run = this.#calibrate();
    this.calibrated = run.then(() => undefined, () => undefined);
    return run;
  }

  async search(request: SearchRequest): Promise<KernelHit | null> {
    this.#jobs++;
    // Calibration starts now and waits for this job: the job runs at once on the default variant.
    if (this.#calibrationPending && !this.#isForced()) this.#beginCalibration();
    this.#measuring?.abort(); // calibration steps aside; it resumes when no job is left
    // The rate check counts from the first report on: the first dispatch carries the pipeline's
    // compile and start-up, which say nothing about the kernel's speed.
    let first: number | null = null;
    let last = 0;
    let hashes = 0;
    try {
      return await this.inner.search({
        ...request,
        onHashes: (count) => {
          const now = performance.now();
          if (first === null) first = now;
          else hashes += count;
          last = now;
          request.onHashes?.(count);
        },
      });
    } finally {
      this.#jobs--;
      if (first !== null) this.#checkRate(hashes, last - first);
      if (this.#jobs === 0) {
        const resume = this.#resumeCalibration;
        this.#resumeCalibration = null;
        resume?.();
        if (this.#needsRetune && this.#status.state !== 'calibrating') {
          this.#needsRetune = false;
          this.calibrated = this.#calibrate().then(() => undefined, () => undefined);
        }
      }
    }
  }

  /** Marks the choice for re-tuning when a long full-speed search ran far below its rate. */
  #checkRate(hashes: number, ms: number): void {
    const calibrated = this.#status.calibratedRate;
    if (calibrated === null || this.#status.state === 'calibrating' || this.#status.state === 'forced') return;
    if (this.#intensity < 1) return;
    if (ms < (this.#options.rateCheckMinMs ?? RATE_CHECK_MIN_MS)) return;
    const rate = (hashes * 1000) / ms;
    if (rate < calibrated * (this.#options.retuneBelow ?? 0.5)) {
      this.#log.info(
        `webgpu: kernel ${this.#status.variant} ran at ${formatMegahashes(rate, 1)}, calibrated ${(calibrated / 1e6).toFixed(1)}: re-tuning`,
      );
      this.#needsRetune = true;
    }
  }

  /** Waits until no job runs. */
  #idle(): Promise<void> {
    if (this.#jobs === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const previous = this.#resumeCalibration;
      this.#resumeCalibration = () => {
        previous?.();
        resolve();
      };
    });
  }

  async #calibrate(): Promise<TuningResult> {
    const windowMs = this.#options.windowMs ?? (this.inner.software ? 600 : 300);
    const previous = this.#status;
    this.#status = { ...previous, state: 'calibrating' };
    const rounds = Math.max(1, Math.floor(this.#options.rounds ?? 2));
    const sums = new Map<string, number>();
    try {
      for (let round = 0; round < rounds; round++) {
        for (const variant of this.#candidates) {
          for (;;) {
            await this.#idle();
            if (this.#disposed) throw new Error('the WebGPU backend was disposed');
            if (this.#isForced()) throw new Error('a kernel was forced');
            this.#measuring = new AbortController();
            const rate = await this.inner.measure(variant, windowMs / rounds, this.#measuring.signal);
            this.#measuring = null;
            if (this.#isForced()) throw new Error('a kernel was forced');
            if (rate !== null) {
              sums.set(variant, (sums.get(variant) ?? 0) + rate);
              break;
            }
            // A job interrupted the measurement: measure this variant again once it is done.
          }
          // The best so far serves the jobs that arrive during the rest of the calibration.
          const [bestVariant, bestSum] = [...sums].reduce((a, b) => (b[1] > a[1] ? b : a));
          this.inner.setVariant(bestVariant);
          this.#status = { variant: bestVariant, calibratedRate: bestSum / (round + 1), state: 'calibrating' };
        }
      }
    } catch (err) {
      if (this.#status.state !== 'forced') this.#status = previous;
      throw err;
    }
    const table = [...sums].map(([variant, sum]) => ({ variant, rate: sum / rounds })).sort((a, b) => b.rate - a.rate);
    const result: TuningResult = { variant: table[0].variant, rate: table[0].rate, table, at: new Date().toISOString() };
    await this.#idle();
    if (this.#isForced()) throw new Error('a kernel was forced');
    this.inner.setVariant(result.variant);
    this.#status = { variant: result.variant, calibratedRate: result.rate, state: 'tuned' };
    this.#log.info(
      `webgpu: kernel ${result.variant} chosen (${table.map((r) => `${r.variant} ${(r.rate / 1e6).toFixed(1)}`).join(', ')} MH/s)`,
    );
    await this.#options.store?.save(this.#key, result).catch((err: unknown) => {
      this.#log.warn(`webgpu: could not store the kernel choice: ${(err as Error).message}`);
    });
    return result;
  }
}

/**
 * Wraps a WebGPU backend with the tuner: resolves at once (with a cached choice when there is
 * one); calibration, when needed, runs in the background (`calibrated`).
 */
export async function createTunedBackend(inner: WebGpuBackend, options: TunerOptions): Promise<TunedWebGpuBackend> {
  const tuner = new Tuner(inner, options);
  await tuner.start();
  return tuner;
}
