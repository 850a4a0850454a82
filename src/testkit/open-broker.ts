/**
 * Test helper, never imported by the product: an aedes broker over WebSocket that takes anyone,
 * standing in for a public broker where a test is about the worker, not about logins and ACLs
 * (those are src/server/broker.ts and its tests).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Aedes } from 'aedes';
import { WebSocketServer, createWebSocketStream } from 'ws';

export interface OpenBroker {
  /** ws://127.0.0.1:<port> */
  url: string;
  port: number;
  /** MQTT sessions accepted so far. */
  connections: () => number;
  close(): Promise<void>;
}

/** Starts on `port` (0: any free one); rejects when the port is taken. */
export async function startOpenBroker(port = 0): Promise<OpenBroker> {
  const aedes = await Aedes.createBroker();
  let connections = 0;
  aedes.on('client', () => connections++);
  const server = http.createServer();
  const wss = new WebSocketServer({ server });
  wss.on('connection', (socket) => {
    const stream = createWebSocketStream(socket);
    stream.on('error', () => stream.destroy());
    aedes.handle(stream as never);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const actual = (server.address() as AddressInfo).port;
  return {
    url: `ws://127.0.0.1:${actual}`,
    port: actual,
    connections: () => connections,
    async close() {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
    },
  };
}
