/**
 * The connection both node feeds share, against a real WebSocket server that can drop, refuse,
 * and stop reading. The protocols on top are tested in jsonrpc-ws.test.ts and nano-feed.test.ts.
 */
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { ReconnectingWs, type ReconnectingWsOptions } from './reconnecting-ws.ts';
import { cleanupsAfterEach, closeAfter } from '../../testkit/cleanups.ts';
import { quietLogger } from '../../testkit/log.ts';
import { waitFor } from '../../testkit/wait.ts';

const cleanups = cleanupsAfterEach();

interface Peer {
  url: string;
  port: number;
  sockets: WebSocket[];
  received: string[];
  closes: number[];
  stop(): Promise<void>;
}

/** A WebSocket server that records what it gets and echoes it back as {"echo": text}. */
async function peer(port = 0): Promise<Peer> {
  const http = createServer();
  const wss = new WebSocketServer({ server: http });
  const p: Peer = { url: '', port: 0, sockets: [], received: [], closes: [], stop: async () => {} };
  wss.on('connection', (socket) => {
    p.sockets.push(socket);
    socket.on('message', (d) => {
      p.received.push(String(d));
      socket.send(JSON.stringify({ echo: String(d) }));
    });
    socket.on('close', (code) => p.closes.push(code));
  });
  await new Promise<void>((r) => http.listen(port, '127.0.0.1', r));
  p.port = (http.address() as AddressInfo).port;
  p.url = `ws://127.0.0.1:${p.port}`;
  let stopped = false;
  p.stop = async () => {
    if (stopped) return;
    stopped = true;
    for (const s of p.sockets) s.terminate();
    await new Promise((r) => wss.close(r));
    await new Promise((r) => http.close(r));
  };
  cleanups.push(() => p.stop());
  return p;
}

function connection(url: string, options: Partial<ReconnectingWsOptions> = {}): ReconnectingWs {
  return closeAfter(cleanups, new ReconnectingWs(url, { name: 'test', log: quietLogger, reconnectDelayMs: 10, maxReconnectDelayMs: 40, pingIntervalMs: 0, ...options }));
}

