/**
 * Valid results the store could not take (it did not answer): held, neither answered nor
 * credited, and offered to the store again after `retryMs`, the wait doubling up to 5 s while it
 * keeps failing and going back to `retryMs` once it answers. At most `limit` wait at once: past
 * that, hold() says no and the caller refuses the result (memory is finite).
 */
import type { Logger } from '../log.ts';
import type { DispatcherCounters } from './counters.ts';

const MAX_RETRY_MS = 5000;
/** Held results beyond this are refused: memory is finite. */
export const MAX_HELD = 100_000;

export interface OutageHoldOptions<T> {
  /** First wait before the held items are offered again. */
  retryMs: number;
  /** Default MAX_HELD. */
  limit?: number;
  counters: DispatcherCounters['deferred'];
  log: Logger;
  /** Offers one held item to the store again; if the store still fails it calls hold() again. */
  retry(item: T): Promise<void>;
  /** Names an item in log lines ("result 0123…cdef from nano_…"). */
  describe(item: T): string;
}

export class OutageHold<T extends object> {
  readonly #opts: OutageHoldOptions<T>;
  readonly #limit: number;
  readonly #items: T[] = [];
  /** Items already counted in `total` (held before, and held again by a failed retry). */
  readonly #counted = new WeakSet<T>();
  #timer?: NodeJS.Timeout;
  #delay: number;
  /**
   * The retry round running now, if one is: it schedules the next round when it ends, with the
   * new wait, and notes why the store still fails, if it does.
   */
  #round?: { failed?: Error };
  #stopped = false;

  constructor(options: OutageHoldOptions<T>) {
    this.#opts = options;
    this.#limit = options.limit ?? MAX_HELD;
    this.#delay = options.retryMs;
  }

  get size(): number {
    return this.#items.length;
  }

  /** Holds an item the store refused with `err`; false (nothing held) when the hold is full. */
  hold(item: T, err: Error): boolean {
    const { counters, log } = this.#opts;
    if (this.#items.length >= this.#limit) return false;
    if (this.#round) this.#round.failed = err;
    this.#items.push(item);
    counters.held = this.#items.length;
    if (!this.#counted.has(item)) {
      this.#counted.add(item);
      counters.total++;
      log.error(
        `dispatcher: store: ${err.message}; holding ${this.#opts.describe(item)} (${this.#items.length} held), not answered until the store takes it`,
      );
    }
    this.#schedule();
    return true;
  }

  /** No more retries; what is still held is lost, and said so. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    if (this.#items.length) {
      this.#opts.log.error(`dispatcher: stopping with ${this.#items.length} valid results the store never took (not answered, not credited)`);
    }
  }

  #schedule(): void {
    if (!this.#timer && !this.#round && !this.#stopped) this.#timer = setTimeout(() => void this.#retryAll(), this.#delay);
  }

  async #retryAll(): Promise<void> {
    this.#timer = undefined;
    const batch = this.#items.splice(0);
    this.#opts.counters.held = 0;
    const round: { failed?: Error } = (this.#round = {});
    try {
      for (const item of batch) {
        this.#opts.counters.retried++;
        await this.#opts.retry(item);
      }
    } finally {
      this.#round = undefined;
    }
    // Still failing: wait longer before the next round; answered: back to the first delay.
    const { failed } = round;
    this.#delay = failed ? Math.min(MAX_RETRY_MS, this.#delay * 2) : this.#opts.retryMs;
    if (failed) this.#opts.log.warn(`dispatcher: store still failing (${failed.message}); retrying in ${this.#delay} ms`);
    if (this.#items.length) this.#schedule();
    else if (batch.length) this.#opts.log.info(`dispatcher: store answers again; ${batch.length} held results settled`);
  }
}
