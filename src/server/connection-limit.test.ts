import { describe, expect, it } from 'vitest';
import { ConnectionLimit, DEFAULT_CONNECTION_CAPS } from './connection-limit.ts';

describe('ConnectionLimit', () => {
  it('holds each source to its cap and frees a place when a connection is released', () => {
    const limit = new ConnectionLimit({ perSource: 2, total: 100 });
    const a = limit.admit('198.51.100.7');
    const b = limit.admit('198.51.100.7');
    expect([a.ok, b.ok]).toEqual([true, true]);
    expect(limit.admit('198.51.100.7')).toMatchObject({ ok: false, reason: 'per-source', source: '198.51.100.7' });
    // Another address is another source.
    expect(limit.admit('198.51.100.8').ok).toBe(true);
    if (a.ok) a.release();
    expect(limit.admit('198.51.100.7').ok).toBe(true);
    expect(limit.counters).toEqual({ admitted: 4, refused: { 'per-source': 1, total: 0 } });
  });

  it('counts an IPv6 /64 as one source, and an IPv4 address mapped into IPv6 as that address', () => {
    const limit = new ConnectionLimit({ perSource: 2, total: 100 });
    expect(limit.admit('2001:db8:1:2::1').ok).toBe(true);
    expect(limit.admit('2001:db8:1:2:ffff:ffff:ffff:ffff').ok).toBe(true);
    expect(limit.admit('2001:db8:1:2:abcd::9')).toMatchObject({ ok: false, reason: 'per-source', source: '2001:db8:1:2::/64' });
    expect(limit.admit('2001:db8:1:3::1').ok).toBe(true);
    expect(limit.admit('::ffff:198.51.100.7').ok).toBe(true);
    expect(limit.admit('198.51.100.7').ok).toBe(true);
    expect(limit.admit('198.51.100.7')).toMatchObject({ ok: false, source: '198.51.100.7' });
  });

  it('holds all sources together to the total', () => {
    const limit = new ConnectionLimit({ perSource: 10, total: 3 });
    const admitted = ['192.0.2.1', '192.0.2.2', '192.0.2.3'].map((a) => limit.admit(a));
    expect(admitted.every((a) => a.ok)).toBe(true);
    expect(limit.admit('192.0.2.4')).toMatchObject({ ok: false, reason: 'total' });
    expect([limit.open, limit.sources]).toEqual([3, 3]);
    const first = admitted[0];
    if (first.ok) first.release();
    expect(limit.admit('192.0.2.4').ok).toBe(true);
  });

  it("admits the operator's own whatever the counts, without taking a place", () => {
    const limit = new ConnectionLimit({ perSource: 1, total: 1 });
    expect(limit.admit('192.0.2.1').ok).toBe(true);
    const own = [limit.admit('127.0.0.1', true), limit.admit('127.0.0.1', true)];
    expect(own.every((a) => a.ok)).toBe(true);
    expect([limit.open, limit.sources]).toEqual([3, 1]);
    for (const a of own) if (a.ok) a.release();
    expect(limit.open).toBe(1);
    expect(limit.admit('192.0.2.2')).toMatchObject({ ok: false, reason: 'total' });
  });

  it('releases a connection once however often it is told, and forgets a source with nothing open', () => {
    const limit = new ConnectionLimit({ perSource: 2, total: 2 });
    const a = limit.admit('192.0.2.1');
    const b = limit.admit('192.0.2.1');
    if (!a.ok || !b.ok) throw new Error('admitted');
    a.release();
    a.release();
    a.release();
    expect([limit.open, limit.sources]).toEqual([1, 1]);
    b.release();
    expect([limit.open, limit.sources]).toEqual([0, 0]);
    expect(limit.admit('192.0.2.1').ok && limit.admit('192.0.2.1').ok).toBe(true);
  });

  it('defaults to room for a NAT or a GPU farm behind one address', () => {
    expect(new ConnectionLimit().caps).toEqual(DEFAULT_CONNECTION_CAPS);
    expect(new ConnectionLimit({ perSource: undefined, total: 7 }).caps).toEqual({ perSource: DEFAULT_CONNECTION_CAPS.perSource, total: 7 });
    expect(DEFAULT_CONNECTION_CAPS.perSource).toBeGreaterThanOrEqual(256);
  });
});
