import { describe, expect, it } from 'vitest';
import { explorerLink, safeHref } from './links.ts';

describe('links', () => {
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
