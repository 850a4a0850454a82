/**
 * The dispatcher on a real redis-server: a Redis outage (results received meanwhile are held,
 * not answered, not credited, and settle once Redis is back, with no restart) and two
 * dispatchers sharing one store (one job per hash, answers across dispatchers, one elected
 * dispatcher for the singletons).
 */
import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeAddress } from '../../dpow/address.ts';
import { cleanupsAfterEach } from '../../testkit/cleanups.ts';
import { quietLogger } from '../../testkit/log.ts';
import { RedisServer, skipWithoutRedis } from '../../testkit/redis.ts';
import { waitFor, waitForAsync } from '../../testkit/wait.ts';
import { findWork, randomRoot } from '../../testkit/work.ts';
import { Broker } from '../broker.ts';
import type { BrokerUsers } from '../broker-rules.ts';
import { Dispatcher, type DispatcherOptions } from './dispatcher.ts';
import { RedisStore } from '../store/redis-store.ts';

const EASY = 0xff00000000000000n;
const USERS: BrokerUsers = {
  server: { username: 'server', password: 'server-secret' },
  client: { username: 'client', password: 'client' },
  dashboard: { username: 'dash', password: 'dash' },
};
const randomAddress = () => encodeAddress(randomBytes(32));

let redis: RedisServer;
const cleanups = cleanupsAfterEach();

interface Seen {
  topic: string;
  payload: string;
}

async function setup() {
  const broker: Broker = await Broker.start({ users: USERS, tcpPort: 0 });
  cleanups.push(() => broker.close());
  const connect = async (username: string, password: string): Promise<MqttClient> => {
    const c = await mqtt.connectAsync(broker.tcpUrl!, { username, password, protocolVersion: 4, reconnectPeriod: 0 });
    cleanups.push(() => c.endAsync(true));
    return c;
  };
  const dash = await connect('dash', 'dash');
  const seen: Seen[] = [];
  dash.on('message', (topic, payload) => seen.push({ topic, payload: String(payload) }));
  await dash.subscribeAsync('#');
  const worker = await connect('client', 'client');
  const prefix = `t${randomBytes(4).toString('hex')}:`;
  const dispatcher = async (options: Partial<DispatcherOptions> = {}) => {
    const store = await RedisStore.open(redis.url(), { prefix });
    const d = new Dispatcher({ brokerUrl: broker.tcpUrl!, username: 'server', password: 'server-secret', store, log: quietLogger, ...options });
    await d.start();
    cleanups.push(() => store.close(), () => d.stop());
    return { d, store };
  };
  return { broker, seen, worker, dispatcher, on: (topic: string) => seen.filter((m) => m.topic === topic) };
}

