/**
 * The moment between the port opening and the service API being ready: the dispatcher is still
 * connecting to its broker. A caller then gets a JSON 503 it can retry, never a plain-text 405.
 */
import { once } from 'node:events';
import net from 'node:net';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createServer } from '../create-server.ts';
import { cleanupsAfterEach } from '../../testkit/cleanups.ts';
import { waitFor } from '../../testkit/wait.ts';

const cleanups = cleanupsAfterEach();

/** A TCP listener that accepts MQTT connections and never answers them. */
async function silentBroker(): Promise<{ url: string; connections: () => number }> {
  const sockets = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  return { url: `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`, connections: () => connections };
}

async function freePort(): Promise<number> {
  const probe = net.createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

describe('app server while it starts', () => {
  it('answers the service API, the RPC and /service_ws/ with a JSON 503 until it is ready', async () => {
    const broker = await silentBroker();
    const port = await freePort();
    const starting = createServer({
      kind: 'app',
      http: { port, staticDir: '/nonexistent' },
      broker: { kind: 'external', url: broker.url, username: 'server', password: 'x' },
      dispatcher: { connectTimeoutMs: 2_000 },
    });
    const failed = starting.then(
      () => null,
      (err: Error) => err,
    );
    // The port is open and the dispatcher is waiting for its broker.
    await waitFor('the dispatcher to reach its broker', () => broker.connections() > 0);
    const base = `http://127.0.0.1:${port}`;
    for (const [path, body] of [
      ['/service/', { user: 'wallet', api_key: 'k', hash: '00'.repeat(32) }],
      ['/', { action: 'work_generate', hash: '00'.repeat(32) }],
    ] as const) {
      const res = await fetch(`${base}${path}`, { method: 'POST', body: JSON.stringify(body) });
      expect(res.status, path).toBe(503);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(res.headers.get('retry-after')).toBe('1');
      expect(await res.json()).toEqual({ error: 'Service starting, try again shortly' });
    }
    const ws = new WebSocket(`ws://127.0.0.1:${port}/service_ws/`);
    ws.on('error', () => {}); // the refused handshake is what this checks
    const [, response] = await once(ws, 'unexpected-response');
    expect(response.statusCode).toBe(503);
    ws.terminate();
    // The broker never answers: start-up fails with the reason and closes the port.
    expect((await failed)?.message).toMatch(/cannot connect/);
  });
});
