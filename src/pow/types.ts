/**
 * The engine's contracts. A backend only searches; the engine (engine.ts) owns scheduling,
 * cancel, hashrate and the final check with the reference rule (work.ts).
 */
import { logHash } from '../format.ts';

export type BackendName = 'webgpu' | 'wasm';
export type BackendChoice = 'auto' | BackendName;

/**
 * What the browser or Dawn says about a WebGPU adapter. Browsers may leave any of the strings
 * empty (Chromium does for its OpenGL ES adapter).
 */
export interface WebGpuAdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
  featureLevel: 'core' | 'compatibility';
}

/** What a backend computes on: the adapter for WebGPU, the thread count and kernel for WASM. */
export type DeviceInfo =
  | { backend: 'webgpu'; adapter: WebGpuAdapterInfo | null }
  | { backend: 'wasm'; threads: number; simd: boolean };

/** What a backend is asked to search. */
export interface SearchRequest {
  /** 32 root bytes. */
  root: Uint8Array;
  /** Target: the work value must be >= difficulty (full u64 compare). */
  difficulty: bigint;
  /** First nonce of this search; backends walk upward from here (wrapping at 2^64). */
  startNonce: bigint;
  /** Aborting stops the search promptly (within one dispatch / one chunk). */
  signal: AbortSignal;
  /** Called as hashes are done, with the count since the previous call. */
  onHashes?: (count: number) => void;
}

/**
 * What the kernel tuner (tuner.ts) is doing: 'calibrating' (measuring the candidates; jobs still
 * run at once on the best so far), 'cached' (a stored choice for this adapter, no measuring),
 * 'tuned' (measured in this run), 'forced' (a setting or --kernel pins it), 'default' (none yet).
 */
export type KernelState = 'cached' | 'calibrating' | 'tuned' | 'forced' | 'default';

/** The WebGPU kernel variant in use, as the page and `dpow-web bench` show it. */
export interface KernelStatus {
  variant: string;
  /** Calibrated rate of that variant (hashes/s), or null while untuned or forced. */
  calibratedRate: number | null;
  state: KernelState;
}

/** A candidate a kernel reported. Unchecked: the engine validates it before anyone sees it. */
export interface KernelHit {
  work: bigint;
}

export interface PowBackend {
  readonly name: BackendName;
  /** For people: the adapter ("swiftshader", "llvmpipe", "NVIDIA H100") or "WASM SIMD x3". */
  readonly label: string;
  /** Kernel compile / module instantiate time, for benchmarks (optional). */
  readonly compileMs?: number;
  /**
   * A software fallback adapter (SwiftShader): slower than the CPU threads, so 'auto' skips it
   * for WASM. An explicit 'webgpu' choice still uses it.
   */
  readonly software?: boolean;
  /** WASM worker threads (WASM backends only). */
  readonly threads?: number;
  /** Whether the SIMD kernel runs (WASM backends only). */
  readonly simd?: boolean;
  /** The adapter (WebGPU backends only). */
  readonly adapterInfo?: WebGpuAdapterInfo;
  /** The kernel variant, its calibrated rate and the tuner's state (tuned WebGPU backends only). */
  readonly kernel?: Readonly<KernelStatus>;
  /** Calls `listener` whenever `kernel` changes, also between jobs (tuned WebGPU backends only). */
  onKernelChange?(listener: () => void): void;
  /**
   * Share of time to compute, in (0, 1]: WebGPU idles between dispatches, WASM threads idle
   * between kernel calls, so 0.5 halves the GPU or CPU time.
   */
  setIntensity?(intensity: number): void;
  /** Pins a kernel variant (null: back to the tuner's choice). Tuned WebGPU backends only. */
  forceKernel?(variant: string | null): void;
  /** Resolves with a candidate, or null when the signal aborted the search. */
  search(request: SearchRequest): Promise<KernelHit | null>;
  /** Releases the device / threads. */
  dispose(): void;
}

