/**
 * The shipped Mosquitto deployment (deploy/mosquitto/) on Debian's real mosquitto: the config
 * template with test ports, the password file made by make-passwords.sh, the ACL as shipped.
 * Checks the three DPoW roles over WebSocket (through dpow-web's MQTT front, as the deployment
 * serves volunteers) and TCP, a dispatcher/worker round trip, and a
 * service request answered by a real volunteer worker (DpowClient + WASM engine).
 *
 * Skipped with a message only when mosquitto is not installed AND this is not CI (.ci/run
 * installs it); under CI a missing binary fails.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeAddress } from '../dpow/address.ts';
import { DpowClient } from '../dpow/client.ts';
import { createNodeEngine } from '../pow-node/engine.ts';
import { difficultyPolicy } from '../pow/difficulty.ts';
import { rootToHex, validateWork } from '../pow/work.ts';
import { generateApiKey, hashApiKey } from './http/api-keys.ts';
import { Dispatcher } from './dispatcher/dispatcher.ts';
import { MemoryStore } from './store/memory-store.ts';
import { ServiceApi } from './http/service-api.ts';
import { ReferenceWorker } from '../testkit/reference-worker.ts';
import { MOSQUITTO_ACL_BEHAVIOUR, observeAcl } from '../testkit/broker-acl.ts';
import { connectAs } from '../testkit/mqtt.ts';
import { MOSQUITTO, Mosquitto, mosquittoInstalled, skipWithoutMosquitto } from '../testkit/mosquitto.ts';
import { listeningAddresses } from '../testkit/net.ts';

const skip = skipWithoutMosquitto('mosquitto.test.ts');
let broker: Mosquitto;
let secrets: Mosquitto['secrets'];
let ports: Mosquitto['ports'];
/** Closes every login at the end (the broker is shared by the whole file). */
const closeAtEnd: (() => unknown)[] = [];

/** The volunteers' WebSocket: dpow-web's MQTT front in front of Mosquitto, as deployed. */
const wsUrl = () => broker.wsUrl;
const tcpUrl = () => `mqtt://127.0.0.1:${ports.tcp}`;

async function login(user: 'server' | 'client' | 'dashboard', url = wsUrl(), password?: string): Promise<MqttClient> {
  const pass = password ?? (user === 'client' ? 'client' : secrets[user]);
  return connectAs(url, { username: user, password: pass }, closeAtEnd, { connectTimeout: 5000 });
}

function inbox(c: MqttClient): Array<{ topic: string; payload: string }> {
  const got: Array<{ topic: string; payload: string }> = [];
  c.on('message', (topic, payload) => got.push({ topic, payload: String(payload) }));
  return got;
}

