/**
 * Results the store could not take (it did not answer): held, neither answered nor
 * credited, and offered to the store again after `retryMs`, the wait doubling up to 1 s while it
 * keeps failing and going back to `retryMs` once it answers. A round stops at the first item the
 * store still refuses and puts the rest back untried: a failing call can take the store's whole
 * command timeout (2 s on Redis), so trying every held item each round made a round of N items
 * last up to 2N s, and the answers that followed a 3 s Sentinel promotion came 11 s after the
 * kill. One call a second is what an outage costs the store, and a store back is used within
 * about a second. At most `limit` wait at once: past that, hold() says no and the caller refuses
 * the result (memory is finite).
 *
 * Some items may be let go to make room (`expendable`: results for a job held elsewhere, whose
 * work nothing has checked yet, so junk for all anyone knows): they have a share of their own
 * and the oldest goes first when that share, or the hold, is full. Junk never pushes out a result
 * whose work was checked. A line is logged per held item, through a LogLimiter: a flood held is
 * a few lines.
 */
import { LogLimiter } from '../log-limit.ts';
import type { Logger } from '../log.ts';
import type { DispatcherCounters } from './counters.ts';

const MAX_RETRY_MS = 1000;
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
  /** Items that may be let go to make room: at most `limit` (at least 1) of them wait; `drop` hears of each let go. */
  expendable?: { is(item: T): boolean; limit: number; drop(item: T): void };
}

export class OutageHold<T extends object> {
  readonly #opts: OutageHoldOptions<T>;
  readonly #limit: number;
  /** Held in arrival order: items whose work was checked, and the expendable ones. */
  readonly #kept: T[] = [];
  readonly #expendable: T[] = [];
  readonly #lines: LogLimiter;
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
    this.#lines = new LogLimiter(options.log);
  }

  get size(): number {
    return this.#kept.length + this.#expendable.length;
  }

  /**
   * Holds an item the store refused with `err`, letting the oldest expendable item go when its
   * share or the hold is full; false (nothing held) when the hold is full of items that are not.
   */
  hold(item: T, err: Error): boolean {
    const { counters, expendable } = this.#opts;
    const spare = expendable?.is(item) ?? false;
    if (spare && this.#expendable.length >= expendable!.limit) this.#letGo();
    if (this.size >= this.#limit && !this.#letGo()) return false;
    if (this.#round) this.#round.failed = err;
    (spare ? this.#expendable : this.#kept).push(item);
    counters.held = this.size;
    if (!this.#counted.has(item)) {
      this.#counted.add(item);
      counters.total++;
      this.#lines.error(
        'dispatcher: holding result',
        `dispatcher: store: ${err.message}; holding ${this.#opts.describe(item)} (${this.size} held), not answered until the store takes it`,
      );
    }
    this.#schedule();
    return true;
  }

  /** No more retries; what is still held is lost, and said so. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#lines.close();
    if (this.size) {
      this.#opts.log.error(`dispatcher: stopping with ${this.size} held results the store never took (not answered, not credited)`);
    }
  }

  /** Lets the oldest expendable item go; false when there is none. */
  #letGo(): boolean {
    const item = this.#expendable.shift();
    if (item === undefined) return false;
    this.#opts.counters.held = this.size;
    this.#opts.expendable!.drop(item);
    return true;
  }

  #schedule(): void {
    if (!this.#timer && !this.#round && !this.#stopped) this.#timer = setTimeout(() => void this.#retryAll(), this.#delay);
  }

  async #retryAll(): Promise<void> {
    this.#timer = undefined;
    // Checked work first: it is what a requester waits for.
    const batch = [...this.#kept.splice(0), ...this.#expendable.splice(0)];
    this.#opts.counters.held = 0;
    const round: { failed?: Error } = (this.#round = {});
    try {
      for (const [i, item] of batch.entries()) {
        this.#opts.counters.retried++;
        await this.#opts.retry(item);
        // Still down: the rest go back as they were, untried, for the next round.
        if (round.failed) {
          for (const rest of batch.slice(i + 1)) this.hold(rest, round.failed);
          break;
        }
      }
    } finally {
      this.#round = undefined;
    }
    // Still failing: wait longer before the next round; answered: back to the first delay.
    const { failed } = round;
    this.#delay = failed ? Math.min(MAX_RETRY_MS, this.#delay * 2) : this.#opts.retryMs;
    if (failed) this.#opts.log.warn(`dispatcher: store still failing (${failed.message}); retrying in ${this.#delay} ms`);
    if (this.size) this.#schedule();
    else if (batch.length) this.#opts.log.info(`dispatcher: store answers again; ${batch.length} held results settled`);
  }
}
