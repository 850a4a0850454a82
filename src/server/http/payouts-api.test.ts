/**
 * GET /api/payouts/<address> over real HTTP: on the app server as `dpow-web start` runs it, and
 * on a bare http.Server for the rate limit and a store that does not answer.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { encodeAddress } from '../../dpow/address.ts';
import { parsePayoutsReport, payoutsUrl } from '../../dpow/payouts.ts';
import { breakChecksum } from '../../testkit/address.ts';
import { cleanupsAfterEach } from '../../testkit/cleanups.ts';
import { MemoryStore } from '../store/memory-store.ts';
import type { DispatcherStore } from '../store/store.ts';
import { createServer } from '../create-server.ts';
import { PayoutsApi } from './payouts-api.ts';
import type { Logger } from '../log.ts';

const cleanups = cleanupsAfterEach();
const A = encodeAddress('a1'.repeat(32));
const B = encodeAddress('b2'.repeat(32));
const SOURCE = encodeAddress('f6'.repeat(32));
const BLOCK = 'C0FFEE'.padEnd(64, '0');
/** Beyond 2^64 and 2^53: must reach the page digit for digit. */
const AMOUNT = 12_345_678_901_234_567_890_123_456_789n;

/** A store where A was paid once (confirmed) and has a payment sending; B has dust carried. */
async function paidStore(): Promise<DispatcherStore> {
  const store = new MemoryStore();
  await store.creditClient(A, 'precache', BLOCK);
  await store.creditClient(B, 'precache', BLOCK);
  const run = (id: string, createdAt: number, previous: number) => ({
    run: { id, createdAt, source: SOURCE, weight: 'work' as const, pool: AMOUNT, min: 10n },
    payments: [
      { seq: 0, address: A, precache: 1, ondemand: 0, amount: AMOUNT, carriedIn: 0n, status: 'planned' as const, sendId: `${id}:${A}` },
      { seq: 1, address: B, precache: 1, ondemand: 0, amount: 3n, carriedIn: BigInt(previous) * 3n, status: 'carried' as const, reason: 'below the minimum' },
    ],
    snapshot: [
      { entry: { address: A, precache: previous + 1 }, previous: { precache: previous, ondemand: 0 } },
      { entry: { address: B, precache: previous + 1 }, previous: { precache: previous, ondemand: 0 } },
    ],
    carries: [{ address: B, previous: BigInt(previous) * 3n, next: BigInt(previous + 1) * 3n }],
  });
  await store.payouts.createRun(run('r1', 1_700_000_000_000, 0));
  await store.payouts.markSent('r1', A, BLOCK, 1_700_000_001_000);
  await store.payouts.markConfirmed('r1', A, 1_700_000_002_000);
  await store.payouts.setRunStatus('r1', 'done', { at: 1_700_000_003_000 });
  await store.creditClient(A, 'precache', BLOCK);
  await store.creditClient(B, 'precache', BLOCK);
  await store.payouts.createRun(run('r2', 1_800_000_000_000, 1));
  return store;
}

async function app(store: DispatcherStore) {
  const server = await createServer({ kind: 'app', http: { port: 0 }, store: { kind: 'given', store } });
  cleanups.push(() => server.close());
  return server;
}