describe.skipIf(skipWithoutRedis('dispatcher-redis.test.ts'))('Dispatcher on a real redis-server', () => {
  beforeAll(async () => {
    redis = await RedisServer.start({ persist: true });
  });
  afterAll(async () => {
    await redis?.close();
  });

  it('holds results while Redis is down, answers and credits them once it is back, and carries on without a restart', async () => {
    const h = await setup();
    const { d, store } = await h.dispatcher({ retryMs: 50, leaseMs: 1000 });
    const address = randomAddress();
    const before = randomRoot();
    const first = d.requestWork({ hash: before, difficulty: EASY, workType: 'ondemand', timeoutMs: 20_000 });
    await waitFor('the first job', () => h.on('work/ondemand').length === 1);
    await h.worker.publishAsync('result/ondemand', `${before},${findWork(before, EASY)},${address}`);
    await first;

    const root = randomRoot();
    let answered = false;
    const during = d.requestWork({ hash: root, difficulty: EASY, workType: 'ondemand', timeoutMs: 30_000 });
    void during.then(() => (answered = true));
    await waitFor('the second job', () => h.on('work/ondemand').length === 2);
    await waitForAsync('the pending record', () => store.getPending(root));

    await redis.stop();
    const work = findWork(root, EASY);
    await h.worker.publishAsync('result/ondemand', `${root},${work},${address}`);
    await waitFor('the held result', () => d.counters.deferred.held === 1);
    await waitFor('failed retries', () => d.counters.storeErrors >= 3);
    expect(answered).toBe(false);
    expect(d.counters.results.accepted).toBe(1);
    expect(h.on(`client/${address}`)).toHaveLength(1);
    // No lease can be renewed: the heartbeat stops instead of claiming a server that cannot accept.
    await waitFor('the singletons given up', () => !d.leadership.leader, 5000);

    await redis.start();
    await expect(during).resolves.toMatchObject({ work, cached: false });
    await waitFor('the client notice', () => h.on(`client/${address}`).length === 2, 10_000);
    expect(await store.getClient(address)).toMatchObject({ ondemand: 2 });
    expect(await store.getWork(root)).toMatchObject({ work, address });
    expect(d.counters.deferred).toMatchObject({ total: 1, held: 0 });
    await waitFor('the singletons back', () => d.leadership.leader, 5000);
    const beats = h.on('heartbeat').length;
    await waitFor('heartbeats again', () => h.on('heartbeat').length > beats + 1, 5000);

    // New work flows on the same dispatcher and the same Redis connection.
    const after = randomRoot();
    const third = d.requestWork({ hash: after, difficulty: EASY, workType: 'ondemand', timeoutMs: 10_000 });
    await waitFor('the third job', () => h.on('work/ondemand').some((m) => m.payload.startsWith(after)));
    await h.worker.publishAsync('result/ondemand', `${after},${findWork(after, EASY)},${address}`);
    await third;
    expect(await store.getTotals()).toEqual({ precache: 0, ondemand: 3 });
  });

  it('two dispatchers on one store: one job per hash, both answered with one work, one credit, one heartbeat source', async () => {
    const h = await setup();
    const a = await h.dispatcher({ leaseMs: 1000 });
    const b = await h.dispatcher({ leaseMs: 1000 });
    expect([a.d.leadership.leader, b.d.leadership.leader]).toEqual([true, false]);
    const root = randomRoot();
    const address = randomAddress();
    const atA = a.d.requestWork({ hash: root, difficulty: EASY, workType: 'ondemand', timeoutMs: 10_000 });
    await waitForAsync('the pending record', () => a.store.getPending(root));
    const atB = b.d.requestWork({ hash: root, difficulty: EASY, workType: 'ondemand', timeoutMs: 10_000 });
    await waitFor('B to hold the job', () => b.d.pending.length === 1);
    // B found A's pending job in the store: it shares it instead of publishing it again.
    await waitFor('the dashboard to see the job', () => h.on('work/ondemand').length >= 1);
    await new Promise((r) => setTimeout(r, 300));
    expect(h.on('work/ondemand')).toHaveLength(1);
    expect(b.d.counters.requests).toMatchObject({ dispatched: 0, shared: 1 });
    await h.worker.publishAsync('result/ondemand', `${root},${findWork(root, EASY)},${address}`);
    const [answerA, answerB] = await Promise.all([atA, atB]);
    expect(answerA.work).toBe(answerB.work);
    expect(a.d.counters.results.accepted + b.d.counters.results.accepted).toBe(1);
    // The other dispatcher's copy of the result loses the claim (it may be answered first, by pub/sub).
    await waitFor('the losing claim', () => a.d.counters.results.duplicate + b.d.counters.results.duplicate === 1);
    expect(await a.store.getClient(address)).toMatchObject({ ondemand: 1 });
    await waitFor('one client notice', () => h.on(`client/${address}`).length === 1);

    // Only the elected dispatcher beats; when it stops, the other takes over within the lease.
    const beatsBefore = h.on('heartbeat').length;
    await new Promise((r) => setTimeout(r, 2100));
    expect(h.on('heartbeat').length - beatsBefore).toBeLessThanOrEqual(3);
    await a.d.stop();
    await waitFor('B to take over', () => b.d.leadership.leader, 3000);
    expect(b.d.leadership.token).toBeGreaterThan(0);
    const beats = h.on('heartbeat').length;
    await waitFor('heartbeats from B', () => h.on('heartbeat').length > beats, 3000);
  });
});
