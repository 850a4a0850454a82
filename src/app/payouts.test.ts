/** The rewards card's loader against real HTTP answers: each kind of server says what it should. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPayouts } from './payouts.ts';

const ADDRESS = 'nano_1111111111111111111111111111111111111111111111111111hifc8npp';
const REPORT = { address: ADDRESS, paid: '12345000000000000000000000000', carried: '0', payouts: [], serverHasPaid: true };

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
const asCase = (name: string): typeof fetch => (input, init) => fetch(input, { ...init, headers: { ...(init?.headers as Record<string, string>), 'X-Case': name } });

describe('loadPayouts', () => {
  it('reads a report, and says "none" where this server has not paid or has no endpoint', async () => {
    expect(await loadPayouts(ADDRESS, origin, asCase('report'))).toEqual({ kind: 'report', report: REPORT });
    for (const name of ['unpaid', 'static', 'missing', 'foreign']) expect(await loadPayouts(ADDRESS, origin, asCase(name)), name).toEqual({ kind: 'none' });
  });

  it('says "unavailable" for a refusal to answer now, and for no connection at all', async () => {
    for (const name of ['limited', 'broken']) expect(await loadPayouts(ADDRESS, origin, asCase(name)), name).toEqual({ kind: 'unavailable' });
    expect(await loadPayouts(ADDRESS, 'http://127.0.0.1:1')).toEqual({ kind: 'unavailable' });
  });
});
