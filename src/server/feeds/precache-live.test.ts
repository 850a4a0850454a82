/**
 * The precache path end to end, with nothing mocked: test nodes (go-qlc and Nano protocols) ->
 * feeds -> PrecachePolicy -> the real Dispatcher -> an in-process aedes broker, watched by an MQTT
 * dashboard client. Also: a dispatcher restarted mid-work on the SQLite store.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { encodeAddress } from '../../dpow/address.ts';
import { toU64Hex } from '../../pow/work.ts';
import { Broker } from '../broker.ts';
import { Dispatcher } from '../dispatcher/dispatcher.ts';
import { NanoFeed } from './nano-feed.ts';
import { nanoConfirmation, NanoSim } from '../sim/nano-sim.ts';
import { parseFeedSpec } from './feed-spec.ts';
import { PrecachePolicy } from './precache.ts';
import { createServer } from '../create-server.ts';
import { QlcFeed } from './qlc-feed.ts';
import type { QlcBlock } from './qlc-wire.ts';
import { QlcSim } from '../sim/qlc-sim.ts';
import { SqliteStore } from '../store/sqlite-store.ts';
import { cleanupsAfterEach, closeAfter } from '../../testkit/cleanups.ts';
import { quietLogger as quiet } from '../../testkit/log.ts';
import { connectAs, TEST_USERS as USERS } from '../../testkit/mqtt.ts';
import { waitFor } from '../../testkit/wait.ts';
import { findWork } from '../../testkit/work.ts';

const EASY = 0xff00000000000000n; // ~256 hashes: real work, found instantly
const TOKEN = 'a7e8fa30c063e96a489a47bc43909505bd86735da4a109dca28be936118a8582';
const QLC = encodeAddress(randomBytes(32), 'qlc');
const NANO = encodeAddress(randomBytes(32), 'nano');
const hex = () => randomBytes(32).toString('hex');

const cleanups = cleanupsAfterEach();
interface World {
  broker: Broker;
  seen: { topic: string; payload: string }[];
  on(topic: string): string[];
  worker: MqttClient;
  dir: string;
}

async function world(): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'dpow-precache-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const broker = closeAfter(cleanups, await Broker.start({ users: USERS, tcpPort: 0 }));
  const dash = await connectAs(broker.tcpUrl!, 'dashboard', cleanups);
  const seen: World['seen'] = [];
  dash.on('message', (topic, payload) => seen.push({ topic, payload: payload.toString() }));
  await dash.subscribeAsync(['work/#', 'cancel/#', 'client/#']);
  const worker = await connectAs(broker.tcpUrl!, 'client', cleanups);
  return { broker, seen, on: (t) => seen.filter((m) => m.topic === t).map((m) => m.payload), worker, dir };
}

async function dispatcher(w: World, store: SqliteStore, precacheTtlMs = 60_000): Promise<Dispatcher> {
  const d = new Dispatcher({ brokerUrl: w.broker.tcpUrl!, username: 'server', password: 'server-secret', store, precacheTtlMs, heartbeatMs: 60_000 });
  await d.start();
  cleanups.push(() => d.stop());
  return d;
}

/** A world with its SQLite store and a dispatcher on it. */
async function running(): Promise<{ w: World; store: SqliteStore; d: Dispatcher }> {
  const w = await world();
  const store = closeAfter(cleanups, new SqliteStore(join(w.dir, 'dpow.sqlite')));
  return { w, store, d: await dispatcher(w, store) };
}

