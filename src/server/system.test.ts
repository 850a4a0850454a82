/**
 * The whole DPoW loop as `dpow-web start` composes it (createServer: embedded aedes broker with
 * role ACLs, dispatcher, service API on one port) with several headless workers: real DpowClient
 * sessions on real WASM engines, exactly what `dpow-web worker` runs.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import vectors from '../../test/vectors/nano-work.json' with { type: 'json' };
import { encodeAddress } from '../dpow/address.ts';
import { DpowClient } from '../dpow/client.ts';
import type { ClientState } from '../dpow/state.ts';
import { createNodeEngine } from '../pow-node/engine.ts';
import type { PowEngine } from '../pow/engine.ts';
import { difficultyPolicy } from '../pow/difficulty.ts';
import { rootToHex, validateWork } from '../pow/work.ts';
import { createServer, type AppServer } from './create-server.ts';
import type { AcceptedResult } from './dispatcher/dispatcher.ts';
import { Dispatcher } from './dispatcher/dispatcher.ts';
import { MemoryStore } from './store/memory-store.ts';
import { addTestService } from '../testkit/services.ts';
import { cleanupsAfterEach } from '../testkit/cleanups.ts';
import { connectAs } from '../testkit/mqtt.ts';
import { waitFor } from '../testkit/wait.ts';

const WORKERS = 3;
const EASY = 0xfff0000000000000n; // ~4096 hashes
const newRoot = () => rootToHex(randomBytes(32));

const SERVER_LOGIN = { username: 'server', password: randomBytes(12).toString('base64url') };
let app: AppServer;
let store: MemoryStore;
let apiKey: string;
const engines: PowEngine[] = [];
const cleanups = cleanupsAfterEach();
const workers: { client: DpowClient; address: string }[] = [];

const state = (i: number): ClientState => workers[i].client.getState();

beforeAll(async () => {
  store = new MemoryStore();
  ({ key: apiKey } = await addTestService(store));
  app = await createServer({
    kind: 'app',
    http: { port: 0, staticDir: 'dist' },
    store: { kind: 'given', store },
    broker: { kind: 'embedded', users: { server: SERVER_LOGIN } },
    policy: difficultyPolicy({ minDifficulty: 0xf000000000000000n }),
    dispatcher: { statisticsMs: 3_600_000 },
  });
  for (let i = 0; i < WORKERS; i++) {
    const engine = await createNodeEngine({ backend: 'wasm', threads: 1 });
    engines.push(engine);
    const client = new DpowClient({ engine, reconnect: { initialMs: 100, maxMs: 500 } });
    const address = encodeAddress(randomBytes(32));
    await client.start({
      brokerUrl: app.brokerWsUrl,
      username: app.deployment.username,
      password: app.deployment.password,
      address,
      work: 'any',
      backend: 'wasm',
      threads: 1,
      heartbeatTimeoutS: 2,
    });
    workers.push({ client, address });
  }
  await waitFor('every worker online', () => workers.every((w) => w.client.getState().connection === 'online'), 30_000);
});

afterAll(async () => {
  for (const w of workers) await w.client.stop();
  for (const e of engines) e.dispose();
  await app?.close();
});

describe('dispatcher + embedded broker + headless workers', () => {
  it('answers service requests over HTTP and WebSocket with work the workers computed', async () => {
    const hash = newRoot();
    const res = await fetch(`${app.url}service/`, {
      method: 'POST',
      body: JSON.stringify({ user: 'wallet', api_key: apiKey, hash, difficulty: 'fff0000000000000', timeout: 20 }),
    });
    const body = (await res.json()) as { work: string; hash: string };
    expect(res.status).toBe(200);
    expect(body.hash).toBe(hash);
    expect(validateWork(hash, body.work, EASY).valid).toBe(true);

    const ws = new WebSocket(`${app.url.replace('http', 'ws')}service_ws/`);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const roots = [newRoot(), newRoot()];
    const replies = new Map<string, { work: string; hash: string }>();
    ws.on('message', (data) => {
      const reply = JSON.parse(String(data));
      replies.set(reply.id, reply);
    });
    roots.forEach((root, i) =>
      ws.send(JSON.stringify({ id: `r${i}`, user: 'wallet', api_key: apiKey, hash: root, difficulty: 'fff0000000000000', timeout: 20 })),
    );
    await waitFor('both WebSocket replies', () => replies.size === 2, 30_000);
    ws.close();
    roots.forEach((root, i) => {
      const reply = replies.get(`r${i}`)!;
      expect(reply.hash).toBe(root);
      expect(validateWork(root, reply.work, EASY).valid).toBe(true);
    });
    expect((await store.getService('wallet'))!.ondemand).toBe(3);
  });

  it('sends a cancel on acceptance that stops the other workers, and credits only the winner', async () => {
    // A known valid work at the send threshold: the test "wins" at once while every worker is
    // still facing 2^29 expected hashes, so the cancel must be what stops them.
    const vector = vectors.valid[0];
    const hash = vector.root;
    const accepted = new Promise<AcceptedResult>((resolve) =>
      app.dispatcher!.on('accepted', (r) => r.hash.toLowerCase() === hash.toLowerCase() && resolve(r)),
    );
    const cancelledBefore = workers.map((_, i) => state(i).counters.cancelled);
    await app.dispatcher!.precache(hash, 0xfffffff800000000n);
    await waitFor('every worker computing the job', () => workers.every((_, i) => state(i).current?.hash === hash), 30_000);

    const winner = encodeAddress(randomBytes(32));
    const rival = await connectAs(app.brokerWsUrl, 'client', cleanups);
    await rival.publishAsync('result/precache', `${hash},${vector.work},${winner}`, { qos: 1 });
    await rival.endAsync();

    const result = await accepted;
    expect(result.address).toBe(winner);
    // At least one more cancel each: a late cancel for an earlier test's queued job may land too.
    await waitFor(
      'every worker cancelled',
      () => workers.every((_, i) => state(i).counters.cancelled > cancelledBefore[i] && state(i).current?.hash !== hash),
      30_000,
    );
    for (let i = 0; i < WORKERS; i++) {
      expect(state(i).current?.hash).not.toBe(hash);
      expect(state(i).hashrate).toBeLessThan(1e9);
    }
    expect((await store.getClient(winner))?.precache).toBe(1);
    for (const w of workers) expect((await store.getClient(w.address))?.precache ?? 0).toBe(0);
  });

  it('shows every worker the server offline when heartbeats stop, and online when they return', async () => {
    await app.dispatcher!.stop();
    await waitFor('every worker sees the server offline', () => workers.every((_, i) => state(i).connection === 'server-offline'), 15_000);
    // A restarted dispatcher on the same broker and store.
    const restarted = new Dispatcher({ brokerUrl: app.brokerWsUrl, ...SERVER_LOGIN, store });
    await restarted.start();
    try {
      await waitFor('every worker back online', () => workers.every((_, i) => state(i).connection === 'online'), 15_000);
      // and the loop still works afterwards
      const hash = newRoot();
      const answer = await restarted.requestWork({ hash, difficulty: EASY, workType: 'ondemand', timeoutMs: 20_000 });
      expect(validateWork(hash, answer.work, EASY).valid).toBe(true);
    } finally {
      await restarted.stop();
    }
  });
});
