import { describe, expect, it } from 'vitest';
import { LookupBound, resultKey } from './lookup-bound.ts';

describe('LookupBound', () => {
  it('admits while a place and a token are free, says which ran out, and takes nothing when it refuses', () => {
    let t = 0;
    const bound = new LookupBound({ inFlight: 2, perSecond: 1, burst: 3, now: () => t });
    expect([bound.start(), bound.start(), bound.start()]).toEqual([undefined, undefined, 'in-flight']);
    expect(bound.tokens).toBe(1);
    bound.end();
    expect(bound.start()).toBeUndefined();
    bound.end();
    expect(bound.start()).toBe('rate');
    expect(bound.inFlight).toBe(1);
    t += 1000;
    expect(bound.start()).toBeUndefined();
  });

  it('remembers "no such job" per whole result, a few thousand at most', () => {
    const bound = new LookupBound();
    const first = resultKey('AB'.repeat(32), '00000000000000FF', 'nano_1abc');
    bound.notPending(first);
    expect(bound.knownNotPending(resultKey('ab'.repeat(32), '00000000000000ff', 'nano_1abc'))).toBe(true);
    expect(bound.knownNotPending(resultKey('ab'.repeat(32), '00000000000000fe', 'nano_1abc'))).toBe(false);
    for (let i = 0; i < 5000; i++) bound.notPending(resultKey(i.toString(16).padStart(64, '0'), '0000000000000000', 'nano_1abc'));
    expect(bound.knownNotPending(first)).toBe(false);
  });
});
