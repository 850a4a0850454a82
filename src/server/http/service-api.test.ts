import { once } from 'node:events';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { encodeAddress } from '../../dpow/address.ts';
import { difficultyPolicy } from '../../pow/difficulty.ts';
import { toU64Hex, validateWork, workValue } from '../../pow/work.ts';
import { MemoryStore } from '../store/memory-store.ts';
import { ServiceApi, type ServiceApiOptions } from './service-api.ts';
import { isLoopback } from './request-guard.ts';
import { addTestService } from '../../testkit/services.ts';
import { breakChecksum } from '../../testkit/address.ts';
import { TestDispatcher } from '../../testkit/dispatcher.ts';
import { findWork } from '../../testkit/work.ts';

const ROOT = '718CC2121C3E641059BC1C2CFC45666C99E8AE922F7A807B7D07B62C995D79E2';
const EASY = 'ff00000000000000';
const MIN = 0xfe00000000000000n;

let server: Server | undefined;
let api: ServiceApi;
let dispatcher: TestDispatcher;
let store: MemoryStore;
let base: string;
let key: string;
let now = 1_000_000;
const logs: string[] = [];

async function stop() {
  if (!server) return;
  api.close();
  server.closeAllConnections();
  server.close();
  await store.close();
}

async function start(extra: Partial<ServiceApiOptions> = {}) {
  await stop();
  dispatcher = new TestDispatcher();
  store = new MemoryStore();
  ({ key } = await addTestService(store, { createdAt: 0 }, { N: 1024, r: 8, p: 1 }));
  api = new ServiceApi({
    dispatcher,
    store,
    policy: difficultyPolicy({ minDifficulty: MIN }),
    now: () => now,
    log: {
      info: (m) => logs.push(`info ${m}`),
      warn: (m) => logs.push(`warn ${m}`),
      error: (m) => logs.push(`error ${m}`),
    },
    ...extra,
  });
  server = createServer((req, res) => {
    void api.handleRequest(req, res).then((handled) => {
      if (!handled) {
        res.writeHead(404);
        res.end('not here');
      }
    });
  });
  server.on('upgrade', (req, socket, head) => {
    if (!api.handleUpgrade(req, socket, head)) socket.destroy();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    body: typeof body === 'string' ? body : JSON.stringify(body),
    headers,
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: JSON.parse(text) as Record<string, unknown> };
}

const service = (fields: Record<string, unknown>) => post('/service/', { user: 'wallet', api_key: key, ...fields });

beforeEach(async () => {
  logs.length = 0;
  await start();
});

afterEach(stop);

describe('POST /service/', () => {
  it('answers with work that validates, echoing hash and id, as an ondemand request', async () => {
    const lower = ROOT.toLowerCase();
    const r = await service({ hash: lower, difficulty: EASY, id: 'req-7', timeout: 12 });
    expect(r.status).toBe(200);
    expect(Object.keys(r.json).sort()).toEqual(['hash', 'id', 'work']);
    expect(r.json.hash).toBe(lower);
    expect(r.json.id).toBe('req-7');
    expect(validateWork(ROOT, r.json.work as string, EASY).valid).toBe(true);
    expect(dispatcher.requests).toEqual([
      { hash: lower, difficulty: 0xff00000000000000n, workType: 'ondemand', timeoutMs: 12_000, service: 'wallet', account: undefined, requester: 'service:wallet' },
    ]);
    expect(api.counters.work).toBe(1);
  });

  it('defaults to the base difficulty and a 5 s timeout, and honours a multiplier', async () => {
    await start({ policy: difficultyPolicy({ base: 0xff00000000000000n, minDifficulty: 0xf000000000000000n }) });
    await service({ hash: ROOT });
    await service({ hash: ROOT, multiplier: '2' });
    await service({ hash: ROOT, multiplier: 0.5 });
    await service({ hash: ROOT, multiplier: 4, difficulty: 'ff10000000000000' }); // difficulty wins
    expect(dispatcher.requests.map((r) => toU64Hex(r.difficulty))).toEqual([
      'ff00000000000000',
      'ff80000000000000',
      'fe00000000000000',
      'ff10000000000000',
    ]);
    expect(dispatcher.requests[0].timeoutMs).toBe(5_000);
  });

  it('tracks a valid account for precache and refuses a bad checksum', async () => {
    const account = encodeAddress(ROOT);
    expect((await service({ hash: ROOT, difficulty: EASY, account })).status).toBe(200);
    expect(dispatcher.tracked).toEqual([account]);
    expect(dispatcher.requests[0].account).toBe(account);
    const typo = breakChecksum(account);
    const r = await service({ hash: ROOT, difficulty: EASY, account: typo });
    expect(r).toMatchObject({ status: 400, json: { error: 'Invalid account' } });
    expect(dispatcher.tracked).toHaveLength(1);
  });

  it('refuses bad requests with the documented texts and statuses, counted by reason', async () => {
    const cases: Array<[unknown, number, Record<string, unknown>]> = [
      ['{not json', 400, { error: 'Bad request (not json)' }],
      [[1, 2], 400, { error: 'Incorrect submission. Required information: user, api_key, hash' }],
      [{ user: 'wallet', api_key: key }, 400, { error: 'Incorrect submission. Required information: user, api_key, hash' }],
      [{ user: 'wallet', hash: ROOT, id: 3 }, 400, { error: 'Incorrect submission. Required information: user, api_key, hash', id: 3 }],
      [{ user: 'wallet', api_key: 'nope', hash: ROOT }, 401, { error: 'Invalid credentials' }],
      [{ user: 'nobody', api_key: key, hash: ROOT }, 401, { error: 'Invalid credentials' }],
      [{ user: 'wallet', api_key: key, hash: 'abc' }, 400, { error: 'Invalid hash' }],
      [{ user: 'wallet', api_key: key, hash: ROOT, account: 'nano_1' }, 400, { error: 'Invalid account' }],
      [{ user: 'wallet', api_key: key, hash: ROOT, timeout: 31 }, 400, { error: 'Timeout must be an integer between 1 and 30' }],
      [{ user: 'wallet', api_key: key, hash: ROOT, timeout: 1.5 }, 400, { error: 'Timeout must be an integer between 1 and 30' }],
      [{ user: 'wallet', api_key: key, hash: ROOT, timeout: 0 }, 400, { error: 'Timeout must be an integer between 1 and 30' }],
      [{ user: 'wallet', api_key: key, hash: ROOT, multiplier: 'fast' }, 400, { error: 'Multiplier must be a float' }],
      [{ user: 'wallet', api_key: key, hash: ROOT, difficulty: 'fd00000000000000' }, 400, { error: 'Difficulty too low' }],
      [{ user: 'wallet', api_key: key, hash: ROOT, difficulty: 'xyz' }, 400, { error: 'Invalid difficulty' }],
      [
        { user: 'wallet', api_key: key, hash: ROOT, difficulty: 'ffffffffffffffff' },
        400,
        { error: 'Difficulty too high. Maximum: ffffffffe0000000 (multiplier 64)' },
      ],
      [
        { user: 'wallet', api_key: key, hash: ROOT, multiplier: 65 },
        400,
        { error: 'Difficulty too high. Maximum: ffffffffe0000000 (multiplier 64)' },
      ],
    ];
    for (const [body, status, json] of cases) {
      const r = await post('/service/', body);
      expect({ body, status: r.status, json: r.json }).toEqual({ body, status, json });
    }
    expect(dispatcher.requests).toHaveLength(0);
    expect(api.counters.errors).toEqual({
      'bad-json': 1,
      'missing-fields': 3,
      'invalid-credentials': 2,
      'bad-hash': 1,
      'bad-account': 1,
      'bad-timeout': 3,
      'bad-multiplier': 1,
      'difficulty-too-low': 1,
      'bad-difficulty': 1,
      'difficulty-too-high': 2,
    });
    // One line per reason per interval (the clock stands still here): the first one, clipped and quoted.
    expect(logs.filter((l) => l.includes('invalid-credentials'))).toEqual(['info service: invalid-credentials from 127.0.0.1: user "wallet"']);
    expect(logs.join('\n')).not.toContain(key);
  });

  it('echoes an id only when it is a short string or a number; refuses any other with the not-JSON text', async () => {
    for (const id of ['x'.repeat(64), 7, -1.5, 0]) {
      const r = await service({ hash: ROOT, difficulty: EASY, id });
      expect([r.status, r.json.id]).toEqual([200, id]);
    }
    for (const id of ['x'.repeat(65), null, true, {}, [1], { a: [[[1]]] }]) {
      const r = await service({ hash: ROOT, difficulty: EASY, id });
      expect([r.status, r.json], JSON.stringify(id)).toEqual([400, { error: 'Bad request (not json)' }]);
    }
    expect(api.counters.errors['bad-id']).toBe(6);
    expect(dispatcher.requests).toHaveLength(4);
    // Nested past 32 levels anywhere: refused before anything reads it, counted apart.
    const deep = await post('/service/', `{"user":"wallet","hash":"${ROOT}","x":${'['.repeat(33)}${']'.repeat(33)}}`);
    expect([deep.status, deep.json]).toEqual([400, { error: 'Bad request (not json)' }]);
    expect(api.counters.errors['too-deep']).toBe(1);
  });

  it('does not trust Content-Type, refuses oversized bodies and other methods', async () => {
    const ok = await post('/service/', { user: 'wallet', api_key: key, hash: ROOT, difficulty: EASY }, { 'Content-Type': 'text/plain' });
    expect(ok.status).toBe(200);
    const big = await post('/service/', { user: 'wallet', api_key: key, hash: ROOT, pad: 'x'.repeat(20_000) });
    expect(big).toMatchObject({ status: 413, json: { error: 'Bad request (too large)' } });
    // A large upload is answered without being buffered.
    const huge = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(`${base}/service/`, { method: 'POST' }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      req.write('{"pad":"');
      req.end('x'.repeat(4 * 1024 * 1024));
    });
    expect(huge).toEqual({ status: 413, body: '{"error":"Bad request (too large)"}' });
    const get = await fetch(`${base}/service/`);
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toContain('POST');
    expect((await fetch(`${base}/elsewhere`)).status).toBe(404); // not ours: handleRequest said false
  });

  it('maps dispatcher failures to replies, and survives an internal error', async () => {
    dispatcher.behaviour = 'timeout';
    const t = await service({ hash: ROOT, difficulty: EASY, id: 1 });
    expect(t).toMatchObject({ status: 504, json: { error: 'Timeout reached without work', timeout: true, id: 1 } });
    dispatcher.behaviour = 'cancelled';
    expect(await service({ hash: ROOT, difficulty: EASY })).toMatchObject({ status: 409, json: { error: 'Cancelled' } });
    dispatcher.behaviour = 'shutting-down';
    expect(await service({ hash: ROOT, difficulty: EASY })).toMatchObject({ status: 503, json: { error: 'Service shutting down' } });
    dispatcher.behaviour = 'throw';
    expect(await service({ hash: ROOT, difficulty: EASY })).toMatchObject({ status: 500, json: { error: 'Internal error' } });
    expect(logs.some((l) => l.startsWith('error') && l.includes('store exploded'))).toBe(true);
    dispatcher.behaviour = 'work';
    expect((await service({ hash: ROOT, difficulty: EASY })).status).toBe(200);
    expect(api.counters.errors).toMatchObject({ timeout: 1, cancelled: 1, 'shutting-down': 1, internal: 1 });
  });

  it('rate-limits per service with Retry-After, then lets it through again', async () => {
    await store.addService({ ...(await store.getService('wallet'))!, rateLimit: 2 });
    expect((await service({ hash: ROOT, difficulty: EASY })).status).toBe(200);
    expect((await service({ hash: ROOT, difficulty: EASY })).status).toBe(200);
    const limited = await service({ hash: ROOT, difficulty: EASY, id: 'x' });
    expect(limited.status).toBe(429);
    expect(limited.json).toEqual({ error: 'Rate limit exceeded', id: 'x' });
    expect(limited.headers.get('retry-after')).toBe('30');
    // Wrong keys are refused before the limiter: they cannot use up a service's allowance.
    expect((await post('/service/', { user: 'wallet', api_key: 'bad', hash: ROOT })).status).toBe(401);
    now += 30_000;
    expect((await service({ hash: ROOT, difficulty: EASY })).status).toBe(200);
    expect(api.counters.errors['rate-limited']).toBe(1);
  });

  it('refuses a removed service at once, even with a remembered key', async () => {
    expect((await service({ hash: ROOT, difficulty: EASY })).status).toBe(200);
    await store.removeService('wallet');
    expect((await service({ hash: ROOT, difficulty: EASY })).status).toBe(401);
  });
});