describe('GET /api/payouts/<address>', () => {
  it('answers what was paid to the address, exactly, newest first, and nothing about anyone else', async () => {
    const server = await app(await paidStore());
    const res = await fetch(payoutsUrl(server.url, A));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(res.headers.get('cache-control')).toBe('public, max-age=60');
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({
      address: A,
      paid: AMOUNT.toString(),
      carried: '0',
      payouts: [
        { at: 1_800_000_000_000, amount: AMOUNT.toString(), status: 'sending' },
        { at: 1_700_000_001_000, amount: AMOUNT.toString(), status: 'confirmed', block: BLOCK },
      ],
      serverHasPaid: true,
    });
    expect(parsePayoutsReport(JSON.parse(text))).toEqual(JSON.parse(text));
    expect(text).not.toContain(B);
    expect(text).not.toContain(SOURCE);

    const b = await (await fetch(payoutsUrl(server.url, B))).json();
    expect(b).toEqual({ address: B, paid: '0', carried: '6', carriedReason: 'below the minimum', payouts: [], serverHasPaid: true });
    const nobody = await (await fetch(payoutsUrl(server.url, encodeAddress('99'.repeat(32), 'xrb')))).json();
    expect(nobody).toMatchObject({ paid: '0', carried: '0', payouts: [], serverHasPaid: true });
  });

  it('says the server has not paid yet when it has no runs', async () => {
    const server = await app(new MemoryStore());
    expect(await (await fetch(payoutsUrl(server.url, A))).json()).toEqual({ address: A, paid: '0', carried: '0', payouts: [], serverHasPaid: false });
  });

  it('is cacheable: an ETag, and 304 when it still matches; HEAD has the headers alone', async () => {
    const server = await app(await paidStore());
    const first = await fetch(payoutsUrl(server.url, A));
    const etag = first.headers.get('etag')!;
    expect(etag).toMatch(/^"[\w-]+"$/);
    const again = await fetch(payoutsUrl(server.url, A), { headers: { 'If-None-Match': etag } });
    expect(again.status).toBe(304);
    const head = await fetch(payoutsUrl(server.url, A), { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(first.headers.get('content-length'));
    expect(await head.text()).toBe('');
    await server.store.payouts.markSent('r2', A, BLOCK.replace('C0', 'D0'), 1_800_000_001_000);
    expect((await fetch(payoutsUrl(server.url, A), { headers: { 'If-None-Match': etag } })).status).toBe(200);
  });

  it('checks the address before the store is asked, and answers only GET and HEAD', async () => {
    const server = await app(await paidStore());
    const base = `${server.url}api/payouts/`;
    const bad = async (path: string) => {
      const res = await fetch(base + path);
      return [res.status, ((await res.json()) as { error: string }).error];
    };
    expect(await bad(breakChecksum(A))).toEqual([400, 'address checksum does not match: check it for a typo']);
    expect(await bad(encodeAddress('a1'.repeat(32), 'qlc'))).toEqual([400, 'address must start with nano_, xrb_']);
    expect(await bad('x'.repeat(5000))).toEqual([400, 'an address has at most 100 characters']);
    expect(await bad('')).toEqual([400, 'address must start with nano_, xrb_']);
    expect(await bad(`${A}/more`)).toEqual([400, expect.stringMatching(/^address/)]);
    const post = await fetch(payoutsUrl(server.url, A), { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    // Each refusal is counted where the operator reads the server's numbers.
    const metrics = await (await fetch(`${server.url}metrics`)).text();
    expect(metrics).toContain('dpow_payouts_requests_total{outcome="bad-address"} 5');
    expect(metrics).toContain('dpow_payouts_requests_total{outcome="bad-method"} 1');
  });
});

describe('the payouts endpoint on its own', () => {
  async function serve(store: DispatcherStore, perMinute: number, now: () => number, log?: Logger) {
    const api = new PayoutsApi({ store, perMinute, now, ...(log ? { log } : {}) });
    const server = http.createServer((req, res) => void api.handleRequest(req, res).then((handled) => handled || res.writeHead(404).end()));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => server.close(r)), () => api.close());
    return { api, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/` };
  }

  it('limits each caller, and behind a local proxy each forwarded client, with Retry-After', async () => {
    let now = 0;
    const { api, url } = await serve(new MemoryStore(), 2, () => now);
    const get = (forwardedFor?: string) => fetch(payoutsUrl(url, A), forwardedFor ? { headers: { 'X-Forwarded-For': forwardedFor } } : {});
    expect((await get()).status).toBe(200);
    expect((await get()).status).toBe(200);
    const refused = await get();
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('30');
    // Another client through the proxy has its own bucket; the proxy's own hop is the one that counts.
    expect((await get('203.0.113.9, 198.51.100.7')).status).toBe(200);
    expect((await get('203.0.113.9, 198.51.100.7')).status).toBe(200);
    expect((await get('10.0.0.1, 198.51.100.7')).status).toBe(429);
    now += 30_000;
    expect((await get()).status).toBe(200);
    expect(api.counters).toMatchObject({ ok: 5, 'rate-limited': 2 });
  });

  it('answers 503 when the store does not, and counts it', async () => {
    const store = new MemoryStore();
    await store.close();
    const { api, url } = await serve(store, 60, Date.now);
    const res = await fetch(payoutsUrl(url, A));
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect(await res.json()).toEqual({ error: 'payouts are unavailable right now' });
    expect(api.counters.unavailable).toBe(1);
  });

  it('logs a store that does not answer once, however many ask meanwhile', async () => {
    const lines: string[] = [];
    const log: Logger = { info: (m) => lines.push(m), warn: (m) => lines.push(m), error: (m) => lines.push(m) };
    const store = new MemoryStore();
    await store.close();
    const { api, url } = await serve(store, 1000, Date.now, log);
    for (let i = 0; i < 50; i++) expect((await fetch(payoutsUrl(url, A))).status).toBe(503);
    expect(api.counters.unavailable).toBe(50);
    api.close();
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^payouts: the store did not answer: /);
    expect(lines[1]).toMatch(/^payouts: store: 49 more in 10 s, not logged one by one/);
  });

  it('logs a flood of bad addresses as one line and a count, each field clipped', async () => {
    const lines: string[] = [];
    const log: Logger = { info: (m) => lines.push(m), warn: (m) => lines.push(m), error: (m) => lines.push(m) };
    const { api, url } = await serve(new MemoryStore(), 1000, Date.now, log);
    for (let i = 0; i < 50; i++) expect((await fetch(`${url}api/payouts/nano_${'x'.repeat(90)}${i}`)).status).toBe(400);
    expect(api.counters['bad-address']).toBe(50);
    api.close();
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^payouts: bad address "nano_x{75}"…\(\+\d+ chars\) from "127\.0\.0\.1": address must have 60 characters/);
    expect(lines[1]).toMatch(/^payouts: bad address: 49 more in 10 s, not logged one by one/);
  });
});
