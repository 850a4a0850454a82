/**
 * The messages between the WASM backend (src/pow/wasm.ts) and one of its search threads
 * (src/pow/wasm-thread-core.ts, run by src/pow-browser/wasm-thread.worker.ts or
 * src/pow-node/wasm-thread.ts). One discriminated union each way; both ends switch on `type` and
 * the compiler checks that every kind is handled.
 *
 * Nonce layout of a search: the thread walks chunk indices offset, offset + stride, ...; chunk k
 * covers nonces start + k * chunk .. + chunk - 1 (mod 2^64). With offset = thread index and
 * stride = thread count the threads search disjoint ranges.
 */

/** The root as the kernel's message words m1..m4 (little-endian u64s). */
export type RootWords = [bigint, bigint, bigint, bigint];

/** Backend -> thread. */
export type ToThread =
  /** Instantiate the compiled kernel; the thread answers 'ready' (or 'error'). */
  | { type: 'init'; module: WebAssembly.Module }
  /** Search until found or stopped; replaces any search in progress. */
  | {
      type: 'search';
      job: number;
      words: RootWords;
      difficulty: bigint;
      start: bigint;
      offset: number;
      stride: number;
      chunk: number;
      /** Share of time to compute, in (0, 1]: below 1 the thread idles between kernel calls. */
      duty: number;
    }
  /** Stop job `job` if it is still running (a stale stop is ignored). */
  | { type: 'stop'; job: number };

/** Thread -> backend. */
export type FromThread =
  /** The kernel is instantiated; `ms` is how long that took. */
  | { type: 'ready'; ms: number }
  /** `count` more nonces of `job` were tested. */
  | { type: 'hashes'; job: number; count: number }
  /** `nonce` qualified; `count` nonces were tested since the last report. The thread then idles. */
  | { type: 'found'; job: number; nonce: bigint; count: number }
  /** The thread cannot go on (kernel failed to load, search before init, kernel trap). */
  | { type: 'error'; message: string };

const FROM_THREAD_TYPES: ReadonlySet<string> = new Set<FromThread['type']>(['ready', 'hashes', 'found', 'error']);
const TO_THREAD_TYPES: ReadonlySet<string> = new Set<ToThread['type']>(['init', 'search', 'stop']);

function typeOf(message: unknown): string | null {
  if (message === null || typeof message !== 'object') return null;
  const type = (message as { type?: unknown }).type;
  return typeof type === 'string' ? type : null;
}

/** A message from a thread, or null when it is not one (messages cross a structured clone). */
export function asFromThread(message: unknown): FromThread | null {
  const type = typeOf(message);
  return type !== null && FROM_THREAD_TYPES.has(type) ? (message as FromThread) : null;
}

/** A message to a thread, or null when it is not one. */
export function asToThread(message: unknown): ToThread | null {
  const type = typeOf(message);
  return type !== null && TO_THREAD_TYPES.has(type) ? (message as ToThread) : null;
}
