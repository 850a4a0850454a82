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
 * between searches and are terminated by dispose().
 */
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

/** Anything shaped like a Web Worker: adapted with fromWebWorker. */
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
  log?: (message: string) => void;
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
 * Fetches and compiles the kernels once; post the result to createWasmBackend (Modules are
 * structured-cloneable, so every thread instantiates the same compiled code). The SIMD kernel is
 * skipped where SIMD is unsupported, and a failing SIMD compile falls back to scalar only.
 */
export async function compileKernels(
  fetchBytes: (name: 'simd' | 'scalar') => Promise<ArrayBuffer | Uint8Array>,
  log?: (message: string) => void,
): Promise<WasmKernels & { compileMs: number }> {
  const started = performance.now();
  const compile = async (name: 'simd' | 'scalar') => {
    const bytes = await fetchBytes(name);
    return WebAssembly.compile(bytes instanceof Uint8Array ? (bytes as Uint8Array<ArrayBuffer>) : bytes);
  };
  const scalar = compile('scalar');
  const simd = detectSimd()
    ? compile('simd').catch((error: unknown) => {
        log?.(`WASM SIMD kernel unavailable, using scalar: ${error instanceof Error ? error.message : String(error)}`);
        return null;
      })
    : Promise.resolve(null);
  const kernels = { scalar: await scalar, simd: await simd };
  return { ...kernels, compileMs: performance.now() - started };
}

