/**
 * Per-key rate limit (a service's requests, a source's failed logins): one TokenBucket per key
 * holding up to one minute's allowance (`perMinute` tokens), refilled continuously at
 * perMinute / 60 s. `perMinute` 0 = unlimited. The clock is injectable so tests step time
 * instead of sleeping. Keys may come from the network, so the table is bounded: past `maxKeys`
 * the full buckets (which behave exactly like new ones) go first, then the oldest.
 */
import { TokenBucket } from '../token-bucket.ts';

export type RateDecision = { ok: true } | { ok: false; retryAfterMs: number };

export class RateLimiter {
  readonly #buckets = new Map<string, TokenBucket>();
  readonly #now: () => number;
  readonly #maxKeys: number;

  constructor(options: { now?: () => number; maxKeys?: number } = {}) {
    this.#now = options.now ?? Date.now;
    this.#maxKeys = options.maxKeys ?? 100_000;
  }

  /** Takes one token for `key`, or says how long until one is available. */
  take(key: string, perMinute: number): RateDecision {
    return this.#check(key, perMinute, true);
  }

  /** Like take, without taking: would a request pass now? */
  peek(key: string, perMinute: number): RateDecision {
    return this.#check(key, perMinute, false);
  }

  #check(key: string, perMinute: number, consume: boolean): RateDecision {
    if (!(perMinute > 0) || !Number.isFinite(perMinute)) return { ok: true };
    const now = this.#now();
    let bucket = this.#buckets.get(key);
    if (!bucket || bucket.capacity !== perMinute) {
      // A new key, or its limit was changed: start with a full bucket at the new rate.
      if (!consume) return { ok: true };
      bucket = new TokenBucket(perMinute, perMinute / 60, now);
      this.#buckets.set(key, bucket);
      if (this.#buckets.size > this.#maxKeys) this.#evict(key);
    }
    if (consume ? bucket.take(now) : bucket.available(now) >= 1) return { ok: true };
    return { ok: false, retryAfterMs: bucket.waitMs(now) };
  }

  /** Drops buckets that have refilled completely (they behave exactly like new ones). */
  prune(): void {
    const now = this.#now();
    for (const [key, bucket] of this.#buckets) if (bucket.full(now)) this.#buckets.delete(key);
  }

  /** Over maxKeys: forget the full buckets, and if that is not enough the oldest ones (never `keep`). */
  #evict(keep: string): void {
    const now = this.#now();
    for (const [key, bucket] of this.#buckets) if (key !== keep && bucket.full(now)) this.#buckets.delete(key);
    for (const key of this.#buckets.keys()) {
      if (this.#buckets.size <= this.#maxKeys) break;
      if (key !== keep) this.#buckets.delete(key);
    }
  }

  get size(): number {
    return this.#buckets.size;
  }
}