describe('precache from a go-qlc node, end to end', () => {
  it('new block => work/precache; frontier move => cancel/precache; replays ignored; reconnect => new subscription', async () => {
    const { w, store, d } = await running();
    const sim = closeAfter(cleanups, await QlcSim.start());
    const feed = closeAfter(cleanups, new QlcFeed(sim.url, { log: quiet, reconnectDelayMs: 20, maxReconnectDelayMs: 100 }));
    const policy = new PrecachePolicy({ dispatcher: d, store, accounts: [QLC], qlcDifficulty: EASY, refreshMs: 0, log: quiet });
    cleanups.push(() => policy.stop());
    await policy.start();
    policy.attachQlc(feed);
    await waitFor('newAccountBlock subscription', () => sim.subscriptions().length === 1, 5000);
    const firstSub = sim.subscriptions()[0];
    expect(firstSub).toMatchObject({ ns: 'ledger', name: 'newAccountBlock', address: QLC });

    const block = (previous: string, hash: string): QlcBlock => ({ type: 'State', token: TOKEN, address: QLC, previous, link: hex(), hash, balance: '100' });
    const [h1, h2, h3] = [hex(), hex(), hex()];
    sim.emitBlock(block(hex(), h1));
    await waitFor('first work/precache', () => w.on('work/precache').length === 1, 5000);
    expect(w.on('work/precache')).toEqual([`${h1},${toU64Hex(EASY)}`]);

    sim.emitBlock(block(h1, h2));
    await waitFor('frontier move', () => w.on('work/precache').length === 2 && w.on('cancel/precache').length === 1, 5000);
    expect(w.on('cancel/precache')).toEqual([h1]);
    expect(w.on('work/precache')[1]).toBe(`${h2},${toU64Hex(EASY)}`);
    expect(d.pending.map((j) => j.hash)).toEqual([h2]);

    // The node re-syncs and repeats both blocks: nothing new is published.
    expect(sim.replay()).toBe(2);
    await waitFor('replays handled', () => policy.stats.skipped.duplicate + policy.stats.skipped.stale === 2, 5000);
    await policy.idle();
    expect(w.on('work/precache')).toHaveLength(2);
    expect(w.on('cancel/precache')).toHaveLength(1);

    // The node drops the connection: the feed reconnects, subscribes again (a new id), and the
    // next block still reaches the workers.
    sim.dropConnections();
    await waitFor('re-subscription', () => sim.subscriptions().length === 1 && sim.subscriptions()[0].id !== firstSub.id, 5000);
    sim.emitBlock(block(h2, h3));
    // The cancel of h2 and the job for h3 may reach the dashboard in either order.
    await waitFor('work after reconnect', () => w.on('work/precache').length === 3 && w.on('cancel/precache').length === 2, 5000);
    expect(w.on('cancel/precache')).toEqual([h1, h2]);
    expect((await store.getTracked(`${QLC}:${TOKEN}`))?.frontier).toBe(h3);

    // A worker answers the precache: the work is stored and the client credited.
    const address = encodeAddress(randomBytes(32), 'nano');
    await w.worker.publishAsync('result/precache', `${h3},${findWork(h3, EASY)},${address}`);
    await waitFor('credit', () => w.on(`client/${address}`).length === 1, 5000);
    expect((await store.getClient(address))?.precache).toBe(1);
    expect((await store.getWork(h3))?.hash.toLowerCase()).toBe(h3);
  });
});

describe('precache from a Nano node, end to end', () => {
  it('confirmations of tracked accounts become precache jobs; reconnect subscribes again', async () => {
    const { w, store, d } = await running();
    const sim = closeAfter(cleanups, await NanoSim.start());
    const feed = closeAfter(cleanups, new NanoFeed(sim.url, { log: quiet, reconnectDelayMs: 20, maxReconnectDelayMs: 100, pingIntervalMs: 0 }));
    const policy = new PrecachePolicy({ dispatcher: d, store, accounts: [NANO], nanoDifficulty: EASY, refreshMs: 0, log: quiet });
    cleanups.push(() => policy.stop());
    await policy.start();
    policy.attachNano(feed);
    await feed.connect();
    await waitFor('subscribed', () => feed.subscribed, 5000);
    expect(sim.sessions()[0].accounts).toEqual([NANO]);

    const h1 = hex().toUpperCase();
    const conf = (previous: string, hash: string) =>
      nanoConfirmation({ account: NANO, previous, representative: NANO, balance: '5', link: '0'.repeat(64), subtype: 'receive' }, hash);
    sim.confirm(conf(hex().toUpperCase(), h1));
    await waitFor('work/precache', () => w.on('work/precache').length === 1, 5000);
    expect(w.on('work/precache')).toEqual([`${h1},${toU64Hex(EASY)}`]);

    // A service request tracks another account: the feed's filter grows.
    const other = encodeAddress(randomBytes(32), 'nano');
    await policy.track(other);
    await waitFor('filter update', () => sim.sessions()[0].accounts.includes(other), 5000);

    sim.dropConnections();
    await waitFor('subscribe again', () => feed.stats.subscribes === 2, 5000);
    expect(sim.sessions()[0].accounts).toEqual([NANO, other]);
    const h2 = hex().toUpperCase();
    sim.confirm(conf(h1, h2));
    await waitFor('frontier move', () => w.on('cancel/precache').length === 1 && w.on('work/precache').length === 2, 5000);
    expect(w.on('cancel/precache')[0].toLowerCase()).toBe(h1.toLowerCase());
  });
});

