import { describe, expect, it } from 'vitest';
import { formatNano } from '../format.ts';
import { isRawString, MAX_RAW, parseNano, RAW_PER_NANO } from './nano-amount.ts';

describe('NANO amounts', () => {
  it('formats raw exactly, every significant decimal and no exponent', () => {
    expect(formatNano(12_345n * 10n ** 24n)).toBe('0.012345');
    expect(formatNano(RAW_PER_NANO * 3n / 2n)).toBe('1.5');
    expect(formatNano(1n)).toBe(`0.${'0'.repeat(29)}1`);
    expect(formatNano(0n)).toBe('0');
    expect(formatNano(MAX_RAW)).toBe('340282366.920938463463374607431768211455');
    expect(formatNano(-5n * 10n ** 29n)).toBe('-0.5');
  });

  it('reads what people type into raw, and formatting gives it back', () => {
    expect(parseNano('1.5')).toEqual({ ok: true, raw: 1_500_000_000_000_000_000_000_000_000_000n });
    expect(parseNano('0.000001')).toEqual({ ok: true, raw: 10n ** 24n });
    expect(parseNano('7')).toEqual({ ok: true, raw: 7n * RAW_PER_NANO });
    for (const text of ['0.012345', '133.248297', `0.${'9'.repeat(30)}`, '340282366.920938463463374607431768211455']) {
      const parsed = parseNano(text);
      expect(parsed.ok && formatNano(parsed.raw)).toBe(text);
    }
  });

  it('refuses signs, exponents, separators, too many decimals and more than a balance holds', () => {
    for (const text of ['-1', '+1', '1e-3', '1,5', ' 1', '1.', '.5', '', 'NaN', '0x10']) {
      expect(parseNano(text), text).toMatchObject({ ok: false, reason: expect.stringMatching(/not an amount/) });
    }
    expect(parseNano(`0.${'0'.repeat(30)}1`)).toMatchObject({ ok: false, reason: expect.stringMatching(/more than 30 decimals/) });
    expect(parseNano('340282366.920938463463374607431768211456')).toMatchObject({ ok: false, reason: expect.stringMatching(/more than a Nano balance/) });
  });

  it('knows a raw string as the node writes it', () => {
    expect(isRawString('0')).toBe(true);
    expect(isRawString(MAX_RAW.toString())).toBe(true);
    expect(isRawString((MAX_RAW + 1n).toString())).toBe(false);
    for (const bad of ['01', '-1', '1.0', '', ' 1', 1, null]) expect(isRawString(bad), String(bad)).toBe(false);
  });
});