describe.skipIf(skip)('deploy/mosquitto on a real mosquitto', () => {
  beforeAll(async () => {
    expect(mosquittoInstalled, `${MOSQUITTO} and mosquitto_passwd are required under CI`).toBe(true);
    broker = await Mosquitto.start();
    ({ secrets, ports } = broker);
  });

  afterAll(async () => {
    await Promise.allSettled(closeAtEnd.map(async (close) => close()));
    await broker?.close();
  });

  it('listens on loopback only', () => {
    // Read from the kernel's table of listening sockets: nothing is sent to another address.
    for (const port of [ports.ws, ports.tcp, ports.volunteers]) {
      const bound = listeningAddresses(port);
      expect(bound.length, `port ${port}`).toBeGreaterThan(0);
      for (const address of bound) expect(['127.0.0.1', '0:0:0:0:0:0:0:1'], `port ${port}`).toContain(address);
    }
  });

  it('refuses wrong passwords and anonymous logins', async () => {
    await expect(login('server', wsUrl(), 'client')).rejects.toThrow(/Not authorized/);
    await expect(login('dashboard', tcpUrl(), 'wrong')).rejects.toThrow(/Not authorized/);
    await expect(mqtt.connectAsync(wsUrl(), { protocolVersion: 4, reconnectPeriod: 0 })).rejects.toThrow(/Not authorized/);
  });

  it('client role: reads work, cancel, client, heartbeat and statistics; publishes results the server reads', async () => {
    const client = await login('client');
    const clientGot = inbox(client);
    await client.subscribeAsync(['work/+', 'cancel/+', 'client/+', 'heartbeat', 'statistics'], { qos: 1 });
    const server = await login('server', tcpUrl());
    const serverGot = inbox(server);
    await server.subscribeAsync('result/+', { qos: 1 });

    const sent = [
      ['work/precache', 'A,ff00000000000000'],
      ['work/ondemand', 'B,ff00000000000000'],
      ['cancel/ondemand', 'B'],
      ['client/nano_x', '{"precache":1}'],
      ['heartbeat', ''],
      ['statistics', '{}'],
    ];
    for (const [topic, payload] of sent) await server.publishAsync(topic, payload, { qos: 1 });
    await expect.poll(() => clientGot.length).toBe(sent.length);
    expect(clientGot.map((m) => [m.topic, m.payload])).toEqual(sent);

    await client.publishAsync('result/ondemand', 'B,0000000000000001,nano_x', { qos: 1 });
    await client.publishAsync('result/precache', 'A,0000000000000002,nano_x', { qos: 1 });
    await expect.poll(() => serverGot.map((m) => m.topic)).toEqual(['result/ondemand', 'result/precache']);
  });

  it("drops a client's or dashboard's publish to server topics, and a result reaches no other client", async () => {
    const watcher = await login('dashboard');
    const seen = inbox(watcher);
    await watcher.subscribeAsync('#', { qos: 1 });
    const other = await login('client');
    const otherGot = inbox(other);
    await other.subscribeAsync(['work/#', 'cancel/#', 'result/#', 'heartbeat'], { qos: 1 });

    const rogue = await login('client');
    for (const topic of ['work/precache', 'work/ondemand', 'cancel/ondemand', 'cancel/precache', 'heartbeat', 'client/nano_x']) {
      await rogue.publishAsync(topic, 'forged', { qos: 1 });
    }
    const dashboard = await login('dashboard', tcpUrl());
    await dashboard.publishAsync('work/ondemand', 'from-dashboard', { qos: 1 });
    // Barrier: an allowed publish from the same connection arrives after the refused ones would have.
    await rogue.publishAsync('result/ondemand', 'barrier', { qos: 1 });
    await expect.poll(() => seen.some((m) => m.payload === 'barrier')).toBe(true);
    // And a real server message gets through to both, so the subscriptions do work.
    const server = await login('server');
    await server.publishAsync('work/ondemand', 'genuine', { qos: 1 });
    await expect.poll(() => otherGot.some((m) => m.payload === 'genuine')).toBe(true);
    await expect.poll(() => seen.some((m) => m.payload === 'genuine')).toBe(true);

    expect(seen.filter((m) => m.payload === 'forged' || m.payload === 'from-dashboard')).toEqual([]);
    expect(otherGot.map((m) => m.payload)).toEqual(['genuine']);
  });

  it('grants wildcard subscriptions and filters per topic; acknowledges and drops a forbidden QoS 1 publish', async () => {
    // The same scenario runs on the embedded broker (broker.test.ts) against these observations.
    expect(await observeAcl((role) => login(role))).toEqual(MOSQUITTO_ACL_BEHAVIOUR);
  });

  it('runs a job: dispatcher over TCP, worker over WebSocket, result accepted, cancel and stats delivered', async () => {
    const store = new MemoryStore();
    const dispatcher = new Dispatcher({ brokerUrl: tcpUrl(), username: 'server', password: secrets.server, store });
    const address = encodeAddress(randomBytes(32));
    const worker = await ReferenceWorker.start({ brokerUrl: wsUrl(), username: 'client', password: 'client', address });
    try {
      await dispatcher.start();
      await expect.poll(() => worker.heartbeats.count).toBeGreaterThan(0);

      const root = rootToHex(randomBytes(32));
      const answer = await dispatcher.requestWork({ hash: root, difficulty: 0xff00000000000000n, workType: 'ondemand', timeoutMs: 20_000 });
      expect(validateWork(root, answer.work, 'ff00000000000000').valid).toBe(true);
      expect(worker.results).toContainEqual({ hash: root, work: answer.work, workType: 'ondemand' });
      await expect.poll(() => worker.cancels).toContain(root);
      await expect.poll(() => worker.clientMessages).toContainEqual({
        kind: 'stats',
        stats: { precache: 0, ondemand: 1, snapshot_precache: 0, snapshot_ondemand: 0, block_rewarded: root },
      });
      expect((await store.getClient(address))?.ondemand).toBe(1);

      // A precache job withdrawn (frontier moved) reaches the worker as a cancel too.
      await worker.stop();
      const idle = await ReferenceWorker.start({ brokerUrl: wsUrl(), username: 'client', password: 'client', address });
      const watcher = await login('dashboard');
      const seen = inbox(watcher);
      await watcher.subscribeAsync('#', { qos: 1 });
      const stale = rootToHex(randomBytes(32));
      await dispatcher.precache(stale, 0xffffffc000000000n);
      await expect.poll(() => seen.some((m) => m.topic === 'work/precache' && m.payload.startsWith(stale))).toBe(true);
      expect(await dispatcher.withdraw(stale)).toBe(true);
      await expect.poll(() => idle.cancels).toContain(stale);
      await idle.stop();
    } finally {
      await dispatcher.stop();
      await worker.stop().catch(() => {});
      await store.close();
    }
  });

  it('retains the statistics for a late subscriber, and contains a flooding payout address (publisher unknown here)', async () => {
    const store = new MemoryStore();
    await store.creditClient(encodeAddress(randomBytes(32)), 'precache', rootToHex(randomBytes(32)));
    const dispatcher = new Dispatcher({ brokerUrl: tcpUrl(), username: 'server', password: secrets.server, store, abuse: { threshold: 3 } });
    try {
      await dispatcher.start();
      await expect.poll(() => dispatcher.counters.published.statistics).toBe(1);
      const late = await login('client');
      const stats = inbox(late);
      await late.subscribeAsync('statistics');
      await expect.poll(() => stats.length).toBe(1);
      expect(JSON.parse(stats[0].payload).work).toEqual({ precache: 1, ondemand: 0 });

      const flooderAddress = encodeAddress(randomBytes(32));
      const flooder = await login('client', tcpUrl());
      const told = inbox(flooder);
      await flooder.subscribeAsync(`client/${flooderAddress}`, { qos: 1 });
      for (let i = 0; i < 5; i++) {
        await flooder.publishAsync('result/precache', `${rootToHex(randomBytes(32))},0000000000000000,${flooderAddress}`, { qos: 1 });
      }
      await expect.poll(() => dispatcher.counters.results['unknown-hash'] + dispatcher.counters.results.ignored).toBe(5);
      expect(dispatcher.counters.results).toMatchObject({ 'unknown-hash': 3, ignored: 2 });
      expect(dispatcher.abuse.counters.contained).toEqual({ address: 1, connection: 0 });
      await expect.poll(() => told.map((m) => JSON.parse(m.payload).error)).toEqual([
        expect.stringMatching(/^Too many invalid results name this address: invalid ones are ignored for \d+ s; valid work is still credited$/),
      ]);
    } finally {
      await dispatcher.stop();
      await store.close();
    }
  });

  it('answers a service request through a real volunteer worker (DpowClient + WASM engine) on mosquitto', async () => {
    const store = new MemoryStore();
    const key = generateApiKey();
    await store.addService({
      user: 'wallet', apiKeyHash: await hashApiKey(key), display: 'Wallet', website: '', public: true,
      precache: 0, ondemand: 0, rateLimit: 0, createdAt: Date.now(),
    });
    const dispatcher = new Dispatcher({ brokerUrl: tcpUrl(), username: 'server', password: secrets.server, store });
    const api = new ServiceApi({ dispatcher, store, policy: difficultyPolicy({ minDifficulty: 0xf000000000000000n }) });
    const http = createServer((req, res) => void api.handleRequest(req, res).then((ok) => ok || res.writeHead(404).end()));
    http.listen(0, '127.0.0.1');
    await once(http, 'listening');
    const engine = await createNodeEngine({ backend: 'wasm', threads: 1 });
    const volunteer = new DpowClient({ engine });
    const address = encodeAddress(randomBytes(32));
    try {
      await dispatcher.start();
      await volunteer.start({ brokerUrl: wsUrl(), username: 'client', password: 'client', address, work: 'any', backend: 'wasm', threads: 1 });
      await expect.poll(() => volunteer.getState().lastHeartbeatAt, { timeout: 10_000 }).not.toBeNull();

      const root = rootToHex(randomBytes(32));
      const res = await fetch(`http://127.0.0.1:${(http.address() as AddressInfo).port}/service/`, {
        method: 'POST',
        body: JSON.stringify({ user: 'wallet', api_key: key, hash: root, difficulty: 'fff0000000000000', timeout: 30, id: 'v' }),
      });
      const reply = (await res.json()) as { work: string; hash: string; id: string };
      expect(res.status).toBe(200);
      expect(reply).toMatchObject({ hash: root, id: 'v' });
      expect(validateWork(root, reply.work, 'fff0000000000000').valid).toBe(true);
      // The volunteer hears that its work was accepted (client/<address>), and the service is credited.
      await expect.poll(() => volunteer.getState().counters.accepted, { timeout: 10_000 }).toBe(1);
      await expect.poll(async () => (await store.getService('wallet'))?.ondemand).toBe(1);
      expect((await store.getClient(address))?.ondemand).toBe(1);
    } finally {
      await volunteer.stop();
      engine.dispose();
      api.close();
      await dispatcher.stop();
      http.closeAllConnections();
      http.close();
      await store.close();
    }
  });
});
