import { describe, expect, it } from 'vitest';
import { RateLimiter } from './rate-limit.ts';

describe('RateLimiter', () => {
  it('allows a minute of requests in a burst, then refills continuously', () => {
    let now = 0;
    const limiter = new RateLimiter({ now: () => now });
    for (let i = 0; i < 3; i++) expect(limiter.take('svc', 3)).toEqual({ ok: true });
    const denied = limiter.take('svc', 3);
    expect(denied.ok).toBe(false);
    // 3 per minute = one token every 20 s.
    expect(denied.ok === false && denied.retryAfterMs).toBe(20_000);
    now += 10_000;
    const half = limiter.take('svc', 3);
    expect(half.ok === false && half.retryAfterMs).toBe(10_000);
    now += 10_000;
    expect(limiter.take('svc', 3)).toEqual({ ok: true });
    expect(limiter.take('svc', 3).ok).toBe(false);
  });

  it('never holds more than one minute of tokens', () => {
    let now = 0;
    const limiter = new RateLimiter({ now: () => now });
    limiter.take('svc', 2);
    now += 3_600_000;
    expect(limiter.take('svc', 2).ok).toBe(true);
    expect(limiter.take('svc', 2).ok).toBe(true);
    expect(limiter.take('svc', 2).ok).toBe(false);
  });

  it('keeps services apart and treats 0 as unlimited', () => {
    const limiter = new RateLimiter({ now: () => 0 });
    expect(limiter.take('a', 1).ok).toBe(true);
    expect(limiter.take('a', 1).ok).toBe(false);
    expect(limiter.take('b', 1).ok).toBe(true);
    for (let i = 0; i < 1000; i++) expect(limiter.take('c', 0).ok).toBe(true);
    expect(limiter.size).toBe(2);
  });

  it('starts afresh when a service limit changes', () => {
    const limiter = new RateLimiter({ now: () => 0 });
    expect(limiter.take('a', 1).ok).toBe(true);
    expect(limiter.take('a', 1).ok).toBe(false);
    expect(limiter.take('a', 5).ok).toBe(true);
  });

  it('prunes only buckets that have refilled', () => {
    let now = 0;
    const limiter = new RateLimiter({ now: () => now });
    limiter.take('a', 60);
    limiter.take('b', 1);
    now += 2_000; // 'a' refills its one token in 1 s; 'b' needs 60 s
    limiter.prune();
    expect(limiter.size).toBe(1);
    expect(limiter.take('b', 1).ok).toBe(false);
  });

  it('peek says whether a request would pass without taking a token', () => {
    const limiter = new RateLimiter({ now: () => 0 });
    expect(limiter.peek('a', 1).ok).toBe(true);
    expect(limiter.size).toBe(0);
    limiter.take('a', 1);
    expect(limiter.peek('a', 1).ok).toBe(false);
    expect(limiter.peek('a', 1).ok).toBe(false);
    expect(limiter.peek('b', 1).ok).toBe(true);
  });
});

describe('RateLimiter key bound', () => {
  it('keeps at most maxKeys buckets, dropping full ones first and then the oldest', () => {
    let now = 0;
    const limiter = new RateLimiter({ now: () => now, maxKeys: 3 });
    limiter.take('full', 60);
    now += 5_000; // 'full' has refilled
    limiter.take('a', 1);
    limiter.take('b', 1);
    limiter.take('c', 1); // 4 keys: the refilled one goes
    expect(limiter.size).toBe(3);
    expect(limiter.take('a', 1).ok).toBe(false); // still remembered
    for (let i = 0; i < 1000; i++) limiter.take(`flood-${i}`, 1);
    expect(limiter.size).toBe(3);
  });
});