/** Wraps a Web Worker (or anything with postMessage / addEventListener / terminate). */
export function fromWebWorker(worker: WebWorkerLike): WasmThread {
  return {
    postMessage: (message) => worker.postMessage(message),
    onMessage: (callback) =>
      worker.addEventListener('message', ((event: { data: unknown }) => {
        const message = asFromThread(event.data);
        if (message) callback(message);
      }) as (event: never) => void),
    onError: (callback) => {
      const fail = (event: { message?: string }) =>
        callback(new Error(`WASM thread failed: ${event.message || 'the worker script could not run'}`));
      worker.addEventListener('error', fail as (event: never) => void);
      worker.addEventListener('messageerror', (() =>
        callback(new Error('WASM thread sent a message that could not be read'))) as (event: never) => void);
    },
    terminate: () => worker.terminate(),
  };
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

/** Starts `threads` threads on the chosen kernel and resolves once all of them have loaded it. */
export async function createWasmBackend(options: WasmBackendOptions): Promise<WasmBackend> {
  const threadCount = Math.floor(options.threads);
  if (!Number.isFinite(threadCount) || threadCount < 1) {
    throw new RangeError(`threads must be at least 1, got ${options.threads}`);
  }
  const useSimd = (options.preferSimd ?? true) && options.module.simd !== null && detectSimd();
  const module = useSimd ? options.module.simd! : options.module.scalar;
  const chunk = options.chunk ?? DEFAULT_CHUNK;
  if (!Number.isInteger(chunk) || chunk < 1 || chunk > 0x7fffffff) {
    throw new RangeError(`chunk must be an integer in 1..2^31-1, got ${chunk}`);
  }
  const started = performance.now();

  let active: ActiveSearch | null = null;
  /** Share of time each thread computes (wasm-thread-core.ts idles between kernel calls). */
  let duty = 1;
  /** Why the current threads are unusable (a thread died); the next search starts fresh ones. */
  let broken: Error | null = null;
  let restarting = false;
  let disposed = false;
  let nextJob = 1;
  /** The live threads; replaced as a whole when a thread dies. */
  let threads: WasmThread[] = [];
  /** Fails a start in progress (dispose() during a restart). */
  let abortStart: ((error: Error) => void) | null = null;

  const stopAll = (job: number) => {
    for (const thread of threads) thread.postMessage({ type: 'stop', job });
  };

  const setActive = (busy: boolean) => {
    for (const thread of threads) thread.setActive?.(busy);
  };

  /** Spawns threadCount threads and resolves once every one has instantiated the kernel. */
  async function startThreads(): Promise<void> {
    const generation: WasmThread[] = [];
    threads = generation;
    let readyCount = 0;
    let onAllReady: () => void = () => undefined;
    let onStartFailed: (error: Error) => void = () => undefined;
    const allReady = new Promise<void>((resolve, reject) => {
      onAllReady = resolve;
      onStartFailed = reject;
    });
    abortStart = onStartFailed;

    const threadFailed = (index: number, error: Error) => {
      // A thread of an older pool, or one we terminated ourselves, is not news.
      if (disposed || threads !== generation) return;
      const failure = new Error(`WASM thread ${index} failed: ${error.message}`);
      if (!broken) options.log?.(failure.message);
      broken ??= failure;
      onStartFailed(failure);
      active?.fail(failure);
    };

    try {
      for (let index = 0; index < threadCount; index++) {
        const spawned = options.spawn(index);
        const thread = isWasmThread(spawned) ? spawned : fromWebWorker(spawned);
        generation.push(thread);
        thread.onError?.((error) => threadFailed(index, error));
        thread.onMessage((message) => {
          if (threads !== generation) return;
          switch (message.type) {
            case 'ready':
              if (++readyCount === threadCount) onAllReady();
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
        thread.postMessage({ type: 'init', module });
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
        abortStart = null;
      }
    } catch (error) {
      if (threads === generation) threads = [];
      for (const thread of generation) thread.terminate();
      throw error;
    }
    setActive(false);
  }

  /** Replaces a pool that lost a thread with a fresh one. */
  async function restart(): Promise<void> {
    options.log?.(`restarting the WASM threads (${broken?.message})`);
    const old = threads;
    threads = [];
    for (const thread of old) thread.terminate();
    await startThreads();
    broken = null;
  }

  await startThreads();

  const compileMs = (options.module.compileMs ?? 0) + (performance.now() - started);
  const label = `WASM ${useSimd ? 'SIMD' : 'scalar'} x${threadCount}`;
  options.log?.(`${label} ready in ${Math.round(compileMs)} ms`);

  function run(request: SearchRequest, words: RootWords): Promise<KernelHit | null> {
    const job = nextJob++;
    return new Promise<KernelHit | null>((resolve, reject) => {
      const settle = () => {
        request.signal.removeEventListener('abort', onAbort);
        active = null;
        stopAll(job);
        setActive(false);
      };
      const onAbort = () => {
        settle();
        resolve(null);
      };
      active = {
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
      setActive(true);
      const difficulty = BigInt.asUintN(64, request.difficulty);
      const start = BigInt.asUintN(64, request.startNonce);
      threads.forEach((thread, offset) =>
        thread.postMessage({ type: 'search', job, words, difficulty, start, offset, stride: threadCount, chunk, duty }),
      );
    });
  }

  async function search(request: SearchRequest): Promise<KernelHit | null> {
    if (disposed) throw new Error('the WASM backend was disposed');
    if (active || restarting) throw new Error('the WASM backend is already searching');
    const words = rootWords(request.root);
    if (request.signal.aborted) return null;
    if (broken) {
      // A thread died in an earlier search (or the browser killed it): start a fresh pool once per
      // search; if that fails too, this search fails with the reason.
      restarting = true;
      try {
        await restart();
      } finally {
        restarting = false;
      }
      if (disposed) throw new Error('the WASM backend was disposed');
      if (request.signal.aborted) return null;
    }
    return run(request, words);
  }

  function dispose() {
    if (disposed) return;
    disposed = true;
    active?.fail(new Error('the WASM backend was disposed'));
    abortStart?.(new Error('the WASM backend was disposed'));
    for (const thread of threads) thread.terminate();
    threads = [];
  }

  function setIntensity(intensity: number) {
    if (!(Number.isFinite(intensity) && intensity > 0)) throw new RangeError(`intensity must be in (0, 1], got ${intensity}`);
    duty = Math.min(intensity, 1);
  }

  return { name: 'wasm', label, simd: useSimd, threads: threadCount, compileMs, chunk, search, setIntensity, dispose };
}
