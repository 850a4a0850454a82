/**
 * Test helper, never imported by the product: a real in-process MQTT broker (aedes over
 * WebSocket on 127.0.0.1) and a real mqtt.js client playing the dispatcher.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Aedes } from 'aedes';
import { WebSocketServer, createWebSocketStream } from 'ws';
import mqtt from 'mqtt';
import type { MqttClient } from 'mqtt';

export interface TestBroker {
  url: string;
  port: number;
  /** Connections the broker has accepted so far. */
  connections: () => number;
  close(): Promise<void>;
}

/** Listens on `port` (0 = any free one); close() drops every connection at once. */
export async function startWsBroker(port = 0): Promise<TestBroker> {
  const aedes = await Aedes.createBroker();
  let connections = 0;
  aedes.on('client', () => connections++);
  // Plain HTTP gets a 404, as from a real broker's WebSocket listener (a worker asks it for payouts).
  const server = http.createServer((_req, res) => res.writeHead(404).end());
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

export interface TestPublisher {
  /** Every result/# message received, in order. */
  results: { topic: string; payload: string }[];
  publish: (topic: string, payload: string | Buffer) => Promise<unknown>;
  close: () => Promise<void>;
  client: MqttClient;
}

/** Plays the dispatcher: publishes work, cancels, heartbeats (QoS 1); records results. */
export async function startPublisher(url: string): Promise<TestPublisher> {
  const client: MqttClient = await mqtt.connectAsync(url, { protocolVersion: 4, reconnectPeriod: 0 });
  const results: { topic: string; payload: string }[] = [];
  client.on('message', (topic, payload) => results.push({ topic, payload: payload.toString() }));
  await client.subscribeAsync('result/#', { qos: 1 });
  return {
    results,
    client,
    publish: (topic, payload) => client.publishAsync(topic, payload, { qos: 1 }),
    close: () => client.endAsync(true),
  };
}
