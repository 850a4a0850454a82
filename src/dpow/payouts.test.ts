/** The payouts report: the codec both sides share, and loadPayouts against real HTTP answers. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPayouts, parsePayoutsReport, payoutsUrl, PAYOUTS_SHOWN } from './payouts.ts';

const REPORT = {
  address: 'nano_1111111111111111111111111111111111111111111111111111hifc8npp',
  paid: '12345000000000000000000000000',
  carried: '0',
  payouts: [{ at: 1_700_000_000_000, amount: '12345000000000000000000000000', status: 'confirmed', block: 'AB'.repeat(32) }],
  serverHasPaid: true,
};

describe('the payouts report', () => {
  it('reads what the server writes', () => {
    expect(parsePayoutsReport(REPORT)).toEqual(REPORT);
    expect(parsePayoutsReport({ ...REPORT, carried: '5', carriedReason: 'below the minimum', payouts: [{ at: 1, amount: '5', status: 'sending' }] })).toMatchObject({ carriedReason: 'below the minimum' });
  });

  it('refuses anything else: a proxy’s page, floats, unknown states, odd blocks, too many payouts', () => {
    for (const bad of [
      null,
      '<html>',
      [],
      { ...REPORT, paid: 1.5e28 },
      { ...REPORT, paid: '-1' },
      { ...REPORT, serverHasPaid: 'yes' },
      { ...REPORT, payouts: [{ ...REPORT.payouts[0], status: 'lost' }] },
      { ...REPORT, payouts: [{ ...REPORT.payouts[0], block: 'javascript:alert(1)' }] },
      { ...REPORT, payouts: [{ ...REPORT.payouts[0], amount: '1e3' }] },
      { ...REPORT, payouts: Array.from({ length: PAYOUTS_SHOWN + 1 }, () => REPORT.payouts[0]) },
    ]) {
      expect(parsePayoutsReport(bad), JSON.stringify(bad)?.slice(0, 80)).toBeUndefined();
    }
  });

  it('builds the endpoint URL from the page or a broker URL’s origin', () => {
    expect(payoutsUrl('https://dpow.example/', REPORT.address)).toBe(`https://dpow.example/api/payouts/${REPORT.address}`);
    expect(payoutsUrl('http://127.0.0.1:8787/mqtt', REPORT.address)).toBe(`http://127.0.0.1:8787/api/payouts/${REPORT.address}`);
  });
});

const ADDRESS = REPORT.address;

let origin: string;
let server: http.Server;
const answers: Record<string, [number, string, string?]> = {
  report: [200, JSON.stringify(REPORT)],
  unpaid: [200, JSON.stringify({ ...REPORT, paid: '0', serverHasPaid: false })],
  static: [200, '<!doctype html><title>dpow-web</title>', 'text/html'],
  missing: [404, 'Not found'],
  limited: [429, '{"error":"too many requests"}'],
  broken: [503, '{"error":"payouts are unavailable right now"}'],
  foreign: [200, '{"paid":1.5}'],
};

beforeAll(async () => {
  server = http.createServer((req, res) => {
    const [status, body, type] = answers[(req.headers['x-case'] as string) ?? ''] ?? [500, ''];
    res.writeHead(status, { 'Content-Type': type ?? 'application/json' }).end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

/** fetch with the case named in a header, so one server answers every case. */
const asCase = (name: string) => (url: string, init: { headers: Record<string, string> }) => fetch(url, { ...init, headers: { ...init.headers, 'X-Case': name } });

describe('loadPayouts', () => {
  it('reads a report, and says "none" where this server has not paid or has no endpoint', async () => {
    expect(await loadPayouts(ADDRESS, origin, asCase('report'))).toEqual({ kind: 'report', report: REPORT });
    expect(await loadPayouts(ADDRESS, origin, asCase('unpaid'))).toEqual({ kind: 'none', endpoint: true });
    for (const name of ['static', 'missing', 'foreign']) expect(await loadPayouts(ADDRESS, origin, asCase(name)), name).toEqual({ kind: 'none', endpoint: false });
  });

  it('says "unavailable" for a refusal to answer now, and for no connection at all', async () => {
    for (const name of ['limited', 'broken']) expect(await loadPayouts(ADDRESS, origin, asCase(name)), name).toEqual({ kind: 'unavailable' });
    expect(await loadPayouts(ADDRESS, 'http://127.0.0.1:1', fetch)).toEqual({ kind: 'unavailable' });
  });
});
