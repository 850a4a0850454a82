/**
 * The full stack for browser tests that need the broker and the dispatcher: `createServer`
 * (what `dpow-web start` runs) in the test process, on 127.0.0.1 and an ephemeral port, serving
 * the built app from dist/. The dispatcher's MQTT login is fixed here so a test can publish as
 * the server would (client/<address>, statistics).
 */
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import { createServer, type AppServer } from '../src/server/create-server.ts';
import { encodeAddress } from '../src/dpow/address.ts';
import type { WorkAnswer } from '../src/server/types.ts';
import type { DispatcherStore } from '../src/server/store/store.ts';

export const SERVER_LOGIN = { username: 'server', password: `e2e-${randomBytes(9).toString('base64url')}` };
/** About 4096 hashes: instant on any backend. */
export const TEST_DIFFICULTY = 0xfff0000000000000n;
export const EXPLORER = 'https://explorer.example/block/{hash}';

export interface Stack {
  app: AppServer;
  url: string;
  /** Publishes as the dispatcher's MQTT user. */
  publishAsServer(topic: string, payload: string): Promise<void>;
  /** An on-demand (or precache) request as a service would make it, at a test difficulty. */
  requestWork(hash?: string, workType?: 'ondemand' | 'precache', timeoutMs?: number): Promise<WorkAnswer>;
  close(): Promise<void>;
}

export function randomHash(): string {
  return randomBytes(32).toString('hex').toUpperCase();
}

export function randomAddress(): string {
  return encodeAddress(randomBytes(32));
}

/** `store`: the stack's state (default a MemoryStore); the caller closes a store it gives. */
export async function startStack(options: { staticDir?: string; store?: DispatcherStore } = {}): Promise<Stack> {
  const app = await createServer({
    kind: 'app',
    http: { port: 0, staticDir: options.staticDir ?? 'dist', deployment: { title: 'dpow-web', explorerBlockUrl: EXPLORER } },
    store: options.store ? { kind: 'given', store: options.store } : undefined,
    broker: { kind: 'embedded', users: { server: SERVER_LOGIN } },
    // Statistics only when a test publishes them.
    dispatcher: { statisticsMs: 3_600_000 },
  });
  const publisher = await mqtt.connectAsync(app.brokerWsUrl, {
    ...SERVER_LOGIN,
    protocolVersion: 4,
    clientId: `e2e-publisher-${randomBytes(4).toString('hex')}`,
    reconnectPeriod: 0,
  });
  return {
    app,
    url: app.url,
    async publishAsServer(topic, payload) {
      await publisher.publishAsync(topic, payload, { qos: 1 });
    },
    requestWork(hash = randomHash(), workType = 'ondemand', timeoutMs = 60_000) {
      const dispatcher = app.dispatcher;
      if (!dispatcher) throw new Error('the stack runs without a dispatcher');
      if (workType === 'precache') {
        return dispatcher.precache(hash, TEST_DIFFICULTY).then(() => ({ hash, work: '', value: '', cached: false }));
      }
      return dispatcher.requestWork({ hash, difficulty: TEST_DIFFICULTY, workType, timeoutMs });
    },
    async close() {
      await publisher.endAsync(true).catch(() => undefined);
      await app.close();
    },
  };
}