describe('dispatcher restart on the SQLite store', () => {
  it('keeps accepted work and credits, republishes pending jobs and cancels expired ones', async () => {
    const w = await world();
    const path = join(w.dir, 'dpow.sqlite');
    let store = new SqliteStore(path);
    const first = await dispatcher(w, store);
    const [done, inflight, expired, asked] = [hex(), hex(), hex(), hex()];
    const address = encodeAddress(randomBytes(32), 'nano');

    await first.precache(done, EASY);
    await first.precache(inflight, EASY);
    await waitFor('two jobs', () => w.on('work/precache').length === 2, 5000);
    await w.worker.publishAsync('result/precache', `${done},${findWork(done, EASY)},${address}`);
    await waitFor('credit', () => w.on(`client/${address}`).length === 1, 5000);

    // An on-demand request still waiting when the dispatcher stops: its caller is told so.
    const request = first.requestWork({ hash: asked, difficulty: 0xfffffff800000000n, workType: 'ondemand', timeoutMs: 30_000 });
    const outcome = request.catch((e: { code?: string }) => e.code);
    await waitFor('ondemand job', () => w.on('work/ondemand').length === 1, 5000);
    await first.stop();
    expect(await outcome).toBe('shutting-down');
    // A job that expired while the dispatcher was down.
    await store.savePending({ hash: expired, difficulty: EASY, workType: 'precache', expiresAt: Date.now() - 1000, createdAt: Date.now() - 120_000 });
    await store.close();

    store = new SqliteStore(path);
    cleanups.push(() => store.close());
    expect(await store.getClient(address)).toMatchObject({ precache: 1, block_rewarded: done });
    expect(await store.getTotals()).toEqual({ precache: 1, ondemand: 0 });
    expect((await store.getWork(done))?.workType).toBe('precache');

    const before = w.on('work/precache').length;
    const second = await dispatcher(w, store);
    await waitFor('restore', () => w.on('work/precache').length === before + 1 && w.on('cancel/precache').includes(expired), 5000);
    expect(w.on('work/precache').at(-1)).toBe(`${inflight},${toU64Hex(EASY)}`);
    // The unexpired on-demand job is in flight again too (its work will be stored for a retry).
    await waitFor('ondemand republished', () => w.on('work/ondemand').length === 2, 5000);
    expect(w.on('work/ondemand')[1]).toBe(`${asked},fffffff800000000`);
    expect(second.pending.map((j) => j.hash).sort()).toEqual([inflight, asked].sort());
    expect((await store.listPending()).map((j) => j.hash).sort()).toEqual([inflight, asked].sort());

    // The republished job is still worth a credit after the restart.
    await w.worker.publishAsync('result/precache', `${inflight},${findWork(inflight, EASY)},${address}`);
    await waitFor('second credit', () => w.on(`client/${address}`).length === 2, 5000);
    expect((await store.getClient(address))?.precache).toBe(2);
  });
});

describe('the feeds `dpow-web start --feed` runs (createServer)', () => {
  it('parses feed specs', () => {
    expect(parseFeedSpec('qlc-sim')).toEqual({ kind: 'qlc-sim' });
    expect(parseFeedSpec('nano:ws://[::1]:7078')).toEqual({ kind: 'nano', url: 'ws://[::1]:7078' });
    expect(parseFeedSpec('qlc:ws://127.0.0.1:9736')).toEqual({ kind: 'qlc', url: 'ws://127.0.0.1:9736' });
    expect(() => parseFeedSpec('qlc:http://x')).toThrow(/--feed must be/);
    expect(() => parseFeedSpec('bitcoin')).toThrow(/--feed must be/);
  });

  it.each(['qlc-sim', 'nano-sim'] as const)('%s demo: made-up chains keep workers busy with precache and cancels', async (kind) => {
    const w = await world();
    const store = closeAfter(cleanups, new SqliteStore(join(w.dir, 'dpow.sqlite')));
    const server = closeAfter(
      cleanups,
      await createServer({
        kind: 'dispatcher',
        broker: { kind: 'external', url: w.broker.tcpUrl!, username: 'server', password: 'server-secret' },
        store: { kind: 'given', store },
        feeds: { specs: [{ kind }], simIntervalMs: 40, qlcDifficulty: EASY, nanoDifficulty: EASY, refreshMs: 0 },
        log: quiet,
      }),
    );
    const [feed] = server.feeds;
    expect(feed.simUrl).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/);
    expect(feed.policy.accounts.length).toBeGreaterThanOrEqual(2);
    await waitFor('demo precache traffic', () => w.on('work/precache').length >= 4 && w.on('cancel/precache').length >= 1, 8000);
    for (const payload of w.on('work/precache')) expect(payload).toMatch(new RegExp(`^[0-9a-fA-F]{64},${toU64Hex(EASY)}$`));
    // Made-up demo chains are not written to the store.
    expect(await store.listTracked()).toEqual([]);
  });
});