describe('WebSocket /service_ws/', () => {
  async function connect(): Promise<{ ws: WebSocket; next: () => Promise<Record<string, unknown>> }> {
    const ws = new WebSocket(`${base.replace('http', 'ws')}/service_ws/`);
    const queue: Array<Record<string, unknown>> = [];
    const waiters: Array<(m: Record<string, unknown>) => void> = [];
    ws.on('message', (data) => {
      const m = JSON.parse(String(data));
      const w = waiters.shift();
      if (w) w(m);
      else queue.push(m);
    });
    await once(ws, 'open');
    const next = () => new Promise<Record<string, unknown>>((resolve) => {
      const m = queue.shift();
      if (m) resolve(m);
      else waiters.push(resolve);
    });
    return { ws, next };
  }

  it('serves many requests per socket, matched by id, and survives a non-JSON frame', async () => {
    dispatcher.behaviour = 'hold';
    const { ws, next } = await connect();
    ws.send(JSON.stringify({ user: 'wallet', api_key: key, hash: ROOT, difficulty: EASY, id: 1 }));
    ws.send(JSON.stringify({ user: 'wallet', api_key: key, hash: ROOT.toLowerCase(), difficulty: EASY, id: 2 }));
    await expect.poll(() => dispatcher.requests.length).toBe(2);
    ws.send('this is not json');
    expect(await next()).toEqual({ error: 'Bad request (not json)' });
    dispatcher.release(ROOT.toLowerCase()); // the second request finishes first
    const first = await next();
    expect(first.id).toBe(2);
    expect(first.hash).toBe(ROOT.toLowerCase());
    dispatcher.release(ROOT);
    const second = await next();
    expect(second.id).toBe(1);
    expect(validateWork(ROOT, second.work as string, EASY).valid).toBe(true);
    // Still open and serving after all of that.
    dispatcher.behaviour = 'work';
    ws.send(JSON.stringify({ user: 'wallet', api_key: 'bad', hash: ROOT, id: 'z' }));
    expect(await next()).toEqual({ error: 'Invalid credentials', id: 'z' });
    expect(api.counters.websockets).toEqual({ open: 1, total: 1 });
    ws.close();
    await expect.poll(() => api.counters.websockets.open).toBe(0);
  });

  it('caps the sockets one source and all sources hold open; the operator\'s own are never refused', async () => {
    await start({ socketCaps: { perSource: 2, total: 3 } });
    const url = `${base.replace('http', 'ws')}/service_ws/`;
    /** A socket from `source` through a proxy on loopback, as behind the shipped nginx; or the refusal's status. */
    const open = (source: string) =>
      new Promise<WebSocket | number>((resolve) => {
        const ws = new WebSocket(url, { headers: { 'X-Forwarded-For': source } });
        ws.once('open', () => resolve(ws));
        ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      });
    const held: WebSocket[] = [];
    const keep = (r: WebSocket | number) => (typeof r === 'number' ? r : (held.push(r), 101));
    expect(keep(await open('203.0.113.1'))).toBe(101);
    expect(keep(await open('203.0.113.1'))).toBe(101);
    expect(keep(await open('203.0.113.1'))).toBe(429); // its source's cap
    expect(keep(await open('203.0.113.2'))).toBe(101);
    expect(keep(await open('203.0.113.3'))).toBe(503); // the total
    // A local process that no proxy forwarded is the operator's: counted, never refused.
    const own = await connect();
    expect(api.counters.socketsRefused).toEqual({ 'per-source': 1, total: 1 });
    for (const ws of [...held, own.ws]) ws.close();
    // Closed sockets give their places back.
    await expect.poll(() => api.counters.websockets.open).toBe(0);
    expect(keep(await open('203.0.113.3'))).toBe(101);
    for (const ws of held) ws.close();
  });

  it('pings sockets and closes one that stops answering', async () => {
    await start({ wsPingMs: 50 });
    const { ws } = await connect();
    let pings = 0;
    ws.on('ping', () => pings++);
    await expect.poll(() => pings).toBeGreaterThanOrEqual(3); // answered automatically: still open
    expect(ws.readyState).toBe(WebSocket.OPEN);
    // Stop answering: pause the socket so no pong goes back.
    (ws as unknown as { _socket: import('node:net').Socket })._socket.pause();
    await expect.poll(() => api.counters.websockets.open, { timeout: 5_000 }).toBe(0);
    ws.terminate();
  });

  it('closes sockets on close() and refuses new upgrades elsewhere', async () => {
    const { ws } = await connect();
    const closed = once(ws, 'close');
    api.close();
    const [code] = await closed;
    expect(code).toBe(1001);
    const other = new WebSocket(`${base.replace('http', 'ws')}/not_service/`);
    await expect(once(other, 'open')).rejects.toBeTruthy();
  });
});

