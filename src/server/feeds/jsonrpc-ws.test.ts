import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { encodeAddress } from '../../dpow/address.ts';
import {
  JsonRpcConnectionError,
  JsonRpcError,
  JsonRpcTimeoutError,
  JsonRpcWsClient,
  type Subscription,
} from './jsonrpc-ws.ts';
import { qlcSubscriptionId, QlcSim, type QlcSimOptions } from '../sim/qlc-sim.ts';
import { cleanupsAfterEach, closeAfter } from '../../testkit/cleanups.ts';
import { quietLogger as quiet } from '../../testkit/log.ts';
import { openRawSocket } from '../../testkit/raw-socket.ts';
import { waitFor } from '../../testkit/wait.ts';
import { breakChecksum } from '../../testkit/address.ts';

const ADDRESS = encodeAddress('3a'.repeat(32), 'qlc');
const BAD_CHECKSUM = breakChecksum(ADDRESS);

const cleanups = cleanupsAfterEach();

async function sim(options: QlcSimOptions = {}): Promise<QlcSim> {
  return closeAfter(cleanups, await QlcSim.start(options));
}
function client(url: string, options: ConstructorParameters<typeof JsonRpcWsClient>[1] = {}): JsonRpcWsClient {
  return closeAfter(cleanups, new JsonRpcWsClient(url, { log: quiet, reconnectDelayMs: 20, maxReconnectDelayMs: 100, ...options }));
}
const nextNotification = (sub: Subscription) =>
  new Promise<unknown>((resolve) => {
    let done = false;
    sub.listen((r) => {
      if (!done) resolve(r);
      done = true;
    });
  });

