/**
 * The one token bucket of the server: it holds up to `capacity` tokens and refills continuously
 * at `perSecond`. Every rate rule (a broker connection's publishes, a service's requests, a
 * source's failed logins) is one bucket per key. The caller passes the time, so tests step a
 * clock instead of sleeping and one bucket never reads the clock twice for one decision.
 */
export class TokenBucket {
  #tokens: number;
  #at: number;

  constructor(
    readonly capacity: number,
    readonly perSecond: number,
    now: number,
  ) {
    this.#tokens = capacity;
    this.#at = now;
  }

  /** Tokens available at `now` (refilled up to the capacity). */
  available(now: number): number {
    this.#refill(now);
    return this.#tokens;
  }

  /** Takes `n` tokens if there are that many; false (and nothing taken) otherwise. */
  take(now: number, n = 1): boolean {
    this.#refill(now);
    if (this.#tokens < n) return false;
    this.#tokens -= n;
    return true;
  }

  /** Milliseconds from `now` until `n` tokens are available (0 when they are). */
  waitMs(now: number, n = 1): number {
    this.#refill(now);
    if (this.#tokens >= n) return 0;
    if (!(this.perSecond > 0)) return Infinity;
    return Math.ceil(((n - this.#tokens) / this.perSecond) * 1000);
  }

  /** True when the bucket is full at `now`: it then behaves exactly like a new one and may be dropped. */
  full(now: number): boolean {
    return this.available(now) >= this.capacity;
  }

  #refill(now: number): void {
    const elapsed = Math.max(0, now - this.#at);
    this.#tokens = Math.min(this.capacity, this.#tokens + (elapsed / 1000) * this.perSecond);
    this.#at = Math.max(this.#at, now);
  }
}
