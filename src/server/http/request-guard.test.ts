import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { callerAddress, createRequestGuard, sourceKey, trustedProxies } from './request-guard.ts';

const req = (headers: Record<string, string>, remoteAddress = '127.0.0.1') =>
  ({ headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v])), socket: { remoteAddress } }) as unknown as IncomingMessage;

describe('createRequestGuard', () => {
  const guard = createRequestGuard({ host: '127.0.0.1', publicNames: ['DPoW.example'] });

  it('lets nodes, wallets and curl in: addresses, localhost, --host and the public names as Host, no Origin', () => {
    for (const host of ['127.0.0.1:8787', '127.0.0.1', '[::1]:8787', '::1', '10.1.2.3:8787', 'localhost:8787', 'LOCALHOST', 'dpow.example', 'dpow.example:443', 'app.localhost']) {
      expect(guard(req({ Host: host })), host).toBeUndefined();
    }
    expect(guard(req({}))).toBeUndefined(); // HTTP/1.0 without Host: not a browser
    expect(guard(req({ Host: 'dpow.example', 'Sec-Fetch-Site': 'none' }))).toBeUndefined();
  });

  it('refuses a name it does not answer to: DNS rebinding', () => {
    expect(guard(req({ Host: 'attacker.example:8787' }))).toEqual({ reason: 'foreign-host', detail: 'Host attacker.example:8787' });
    expect(guard(req({ Host: 'dpow.example.attacker.example' }))?.reason).toBe('foreign-host');
    // A wildcard bind is no name: only the addresses themselves pass.
    expect(createRequestGuard({ host: '0.0.0.0' })(req({ Host: '0.0.0.0.attacker.example' }))?.reason).toBe('foreign-host');
  });

  it('lets the page of its own origin in, and refuses every other origin', () => {
    expect(guard(req({ Host: '127.0.0.1:8787', Origin: 'http://127.0.0.1:8787', 'Sec-Fetch-Site': 'same-origin' }))).toBeUndefined();
    expect(guard(req({ Host: 'dpow.example', Origin: 'https://dpow.example' }))).toBeUndefined();
    for (const origin of ['http://attacker.example', 'null', 'http://127.0.0.1:8788', 'http://localhost:8787', 'garbage']) {
      expect(guard(req({ Host: '127.0.0.1:8787', Origin: origin })), origin).toEqual({ reason: 'foreign-origin', detail: `Origin ${origin}` });
    }
    expect(guard(req({ Host: '127.0.0.1:8787', 'Sec-Fetch-Site': 'cross-site' }))?.reason).toBe('foreign-origin');
    expect(guard(req({ Host: '127.0.0.1:8787', 'Sec-Fetch-Site': 'same-site' }))?.reason).toBe('foreign-origin');
  });
});

describe('callerAddress and sourceKey', () => {
  it('trusts X-Forwarded-For only from a proxy on loopback, and only its last hop', () => {
    expect(callerAddress(req({ 'X-Forwarded-For': '203.0.113.7' }))).toBe('203.0.113.7');
    expect(callerAddress(req({ 'X-Forwarded-For': '1.1.1.1, 203.0.113.7' }))).toBe('203.0.113.7');
    expect(callerAddress(req({ 'X-Forwarded-For': '203.0.113.7' }, '198.51.100.2'))).toBe('198.51.100.2');
    expect(callerAddress(req({ 'X-Forwarded-For': 'not an address' }))).toBe('127.0.0.1');
  });

  it('trusts X-Forwarded-For from a proxy on another host only when told its address', () => {
    const nginx = trustedProxies(['10.0.0.10', '2001:db8::10']);
    expect(callerAddress(req({ 'X-Forwarded-For': '203.0.113.7' }, '10.0.0.10'), nginx)).toBe('203.0.113.7');
    expect(callerAddress(req({ 'X-Forwarded-For': '203.0.113.7' }, '::ffff:10.0.0.10'), nginx)).toBe('203.0.113.7');
    expect(callerAddress(req({ 'X-Forwarded-For': '203.0.113.7' }, '2001:db8:0:0::10'), nginx)).toBe('203.0.113.7');
    // Loopback stays trusted; a neighbour of the proxy, or the proxy when not named, does not.
    expect(callerAddress(req({ 'X-Forwarded-For': '203.0.113.7' }), nginx)).toBe('203.0.113.7');
    expect(callerAddress(req({ 'X-Forwarded-For': '203.0.113.7' }, '10.0.0.11'), nginx)).toBe('10.0.0.11');
    expect(callerAddress(req({ 'X-Forwarded-For': '203.0.113.7' }, '10.0.0.10'))).toBe('10.0.0.10');
    expect(() => trustedProxies(['nginx.internal'])).toThrow(/must be an IP address/);
  });

  it('counts IPv4 callers by address and IPv6 callers by /64', () => {
    expect(sourceKey('203.0.113.7')).toBe('203.0.113.7');
    expect(sourceKey('::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(sourceKey('2001:db8:1:2:aaaa::1')).toBe(sourceKey('2001:db8:1:2:bbbb::9'));
    expect(sourceKey('2001:db8:1:2::1')).not.toBe(sourceKey('2001:db8:1:3::1'));
  });
});