describe('JsonRpcWsClient against the go-qlc test node', () => {
  it('matches replies by id when they come back out of order', async () => {
    const s = await sim({
      methods: {
        test_slow: async (params) => {
          await new Promise((r) => setTimeout(r, 80));
          return { slow: params };
        },
        test_fast: (params) => ({ fast: params }),
      },
    });
    const c = client(s.url);
    await c.connect();
    const order: string[] = [];
    const slow = c.call('test_slow', [1]).then((r) => (order.push('slow'), r));
    const fast = c.call('test_fast', [2]).then((r) => (order.push('fast'), r));
    expect(await Promise.all([slow, fast])).toEqual([{ slow: [1] }, { fast: [2] }]);
    expect(order).toEqual(['fast', 'slow']);
  });

  it('subscribes with opaque ids of any length and routes notifications by id', async () => {
    const ids = ['0x1', '0xabc', qlcSubscriptionId(new Uint8Array(16).fill(0xff))];
    const s = await sim({ newId: () => ids.shift()! });
    const c = client(s.url);
    await c.connect();
    const a = await c.subscribe('ledger', 'newBlock');
    const b = await c.subscribe('ledger', 'newAccountBlock', ADDRESS);
    const p = await c.subscribe('pov', 'newBlock');
    expect([a.id, b.id, p.id]).toEqual(['0x1', '0xabc', `0x${'f'.repeat(32)}`]);
    const seenA: unknown[] = [];
    const seenP: unknown[] = [];
    a.listen((r) => seenA.push(r));
    p.listen((r) => seenP.push(r));
    s.emitRaw('ledger', 'newBlock', { n: 1 });
    s.emitRaw('pov', 'newBlock', { n: 2 });
    await waitFor('one notification on each subscription', () => seenA.length === 1 && seenP.length === 1);
    expect(seenA).toEqual([{ n: 1 }]);
    expect(seenP).toEqual([{ n: 2 }]);
    expect(b.notifications).toBe(0);
  });

  it('strips leading zeros from subscription ids like the node', () => {
    const bytes = new Uint8Array(16);
    bytes[15] = 0x0a;
    expect(qlcSubscriptionId(bytes)).toBe('0xa');
    expect(qlcSubscriptionId(new Uint8Array(16))).toBe('0x0');
  });

  it('keeps notifications that arrive before anyone listens', async () => {
    const s = await sim();
    const c = client(s.url);
    await c.connect();
    const sub = await c.subscribe('ledger', 'newBlock');
    s.emitRaw('ledger', 'newBlock', { early: true });
    await waitFor('the early notification', () => sub.notifications === 1);
    expect(await nextNotification(sub)).toEqual({ early: true });
  });

  it('unsubscribes, and a second unsubscribe of the id is "subscription not found"', async () => {
    const s = await sim();
    const c = client(s.url);
    await c.connect();
    const sub = await c.subscribe('ledger', 'newBlock');
    const id = sub.id;
    expect(s.subscriptions()).toHaveLength(1);
    expect(await sub.unsubscribe()).toBe(true);
    expect(s.subscriptions()).toHaveLength(0);
    const err = await c.call('ledger_unsubscribe', [id]).catch((e) => e);
    expect(err).toBeInstanceOf(JsonRpcError);
    expect(err).toMatchObject({ code: -32000, message: 'subscription not found', kind: 'server' });
  });

  it.each([
    ['ledger_foo', [], -32601, 'the method ledger_foo does not exist/is not available'],
    ['ledger_subscribe', ['foo'], -32601, 'no "foo" subscription in ledger namespace'],
    ['pov_subscribe', ['balanceChange', ADDRESS], -32601, 'no "balanceChange" subscription in pov namespace'],
    ['ledger_subscribe', { name: 'newBlock' }, -32602, 'non-array args'],
    ['ledger_subscribe', [], -32602, 'expected subscription name as first argument'],
    ['ledger_subscribe', [42], -32602, 'expected subscription name as first argument'],
    ['ledger_subscribe', ['balanceChange'], -32602, 'missing value for required argument 1'],
    ['ledger_subscribe', ['newPending', ADDRESS, ADDRESS], -32602, 'too many arguments, want at most 1'],
    ['ledger_subscribe', ['newAccountBlock', BAD_CHECKSUM], -32602, 'invalid argument 1: bad address checksum'],
  ] as const)('%s %j -> %i %s', async (method, params, code, message) => {
    const s = await sim();
    const c = client(s.url);
    await c.connect();
    const err = (await c.call(method, params as unknown as unknown[]).catch((e) => e)) as JsonRpcError;
    expect(err).toBeInstanceOf(JsonRpcError);
    expect({ code: err.code, message: err.message }).toEqual({ code, message });
    expect(s.subscriptions()).toHaveLength(0);
  });

  it('rejects subscribe() with the typed error and keeps nothing', async () => {
    const s = await sim();
    const c = client(s.url);
    await c.connect();
    const err = await c.subscribe('ledger', 'balanceChange', BAD_CHECKSUM).catch((e) => e);
    expect(err).toBeInstanceOf(JsonRpcError);
    expect(err.kind).toBe('invalid-params');
    expect(c.subscriptions).toHaveLength(0);
  });

  it('requests without "jsonrpc" are answered and ids are echoed as given', async () => {
    const s = await sim();
    const { ws, replies } = await openRawSocket(s.url, cleanups);
    ws.send(JSON.stringify({ id: 'abc', method: 'ledger_subscribe', params: ['newBlock'] }));
    ws.send(JSON.stringify({ id: { x: 1 }, method: 'ledger_foo' }));
    await waitFor('both replies', () => replies.length === 2);
    const byId = (id: unknown) => replies.find((r) => JSON.stringify((r as { id: unknown }).id) === JSON.stringify(id));
    expect(byId('abc')).toMatchObject({ jsonrpc: '2.0', result: expect.stringMatching(/^0x[0-9a-f]+$/) });
    expect(byId({ x: 1 })).toMatchObject({ error: { code: -32601 } });
  });

  it('a parse error closes the socket; the client reconnects and re-subscribes with new ids', async () => {
    const s = await sim();
    const c = client(s.url);
    const serverErrors: JsonRpcError[] = [];
    c.on('server-error', (e) => serverErrors.push(e));
    const resubscribed: [string, string][] = [];
    c.on('resubscribed', (_s, oldId, newId) => resubscribed.push([oldId, newId]));
    await c.connect();
    const sub = await c.subscribe('ledger', 'newAccountBlock', ADDRESS);
    const firstId = sub.id;
    const seen: unknown[] = [];
    sub.listen((r) => seen.push(r));

    const disconnected = new Promise<[number, string]>((r) => c.once('disconnect', (code, reason) => r([code, reason])));
    c.sendRaw('{not json');
    await disconnected;
    // The node answered -32700 with id null before closing: it answers no call, so it is an event.
    await waitFor('the server error', () => serverErrors.length === 1);
    expect(serverErrors[0]).toMatchObject({ code: -32700, kind: 'parse', message: expect.stringContaining('invalid character') });
    await waitFor('the re-subscription', () => resubscribed.length === 1);
    expect(resubscribed[0][0]).toBe(firstId);
    expect(sub.id).not.toBe(firstId);
    expect(s.subscriptions()).toEqual([{ id: sub.id, ns: 'ledger', name: 'newAccountBlock', address: ADDRESS }]);
    s.emitRaw('ledger', 'newAccountBlock', { after: 'reconnect' });
    await waitFor('the message', () => seen.length === 1);
    expect(seen).toEqual([{ after: 'reconnect' }]);
    expect(s.connections()).toBe(1);
  });
});

