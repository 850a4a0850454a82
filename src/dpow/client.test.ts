/**
 * The worker client against a real in-process MQTT broker (aedes over WebSocket on 127.0.0.1),
 * a real mqtt.js publisher playing the dispatcher, and a real PoW engine.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { DpowClient, type ConnectFn, type EngineLike } from './client.ts';
import { checkAddress } from './address.ts';
import type { ClientSettings, ClientState } from './state.ts';
import { validateWork } from '../pow/work.ts';
import { createNodeEngine } from '../pow-node/engine.ts';
import type { PowEngine } from '../pow/engine.ts';
import { cleanupsAfterEach } from '../testkit/cleanups.ts';
import { waitFor, waitForAsync } from '../testkit/wait.ts';
import { startPublisher, startWsBroker as startBroker } from '../testkit/ws-broker.ts';
import { randomRoot } from '../testkit/work.ts';
import { Dispatcher } from '../server/dispatcher/dispatcher.ts';
import { MemoryStore } from '../server/store/memory-store.ts';

const ADDRESS = 'nano_1ik4ab366ik4ab366ik4ab366ik4ab366ik4ab366ik4ab366ik4myzudyzq';
/** Contains "work": a worker that routes by substring would take its client/ messages for work. */
const WORK_ADDRESS = 'nano_134g161111111111111111111111111111111111111111111119kexwork3';
const EASY = 'fff0000000000000'; // ~4096 hashes
const HARD = 'fffffff800000000'; // the Nano send threshold: minutes on one thread, so it is cancelled first

const root = (n: number, c = 'a') => n.toString(16).padStart(4, '0').toUpperCase() + c.repeat(60);

function settings(url: string, extra: Partial<ClientSettings> = {}): ClientSettings {
  return { brokerUrl: url, username: 'client', password: 'client', address: ADDRESS, work: 'any', backend: 'wasm', threads: 1, ...extra };
}

let engine: PowEngine;
beforeAll(async () => {
  engine = await createNodeEngine({ backend: 'wasm', threads: 1 });
});
afterAll(() => engine?.dispose());

const cleanups = cleanupsAfterEach();

async function setup(extra: Partial<ClientSettings> = {}, opts: { engine?: EngineLike; connect?: ConnectFn } = {}) {
  const broker = await startBroker();
  cleanups.push(() => broker.close());
  const pub = await startPublisher(broker.url);
  cleanups.push(() => pub.close());
  const client = new DpowClient({ engine: opts.engine ?? engine, connect: opts.connect, reconnect: { initialMs: 100, maxMs: 400 } });
  cleanups.push(() => client.stop());
  await client.start(settings(broker.url, extra));
  await waitFor('online', () => client.getState().connection === 'online');
  // The worker's subscriptions are in place once the broker has its SUBACK out; a heartbeat
  // round-trip proves it.
  await pub.publish('heartbeat', '');
  await waitFor('first heartbeat', () => client.getState().lastHeartbeatAt !== null);
  return { broker, pub, client, s: () => client.getState() };
}

const resultFor = <R extends { payload: string }>(results: R[], hash: string): R | undefined => results.find((r) => r.payload.startsWith(`${hash},`));

// ---------------------------------------------------------------- tests