export interface GenerateOptions {
  backend?: BackendChoice;
  /** WASM threads; the engine's defaultThreads when not given. */
  threads?: number;
  /** Share of time the backend computes (GPU or CPU threads), in (0, 1]; 1 = flat out. */
  intensity?: number;
}

export interface GenerateResult {
  /** 16 hex digits, big-endian text. */
  work: string;
  /** The work value, 16 hex digits. */
  value: string;
  hashes: number;
  ms: number;
  backend: BackendName;
}

export interface EngineStatus {
  /** Hashes per second, smoothed over the last few seconds. */
  hashrate: number;
  backend: BackendName | null;
  label: string;
  /** Root being searched, as given, or null when idle. */
  root: string | null;
  totalHashes: number;
  /** Kernel answers that failed the reference check (should stay 0). */
  kernelMismatches: number;
  /**
   * The figures below are all of one backend: the one of the job running or last run
   * (`backend`), so a minute that mixed WebGPU and WASM never blends their rates.
   *
   * Hashes per second over that backend's last minute of computing time (time inside its
   * searches, not its start-up): what the device does while it works, undiluted by the gaps
   * between jobs (a GPU finishes a receive job in milliseconds) and kept through a quiet spell.
   * 0 before its first hash.
   */
  sustainedHashrate: number;
  /** Share of the last minute of wall time that backend spent computing, in [0, 1]. */
  busyShare: number;
  /** The wall time busyShare is over: a minute, or less since the backend's first search. */
  busyOverMs: number;
  /**
   * What that backend can do: its kernel's calibrated rate, or the best it sustained over at
   * least two seconds of computing when that is higher (or when nothing was calibrated, as on
   * WASM). Never below sustainedHashrate once known; null until then.
   */
  capacity: number | null;
  /** The WebGPU kernel variant in use (the tuner's choice), or null. */
  kernel: string | null;
  /** That variant's calibrated raw rate (hashes/s), or null while untuned or forced. */
  calibratedRate: number | null;
  /** What the tuner is doing about that variant (calibrating, cached, ...), or null. */
  kernelState: KernelState | null;
  /**
   * That backend's hashes and computing time (ms) since the engine started, both only growing:
   * a view differences two readings to plot the rate of each interval.
   */
  totals: { hashes: number; busyMs: number };
  /** What that backend computes on, or null before the first job. */
  device: DeviceInfo | null;
}

export interface BenchmarkOptions {
  backend?: BackendChoice;
  seconds?: number;
  threads?: number;
  /** Share of time to compute, as in GenerateOptions; default 1. */
  intensity?: number;
}

export interface BenchmarkResult {
  backend: BackendName;
  label: string;
  threads?: number;
  hashrate: number;
  hashes: number;
  ms: number;
  /** Kernel compile / module instantiate time. */
  compileMs: number;
}

/** The Comlink surface of the engine worker (one expose, one wrap). */
export interface EngineApi {
  /**
   * Searches for work on `root` (64 hex digits) at `difficulty` (a u64 bigint: it crosses
   * Comlink as it is). One search at a time: a call while one runs is refused.
   */
  generate(root: string, difficulty: bigint, options?: GenerateOptions): Promise<GenerateResult>;
  /** Stops the search for this root; its generate() rejects with a PowCancelledError. */
  cancel(root: string): Promise<boolean>;
  benchmark(options?: BenchmarkOptions): Promise<BenchmarkResult[]>;
  /** Subscribes to status updates (hashrate etc.), a few per second while busy. */
  onStatus(callback: (status: EngineStatus) => void): void;
  status(): Promise<EngineStatus>;
  /**
   * Pins the WebGPU kernel variant (a setting; kernel-family.ts names them), or null for the
   * tuner's choice. Rejects with a RangeError for an unknown name.
   */
  setKernel(variant: string | null): Promise<void>;
}

export class PowCancelledError extends Error {
  override readonly name = 'PowCancelledError';
  constructor(readonly root: string) {
    super(`work for ${logHash(root)} was cancelled`);
  }
}