describe('JsonRpcWsClient against a misbehaving server', () => {
  async function rawServer(onMessage: (socket: import('ws').WebSocket, msg: Record<string, unknown>) => void) {
    const http = createServer();
    const wss = new WebSocketServer({ server: http });
    const sockets = new Set<import('ws').WebSocket>();
    wss.on('connection', (socket) => {
      sockets.add(socket);
      socket.on('message', (d) => onMessage(socket, JSON.parse(d.toString())));
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    cleanups.push(async () => {
      for (const s of sockets) s.terminate();
      await new Promise((r) => wss.close(r));
      await new Promise((r) => http.close(r));
    });
    return { url: `ws://127.0.0.1:${(http.address() as AddressInfo).port}`, sockets };
  }

  it('counts malformed frames by reason and keeps working', async () => {
    const server = await rawServer((socket, msg) => {
      if (msg.method === 'ledger_subscribe') {
        socket.send(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: '0x5' }));
        return;
      }
      for (const frame of [
        'not json at all',
        '42',
        '[{"id":1}]',
        JSON.stringify({ jsonrpc: '2.0', method: 'ledger_subscription', params: 'x' }),
        JSON.stringify({ jsonrpc: '2.0', method: 'ledger_subscription', params: { subscription: '0xdead', result: {} } }),
        JSON.stringify({ jsonrpc: '2.0', id: 9999, result: 1 }),
        JSON.stringify({ jsonrpc: '2.0', id: msg.id }),
        JSON.stringify({ jsonrpc: '2.0', method: 'eth_call', id: 3, params: [] }),
        JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'parse error' } }),
      ]) {
        socket.send(frame);
      }
      socket.send(JSON.stringify({ jsonrpc: '2.0', id: msg.id, error: 'nope' }));
    });
    const c = client(server.url);
    const serverErrors: JsonRpcError[] = [];
    c.on('server-error', (e) => serverErrors.push(e));
    await c.connect();
    const sub = await c.subscribe('ledger', 'newBlock');
    expect(sub.id).toBe('0x5');
    const err = await c.call('test_noise').catch((e) => e);
    expect(err).toBeInstanceOf(JsonRpcError);
    expect(c.stats.malformed).toEqual({
      'not-json': 1,
      'not-an-object': 1,
      batch: 1,
      'bad-notification': 1,
      'unknown-subscription': 1,
      'unknown-id': 1,
      'bad-response': 1,
      'unexpected-request': 1,
      'error-without-id': 1,
      'bad-error-object': 1,
    });
    expect(c.stats.unknownSubscription).toBe(1);
    expect(serverErrors.map((e) => e.code)).toEqual([-32700]);
    expect(c.connected).toBe(true);
  });

  it('routes a notification that arrives in the same read as its subscribe reply', async () => {
    let n = 0;
    const server = await rawServer((socket, msg) => {
      const id = `0x${(++n).toString(16)}`;
      // Reply and first notification back to back: one TCP write, one read on the client.
      socket.send(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: id }));
      socket.send(JSON.stringify({ jsonrpc: '2.0', method: 'ledger_subscription', params: { subscription: id, result: { first: id } } }));
    });
    const c = client(server.url);
    await c.connect();
    const subs = await Promise.all(Array.from({ length: 20 }, () => c.subscribe('ledger', 'newBlock')));
    await waitFor('a first notification on every subscription', () => subs.every((s) => s.notifications === 1), 3000);
    const firsts = await Promise.all(subs.map((s) => nextNotification(s)));
    expect(firsts).toEqual(subs.map((s) => ({ first: s.id })));
    expect(c.stats.unknownSubscription).toBe(0);
  });

  it('times out a call that gets no reply and rejects calls when disconnected', async () => {
    const server = await rawServer(() => {});
    const c = client(server.url);
    await expect(c.call('x_y')).rejects.toBeInstanceOf(JsonRpcConnectionError);
    await c.connect();
    await expect(c.call('x_y', [], { timeoutMs: 50 })).rejects.toBeInstanceOf(JsonRpcTimeoutError);
  });

  it('rejects calls in flight when the connection drops', async () => {
    const server = await rawServer(() => {});
    const c = client(server.url);
    await c.connect();
    const pending = c.call('x_y');
    for (const s of server.sockets) s.terminate();
    await expect(pending).rejects.toBeInstanceOf(JsonRpcConnectionError);
  });

  it('keeps retrying a node that is down, and close() ends a connect() still waiting', async () => {
    const server = await rawServer(() => {});
    const url = server.url;
    // Stop the server so the port refuses, then watch the client retry.
    for (const s of server.sockets) s.terminate();
    await cleanups.pop()!();
    const c = client(url, { reconnectDelayMs: 10, maxReconnectDelayMs: 20 });
    const waiting = c.connect().catch((e) => e);
    await new Promise((r) => setTimeout(r, 120));
    expect(c.connected).toBe(false);
    await c.close();
    expect(await waiting).toBeInstanceOf(JsonRpcConnectionError);
  });

  it('a re-subscribe the node refuses ends that subscription and says why', async () => {
    let connection = 0;
    const server = await rawServer((socket, msg) => {
      if (connection === 1) socket.send(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: '0x1' }));
      else socket.send(JSON.stringify({ jsonrpc: '2.0', id: msg.id, error: { code: -32601, message: 'no "newBlock" subscription in ledger namespace' } }));
    });
    const c = client(server.url);
    c.on('connect', () => connection++);
    await c.connect();
    const sub = await c.subscribe('ledger', 'newBlock');
    const ended = new Promise<string>((r) => sub.once('ended', r));
    const failed = new Promise<Error>((r) => c.once('resubscribe-failed', (_s, e) => r(e)));
    for (const s of server.sockets) s.terminate();
    expect(await failed).toMatchObject({ code: -32601 });
    expect(await ended).toMatch(/subscribe refused/);
    expect(c.subscriptions).toEqual([]);
  });
});