describe('DpowClient with a real broker and engine', () => {
  it('computes low-difficulty work, validates it and publishes hash,work,address with the hash case preserved', async () => {
    const { pub, s } = await setup();
    const hash = 'BFEB8aa91D346E6EFBB41D11FD247E48E0BC0DBC183DDEB9F26F3A98AA17522f';
    await pub.publish('work/ondemand', `${hash},${EASY}`);
    await pub.publish('work/precache', `${root(7)},${EASY}`);
    const r = await waitFor('ondemand result', () => resultFor(pub.results, hash));
    expect(r.topic).toBe('result/ondemand');
    const [h, work, address, ...rest] = r.payload.split(',');
    expect(rest).toEqual([]);
    expect(h).toBe(hash);
    expect(address).toBe(ADDRESS);
    expect(validateWork(hash, work, EASY).valid).toBe(true);
    const p = await waitFor('precache result', () => resultFor(pub.results, root(7)));
    expect(p.topic).toBe('result/precache');
    await waitFor('published counter', () => s().counters.published === 2);
    expect(s().counters).toMatchObject({ received: 2, computed: 2, published: 2, cancelled: 0, rejected: {} });
    const events = s().events.map((e) => e.job?.event).filter(Boolean);
    expect(events).toEqual(expect.arrayContaining(['queued', 'computed', 'published']));
    expect(s().backend).toBe('wasm');
  });

  it('runs ondemand work before precache work that arrived earlier', async () => {
    const { pub, s } = await setup();
    const blocker = root(1, 'b');
    await pub.publish('work/ondemand', `${blocker},${HARD}`);
    await waitFor('blocker in flight', () => s().current?.hash === blocker);
    expect(s().current?.multiplier).toBeCloseTo(1, 6);
    await pub.publish('work/precache', `${root(2)},${EASY}`);
    await pub.publish('work/precache', `${root(3)},${EASY}`);
    await pub.publish('work/ondemand', `${root(4)},${EASY}`);
    await waitFor('three queued', () => s().queue.length === 3);
    expect(s().queue.map((j) => j.hash)).toEqual([root(4), root(2), root(3)]);
    await pub.publish('cancel/ondemand', blocker);
    await waitFor('three results', () => pub.results.length === 3);
    expect(pub.results.map((r) => r.payload.split(',')[0])).toEqual([root(4), root(2), root(3)]);
    expect(resultFor(pub.results, blocker)).toBeUndefined();
  });

  it('lets ondemand work preempt a precache search, which then resumes', async () => {
    const { pub, s } = await setup();
    const precache = root(1, '5');
    await pub.publish('work/precache', `${precache},${HARD}`);
    await waitFor('precache in flight', () => s().current?.hash === precache);
    await pub.publish('work/ondemand', `${root(2, '5')},${EASY}`);
    const r = await waitFor('ondemand result', () => resultFor(pub.results, root(2, '5')));
    expect(r.topic).toBe('result/ondemand');
    await waitFor('precache resumed', () => s().current?.hash === precache);
    expect(s().events.some((e) => e.job?.event === 'preempted' && e.job.hash === precache)).toBe(true);
    expect(s().counters.cancelled).toBe(0);
    await pub.publish('cancel/precache', precache);
    await waitFor('cancelled', () => s().counters.cancelled === 1 && s().current === null);
    expect(resultFor(pub.results, precache)).toBeUndefined();
  });

  it('drops duplicates that are queued, in flight or recently finished, in any case', async () => {
    const { pub, s } = await setup();
    await pub.publish('work/ondemand', `${root(1, 'c')},${HARD}`);
    await waitFor('in flight', () => s().current !== null);
    await pub.publish('work/precache', `${root(1, 'C').toLowerCase()},${HARD}`); // in flight
    await pub.publish('work/ondemand', `${root(2)},${EASY}`);
    await pub.publish('work/ondemand', `${root(2).toLowerCase()},${EASY}`); // queued
    await waitFor('two duplicates', () => s().counters.rejected.duplicate === 2);
    await pub.publish('cancel/ondemand', root(1, 'c'));
    await waitFor('result 2', () => resultFor(pub.results, root(2)));
    await pub.publish('work/ondemand', `${root(2)},${EASY}`); // recently finished
    await pub.publish('work/ondemand', `${root(3)},${EASY}`);
    await waitFor('result 3', () => resultFor(pub.results, root(3)));
    expect(s().counters.rejected.duplicate).toBe(3);
    expect(pub.results.filter((r) => r.payload.startsWith(root(2)))).toHaveLength(1);
    expect(s().counters.computed).toBe(2);
  });

  it('stops an in-flight job on cancel (any case) and never publishes it', async () => {
    const { pub, s } = await setup();
    const hash = root(5, 'd');
    await pub.publish('work/ondemand', `${hash},${HARD}`);
    await waitFor('in flight', () => s().current?.hash === hash);
    await pub.publish('cancel/ondemand', hash.toLowerCase());
    await waitFor('cancelled', () => s().counters.cancelled === 1 && s().current === null);
    await pub.publish('work/ondemand', `${root(6)},${EASY}`);
    await waitFor('next result', () => resultFor(pub.results, root(6)));
    expect(resultFor(pub.results, hash)).toBeUndefined();
    expect(s().counters).toMatchObject({ cancelled: 1, computed: 1, published: 1 });
    expect(s().events.some((e) => e.job?.event === 'cancelled' && e.job.hash === hash)).toBe(true);
  });

  it('drops a queued job on cancel', async () => {
    const { pub, s } = await setup();
    await pub.publish('work/precache', `${root(1, 'e')},${HARD}`);
    await waitFor('in flight', () => s().current !== null);
    await pub.publish('work/precache', `${root(2, 'e')},${EASY}`);
    await waitFor('queued', () => s().queue.length === 1);
    await pub.publish('cancel/precache', root(2, 'e'));
    await waitFor('dropped', () => s().queue.length === 0 && s().counters.cancelled === 1);
    expect(s().current?.hash).toBe(root(1, 'e'));
  });

  it('gives up jobs past their time limit, queued or in flight, and counts them', async () => {
    const { pub, s } = await setup({ jobTimeoutS: 0.3 });
    await pub.publish('work/ondemand', `${root(1, '2')},${HARD}`);
    await waitFor('in flight', () => s().current !== null);
    await pub.publish('work/precache', `${root(2, '2')},${EASY}`);
    await waitFor('both expired', () => s().counters.expired === 2 && s().current === null, 5000);
    expect(s().queue).toEqual([]);
    expect(s().counters).toMatchObject({ computed: 0, published: 0, cancelled: 0 });
    const expired = s().events.filter((e) => e.job?.event === 'expired').map((e) => e.job!.hash);
    expect(expired.sort()).toEqual([root(1, '2'), root(2, '2')]);
  });

  it('bounds the queue: the oldest precache job is dropped and counted', async () => {
    const { pub, s } = await setup({ queueLimit: 2 });
    await pub.publish('work/ondemand', `${root(1, '4')},${HARD}`);
    await waitFor('in flight', () => s().current !== null);
    for (const n of [2, 3, 4]) await pub.publish('work/precache', `${root(n, '4')},${EASY}`);
    await waitFor('overflow', () => s().counters.rejected['queue-overflow'] === 1);
    expect(s().queue.map((j) => j.hash)).toEqual([root(3, '4'), root(4, '4')]);
    expect(s().events.some((e) => e.job?.event === 'dropped' && e.job.hash === root(2, '4'))).toBe(true);
  });

  it('holds results while the server is offline, drops those cancelled meanwhile, sends the rest when it is back', async () => {
    const { pub, s } = await setup({ heartbeatTimeoutS: 0.4 });
    await waitFor('server-offline', () => s().connection === 'server-offline', 5000);
    await pub.publish('work/ondemand', `${root(1, 'f')},${EASY}`);
    await pub.publish('work/ondemand', `${root(2, 'f')},${EASY}`);
    await waitFor('both computed', () => s().counters.computed === 2);
    expect(s().counters.published).toBe(0);
    await pub.publish('cancel/ondemand', root(1, 'f'));
    await waitFor('withdrawn', () => s().counters.cancelled === 1);
    await pub.publish('heartbeat', '');
    await waitFor('held result sent', () => resultFor(pub.results, root(2, 'f')));
    await waitFor('published', () => s().counters.published === 1);
    expect(resultFor(pub.results, root(1, 'f'))).toBeUndefined();
  });

  it('counts and logs every malformed payload, and keeps working', async () => {
    const { pub, s } = await setup();
    const hash = root(9);
    const matrix: [string, string | Buffer, string][] = [
      ['work/ondemand', `${'zz'.repeat(32)},${EASY}`, 'bad-hash'],
      ['work/ondemand', hash, 'bad-field-count'],
      ['work/precache', `${hash},${EASY},extra`, 'bad-field-count'],
      ['work/ondemand', `${hash},fff00000zzzz0000`, 'bad-difficulty'],
      ['work/ondemand', Buffer.from([0xff, 0xfe, 0x2c, 0x41]), 'bad-encoding'],
      ['work/ondemand', Buffer.alloc(70 * 1024, 0x41), 'bad-encoding'],
      ['work/ondemand', `${hash},ffffffffffffffff`, 'difficulty-too-high'],
      ['work/bogus', `${hash},${EASY}`, 'bad-topic'],
      ['cancel/ondemand', 'not-a-hash', 'bad-hash'],
      ['cancel/precache', `${hash},${hash}`, 'bad-field-count'],
      ['cancel/ondemand', Buffer.from([0xc3, 0x28]), 'bad-encoding'],
      [`client/${ADDRESS}`, 'not json', 'bad-json'],
      [`client/${ADDRESS}`, '[1,2]', 'bad-shape'],
      [`client/${ADDRESS}`, '{"precache":-1,"ondemand":0,"snapshot_precache":0,"snapshot_ondemand":0}', 'bad-shape'],
      [`client/${ADDRESS}`, Buffer.from([0xff]), 'bad-encoding'],
      ['statistics', '{', 'bad-json'],
      ['statistics', '{"services":{}}', 'bad-shape'],
      ['heartbeat', 'beat', 'unexpected-payload'],
    ];
    for (const [topic, payload] of matrix) await pub.publish(topic, payload);
    await pub.publish('work/ondemand', `${hash},${EASY}`);
    await waitFor('the good job still runs', () => resultFor(pub.results, hash));
    const expected: Record<string, number> = {};
    for (const [, , code] of matrix) expected[code] = (expected[code] ?? 0) + 1;
    expect(s().counters.rejected).toEqual(expected);
    const rejects = s().events.filter((e) => e.kind === 'reject');
    expect(rejects).toHaveLength(matrix.length);
    for (const code of Object.keys(expected)) {
      expect(rejects.some((e) => e.message.includes(`(${code})`))).toBe(true);
    }
    expect(rejects.every((e) => e.message.length > 20)).toBe(true);
    // A client/ rejection names the whole topic, address included.
    const clientRejects = matrix.filter(([topic]) => topic.startsWith('client/')).length;
    expect(rejects.filter((e) => e.message.includes(`client/${ADDRESS}: `))).toHaveLength(clientRejects);
    expect(s().connection).toBe('online');
    expect(s().counters.published).toBe(1);
  });

  it('reconnects after a broker restart, resubscribes, and delivers a result found while disconnected', async () => {
    // The real engine, with its answer held back until the broker is gone.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const gated: EngineLike = {
      generate: async (...args) => {
        const result = await engine.generate(...args);
        await gate;
        return result;
      },
      cancel: (r) => engine.cancel(r),
      onStatus: (cb) => engine.onStatus(cb),
    };
    const { broker, pub, client, s } = await setup({}, { engine: gated });
    const hash = root(1, '9');
    await pub.publish('work/precache', `${hash},${EASY}`);
    await waitFor('in flight', () => s().current?.hash === hash);
    await pub.close();
    await broker.close();
    await waitFor('reconnecting', () => s().connection === 'reconnecting');
    release();
    await waitFor('computed offline', () => s().counters.computed === 1);
    expect(s().counters.published).toBe(0);

    const again = await startBroker(broker.port);
    cleanups.push(() => again.close());
    const pub2 = await startPublisher(again.url);
    cleanups.push(() => pub2.close());
    const r = await waitFor('result after reconnect', () => resultFor(pub2.results, hash));
    expect(r.topic).toBe('result/precache');
    expect(validateWork(hash, r.payload.split(',')[1], EASY).valid).toBe(true);
    expect(s().connection).toBe('online');
    // Subscriptions are back: new work and heartbeats arrive through the new broker.
    await pub2.publish('heartbeat', '');
    await pub2.publish('work/ondemand', `${root(2, '9')},${EASY}`);
    await waitFor('work through the new broker', () => resultFor(pub2.results, root(2, '9')));
    expect(s().counters.published).toBe(2);
    expect(s().events.some((e) => /^Disconnected from the broker/.test(e.message))).toBe(true);
    expect(client.getState().error).toBeNull();
  });

  it('checks the engine\'s answer against the message\'s difficulty and never publishes bad work', async () => {
    // The real engine, with its answer corrupted on the way out (a faulty kernel or worker).
    const corrupt: EngineLike = {
      generate: async (...args) => {
        const result = await engine.generate(...args);
        const flipped = (BigInt(`0x${result.work}`) ^ 1n).toString(16).padStart(16, '0');
        return { ...result, work: validateWork(args[0], flipped, args[1]).valid ? result.work.replace(/./, 'x') : flipped };
      },
      cancel: (r) => engine.cancel(r),
      onStatus: (cb) => engine.onStatus(cb),
    };
    const { pub, s } = await setup({}, { engine: corrupt });
    await pub.publish('work/ondemand', `${root(1, '3')},${EASY}`);
    await pub.publish('work/ondemand', `${root(2, '3')},${EASY}`);
    await waitFor('two mismatches', () => s().counters.rejected['work-mismatch'] === 2);
    expect(s().counters).toMatchObject({ computed: 0, published: 0 });
    expect(s().events[0].level).toBe('error');
    expect(s().events[0].message).toMatch(/does not meet fff0000000000000; not published/);
    await pub.publish('heartbeat', '');
    await waitFor('heartbeat', () => s().heartbeatAgeMs !== null && s().heartbeatAgeMs! < 200);
    expect(pub.results).toEqual([]);
  });

  it('refuses an invalid payout address before connecting', async () => {
    let connects = 0;
    const connect: ConnectFn = (url, o) => {
      connects++;
      return mqtt.connect(url, o);
    };
    const broker = await startBroker();
    cleanups.push(() => broker.close());
    const client = new DpowClient({ engine, connect });
    cleanups.push(() => client.stop());
    const typo = ADDRESS.slice(0, -1) + (ADDRESS.endsWith('q') ? 'r' : 'q');
    await expect(client.start(settings(broker.url, { address: typo }))).rejects.toThrow(/checksum/);
    await expect(client.start(settings(broker.url, { address: 'qlc_' + ADDRESS.slice(5) }))).rejects.toThrow(/nano_/);
    expect(connects).toBe(0);
    expect(broker.connections()).toBe(0);
    expect(client.getState().error).toMatch(/Invalid payout address/);
    expect(client.getState().connection).toBe('idle');
    // A QLC deployment accepts qlc_ addresses when it says so.
    const qlc = 'qlc_' + ADDRESS.slice(5);
    expect(checkAddress(qlc, ['qlc']).ok).toBe(true);
    await client.start(settings(broker.url, { address: qlc, addressPrefixes: ['qlc'] }));
    expect(connects).toBe(1);
  });

  it("takes the real server's client/ message, which carries only the counters that exist", async () => {
    const { pub, s } = await setup();
    await pub.publish(`client/${ADDRESS}`, `{"ondemand":1,"block_rewarded":"${root(4)}"}`);
    await waitFor('client message', () => s().lastClientMessage !== null);
    expect(s().lastClientMessage).toEqual({
      kind: 'stats',
      stats: { precache: 0, ondemand: 1, snapshot_precache: 0, snapshot_ondemand: 0, block_rewarded: root(4) },
    });
    expect(s().counters.rejected).toEqual({});
  });

  it('routes client/ messages by topic segment even when the address contains "work"', async () => {
    expect(WORK_ADDRESS).toContain('work');
    expect(checkAddress(WORK_ADDRESS).ok).toBe(true);
    const { pub, s } = await setup({ address: WORK_ADDRESS, work: 'ondemand' });
    const stats = { precache: 3, ondemand: 2, snapshot_precache: 0, snapshot_ondemand: 0, block_rewarded: root(1) };
    await pub.publish(`client/${WORK_ADDRESS}`, JSON.stringify(stats));
    await waitFor('client message', () => s().lastClientMessage !== null);
    expect(s().lastClientMessage).toEqual({ kind: 'stats', stats });
    await pub.publish(`client/${WORK_ADDRESS}`, JSON.stringify({ ...stats, ondemand: 3 }));
    await pub.publish(`client/${WORK_ADDRESS}`, JSON.stringify({ ...stats, ondemand: 3 })); // no increase
    await pub.publish(`client/${WORK_ADDRESS}`, JSON.stringify({ error: `Work accepted but account ${WORK_ADDRESS} is invalid` }));
    await waitFor('error message', () => s().lastClientMessage?.kind === 'error');
    // Two notices raised the address's total; neither names a result this worker published.
    expect(s().counters.addressAccepted).toBe(2);
    expect(s().counters.accepted).toBe(0);
    expect(s().counters.received).toBe(0);
    expect(s().counters.rejected).toEqual({});
    // Only ondemand was chosen: precache work never arrives.
    await pub.publish('work/precache', `${root(2)},${EASY}`);
    await pub.publish('work/ondemand', `${root(3)},${EASY}`);
    const r = await waitFor('result', () => resultFor(pub.results, root(3)));
    expect(r.payload.split(',')[2]).toBe(WORK_ADDRESS);
    expect(resultFor(pub.results, root(2))).toBeUndefined();
    expect(s().counters.received).toBe(1);
  });

  it('stops cleanly: cancels the job in flight and closes the connection', async () => {
    const { broker, pub, client, s } = await setup();
    const states: ClientState[] = [];
    client.subscribe((st) => states.push(st));
    await pub.publish('work/ondemand', `${root(1, '7')},${HARD}`);
    await waitFor('in flight', () => s().current !== null);
    await client.stop();
    expect(s().connection).toBe('stopped');
    expect(s().current).toBeNull();
    expect(states.at(-1)?.connection).toBe('stopped');
    const status = await engine.status();
    expect(status.root).toBeNull();
    expect(pub.results).toEqual([]);
    // And it can start again with fresh counters.
    await client.start(settings(broker.url));
    await waitFor('online again', () => s().connection === 'online');
    expect(s().counters.received).toBe(0);
    await pub.publish('work/ondemand', `${root(2, '7')},${EASY}`);
    await waitFor('result after restart', () => resultFor(pub.results, root(2, '7')));
  });

  it('pauses: the search in flight stops, no work is taken, and it takes work again on resume', async () => {
    const { pub, client, s } = await setup();
    await pub.publish('work/ondemand', `${root(1, '8')},${HARD}`);
    await waitFor('in flight', () => s().current !== null);
    client.pause('battery');
    expect(s().paused).toBe('battery');
    expect(s().current).toBeNull();
    // The engine stops: its search for the job ends (cancelled, not found).
    await waitForAsync('engine idle', async () => (await engine.status()).root === null);
    expect(s().connection).toBe('online'); // still connected: heartbeats, statistics, notices
    // Work sent now is not taken, whether the unsubscribe reached the broker first or not.
    const received = s().counters.received;
    await pub.publish('work/ondemand', `${root(2, '8')},${EASY}`);
    const beats = s().lastHeartbeatAt;
    await pub.publish('heartbeat', '');
    await waitFor('a heartbeat after the work', () => s().lastHeartbeatAt !== beats);
    expect(s().counters.received).toBe(received);
    expect(s().queue).toEqual([]);
    expect(s().events.some((e) => /Paused \(on battery\): taking no work, 1 jobs dropped/.test(e.message))).toBe(true);

    client.pause(null);
    expect(s().paused).toBeNull();
    // The work topics are subscribed again: new work (sent until one arrives) is computed.
    let n = 10;
    await waitFor('a result after resuming', () => {
      void pub.publish('work/ondemand', `${root(n++, '8')},${EASY}`);
      return pub.results.length > 0;
    });
    expect(resultFor(pub.results, root(2, '8'))).toBeUndefined();
    expect(pub.results.some((r) => r.payload.startsWith(root(1, '8')))).toBe(false);
  });

  it('starts paused when paused before the start, and keeps the pause across a restart', async () => {
    const broker = await startBroker();
    cleanups.push(() => broker.close());
    const pub = await startPublisher(broker.url);
    cleanups.push(() => pub.close());
    const client = new DpowClient({ engine, reconnect: { initialMs: 100, maxMs: 400 } });
    cleanups.push(() => client.stop());
    client.pause('another-tab');
    await client.start(settings(broker.url));
    await waitFor('online', () => client.getState().connection === 'online');
    expect(client.getState().paused).toBe('another-tab');
    await pub.publish('work/ondemand', `${root(1, '9')},${EASY}`);
    await pub.publish('heartbeat', '');
    await waitFor('heartbeat', () => client.getState().lastHeartbeatAt !== null);
    expect(client.getState().counters.received).toBe(0);
    client.pause(null);
    let n = 10;
    await waitFor('a result once resumed', () => {
      void pub.publish('work/ondemand', `${root(n++, '9')},${EASY}`);
      return pub.results.length > 0;
    });
  });

  it('counts as accepted only its own credited results; the address total counts every notice for the address', async () => {
    // Two tabs paying one address, against the real dispatcher: one takes ondemand work only,
    // the other precache only, so each result is published by exactly one of them.
    const broker = await startBroker();
    cleanups.push(() => broker.close());
    const dispatcher = new Dispatcher({ brokerUrl: broker.url, username: 'server', password: 'server', store: new MemoryStore() });
    await dispatcher.start();
    cleanups.push(() => dispatcher.stop());
    const tabs: DpowClient[] = [];
    for (const work of ['ondemand', 'precache'] as const) {
      const tabEngine = await createNodeEngine({ backend: 'wasm', threads: 1 });
      cleanups.push(async () => tabEngine.dispose());
      const tab = new DpowClient({ engine: tabEngine });
      cleanups.push(() => tab.stop());
      await tab.start(settings(broker.url, { work }));
      tabs.push(tab);
    }
    await waitFor('both tabs hear the dispatcher', () => tabs.every((t) => t.getState().lastHeartbeatAt !== null));
    const [ondemandTab, precacheTab] = tabs.map((t) => () => t.getState());

    const answer = await dispatcher.requestWork({ hash: randomRoot(), difficulty: BigInt(`0x${EASY}`), workType: 'ondemand', timeoutMs: 20_000 });
    expect(answer.work).toMatch(/^[0-9a-f]{16}$/);
    for (let i = 0; i < 3; i++) await dispatcher.precache(randomRoot(), BigInt(`0x${EASY}`));
    await waitFor('four notices on both tabs', () => tabs.every((t) => t.getState().counters.addressAccepted === 4), 20_000);

    expect(ondemandTab().counters).toMatchObject({ published: 1, accepted: 1, addressAccepted: 4 });
    expect(precacheTab().counters).toMatchObject({ published: 3, accepted: 3, addressAccepted: 4 });
  });
});

