import { describe, expect, it } from 'vitest';
import { checkDifficulty, DEFAULT_POLICY, difficultyError, difficultyPolicy } from './difficulty.ts';
import { fromMultiplier, PowInputError, THRESHOLDS } from './work.ts';

describe('difficulty policy', () => {
  it('defaults to the Nano send threshold as base, the receive threshold as floor, 64x base as ceiling', () => {
    expect(DEFAULT_POLICY).toEqual({
      base: THRESHOLDS.nanoSend,
      min: THRESHOLDS.nanoReceive,
      max: 0xffffffffe0000000n,
      maxMultiplier: 64,
    });
    expect(difficultyPolicy({ base: 0xff00000000000000n, maxMultiplier: 2 }).max).toBe(fromMultiplier(2, 0xff00000000000000n));
  });

  it('refuses a bad ceiling when the policy is built, not when it is used', () => {
    expect(() => difficultyPolicy({ maxMultiplier: 0 })).toThrow(PowInputError);
    expect(() => difficultyPolicy({ maxMultiplier: Number.NaN })).toThrow(/positive finite/);
  });

  it('holds service requests to the floor and jobs only to the ceiling', () => {
    const policy = difficultyPolicy({ minDifficulty: 0xf000000000000000n });
    const low = 0xe000000000000000n;
    expect(difficultyError(low, policy, 'request')?.code).toBe('difficulty-too-low');
    expect(difficultyError(low, policy, 'request')?.message).toBe('difficulty e000000000000000 is below the minimum f000000000000000');
    expect(difficultyError(low, policy)).toBeNull();
    expect(checkDifficulty(low, policy, 'job')).toBe(low);
    expect(checkDifficulty(policy.min, policy, 'request')).toBe(policy.min);
  });

  it('refuses anything above the ceiling, saying where the ceiling is', () => {
    const policy = difficultyPolicy({ maxMultiplier: 8 });
    expect(checkDifficulty(policy.max, policy)).toBe(policy.max);
    for (const check of ['job', 'request'] as const) {
      const error = difficultyError(policy.max + 1n, policy, check);
      expect(error?.code).toBe('difficulty-too-high');
      expect(error?.message).toBe("difficulty ffffffff00000001 is above the maximum ffffffff00000000 (8x base)");
    }
    expect(() => checkDifficulty(0xffffffffffffffffn, policy)).toThrow(PowInputError);
  });
});