describe('work-server RPC on POST / and /rpc', () => {
  it('work_generate answers work, its value and a 15-decimal multiplier', async () => {
    await start({ policy: difficultyPolicy({ base: 0xff00000000000000n, minDifficulty: 0xf000000000000000n }) });
    const r = await post('/', { action: 'work_generate', hash: ROOT });
    expect(r.status).toBe(200);
    expect(Object.keys(r.json).sort()).toEqual(['difficulty', 'hash', 'multiplier', 'work']);
    const value = workValue(ROOT, r.json.work as string);
    expect(r.json.difficulty).toBe(toU64Hex(value));
    expect(value >= 0xff00000000000000n).toBe(true);
    expect(r.json.multiplier).toMatch(/^\d+\.\d{15}$/);
    expect(Number(r.json.multiplier)).toBeCloseTo(2 ** 56 / Number((1n << 64n) - value), 9);
    expect(dispatcher.requests[0]).toMatchObject({ workType: 'ondemand', difficulty: 0xff00000000000000n });

    // multiplier wins over difficulty, as in the Nano node
    await post('/rpc', { action: 'work_generate', hash: ROOT, difficulty: 'f800000000000000', multiplier: '2.0' });
    expect(toU64Hex(dispatcher.requests[1].difficulty)).toBe('ff80000000000000');
  });

  it('work_generate refuses bad input with the node texts', async () => {
    const cases: Array<[unknown, string]> = [
      [{ action: 'work_generate', hash: 'zz' }, 'Invalid block hash'],
      [{ action: 'work_generate', hash: ROOT, difficulty: '12' }, 'Bad difficulty'],
      [{ action: 'work_generate', hash: ROOT, multiplier: 'x' }, 'Bad multiplier'],
      [{ action: 'work_generate', hash: ROOT, difficulty: 'ffffffffffffffff' }, 'Difficulty above config limit or below publish threshold'],
      [{ action: 'work_generate', hash: ROOT, difficulty: '0000000000000001' }, 'Difficulty above config limit or below publish threshold'],
      [{ action: 'frobnicate' }, 'Unknown command'],
      [{}, 'Unknown command'],
      ['not json', 'Unable to parse JSON'],
    ];
    for (const [body, error] of cases) {
      const r = await post('/', body);
      expect({ body, json: r.json }).toEqual({ body, json: { error } });
      expect(r.status).toBe(400);
    }
    expect(dispatcher.requests).toHaveLength(0);
  });

  it("work_cancel cancels the RPC's own requests (never withdraws the job); a cancelled work_generate gets Cancelled", async () => {
    dispatcher.behaviour = 'cancelled';
    const r = await post('/', { action: 'work_generate', hash: ROOT, difficulty: EASY });
    expect(r).toMatchObject({ status: 200, json: { error: 'Cancelled' } });
    const c = await post('/', { action: 'work_cancel', hash: ROOT });
    expect(c).toMatchObject({ status: 200, json: {} });
    expect(dispatcher.cancelled).toEqual([{ hash: ROOT, requester: 'rpc' }]);
    expect(dispatcher.withdrawn).toEqual([]);
    expect(dispatcher.requests.map((q) => q.requester)).toEqual(['rpc']);
  });

  it('work_validate reports validity against base, minimum and an asked difficulty', async () => {
    const work = findWork(ROOT, 0xff00000000000000n);
    const value = workValue(ROOT, work);
    const r = await post('/', { action: 'work_validate', hash: ROOT, work });
    expect(r.json).toEqual({
      valid_all: value >= 0xfffffff800000000n ? '1' : '0',
      valid_receive: value >= MIN ? '1' : '0',
      difficulty: toU64Hex(value),
      multiplier: (2 ** 35 / Number((1n << 64n) - value)).toFixed(15),
    });
    const withDifficulty = await post('/', { action: 'work_validate', hash: ROOT, work, difficulty: EASY });
    expect(withDifficulty.json.valid).toBe('1');
    const tooHard = await post('/', { action: 'work_validate', hash: ROOT, work, difficulty: 'ffffffffffffffff' });
    expect(tooHard.json.valid).toBe('0');
    expect((await post('/', { action: 'work_validate', hash: ROOT, work: 'zz' })).json).toEqual({ error: 'Bad work' });
  });

  it('loopback mode refuses requests a proxy forwarded', async () => {
    const r = await post('/', { action: 'work_validate', hash: ROOT, work: '0000000000000000' }, { 'X-Forwarded-For': '203.0.113.9' });
    expect(r).toMatchObject({ status: 403, json: { error: 'Forbidden' } });
    expect(api.counters.rpc.forbidden).toBe(1);
    expect(isLoopback('127.0.0.1')).toBe(true);
    expect(isLoopback('::ffff:127.0.0.2')).toBe(true);
    expect(isLoopback('::1')).toBe(true);
    expect(isLoopback('10.0.0.1')).toBe(false);
    expect(isLoopback('::ffff:192.168.1.1')).toBe(false);
    expect(isLoopback(undefined)).toBe(false);
  });

  it('api-key mode needs a service user and key', async () => {
    await start({ rpc: { enabled: true, allow: { apiKeys: true } } });
    const body = { action: 'work_generate', hash: ROOT, difficulty: EASY };
    expect(await post('/', body)).toMatchObject({ status: 403, json: { error: 'Forbidden' } });
    expect(await post('/', { ...body, user: 'wallet', api_key: 'bad' })).toMatchObject({ status: 403 });
    const ok = await post('/', { ...body, user: 'wallet', api_key: key }, { 'X-Forwarded-For': '198.51.100.1' });
    expect(ok.status).toBe(200);
    expect(validateWork(ROOT, ok.json.work as string, EASY).valid).toBe(true);
    // The service is the requester: its work_cancel reaches its own requests only.
    await post('/', { action: 'work_cancel', hash: ROOT, user: 'wallet', api_key: key });
    expect(dispatcher.requests.map((q) => q.requester)).toEqual(['service:wallet']);
    expect(dispatcher.cancelled).toEqual([{ hash: ROOT, requester: 'service:wallet' }]);
  });

  it('can be switched off, leaving POST / to the app server', async () => {
    await start({ rpc: { enabled: false, allow: 'any' } });
    const res = await fetch(`${base}/`, { method: 'POST', body: '{"action":"work_validate"}' });
    expect(res.status).toBe(404);
  });
});
