import { describe, expect, it } from 'vitest';
import { defaultThreads, estimateParallelism, MAX_CLAIMED_CORES, usableCores } from './threads.ts';

describe('thread defaults', () => {
  it('clamps the browser claim: missing or odd claims are 2 cores, huge ones are capped', () => {
    expect(usableCores(8)).toBe(8);
    expect(usableCores(undefined)).toBe(2);
    expect(usableCores(0)).toBe(2);
    expect(usableCores(-4)).toBe(2);
    expect(usableCores(2.5)).toBe(2);
    expect(usableCores(Number.NaN)).toBe(2);
    expect(usableCores(100_000)).toBe(MAX_CLAIMED_CORES);
  });

  it('lets a measurement cap the claim, never raise it', () => {
    // WebKit claims 4 on a 2-core machine; the probe found 2.
    expect(usableCores(4, 2)).toBe(2);
    expect(usableCores(4, 8)).toBe(4);
    expect(usableCores(4, null)).toBe(4);
    expect(usableCores(4, 0)).toBe(4);
    expect(defaultThreads(usableCores(4, 2))).toBe(1);
  });

  it('leaves one core free, at least one thread', () => {
    expect(defaultThreads(8)).toBe(7);
    expect(defaultThreads(1)).toBe(1);
    expect(defaultThreads(undefined)).toBe(1);
  });
});

describe('estimateParallelism', () => {
  it('counts the cores time-sliced threads shared', () => {
    // Four threads on two cores: each runs at about half the rate of one alone.
    expect(estimateParallelism([100, 98], [51, 49, 50, 52])).toBe(2);
    // Four threads on four cores.
    expect(estimateParallelism([100, 100], [97, 99, 98, 96])).toBe(4);
    // SMT: eight hardware threads on four cores add about a quarter: five cores' worth.
    expect(estimateParallelism([100, 100], Array(8).fill(62))).toBe(5);
  });

  it('takes the faster lone run, so outside load during one of them does not inflate the count', () => {
    expect(estimateParallelism([60, 100], [50, 50, 50, 50])).toBe(2);
  });

  it('rounds down unless nearly whole, and stays within 1 and the threads run', () => {
    expect(estimateParallelism([100], [70, 70, 70, 70])).toBe(3); // 2.8
    expect(estimateParallelism([100], [65, 65, 65, 65])).toBe(2); // 2.6
    expect(estimateParallelism([100], [10, 10, 10, 10])).toBe(1);
    expect(estimateParallelism([50], [100, 100])).toBe(2);
  });

  it('without a usable lone rate, assumes every thread ran', () => {
    expect(estimateParallelism([0, Number.NaN], [10, 10, 10])).toBe(3);
    expect(estimateParallelism([100], [])).toBe(1);
  });
});
