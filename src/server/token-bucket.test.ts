import { describe, expect, it } from 'vitest';
import { TokenBucket } from './token-bucket.ts';

describe('TokenBucket', () => {
  it('starts full, takes what it has, and refills at its rate up to its capacity', () => {
    const bucket = new TokenBucket(5, 2, 1000);
    for (let i = 0; i < 5; i++) expect(bucket.take(1000)).toBe(true);
    expect(bucket.take(1000)).toBe(false);
    expect(bucket.waitMs(1000)).toBe(500);
    expect(bucket.take(1250)).toBe(false);
    expect(bucket.take(1500)).toBe(true);
    expect(bucket.full(1500 + 60_000)).toBe(true);
    expect(bucket.available(1500 + 60_000)).toBe(5);
  });

  it('takes several at once or none', () => {
    const bucket = new TokenBucket(3, 1, 0);
    expect(bucket.take(0, 4)).toBe(false);
    expect(bucket.available(0)).toBe(3);
    expect(bucket.take(0, 3)).toBe(true);
    expect(bucket.waitMs(0, 2)).toBe(2000);
  });

  it('ignores a clock that steps back', () => {
    const bucket = new TokenBucket(1, 1, 10_000);
    expect(bucket.take(10_000)).toBe(true);
    expect(bucket.take(5_000)).toBe(false);
    expect(bucket.take(10_999)).toBe(false);
    expect(bucket.take(11_000)).toBe(true);
  });

  it('never refills at rate 0', () => {
    const bucket = new TokenBucket(1, 0, 0);
    expect(bucket.take(0)).toBe(true);
    expect(bucket.waitMs(1e9)).toBe(Infinity);
  });
});
