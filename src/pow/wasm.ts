/**
 * The WASM CPU backend: a pool of threads (browser module workers or Node worker_threads), each
 * running the AssemblyScript kernel (assembly/, built to build/wasm/) on its own share of the
 * nonce space. Pure TypeScript: no DOM and no Node APIs; the edges hand in a `spawn` that makes a
 * thread (src/pow-browser/wasm-thread.worker.ts, src/pow-node/wasm-thread.ts); the messages they
 * exchange are wasm-protocol.ts.
 *
 * Nonce layout: a search starting at S with T threads and chunk size C gives thread i the chunks
 * i, i + T, i + 2T, ...; chunk k is the nonces S + k*C .. S + k*C + C - 1 (mod 2^64). The ranges
 * are disjoint, so no two threads ever hash the same nonce. Inside a chunk a thread calls the
 * kernel in slices sized to take a few milliseconds (small at first, while V8 has not optimized
 * the kernel yet) and yields to its message loop after each, which bounds how long a cancel takes.
 *
 * The module is compiled once (compileKernels) and posted to every thread; threads stay alive
 * between searches and are terminated by dispose(). The edges start a pool with WasmPool.start()
 * (src/pow-browser/engine.worker.ts, src/pow-node/wasm-threads.ts).
 */
import { silentLogger, type Logger } from '../log.ts';
import type { KernelHit, PowBackend, SearchRequest } from './types.ts';
import { asFromThread, type FromThread, type RootWords, type ToThread } from './wasm-protocol.ts';

/** The message port of one thread, as the pool sees it. */
export interface WasmThread {
  postMessage(message: ToThread): void;
  onMessage(callback: (message: FromThread) => void): void;
  terminate(): void;
  /** The thread died (script failed to load, uncaught error, exit). */
  onError?(callback: (error: Error) => void): void;
  /** Busy (true) while a search runs; Node uses it to let an idle pool not hold the process open. */
  setActive?(active: boolean): void;
}

/** Anything shaped like a Web Worker: adapted by WebWorkerThread. */
export interface WebWorkerLike {
  postMessage(message: unknown): void;
  addEventListener(type: string, listener: (event: never) => void): void;
  terminate(): void;
}

/** The two compiled kernels; simd is null where the engine has no WASM SIMD. */
export interface WasmKernels {
  simd: WebAssembly.Module | null;
  scalar: WebAssembly.Module;
  /** Time compileKernels took, folded into the backend's compileMs. */
  compileMs?: number;
}

export interface WasmBackendOptions {
  threads: number;
  spawn: (index: number) => WasmThread | WebWorkerLike;
  module: WasmKernels;
  /** Default true: use the SIMD kernel when the engine validates it. */
  preferSimd?: boolean;
  /** Nonces per chunk of the layout above; default 2^20. Cancel latency does not depend on it. */
  chunk?: number;
  log?: Logger;
}

export interface WasmBackend extends PowBackend {
  readonly name: 'wasm';
  readonly simd: boolean;
  readonly threads: number;
  readonly compileMs: number;
  /** Nonces per chunk (the unit of the nonce layout above). */
  readonly chunk: number;
  /** The CPU throttle: each thread computes this share of the time, for the searches that follow. */
  setIntensity(intensity: number): void;
}

const DEFAULT_CHUNK = 1 << 20;

/** Threads that have not answered 'init' by then count as failed. */
const READY_TIMEOUT_MS = 30_000;

// (module (func (result v128) i32.const 0 i8x16.splat i8x16.popcnt drop ... )): the smallest
// module using final-spec SIMD (popcnt arrived late, so old prototype SIMD does not pass).
const SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, 0x03,
  0x02, 0x01, 0x00, 0x0a, 0x0a, 0x01, 0x08, 0x00, 0x41, 0x00, 0xfd, 0x0f, 0xfd, 0x62, 0x0b,
]);

let simdSupported: boolean | undefined;

/** True when this engine validates WASM SIMD (checked once). */
export function detectSimd(): boolean {
  if (simdSupported === undefined) {
    try {
      simdSupported = WebAssembly.validate(SIMD_PROBE);
    } catch {
      simdSupported = false;
    }
  }
  return simdSupported;
}

/**
 * Fetches and compiles the kernels once; hand the result to WasmPool.start (Modules are
 * structured-cloneable, so every thread instantiates the same compiled code). The SIMD kernel is
 * skipped where SIMD is unsupported, and a failing SIMD compile falls back to scalar only.
 */
export async function compileKernels(
  fetchBytes: (name: 'simd' | 'scalar') => Promise<ArrayBuffer | Uint8Array>,
  log: Logger = silentLogger,
): Promise<WasmKernels & { compileMs: number }> {
  const started = performance.now();
  const compile = async (name: 'simd' | 'scalar') => {
    const bytes = await fetchBytes(name);
    return WebAssembly.compile(bytes instanceof Uint8Array ? (bytes as Uint8Array<ArrayBuffer>) : bytes);
  };
  const scalar = compile('scalar');
  const simd = detectSimd()
    ? compile('simd').catch((error: unknown) => {
        log.warn(`WASM SIMD kernel unavailable, using scalar: ${error instanceof Error ? error.message : String(error)}`);
        return null;
      })
    : Promise.resolve(null);
  const kernels = { scalar: await scalar, simd: await simd };
  return { ...kernels, compileMs: performance.now() - started };
}

