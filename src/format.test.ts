import { describe, expect, it } from 'vitest';
import { RAW_PER_NANO } from './dpow/nano-amount.ts';
import {
  formatCount,
  formatDuration,
  formatElapsed,
  formatHashrate,
  formatMegahashes,
  formatMultiplier,
  formatNanoAmount,
  formatNanoCompact,
  logHash,
  logHashColumn,
  shortAddress,
  shortHash,
} from './format.ts';

describe('view formatting', () => {
  it('formats hashrates with units and sensible precision', () => {
    expect(formatHashrate(0)).toBe('0 H/s');
    expect(formatHashrate(Number.NaN)).toBe('0 H/s');
    expect(formatHashrate(950)).toBe('950 H/s');
    expect(formatHashrate(1_530_000)).toBe('1.53 MH/s');
    expect(formatHashrate(24_400_000)).toBe('24.4 MH/s');
    expect(formatHashrate(3.2e12)).toBe('3.20 TH/s');
    expect(formatMegahashes(33_681_000)).toBe('33.68 MH/s');
    expect(formatMegahashes(3.2e9, 1)).toBe('3200.0 MH/s');
  });

  it('formats durations from milliseconds to days', () => {
    expect(formatDuration(850)).toBe('850 ms');
    expect(formatDuration(4200)).toBe('4.2 s');
    expect(formatDuration(200_000)).toBe('3 min 20 s');
    expect(formatDuration(2 * 3600_000 + 5 * 60_000)).toBe('2 h 5 min');
    expect(formatDuration(-1)).toBe('—');
  });

  it('formats a run time for log lines to the second', () => {
    expect(formatElapsed(45_900)).toBe('45s');
    expect(formatElapsed(200_000)).toBe('3m20s');
    expect(formatElapsed(3_723_000)).toBe('1h02m03s');
  });

  it('shows a hash in log lines by its head, escaped', () => {
    const hash = 'BFEB8AA91D346E6EFBB41D11FD247E48E0BC0DBC183DDEB9F26F3A98AA17522F';
    expect(logHash(hash)).toBe('BFEB8AA91D346E6E…');
    expect(logHashColumn(hash)).toBe('BFEB8AA91D346E6E');
    expect(logHashColumn('AB\nCD')).toBe('AB\\u{a}CD');
  });

  it('shortens hashes and addresses, keeping both ends', () => {
    const hash = '718CC2121C3E641059BC1C2CFC45666C99E8AE922F7A807B7D07B62C995D79E2';
    expect(shortHash(hash)).toBe('718CC212…995D79E2');
    expect(shortHash('abcd')).toBe('abcd');
    expect(shortAddress('nano_3t6k35gi95xu6tergt6p69ck76ogmitsa8mnijtpxm9fkcm736xtoncuohr3')).toBe('nano_3t6k35…uohr3');
    expect(formatMultiplier(1)).toBe('1.000×');
    expect(formatMultiplier(64)).toBe('64.0×');
    expect(formatCount(78642)).toBe('78,642');
  });

  it('cuts a hash for a log line to its head, and escapes what a client could have put in it', () => {
    const hash = 'BFEB8AA91D346E6E2D6B4B0A6A1C2F2E1B5D8E9A0C3F4A5B6C7D8E9F0A1B2C3D';
    expect(shortHash(hash, 16, 0)).toBe('BFEB8AA91D346E6E…');
    expect(shortHash('12345678901234567', 16, 0)).toBe('12345678901234567');
    expect(shortHash('AB\ncd\u0000', 16, 0)).toBe('AB\\u{a}cd\\u{0}');
    expect(shortHash(`evil\r\n${'0'.repeat(60)}`, 16, 0)).toBe(`evil\\u{d}\\u{a}${'0'.repeat(10)}…`);
  });

  it('writes NANO exactly, and for a glance cuts it without ever rounding up', () => {
    expect(formatNanoAmount(12_345n * 10n ** 24n)).toBe('0.012345 NANO');
    expect(formatNanoCompact(12_345n * 10n ** 24n)).toBe('0.012345 NANO');
    expect(formatNanoCompact(3n * RAW_PER_NANO)).toBe('3 NANO');
    expect(formatNanoCompact(RAW_PER_NANO * 2n / 3n)).toBe('0.666666… NANO');
    expect(formatNanoCompact(1n)).toBe('0.000000… NANO');
    expect(formatNanoCompact(RAW_PER_NANO * 2n / 3n, 2)).toBe('0.66… NANO');
  });
});
