import { describe, expect, it } from 'vitest';
import { checkDifficulty, difficultyPolicy } from './difficulty.ts';
import vectors from '../../test/vectors/nano-work.json' with { type: 'json' };
import {
  PowInputError,
  THRESHOLDS,
  fromMultiplier,
  parseDifficulty,
  parseMultiplier,
  parseRoot,
  parseWork,
  toMultiplier,
  toU64Hex,
  validateWork,
  workValue,
} from './work.ts';

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(PowInputError);
    return (err as PowInputError).code;
  }
  throw new Error('expected a PowInputError');
};

describe('the work rule', () => {
  it.each(vectors.valid)('computes the value of $origin', ({ root, work, value }) => {
    expect(toU64Hex(workValue(root, work))).toBe(value);
    expect(validateWork(root, work, value).valid).toBe(true);
    // ">=" not ">": one above the value fails
    expect(validateWork(root, work, BigInt(`0x${value}`) + 1n).valid).toBe(false);
  });

  it.each(vectors.invalid)('rejects $origin', ({ root, work, value }) => {
    expect(toU64Hex(workValue(root, work))).toBe(value);
    expect(validateWork(root, work, THRESHOLDS.nanoReceive).valid).toBe(false);
  });

  it('reverses the work bytes before hashing (the byte-order trap)', () => {
    const t = vectors.byte_order_trap;
    expect(toU64Hex(workValue(t.root, t.work))).toBe(t.correct_value);
    const reversed = t.work.match(/../g)!.reverse().join('');
    expect(toU64Hex(workValue(t.root, reversed))).toBe(t.value_if_work_bytes_not_reversed);
  });

  it('accepts hex in either case', () => {
    const v = vectors.valid[0];
    expect(workValue(v.root.toLowerCase(), v.work.toUpperCase())).toBe(workValue(v.root, v.work));
  });
});

describe('input parsing', () => {
  it('names what is wrong with a root', () => {
    expect(code(() => parseRoot('abc'))).toBe('bad-root');
    expect(code(() => parseRoot('g'.repeat(64)))).toBe('bad-root');
    expect(code(() => parseRoot(42))).toBe('bad-root');
    expect(() => parseRoot('ab'.repeat(31))).toThrow(/64 hex characters, got .*62 chars/);
  });
  it('names what is wrong with a work or difficulty', () => {
    expect(code(() => parseWork('123'))).toBe('bad-work');
    expect(code(() => parseDifficulty('fffffff80000000'))).toBe('bad-difficulty');
    expect(code(() => parseDifficulty('0xfffffff8000000'))).toBe('bad-difficulty');
  });
  it('refuses a multiplier that is not positive', () => {
    for (const m of ['0', '-1', 'abc', '', 'NaN', 'Infinity']) expect(code(() => parseMultiplier(m))).toBe('bad-multiplier');
    expect(code(() => fromMultiplier(0))).toBe('bad-multiplier');
    expect(parseMultiplier('1.5')).toBe(1.5);
  });
  it('gives every positive finite multiplier a difficulty, clamped into the u64 range', () => {
    for (const m of [1e-308, 1e-320, 5e-324, 1e-12]) expect(fromMultiplier(m)).toBe(0n);
    for (const m of [1e308, Number.MAX_VALUE, 1e30]) expect(fromMultiplier(m)).toBe(0xffffffffffffffffn);
  });
});

describe('difficulty and multiplier', () => {
  it('converts both ways around a base', () => {
    expect(toMultiplier(THRESHOLDS.nanoSend)).toBe(1);
    expect(toMultiplier(THRESHOLDS.nanoReceive)).toBe(1 / 64);
    expect(fromMultiplier(1)).toBe(THRESHOLDS.nanoSend);
    expect(fromMultiplier(1 / 64)).toBe(THRESHOLDS.nanoReceive);
    expect(fromMultiplier(8, THRESHOLDS.nanoReceive)).toBe(0xffffffc000000000n);
    expect(toMultiplier(0xfffffff93c41ec94n)).toBeCloseTo(1.182623871097636, 12);
  });
  it('refuses a difficulty above the maximum multiplier', () => {
    expect(code(() => checkDifficulty(0xffffffffffffffffn))).toBe('difficulty-too-high');
    expect(checkDifficulty(fromMultiplier(64))).toBe(fromMultiplier(64));
    expect(code(() => checkDifficulty(fromMultiplier(65)))).toBe('difficulty-too-high');
    expect(code(() => checkDifficulty(1n, difficultyPolicy({ minDifficulty: THRESHOLDS.nanoReceive }), 'request'))).toBe('difficulty-too-low');
  });
});
