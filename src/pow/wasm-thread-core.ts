/**
 * One WASM search thread: the part shared by the browser module worker
 * (src/pow-browser/wasm-thread.worker.ts) and the Node worker_threads entry
 * (src/pow-node/wasm-thread.ts). Its messages are ToThread / FromThread (wasm-protocol.ts).
 *
 * A chunk is hashed in kernel calls of a few milliseconds each, and the thread yields to its
 * event loop after every call, so a 'stop' or a new 'search' is seen within one call whatever the
 * chunk size.
 *
 * Duty cycle (the CPU throttle): at duty d < 1 every call of t ms owes t * (1 - d) / d ms of
 * idling, paid as one timer sleep once the debt reaches MIN_SLEEP_MS (browsers clamp chained
 * timers to 4 ms, so paying each call's sub-millisecond debt would idle far too long). What a
 * sleep overshoots is credited to the next calls, so CPU time / wall time stays at d.
 */
import type { FromThread, RootWords, ToThread } from './wasm-protocol.ts';

const U64 = (x: bigint): bigint => BigInt.asUintN(64, x);

/** How often hash counts are posted while searching. */
const REPORT_MS = 50;
/** Target time of one kernel call; the thread yields between calls. */
const SLICE_MS = 4;
const MIN_STEP = 256;
const MAX_STEP = 1 << 20;
/** Idle debt paid in one sleep once it reaches this. */
const MIN_SLEEP_MS = 10;
/** Credit from oversleeping is capped, so one long stall does not buy a burst at full speed. */
const MAX_CREDIT_MS = 50;

/** The AssemblyScript kernel's exports (assembly/). */
interface Kernel {
  setRoot(m1: bigint, m2: bigint, m3: bigint, m4: bigint): void;
  /** Index of the first qualifying nonce in start .. start + count - 1, or -1. */
  search(difficulty: bigint, start: bigint, count: number): number;
}

interface Job {
  id: number;
  words: RootWords;
  difficulty: bigint;
  start: bigint;
  offset: number;
  stride: number;
  chunk: number;
  duty: number;
}

/** A macrotask turn that lets queued messages in: setImmediate in Node, a MessageChannel in browsers. */
function makeYield(): () => Promise<void> {
  const immediate = (globalThis as { setImmediate?: (callback: () => void) => unknown }).setImmediate;
  if (typeof immediate === 'function') return () => new Promise((resolve) => immediate(resolve));
  // Browsers only (Node takes setImmediate above): typed structurally, as Node's MessagePort type
  // has no onmessage.
  const channel = new MessageChannel() as unknown as {
    port1: { onmessage: (() => void) | null };
    port2: { postMessage(message: unknown): void };
  };
  const waiting: (() => void)[] = [];
  channel.port1.onmessage = () => waiting.shift()?.();
  return () =>
    new Promise((resolve) => {
      waiting.push(resolve);
      channel.port2.postMessage(0);
    });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * The search loop of one WASM thread: it loads the kernel ('init'), runs one job at a time
 * ('search', replacing any running one) and drops it on 'stop'; everything it finds or fails at
 * goes back through `post`.
 */
export class ThreadRuntime {
  readonly #post: (message: FromThread) => void;
  readonly #yieldTurn = makeYield();
  #kernel: Kernel | null = null;
  #current: Job | null = null;
  // Nonces per kernel call, adapted to take about SLICE_MS: small while V8 still runs the
  // kernel in its baseline tier (up to 20x slower for the first ~200 ms), larger once optimized.
  // Kept across jobs. The thread yields after every call, so this bounds how late a stop is seen.
  #step = MIN_STEP;

  constructor(post: (message: FromThread) => void) {
    this.#post = post;
  }

  /** Feeds one message from the pool. */
  handle(message: ToThread): void {
    switch (message.type) {
      case 'init':
        this.#init(message.module).catch((error: unknown) => this.#fail(error));
        return;
      case 'search': {
        if (!this.#kernel) {
          this.#fail(new Error('search before the kernel was loaded'));
          return;
        }
        const { job: id, words, difficulty, start, offset, stride, chunk, duty } = message;
        const job: Job = { id, words, difficulty, start, offset, stride, chunk, duty: duty > 0 && duty <= 1 ? duty : 1 };
        this.#current = job;
        this.#run(job, this.#kernel).catch((error: unknown) => this.#fail(error));
        return;
      }
      case 'stop':
        if (this.#current && this.#current.id === message.job) this.#current = null;
        return;
      default: {
        const unknown: never = message;
        void unknown;
      }
    }
  }

  async #init(module: WebAssembly.Module): Promise<void> {
    const started = performance.now();
    const instance = await WebAssembly.instantiate(module, {});
    const { setRoot, search } = instance.exports as Partial<Kernel>;
    if (typeof setRoot !== 'function' || typeof search !== 'function') {
      throw new Error('the kernel module does not export setRoot and search');
    }
    this.#kernel = { setRoot, search };
    this.#post({ type: 'ready', ms: performance.now() - started });
  }

  async #run(job: Job, loaded: Kernel): Promise<void> {
    const stride = BigInt(job.stride);
    const chunk = BigInt(job.chunk);
    const idlePerBusy = job.duty < 1 ? (1 - job.duty) / job.duty : 0;
    let index = BigInt(job.offset);
    let unreported = 0;
    let reportedAt = performance.now();
    /** Idle time owed (negative: credit from a sleep that ran long). */
    let owed = 0;
    while (this.#current === job) {
      const chunkStart = U64(job.start + index * chunk);
      for (let done = 0; done < job.chunk; ) {
        if (this.#current !== job) break;
        const count = Math.min(this.#step, job.chunk - done);
        const start = U64(chunkStart + BigInt(done));
        const began = performance.now();
        // Loaded per call: cheap, and never stale if jobs interleave around a yield.
        loaded.setRoot(job.words[0], job.words[1], job.words[2], job.words[3]);
        const hit = loaded.search(job.difficulty, start, count);
        const now = performance.now();
        if (hit >= 0) {
          this.#current = null;
          this.#post({ type: 'found', job: job.id, nonce: U64(start + BigInt(hit)), count: unreported + hit + 1 });
          return;
        }
        done += count;
        unreported += count;
        if (count === this.#step) {
          const took = now - began;
          if (took < SLICE_MS / 2 && this.#step < MAX_STEP) this.#step *= 2;
          else if (took > SLICE_MS * 2 && this.#step > MIN_STEP) this.#step /= 2;
        }
        if (now - reportedAt >= REPORT_MS) {
          this.#post({ type: 'hashes', job: job.id, count: unreported });
          unreported = 0;
          reportedAt = now;
        }
        owed += (now - began) * idlePerBusy;
        if (owed >= MIN_SLEEP_MS) {
          const sleptFrom = performance.now();
          await sleep(owed);
          owed = Math.max(-MAX_CREDIT_MS, owed - (performance.now() - sleptFrom));
        } else {
          await this.#yieldTurn();
        }
      }
      index += stride;
    }
    if (unreported > 0) this.#post({ type: 'hashes', job: job.id, count: unreported });
  }

  #fail(error: unknown): void {
    this.#current = null;
    this.#post({ type: 'error', message: error instanceof Error ? error.message : String(error) });
  }
}
