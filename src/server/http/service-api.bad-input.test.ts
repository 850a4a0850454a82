/**
 * Bad input from callers gets a clear answer, never a 500 or a silent drop:
 * - numbers: every multiplier, difficulty and timeout, however odd (tiny and huge doubles,
 *   subnormals, exponent edges, padded or foreign strings), gets a 4xx with the DPoW text on
 *   /service/ and the node's text on the RPC. A seeded generator keeps failures reproducible:
 *   the failing input is printed;
 * - a text frame that is not UTF-8 on /service_ws/ is answered and the socket stays open;
 * - a body that stops half-way does not hold a socket for Node's default five minutes.
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStore } from '../store/memory-store.ts';
import { ServiceApi } from './service-api.ts';
import { DispatchError, type DispatcherApi } from '../types.ts';
import { addTestService } from '../../testkit/services.ts';

const ROOT = '718CC2121C3E641059BC1C2CFC45666C99E8AE922F7A807B7D07B62C995D79E2';
const WORK = '2b3d689bbcb21dca';

/** No worker ever answers: a request that passes every check ends in the timeout reply. */
const noWorkers: DispatcherApi = {
  async requestWork() {
    throw new DispatchError('timeout', 'no worker');
  },
  async precache() {},
  async withdraw() {
    return false;
  },
  async cancel() {
    return 0;
  },
  async track() {},
};

let server: Server;
let api: ServiceApi;
let store: MemoryStore;
let base: string;
let key: string;
const errors: string[] = [];

beforeAll(async () => {
  store = new MemoryStore();
  ({ key } = await addTestService(store, {}, { N: 1024, r: 8, p: 1 }));
  api = new ServiceApi({
    dispatcher: noWorkers,
    store,
    log: { info: () => {}, warn: () => {}, error: (m) => errors.push(m) },
    bodyTimeoutMs: 300,
  });
  server = createServer((req, res) => void api.handleRequest(req, res));
  server.on('upgrade', (req, socket, head) => api.handleUpgrade(req, socket, head));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  api.close();
  server.closeAllConnections();
  server.close();
  await store.close();
});

