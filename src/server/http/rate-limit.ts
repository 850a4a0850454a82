/**
 * Per-service rate limit: a token bucket per key holding up to one minute's allowance
 * (`perMinute` tokens), refilled continuously at perMinute / 60 s. `perMinute` 0 = unlimited.
 * The clock is injectable so tests step time instead of sleeping.
 */

export type RateDecision = { ok: true } | { ok: false; retryAfterMs: number };

interface Bucket {
  tokens: number;
  updated: number;
  perMinute: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly now: () => number;

  constructor(options: { now?: () => number } = {}) {
    this.now = options.now ?? Date.now;
  }

  /** Takes one token for `key`, or says how long until one is available. */
  take(key: string, perMinute: number): RateDecision {
    return this.check(key, perMinute, true);
  }

  /** Like take, without taking: would a request pass now? */
  peek(key: string, perMinute: number): RateDecision {
    return this.check(key, perMinute, false);
  }

  private check(key: string, perMinute: number, consume: boolean): RateDecision {
    if (!(perMinute > 0) || !Number.isFinite(perMinute)) return { ok: true };
    const now = this.now();
    let bucket = this.buckets.get(key);
    if (!bucket || bucket.perMinute !== perMinute) {
      // A new key, or its limit was changed: start with a full bucket at the new rate.
      if (!consume) return { ok: true };
      bucket = { tokens: perMinute, updated: now, perMinute };
      this.buckets.set(key, bucket);
    }
    const perMs = perMinute / 60_000;
    const elapsed = Math.max(0, now - bucket.updated);
    bucket.tokens = Math.min(perMinute, bucket.tokens + elapsed * perMs);
    bucket.updated = now;
    if (bucket.tokens >= 1) {
      if (consume) bucket.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterMs: Math.ceil((1 - bucket.tokens) / perMs) };
  }

  /** Drops buckets that have refilled completely (they behave exactly like new ones). */
  prune(): void {
    const now = this.now();
    for (const [key, b] of this.buckets) {
      if (b.tokens + (now - b.updated) * (b.perMinute / 60_000) >= b.perMinute) this.buckets.delete(key);
    }
  }

  get size(): number {
    return this.buckets.size;
  }
}