/**
 * A Web Worker (or anything with postMessage / addEventListener / terminate) as a pool thread:
 * only messages that are thread messages get through, and a worker that fails to load or sends
 * something unreadable is reported as a dead thread.
 */
export class WebWorkerThread implements WasmThread {
  readonly #worker: WebWorkerLike;

  constructor(worker: WebWorkerLike) {
    this.#worker = worker;
  }

  postMessage(message: ToThread): void {
    this.#worker.postMessage(message);
  }

  onMessage(callback: (message: FromThread) => void): void {
    this.#worker.addEventListener('message', ((event: { data: unknown }) => {
      const message = asFromThread(event.data);
      if (message) callback(message);
    }) as (event: never) => void);
  }

  onError(callback: (error: Error) => void): void {
    const fail = (event: { message?: string }) =>
      callback(new Error(`WASM thread failed: ${event.message || 'the worker script could not run'}`));
    this.#worker.addEventListener('error', fail as (event: never) => void);
    this.#worker.addEventListener('messageerror', (() =>
      callback(new Error('WASM thread sent a message that could not be read'))) as (event: never) => void);
  }

  terminate(): void {
    this.#worker.terminate();
  }
}

function isWasmThread(thread: WasmThread | WebWorkerLike): thread is WasmThread {
  return typeof (thread as WasmThread).onMessage === 'function';
}

/** The root as the kernel's message words m1..m4 (little-endian u64s). */
export function rootWords(root: Uint8Array): RootWords {
  if (!(root instanceof Uint8Array) || root.length !== 32) {
    throw new RangeError(`root must be 32 bytes, got ${root instanceof Uint8Array ? root.length : typeof root}`);
  }
  const view = new DataView(root.buffer, root.byteOffset, 32);
  return [view.getBigUint64(0, true), view.getBigUint64(8, true), view.getBigUint64(16, true), view.getBigUint64(24, true)];
}

interface ActiveSearch {
  job: number;
  onHashes?: (count: number) => void;
  finish(hit: KernelHit | null): void;
  fail(error: Error): void;
}

/**
 * The pool: `threads` threads on one kernel, one search at a time over the nonce layout above.
 * WasmPool.start() spawns the threads and resolves once every one has loaded the kernel; a
 * thread that dies fails the running search, and the next search starts a fresh pool first.
 */
export class WasmPool implements WasmBackend {
  readonly name = 'wasm' as const;
  readonly label: string;
  readonly simd: boolean;
  readonly threads: number;
  readonly chunk: number;
  readonly #options: WasmBackendOptions;
  readonly #log: Logger;
  readonly #module: WebAssembly.Module;
  #compileMs = 0;
  #active: ActiveSearch | null = null;
  /** Share of time each thread computes (wasm-thread-core.ts idles between kernel calls). */
  #duty = 1;
  /** Why the current threads are unusable (a thread died); the next search starts fresh ones. */
  #broken: Error | null = null;
  #restarting = false;
  #disposed = false;
  #nextJob = 1;
  /** The live threads; replaced as a whole when a thread dies. */
  #threads: WasmThread[] = [];
  /** Fails a start in progress (dispose() during a restart). */
  #abortStart: ((error: Error) => void) | null = null;

  /** Starts the threads on the chosen kernel and resolves once all of them have loaded it. */
  static async start(options: WasmBackendOptions): Promise<WasmPool> {
    const pool = new WasmPool(options);
    const started = performance.now();
    await pool.#startThreads();
    pool.#compileMs = (options.module.compileMs ?? 0) + (performance.now() - started);
    pool.#log.info(`${pool.label} ready in ${Math.round(pool.#compileMs)} ms`);
    return pool;
  }

  private constructor(options: WasmBackendOptions) {
    const threads = Math.floor(options.threads);
    if (!Number.isFinite(threads) || threads < 1) throw new RangeError(`threads must be at least 1, got ${options.threads}`);
    const chunk = options.chunk ?? DEFAULT_CHUNK;
    if (!Number.isInteger(chunk) || chunk < 1 || chunk > 0x7fffffff) {
      throw new RangeError(`chunk must be an integer in 1..2^31-1, got ${chunk}`);
    }
    this.#options = options;
    this.#log = options.log ?? silentLogger;
    this.threads = threads;
    this.chunk = chunk;
    this.simd = (options.preferSimd ?? true) && options.module.simd !== null && detectSimd();
    this.#module = this.simd ? options.module.simd! : options.module.scalar;
    this.label = `WASM ${this.simd ? 'SIMD' : 'scalar'} x${threads}`;
  }

  get compileMs(): number {
    return this.#compileMs;
  }