describe('ReconnectingWs', () => {
  it('carries JSON frames both ways, and after a drop opens a new session by itself', async () => {
    const p = await peer();
    const c = connection(p.url);
    const got: unknown[] = [];
    let opens = 0;
    const closes: boolean[] = [];
    c.on('json', (value) => got.push(value));
    c.on('open', () => opens++);
    c.on('close', (_code, _reason, wasOpen) => closes.push(wasOpen));
    await c.connect();
    expect(c.connected).toBe(true);
    expect(c.send('hello')).toBe(true);
    await waitFor('the echo', () => got.length === 1);
    expect(got).toEqual([{ echo: 'hello' }]);

    p.sockets[0].terminate();
    await waitFor('a second session', () => opens === 2 && c.connected);
    expect(closes).toEqual([true]);
    c.send('again');
    await waitFor('the second echo', () => got.length === 2);
    expect(p.received).toEqual(['hello', 'again']);
  });

  it('hands over a frame that is not JSON as text', async () => {
    const p = await peer();
    const c = connection(p.url);
    const notJson: string[] = [];
    c.on('not-json', (text) => notJson.push(text));
    await c.connect();
    p.sockets[0].send('{half');
    await waitFor('the bad frame', () => notJson.length === 1);
    expect(notJson).toEqual(['{half']);
    expect(c.connected).toBe(true);
  });

  it('retries a refused node with the shared backoff, doubling up to the ceiling', async () => {
    const p = await peer();
    const port = p.port;
    await p.stop();
    const delays: number[] = [];
    const c = connection(`ws://127.0.0.1:${port}`, {
      random: () => 0, // the floor of the "equal jitter" band: half the ceiling
      log: { ...quietLogger, info: (m) => delays.push(Number(/reconnecting in (\d+) ms/.exec(m)?.[1])) },
    });
    const waiting = c.connect();
    await waitFor('five retries', () => delays.length >= 5);
    expect(delays.slice(0, 5)).toEqual([5, 10, 20, 20, 20]);
    expect(c.connected).toBe(false);

    // The node comes back on the same port: the next attempt connects, and the backoff resets.
    await peer(port);
    await waiting;
    expect(c.connected).toBe(true);
  });

  it('close() ends a waiting connect() with the protocol’s error, and nothing reconnects after it', async () => {
    class ProtocolError extends Error {}
    const p = await peer();
    const port = p.port;
    await p.stop();
    const c = connection(`ws://127.0.0.1:${port}`, { closedError: (m) => new ProtocolError(m) });
    const waiting = c.connect().catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 50));
    await c.close();
    const err = await waiting;
    expect(err).toBeInstanceOf(ProtocolError);
    expect((err as Error).message).toBe('test closed');
    await expect(c.connect()).rejects.toThrow('test is closed');
    const back = await peer(port);
    await new Promise((r) => setTimeout(r, 100));
    expect(back.sockets).toHaveLength(0);
  });

  it('settles awaited replies: true when handed over, false when the session ends first', async () => {
    const p = await peer();
    const c = connection(p.url, { replyTimeoutMs: 5_000 });
    await c.connect();
    const ack = c.expectReply('ack');
    expect(c.awaiting('ack')).toBe(true);
    expect(c.reply('other')).toBe(false);
    expect(c.reply('ack')).toBe(true);
    expect(await ack).toBe(true);
    expect(c.reply('ack')).toBe(false);

    const lost = c.expectReply('ack');
    p.sockets[0].terminate();
    expect(await lost).toBe(false);
    expect(c.awaiting('ack')).toBe(false);
  });

  it('takes a peer that does not reply in time for dead: unresponsive, terminated, reconnected', async () => {
    const p = await peer();
    const c = connection(p.url, { replyTimeoutMs: 50 });
    const unresponsive: string[] = [];
    let opens = 0;
    c.on('unresponsive', (what) => unresponsive.push(what));
    c.on('open', () => opens++);
    await c.connect();
    expect(await c.expectReply('pong')).toBe(false);
    expect(unresponsive).toEqual(['pong']);
    await waitFor('a new session', () => opens === 2 && c.connected);
    expect(p.sockets).toHaveLength(2);
  });

  it('with frame pings, closes on a peer that stopped reading and starts over', async () => {
    const p = await peer();
    // A period long enough that a busy test machine still gets each pong back in time.
    const c = connection(p.url, { pingIntervalMs: 250, ping: 'frame' });
    const unresponsive: string[] = [];
    c.on('unresponsive', (what) => unresponsive.push(what));
    await c.connect();
    let pings = 0;
    p.sockets[0].on('ping', () => pings++);
    await waitFor('three answered pings', () => pings >= 3);
    expect(unresponsive).toEqual([]);
    expect(p.sockets).toHaveLength(1);
    // Stop reading on the server side: no pong goes back.
    (p.sockets[0] as unknown as { _socket: Socket })._socket.pause();
    await waitFor('the missed pong', () => unresponsive.length === 1);
    expect(unresponsive).toEqual(['pong']);
    await waitFor('a new session', () => p.sockets.length === 2 && c.connected);
  });

  it('calls the protocol’s own ping every interval', async () => {
    const p = await peer();
    let pings = 0;
    const c = connection(p.url, { pingIntervalMs: 20, ping: () => pings++ });
    await c.connect();
    await waitFor('three pings', () => pings >= 3);
  });

  it('closes gracefully (1000) or drops the socket, as configured', async () => {
    const p = await peer();
    const graceful = connection(p.url, { closeWith: 'graceful' });
    await graceful.connect();
    await graceful.close();
    await waitFor('the first close', () => p.closes.length === 1);
    const dropped = connection(p.url, { closeWith: 'terminate' });
    await dropped.connect();
    await dropped.close();
    await waitFor('the second close', () => p.closes.length === 2);
    expect(p.closes).toEqual([1000, 1006]);
    expect(graceful.send('late')).toBe(false);
  });
});