async function post(path: string, body: unknown) {
  const res = await fetch(`${base}${path}`, { method: 'POST', body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/** mulberry32: a small seeded generator, so a failing case can be replayed. */
function generator(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A double from 64 random bits: every exponent, subnormals, infinities and NaNs included. */
function randomDouble(next: () => number): number {
  const view = new DataView(new ArrayBuffer(8));
  view.setUint32(0, Math.floor(next() * 2 ** 32));
  view.setUint32(4, Math.floor(next() * 2 ** 32));
  return view.getFloat64(0);
}

const EDGES: unknown[] = [
  0, -0, 1, -1, 64, 65, 1e-308, 1e-320, 5e-324, 2.2250738585072014e-308, 1e308, 1.7976931348623157e308,
  Number.MAX_SAFE_INTEGER, 2 ** 64, 2 ** -1074, 1 / 64, 0.015625, 0.0156249, 1e-9, 1e9,
  '1e-308', '1e-320', '5e-324', '1e308', '1e309', '-1e309', 'Infinity', '-Infinity', 'NaN', '',
  ' ', ' 5 ', '5 ', '\t5', '0x10', '0b1', '1_000', '1,5', '１', '5e', 'e5', '.', '-', '+5', '.5',
  '5.', '00005', '1e+2', null, true, [], [5], {}, { value: 5 },
];

function inputs(count: number, seed: number): unknown[] {
  const next = generator(seed);
  const out = [...EDGES];
  while (out.length < count) {
    const d = randomDouble(next);
    const pick = next();
    if (pick < 0.4) out.push(d);
    else if (pick < 0.6) out.push(String(d));
    else if (pick < 0.8) out.push(Math.abs(d) * 10 ** Math.floor(next() * 40 - 20));
    else out.push(d.toExponential(Math.floor(next() * 20)));
  }
  return out;
}

const SERVICE_TEXTS = new Set([
  'Multiplier must be a float',
  'Invalid difficulty',
  'Difficulty too low',
  'Timeout must be an integer between 1 and 30',
  'Timeout reached without work',
]);
const RPC_TEXTS = new Set([
  'Bad multiplier',
  'Bad difficulty',
  'Difficulty above config limit or below publish threshold',
  'Timeout reached without work',
]);

describe('numbers from callers', () => {
  it('the service API answers tiny multipliers with "Difficulty too low", not 500', async () => {
    for (const multiplier of [1e-308, 1e-320, 5e-324, '1e-308', '1e-320']) {
      expect(await post('/service/', { user: 'wallet', api_key: key, hash: ROOT, multiplier }), String(multiplier)).toEqual({
        status: 400,
        json: { error: 'Difficulty too low' },
      });
    }
  });

  it('the RPC answers huge multipliers with the node texts, not 500', async () => {
    for (const multiplier of [1e308, '1e308', 1.7976931348623157e308]) {
      expect(await post('/', { action: 'work_generate', hash: ROOT, multiplier }), String(multiplier)).toEqual({
        status: 400,
        json: { error: 'Difficulty above config limit or below publish threshold' },
      });
      const v = await post('/', { action: 'work_validate', hash: ROOT, work: WORK, multiplier });
      expect(v.status).toBe(200);
      expect(v.json.valid).toBe('0');
    }
    const tiny = await post('/', { action: 'work_validate', hash: ROOT, work: WORK, multiplier: 1e-320 });
    expect(tiny.json.valid).toBe('1');
  });

  it('the RPC refuses a multiplier padded with spaces or not written as a number', async () => {
    for (const multiplier of [' 5 ', '5 ', '\t5', '0x10', '', 'Infinity', '1_0']) {
      expect(await post('/', { action: 'work_generate', hash: ROOT, multiplier }), JSON.stringify(multiplier)).toEqual({
        status: 400,
        json: { error: 'Bad multiplier' },
      });
    }
    expect((await post('/', { action: 'work_validate', hash: ROOT, work: WORK, multiplier: '2.5e-1' })).status).toBe(200);
  });

  it('any multiplier, difficulty or timeout gets a 4xx (or the timeout reply) with a documented text', async () => {
    const seen: string[] = [];
    for (const value of inputs(200, 12)) {
      const label = `${typeof value} ${JSON.stringify(value) ?? String(value)}`;
      const requests: Array<[string, Record<string, unknown>, Set<string>]> = [
        ['/service/', { user: 'wallet', api_key: key, hash: ROOT, timeout: 1, multiplier: value }, SERVICE_TEXTS],
        ['/service/', { user: 'wallet', api_key: key, hash: ROOT, timeout: value }, SERVICE_TEXTS],
        ['/', { action: 'work_generate', hash: ROOT, multiplier: value }, RPC_TEXTS],
        ['/', { action: 'work_validate', hash: ROOT, work: WORK, multiplier: value }, RPC_TEXTS],
        ['/', { action: 'work_generate', hash: ROOT, difficulty: value }, RPC_TEXTS],
      ];
      for (const [path, body, texts] of requests) {
        const r = await post(path, body);
        const error = r.json.error as string | undefined;
        const fine =
          (r.status === 200 && path === '/' && body.action === 'work_validate') ||
          (r.status === 504 && error === 'Timeout reached without work') ||
          (r.status >= 400 && r.status < 500 && texts.has(error ?? '')) ||
          // A difficulty or multiplier above the ceiling names the configured maximum.
          (r.status === 400 && path === '/service/' && /^Difficulty too high\. Maximum: /.test(error ?? ''));
        if (!fine) seen.push(`${path} ${Object.keys(body).at(-1)} ${label} -> ${r.status} ${JSON.stringify(r.json)}`);
      }
    }
    expect(seen).toEqual([]);
    expect(errors).toEqual([]);
  });
});

describe('frames and bodies', () => {
  it('answers a text frame that is not UTF-8 with "Bad request (not json)" and keeps the socket open', async () => {
    const ws = new WebSocket(`${base.replace('http', 'ws')}/service_ws/`);
    await once(ws, 'open');
    const replies: unknown[] = [];
    let closed: number | undefined;
    ws.on('message', (data) => replies.push(JSON.parse(String(data))));
    ws.on('close', (code) => (closed = code));
    ws.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false });
    ws.send(JSON.stringify({ user: 'wallet', api_key: key, hash: ROOT, timeout: 1 }));
    await expect.poll(() => replies.length).toBe(2);
    expect(replies).toEqual([{ error: 'Bad request (not json)' }, { error: 'Timeout reached without work', timeout: true }]);
    expect(closed).toBeUndefined();
    expect(ws.readyState).toBe(WebSocket.OPEN);
    ws.close();
  });

  it.each(['/service/', '/'])('gives up on a partial body on %s after the body timeout, with a 408', async (path) => {
    const socket = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
    await once(socket, 'connect');
    let answer = '';
    socket.on('data', (chunk) => (answer += chunk));
    const ended = once(socket, 'close');
    socket.write(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{"user":`);
    // Well past bodyTimeoutMs (300 ms), far short of Node's own request timeout (300 s).
    const outcome = await Promise.race([ended.then(() => 'closed'), new Promise((r) => setTimeout(r, 5_000, 'still open'))]);
    socket.destroy();
    expect(outcome).toBe('closed');
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(answer).toContain('{"error":"Bad request (body timeout)"}');
  });
});
