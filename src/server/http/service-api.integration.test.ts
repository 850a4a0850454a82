/**
 * The service API and the work RPC end to end: HTTP/WebSocket request -> real Dispatcher ->
 * embedded aedes broker -> a worker computing real work -> validated result -> reply, cancel
 * and client/<address> stats. All on one http.Server, as app-server composes it.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { encodeAddress } from '../../dpow/address.ts';
import { difficultyPolicy } from '../../pow/difficulty.ts';
import { rootToHex, validateWork, workValue } from '../../pow/work.ts';
import { Broker } from '../broker.ts';
import { defaultBrokerUsers } from '../broker-rules.ts';
import { Dispatcher } from '../dispatcher/dispatcher.ts';
import { MemoryStore } from '../store/memory-store.ts';
import { ServiceApi } from './service-api.ts';
import { ReferenceWorker } from '../../testkit/reference-worker.ts';
import { addTestService } from '../../testkit/services.ts';

const EASY = 'ff00000000000000';
const newRoot = () => rootToHex(randomBytes(32));

let server: Server;
let broker: Broker;
let dispatcher: Dispatcher;
let store: MemoryStore;
let api: ServiceApi;
let worker: ReferenceWorker | undefined;
let base: string;
let key: string;
const users = defaultBrokerUsers();
const payout = encodeAddress(randomBytes(32));

async function startWorker(): Promise<ReferenceWorker> {
  worker = await ReferenceWorker.start({ brokerUrl: broker.wsUrl, ...users.client, address: payout });
  return worker;
}

async function post(path: string, body: unknown) {
  const res = await fetch(`${base}${path}`, { method: 'POST', body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  store = new MemoryStore();
  ({ key } = await addTestService(store));
  server = createServer((req, res) => {
    void api.handleRequest(req, res).then((handled) => {
      if (!handled) res.writeHead(404).end();
    });
  });
  server.on('upgrade', (req, socket, head) => api.handleUpgrade(req, socket, head));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  broker = await Broker.start({ users, server });
  dispatcher = new Dispatcher({ brokerUrl: broker.wsUrl, ...users.server, store });
  api = new ServiceApi({ dispatcher, store, policy: difficultyPolicy({ minDifficulty: 0xf000000000000000n }), rpc: { enabled: true, allow: 'loopback', timeoutMs: 2_000 } });
  await dispatcher.start();
});

afterAll(async () => {
  await worker?.stop();
  api?.close();
  await dispatcher?.stop();
  await broker?.close();
  server?.closeAllConnections();
  server?.close();
  await store?.close();
});

describe('service API with the real dispatcher, broker and a worker', () => {
  it('answers POST /service/ with validated work, cancels the job and credits worker and service', async () => {
    const w = await startWorker();
    const root = newRoot();
    const account = encodeAddress(randomBytes(32));
    const r = await post('/service/', { user: 'wallet', api_key: key, hash: root, difficulty: EASY, account, id: 42, timeout: 20 });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ hash: root, id: 42 });
    expect(validateWork(root, r.json.work as string, EASY).valid).toBe(true);
    expect(w.results.map((x) => x.hash)).toContain(root);
    expect(w.results.find((x) => x.hash === root)?.workType).toBe('ondemand');

    // Workers are told to stop, the volunteer sees the credit, the service is counted.
    await expect.poll(() => w.cancels).toContain(root);
    await expect.poll(() => w.clientMessages.some((m) => m.kind === 'stats' && m.stats.block_rewarded === root)).toBe(true);
    const stats = w.clientMessages.at(-1)!;
    expect(stats.kind === 'stats' && stats.stats.ondemand).toBeGreaterThanOrEqual(1);
    await expect.poll(async () => (await store.getService('wallet'))?.ondemand).toBe(1);
    expect(await store.getTracked(account)).toMatchObject({ account });
  });

  it('serves concurrent WebSocket requests for different hashes on one socket', async () => {
    if (!worker) await startWorker();
    const ws = new WebSocket(`${base.replace('http', 'ws')}/service_ws/`);
    await once(ws, 'open');
    const replies: Array<Record<string, unknown>> = [];
    ws.on('message', (data) => replies.push(JSON.parse(String(data))));
    const roots = [newRoot(), newRoot(), newRoot()];
    roots.forEach((hash, i) => ws.send(JSON.stringify({ user: 'wallet', api_key: key, hash, difficulty: EASY, id: i, timeout: 20 })));
    ws.send('{"oops"');
    await expect.poll(() => replies.length, { timeout: 20_000 }).toBe(4);
    expect(replies).toContainEqual({ error: 'Bad request (not json)' });
    for (const [i, hash] of roots.entries()) {
      const reply = replies.find((m) => m.id === i)!;
      expect(reply.hash).toBe(hash);
      expect(workValue(hash, reply.work as string) >= 0xff00000000000000n).toBe(true);
    }
    ws.close();
  });

  it('work RPC: work_generate through the workers, work_validate agrees with it', async () => {
    if (!worker) await startWorker();
    const root = newRoot();
    const g = await post('/', { action: 'work_generate', hash: root, difficulty: EASY });
    expect(g.status).toBe(200);
    expect(g.json.hash).toBe(root);
    const v = await post('/', { action: 'work_validate', hash: root, work: g.json.work, difficulty: EASY });
    expect(v.json).toMatchObject({ valid: '1', difficulty: g.json.difficulty, multiplier: g.json.multiplier });
  });

  it('work RPC: benchmark runs its jobs on the network, status is idle afterwards', async () => {
    if (!worker) await startWorker();
    const before = worker!.results.length;
    const b = await post('/', { action: 'benchmark', count: '3', difficulty: EASY });
    expect(b.status).toBe(200);
    expect(b.json).toMatchObject({ count: '3', difficulty: EASY, hint: 'Times in milliseconds' });
    // The volunteer computed each of them.
    expect(worker!.results.length - before).toBe(3);
    expect((await post('/', { action: 'status' })).json).toEqual({ generating: '0', queue_size: '0' });
  });

  it("a Nano node's work_peers round: work_generate with difficulty and account, then work_cancel to the losers", async () => {
    // nano/node/distributed_work.cpp: the node POSTs the same work_generate to every peer at
    // once (upper-case root, hex difficulty, the block's account), takes the first reply whose
    // work meets the difficulty, and sends work_cancel to every other peer.
    if (!worker) await startWorker();
    const account = encodeAddress(randomBytes(32));
    const won = newRoot().toUpperCase();
    const g = await post('/', { action: 'work_generate', hash: won, difficulty: EASY, account });
    expect(g.status).toBe(200);
    expect(g.json).toMatchObject({ hash: won });
    expect(workValue(won, g.json.work as string) >= BigInt(`0x${EASY}`)).toBe(true);

    // Another peer wins the next round while the volunteers are still searching: dpow-web is a
    // loser, gets work_cancel, and its waiting work_generate ends as the node expects.
    const lost = newRoot().toUpperCase();
    const hard = 'ffffffc000000000';
    const waiting = post('/', { action: 'work_generate', hash: lost, difficulty: hard, account });
    await expect.poll(() => dispatcher.pending.some((p) => p.hash === lost)).toBe(true);
    expect(await post('/', { action: 'work_cancel', hash: lost })).toEqual({ status: 200, json: {} });
    expect(await waiting).toEqual({ status: 200, json: { error: 'Cancelled' } });
    await expect.poll(() => worker!.cancels).toContain(lost);
    expect(dispatcher.pending.some((p) => p.hash === lost)).toBe(false);
  });

  it('without workers: a service request times out, and work_cancel cancels a waiting work_generate', async () => {
    await worker?.stop();
    worker = undefined;
    const t = await post('/service/', { user: 'wallet', api_key: key, hash: newRoot(), difficulty: EASY, timeout: 1 });
    expect(t).toEqual({ status: 504, json: { error: 'Timeout reached without work', timeout: true } });

    const root = newRoot();
    const waiting = post('/rpc', { action: 'work_generate', hash: root, difficulty: EASY });
    await expect.poll(() => dispatcher.pending.some((p) => p.hash === root)).toBe(true);
    expect((await post('/', { action: 'work_cancel', hash: root })).json).toEqual({});
    expect(await waiting).toEqual({ status: 200, json: { error: 'Cancelled' } });
    expect(api.counters.errors).toMatchObject({ timeout: 1, 'bad-json': 1 });
    expect(api.counters.rpc.errors).toMatchObject({ cancelled: 2 });
  });
});