  async search(request: SearchRequest): Promise<KernelHit | null> {
    if (this.#disposed) throw new Error('the WASM backend was disposed');
    if (this.#active || this.#restarting) throw new Error('the WASM backend is already searching');
    const words = rootWords(request.root);
    if (request.signal.aborted) return null;
    if (this.#broken) {
      // A thread died in an earlier search (or the browser killed it): start a fresh pool once per
      // search; if that fails too, this search fails with the reason.
      this.#restarting = true;
      try {
        await this.#restart();
      } finally {
        this.#restarting = false;
      }
      if (this.#disposed) throw new Error('the WASM backend was disposed');
      if (request.signal.aborted) return null;
    }
    return this.#run(request, words);
  }

  /** The CPU throttle: each thread computes this share of the time, for the searches that follow. */
  setIntensity(intensity: number): void {
    if (!(Number.isFinite(intensity) && intensity > 0)) throw new RangeError(`intensity must be in (0, 1], got ${intensity}`);
    this.#duty = Math.min(intensity, 1);
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#active?.fail(new Error('the WASM backend was disposed'));
    this.#abortStart?.(new Error('the WASM backend was disposed'));
    for (const thread of this.#threads) thread.terminate();
    this.#threads = [];
  }

  #stopAll(job: number): void {
    for (const thread of this.#threads) thread.postMessage({ type: 'stop', job });
  }

  #setActive(busy: boolean): void {
    for (const thread of this.#threads) thread.setActive?.(busy);
  }

  /** Spawns the threads and resolves once every one has instantiated the kernel. */
  async #startThreads(): Promise<void> {
    const count = this.threads;
    const generation: WasmThread[] = [];
    this.#threads = generation;
    let readyCount = 0;
    let onAllReady: () => void = () => undefined;
    let onStartFailed: (error: Error) => void = () => undefined;
    const allReady = new Promise<void>((resolve, reject) => {
      onAllReady = resolve;
      onStartFailed = reject;
    });
    this.#abortStart = onStartFailed;

    const threadFailed = (index: number, error: Error) => {
      // A thread of an older pool, or one we terminated ourselves, is not news.
      if (this.#disposed || this.#threads !== generation) return;
      const failure = new Error(`WASM thread ${index} failed: ${error.message}`);
      if (!this.#broken) this.#log.warn(failure.message);
      this.#broken ??= failure;
      onStartFailed(failure);
      this.#active?.fail(failure);
    };

    try {
      for (let index = 0; index < count; index++) {
        const spawned = this.#options.spawn(index);
        const thread = isWasmThread(spawned) ? spawned : new WebWorkerThread(spawned);
        generation.push(thread);
        thread.onError?.((error) => threadFailed(index, error));
        thread.onMessage((message) => {
          if (this.#threads !== generation) return;
          const active = this.#active;
          switch (message.type) {
            case 'ready':
              if (++readyCount === count) onAllReady();
              return;
            case 'error':
              threadFailed(index, new Error(message.message));
              return;
            case 'hashes':
              if (active?.job === message.job) active.onHashes?.(message.count);
              return;
            case 'found':
              if (active?.job === message.job) {
                active.onHashes?.(message.count);
                active.finish({ work: message.nonce });
              }
              return;
          }
        });
        thread.postMessage({ type: 'init', module: this.#module });
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`WASM threads did not start within ${READY_TIMEOUT_MS / 1000} s`)),
          READY_TIMEOUT_MS,
        );
      });
      try {
        await Promise.race([allReady, timeout]);
      } finally {
        clearTimeout(timer);
        this.#abortStart = null;
      }
    } catch (error) {
      if (this.#threads === generation) this.#threads = [];
      for (const thread of generation) thread.terminate();
      throw error;
    }
    this.#setActive(false);
  }

  /** Replaces a pool that lost a thread with a fresh one. */
  async #restart(): Promise<void> {
    this.#log.warn(`restarting the WASM threads (${this.#broken?.message})`);
    const old = this.#threads;
    this.#threads = [];
    for (const thread of old) thread.terminate();
    await this.#startThreads();
    this.#broken = null;
  }

  #run(request: SearchRequest, words: RootWords): Promise<KernelHit | null> {
    const job = this.#nextJob++;
    return new Promise<KernelHit | null>((resolve, reject) => {
      const settle = () => {
        request.signal.removeEventListener('abort', onAbort);
        this.#active = null;
        this.#stopAll(job);
        this.#setActive(false);
      };
      const onAbort = () => {
        settle();
        resolve(null);
      };
      this.#active = {
        job,
        onHashes: request.onHashes,
        finish(hit) {
          settle();
          resolve(hit);
        },
        fail(error) {
          settle();
          reject(error);
        },
      };
      request.signal.addEventListener('abort', onAbort);
      this.#setActive(true);
      const difficulty = BigInt.asUintN(64, request.difficulty);
      const start = BigInt.asUintN(64, request.startNonce);
      const { threads: stride, chunk } = this;
      const duty = this.#duty;
      this.#threads.forEach((thread, offset) =>
        thread.postMessage({ type: 'search', job, words, difficulty, start, offset, stride, chunk, duty }),
      );
    });
  }
}
