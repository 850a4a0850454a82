import { describe, expect, it } from 'vitest';
import { formatCount, formatDuration, formatHashrate, formatMultiplier, shortAddress, shortHash } from './format.ts';
import { explorerLink, safeHref } from './links.ts';

describe('view formatting', () => {
  it('formats hashrates with units and sensible precision', () => {
    expect(formatHashrate(0)).toBe('0 H/s');
    expect(formatHashrate(Number.NaN)).toBe('0 H/s');
    expect(formatHashrate(950)).toBe('950 H/s');
    expect(formatHashrate(1_530_000)).toBe('1.53 MH/s');
    expect(formatHashrate(24_400_000)).toBe('24.4 MH/s');
    expect(formatHashrate(3.2e12)).toBe('3.20 TH/s');
  });

  it('formats durations from milliseconds to days', () => {
    expect(formatDuration(850)).toBe('850 ms');
    expect(formatDuration(4200)).toBe('4.2 s');
    expect(formatDuration(200_000)).toBe('3 min 20 s');
    expect(formatDuration(2 * 3600_000 + 5 * 60_000)).toBe('2 h 5 min');
    expect(formatDuration(-1)).toBe('—');
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

  it('only ever links to http(s), and fills the explorer template', () => {
    expect(safeHref('https://wallet.example')).toBe('https://wallet.example/');
    expect(safeHref('javascript:alert(1)')).toBeNull();
    expect(safeHref('data:text/html,hi')).toBeNull();
    expect(safeHref('not a url')).toBeNull();
    expect(explorerLink('https://explorer.example/block/{hash}', 'AB12')).toBe('https://explorer.example/block/AB12');
    expect(explorerLink('', 'AB12')).toBeNull();
    expect(explorerLink('https://explorer.example/', 'AB12')).toBeNull();
    expect(explorerLink('javascript:{hash}', 'x')).toBeNull();
  });
});
