import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import mqtt, { type MqttClient } from 'mqtt';
import { encodeAddress } from '../../dpow/address.ts';
import { clientCodec, statisticsCodec, workCodec } from '../../dpow/codec.ts';
import { toU64Hex, workValue } from '../../pow/work.ts';
import { Broker } from '../broker.ts';
import { Dispatcher, type AcceptedResult, type DispatcherOptions } from './dispatcher.ts';
import { MemoryStore } from '../store/memory-store.ts';
import { DispatchError } from '../types.ts';
import { breakChecksum } from '../../testkit/address.ts';
import { cleanupsAfterEach, closeAfter } from '../../testkit/cleanups.ts';
import { connectAs, TEST_USERS } from '../../testkit/mqtt.ts';
import { sleep, waitFor } from '../../testkit/wait.ts';
import { findBadWork, findWork, randomRoot } from '../../testkit/work.ts';

const EASY = 0xff00000000000000n; // ~256 hashes
const USERS = TEST_USERS;

const cleanup = cleanupsAfterEach();

const randomAddress = () => encodeAddress(randomBytes(32));

interface Seen {
  topic: string;
  payload: string;
}

interface Harness {
  broker: Broker;
  store: MemoryStore;
  dispatcher: Dispatcher;
  /** Everything the dashboard saw, in order. */
  seen: Seen[];
  worker: MqttClient;
  on(topic: string): Seen[];
  accepted: AcceptedResult[];
  startDispatcher(options?: Partial<DispatcherOptions>): Promise<Dispatcher>;
}

async function harness(options: Partial<DispatcherOptions> = {}, store = new MemoryStore()): Promise<Harness> {
  const broker = closeAfter(cleanup, await Broker.start({ users: USERS, tcpPort: 0 }));
  const dash = await connectAs(broker.tcpUrl!, 'dashboard', cleanup);
  const seen: Seen[] = [];
  dash.on('message', (topic, payload) => seen.push({ topic, payload: payload.toString() }));
  await dash.subscribeAsync('#');
  const worker = await connectAs(broker.wsUrl, 'client', cleanup);
  const accepted: AcceptedResult[] = [];
  const h: Harness = {
    broker,
    store,
    seen,
    worker,
    accepted,
    dispatcher: undefined as unknown as Dispatcher,
    on: (topic) => seen.filter((m) => m.topic === topic),
    async startDispatcher(more = {}) {
      const d = new Dispatcher({
        brokerUrl: broker.tcpUrl!,
        username: 'server',
        password: 'server-secret',
        store,
        ...options,
        ...more,
      });
      d.on('accepted', (a: AcceptedResult) => accepted.push(a));
      await d.start();
      cleanup.push(() => d.stop());
      h.dispatcher = d;
      return d;
    },
  };
  await h.startDispatcher();
  return h;
}

describe('Dispatcher clocks', () => {
  it('publishes an empty heartbeat about every second', async () => {
    const h = await harness();
    await waitFor('three heartbeats', () => h.on('heartbeat').length >= 3, 5000);
    expect(h.on('heartbeat').every((m) => m.payload === '')).toBe(true);
  });

  it('publishes statistics at start from the store’s real counters', async () => {
    const store = new MemoryStore();
    const base = { apiKeyHash: 'x', rateLimit: 0, createdAt: 0 };
    await store.addService({ ...base, user: 'wallet', display: 'Some Wallet', website: 'wallet.example', public: true, precache: 7, ondemand: 3 });
    await store.addService({ ...base, user: 'p1', display: 'P1', website: '', public: false, precache: 2, ondemand: 5 });
    await store.addService({ ...base, user: 'p2', display: 'P2', website: '', public: false, precache: 1, ondemand: 1 });
    const a = randomAddress();
    await store.creditClient(a, 'precache', randomRoot());
    await store.creditClient(a, 'precache', randomRoot());
    await store.creditClient(a, 'ondemand', randomRoot());
    const h = await harness({}, store);
    await waitFor('statistics', () => h.on('statistics').length >= 1);
    const decoded = statisticsCodec.decode(h.on('statistics')[0].payload);
    expect(decoded.ok && decoded.value).toEqual({
      services: {
        public: [{ display: 'Some Wallet', website: 'wallet.example', precache: 7, ondemand: 3 }],
        private: { count: 2, precache: 3, ondemand: 6 },
      },
      work: { precache: 2, ondemand: 1 },
    });
  });
});

describe('Dispatcher ondemand', () => {
  it('publishes the job, accepts real work, answers, cancels and credits the worker', async () => {
    const h = await harness();
    const root = randomRoot().toLowerCase();
    const address = randomAddress();
    await h.store.addService({ user: 'svc', apiKeyHash: 'x', display: 'Svc', website: 'svc', public: true, precache: 0, ondemand: 0, rateLimit: 0, createdAt: 0 });
    const answer = h.dispatcher.requestWork({ hash: root, difficulty: EASY, workType: 'ondemand', timeoutMs: 5000, service: 'svc' });
    await waitFor('the ondemand job', () => h.on('work/ondemand').length === 1);
    const job = workCodec.decode(h.on('work/ondemand')[0].payload);
    expect(job.ok && job.value).toEqual({ hash: root, difficulty: EASY });

    const work = findWork(root, EASY);
    // The worker may echo the hash in another case; it still matches.
    await h.worker.publishAsync('result/ondemand', `${root.toUpperCase()},${work},${address}`);
    const got = await answer;
    expect(got).toEqual({ hash: root, work, value: toU64Hex(workValue(root, work)), cached: false });

    await waitFor('the credit notice and the cancel', () => h.on(`client/${address}`).length === 1 && h.on('cancel/ondemand').length === 1);
    expect(h.on('cancel/ondemand')[0].payload).toBe(root);
    const notice = clientCodec.decode(h.on(`client/${address}`)[0].payload);
    expect(notice.ok && notice.value).toEqual({
      kind: 'stats',
      stats: { precache: 0, ondemand: 1, snapshot_precache: 0, snapshot_ondemand: 0, block_rewarded: root },
    });
    expect((await h.store.getWork(root))?.work).toBe(work);
    expect((await h.store.getService('svc'))?.ondemand).toBe(1);
    expect(await h.store.getTotals()).toEqual({ precache: 0, ondemand: 1 });
    expect(h.dispatcher.counters.results.accepted).toBe(1);
    expect(h.dispatcher.pending).toEqual([]);

    // Asked again: answered from the store without a new job.
    const again = await h.dispatcher.requestWork({ hash: root, difficulty: EASY, workType: 'ondemand', timeoutMs: 1000 });
    expect(again).toMatchObject({ hash: root, work, cached: true });
    expect(h.on('work/ondemand')).toHaveLength(1);
  });

  it('forgets stored work past the retention: the leader prunes it, and a request computes it again', async () => {
    let now = Date.now();
    const store = new MemoryStore({ workRetentionMs: 60_000, now: () => now });
    const h = await harness({ pruneWorkMs: 50 }, store);
    const root = randomRoot().toLowerCase();
    const address = randomAddress();
    const first = h.dispatcher.requestWork({ hash: root, difficulty: EASY, workType: 'ondemand', timeoutMs: 5000 });
    await waitFor('the ondemand job', () => h.on('work/ondemand').length === 1);
    const work = findWork(root, EASY);
    await h.worker.publishAsync('result/ondemand', `${root},${work},${address}`);
    await expect(first).resolves.toMatchObject({ cached: false });
    await expect(h.dispatcher.requestWork({ hash: root, difficulty: EASY, workType: 'ondemand', timeoutMs: 1000 })).resolves.toMatchObject({ cached: true });

    now += 61_000; // past the retention
    await waitFor('the prune', () => h.dispatcher.counters.workPruned === 1);
    expect(await store.getWork(root)).toBeUndefined();
    const again = h.dispatcher.requestWork({ hash: root, difficulty: EASY, workType: 'ondemand', timeoutMs: 5000 });
    await waitFor('the job published again', () => h.on('work/ondemand').length === 2);
    await h.worker.publishAsync('result/ondemand', `${root},${work},${address}`);
    await expect(again).resolves.toMatchObject({ work, cached: false });
    // The credits earned before the prune stay: the volunteer did both jobs.
    expect((await store.getClient(address))?.ondemand).toBe(2);
  });

  it('counts invalid work, duplicates, unknown hashes and malformed payloads, and keeps running', async () => {
    const h = await harness();
    const root = randomRoot();
    const address = randomAddress();
    const answer = h.dispatcher.requestWork({ hash: root, difficulty: EASY, workType: 'ondemand', timeoutMs: 10_000 });
    await waitFor('the ondemand job', () => h.on('work/ondemand').length === 1);

    const malformed: Array<[string, string]> = [
      ['bad-field-count', `${root},0000000000000000`],
      ['bad-field-count', `${root},0000000000000000,${address},extra`],
      ['bad-hash', `${root.slice(2)},0000000000000000,${address}`],
      ['bad-hash', `${'zz'.repeat(32)},0000000000000000,${address}`],
      ['bad-work', `${root},12345,${address}`],
      ['bad-work', `${root},xyzxyzxyzxyzxyzx,${address}`],
      ['bad-address', `${root},0000000000000000,`],
    ];
    for (const [, payload] of malformed) await h.worker.publishAsync('result/ondemand', payload);
    await h.worker.publishAsync('result/ondemand', Buffer.from([0xff, 0xfe, 0x00]));
    await h.worker.publishAsync('result/precache', `${randomRoot()},${findWork(root, EASY)},${address}`); // unknown hash
    await h.worker.publishAsync('result/ondemand', `${root},${findBadWork(root, EASY)},${address}`); // invalid work
    await waitFor('invalid work', () => h.dispatcher.counters.results['invalid-work'] === 1, 5000);

    const work = findWork(root, EASY);
    await h.worker.publishAsync('result/ondemand', `${root},${work},${address}`);
    await expect(answer).resolves.toMatchObject({ work });
    const other = findWork(root, EASY);
    await h.worker.publishAsync('result/ondemand', `${root},${other},${randomAddress()}`); // late duplicate
    await waitFor('duplicate', () => h.dispatcher.counters.results.duplicate === 1, 5000);

    const c = h.dispatcher.counters;
    expect(c.results).toEqual({ ignored: 0, accepted: 1, 'invalid-work': 1, duplicate: 1, 'unknown-hash': 1, malformed: malformed.length + 1, dropped: 0 });
    expect(c.malformed).toEqual({ 'bad-field-count': 2, 'bad-hash': 2, 'bad-work': 2, 'bad-address': 1, 'bad-encoding': 1 });
    // Only the first valid result was credited.
    await waitFor('the credit notice', () => h.on(`client/${address}`).length === 1);
    expect((await h.store.listClients()).map((x) => x.address)).toEqual([address]);

    // Still working after all that.
    const root2 = randomRoot();
    const next = h.dispatcher.requestWork({ hash: root2, difficulty: EASY, workType: 'ondemand', timeoutMs: 5000 });
    await waitFor('the job published again', () => h.on('work/ondemand').length === 2);
    await h.worker.publishAsync('result/ondemand', `${root2},${findWork(root2, EASY)},${address}`);
    await expect(next).resolves.toMatchObject({ hash: root2, cached: false });
  });

  it('uses the work of an invalid payout address but answers with the error form and no credit', async () => {
    const h = await harness();
    const root = randomRoot();
    const good = randomAddress();
    const typo = breakChecksum(good);
    const answer = h.dispatcher.requestWork({ hash: root, difficulty: EASY, workType: 'ondemand', timeoutMs: 5000 });
    await waitFor('the ondemand job', () => h.on('work/ondemand').length === 1);
    const work = findWork(root, EASY);
    await h.worker.publishAsync('result/ondemand', `${root},${work},${typo}`);
    await expect(answer).resolves.toMatchObject({ work });
    await waitFor('the invalid-account notice', () => h.on(`client/${typo}`).length === 1);
    expect(JSON.parse(h.on(`client/${typo}`)[0].payload)).toEqual({ error: `Work accepted but account ${typo} is invalid` });
    expect(await h.store.listClients()).toEqual([]);
    expect(h.dispatcher.counters.invalidAddress).toBe(1);
    expect(h.accepted[0]).toMatchObject({ addressValid: false, address: typo });
  });

  it('shares one job among concurrent requests and republishes at a higher difficulty', async () => {
    const h = await harness();
    const root = randomRoot();
    const HARDER = 0xfff0000000000000n;
    const first = h.dispatcher.requestWork({ hash: root.toLowerCase(), difficulty: EASY, workType: 'ondemand', timeoutMs: 10_000 });
    const second = h.dispatcher.requestWork({ hash: root, difficulty: EASY, workType: 'ondemand', timeoutMs: 10_000 });
    await waitFor('the ondemand job', () => h.on('work/ondemand').length === 1);
    await sleep(50);
    expect(h.on('work/ondemand')).toHaveLength(1);
    const third = h.dispatcher.requestWork({ hash: root, difficulty: HARDER, workType: 'ondemand', timeoutMs: 10_000 });
    await waitFor('the job published again', () => h.on('work/ondemand').length === 2);
    expect(h.on('work/ondemand')[1].payload).toBe(`${root.toLowerCase()},fff0000000000000`);

    // Work good enough for the first difficulty only is not good enough any more.
    let weak: string;
    do weak = findWork(root, EASY);
    while (workValue(root, weak) >= HARDER);
    const address = randomAddress();
    await h.worker.publishAsync('result/ondemand', `${root},${weak},${address}`);
    await waitFor('the invalid-work count', () => h.dispatcher.counters.results['invalid-work'] === 1);

    const work = findWork(root, HARDER);
    await h.worker.publishAsync('result/ondemand', `${root},${work},${address}`);
    const answers = await Promise.all([first, second, third]);
    expect(answers.map((a) => a.hash)).toEqual([root.toLowerCase(), root, root]);
    expect(answers.every((a) => a.work === work)).toBe(true);
    expect(h.dispatcher.counters.requests).toMatchObject({ dispatched: 1, shared: 2, answered: 3 });
    await waitFor('the credit notice', () => h.on(`client/${address}`).length === 1);
    expect((await h.store.getClient(address))?.ondemand).toBe(1);
  });

  it('times out with DispatchError and publishes a cancel', async () => {
    const h = await harness();
    const root = randomRoot();
    const started = Date.now();
    const err = await h.dispatcher.requestWork({ hash: root, difficulty: EASY, workType: 'ondemand', timeoutMs: 300 }).catch((e) => e);
    expect(err).toBeInstanceOf(DispatchError);
    expect((err as DispatchError).code).toBe('timeout');
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    await waitFor('the ondemand cancel', () => h.on('cancel/ondemand').length === 1);
    expect(h.on('cancel/ondemand')[0].payload).toBe(root);
    expect(await h.store.listPending()).toEqual([]);
    // A result after the timeout is not for a pending hash.
    await h.worker.publishAsync('result/ondemand', `${root},${findWork(root, EASY)},${randomAddress()}`);
    await waitFor('the unknown-hash count', () => h.dispatcher.counters.results['unknown-hash'] === 1);
  });
});

describe('Dispatcher precache', () => {
  it('publishes once per hash, credits by its own record, not the result topic', async () => {
    const h = await harness();
    const root = randomRoot();
    await h.dispatcher.precache(root, EASY);
    await h.dispatcher.precache(root.toLowerCase(), EASY);
    await waitFor('the precache job', () => h.on('work/precache').length === 1);
    await sleep(50);
    expect(h.on('work/precache')).toHaveLength(1);
    expect((await h.store.listPending()).map((p) => p.workType)).toEqual(['precache']);
    const address = randomAddress();
    // A worker claiming it was ondemand work still gets precache credit.
    await h.worker.publishAsync('result/ondemand', `${root},${findWork(root, EASY)},${address}`);
    await waitFor('the cancel and the credit notice', () => h.on('cancel/precache').length === 1 && h.on(`client/${address}`).length === 1);
    expect(h.on('cancel/ondemand')).toEqual([]);
    expect(await h.store.getClient(address)).toMatchObject({ precache: 1, ondemand: 0 });
    expect(await h.store.getTotals()).toEqual({ precache: 1, ondemand: 0 });
    // A later ondemand request is answered from the precached work.
    const answer = await h.dispatcher.requestWork({ hash: root, difficulty: EASY, workType: 'ondemand', timeoutMs: 1000 });
    expect(answer.cached).toBe(true);
  });

  it('cancels a precache job when it expires', async () => {
    const h = await harness({ precacheTtlMs: 200 });
    const root = randomRoot();
    await h.dispatcher.precache(root, EASY);
    await waitFor('the precache cancel', () => h.on('cancel/precache').length === 1);
    expect(h.on('cancel/precache')[0].payload).toBe(root);
    expect(h.dispatcher.counters.precache.expired).toBe(1);
    expect(await h.store.listPending()).toEqual([]);
  });

  it('withdraws a job: cancel published, waiters told it was cancelled', async () => {
    const h = await harness();
    const pre = randomRoot();
    await h.dispatcher.precache(pre, EASY);
    expect(await h.dispatcher.withdraw(pre.toLowerCase())).toBe(true);
    await waitFor('the precache cancel', () => h.on('cancel/precache').length === 1);
    expect(h.on('cancel/precache')[0].payload).toBe(pre);
    expect(await h.dispatcher.withdraw(pre)).toBe(false);

    const od = randomRoot();
    const waiting = h.dispatcher.requestWork({ hash: od, difficulty: EASY, workType: 'ondemand', timeoutMs: 10_000 });
    await waitFor('the ondemand job', () => h.on('work/ondemand').length === 1);
    expect(await h.dispatcher.withdraw(od)).toBe(true);
    await expect(waiting).rejects.toMatchObject({ code: 'cancelled' });
    await waitFor('the ondemand cancel', () => h.on('cancel/ondemand').length === 1);
  });

  it("cancels a requester's own request only; the job goes on for the others and ends with the last", async () => {
    const h = await harness();
    const root = randomRoot();
    const ask = (requester?: 'rpc' | `service:${string}`, service?: string) =>
      h.dispatcher.requestWork({ hash: root, difficulty: EASY, workType: 'ondemand', timeoutMs: 10_000, requester, service });
    const node = ask('rpc');
    const wallet = ask('service:wallet', 'wallet');
    const exchange = ask('service:exchange', 'exchange');
    await waitFor('the ondemand job', () => h.on('work/ondemand').length >= 1);
    // Another service's cancel reaches nothing of the others'.
    expect(await h.dispatcher.cancel(root, 'service:thief')).toBe(0);
    expect(await h.dispatcher.cancel(root.toLowerCase(), 'rpc')).toBe(1);
    await expect(node).rejects.toMatchObject({ code: 'cancelled' });
    expect(await h.dispatcher.cancel(root, 'service:wallet')).toBe(1);
    await expect(wallet).rejects.toMatchObject({ code: 'cancelled' });
    expect(h.dispatcher.pending).toMatchObject([{ hash: root, waiters: 1 }]);
    expect(h.on('cancel/ondemand')).toEqual([]);

    // The one left is answered, alone.
    const work = findWork(root, EASY);
    await h.worker.publishAsync('result/ondemand', `${root},${work},${randomAddress()}`, { qos: 1 });
    expect((await exchange).work).toBe(work);
    await waitFor('the acceptance', () => h.accepted.length === 1);
    expect(h.accepted[0]).toMatchObject({ hash: root, answered: 1 });

    // A requester alone on its job ends it with its cancel: the workers are told to stop.
    const alone = randomRoot();
    const only = h.dispatcher.requestWork({ hash: alone, difficulty: EASY, workType: 'ondemand', timeoutMs: 10_000, requester: 'rpc' });
    await waitFor('its job', () => h.on('work/ondemand').some((m) => m.payload.startsWith(alone)));
    expect(await h.dispatcher.cancel(alone, 'rpc')).toBe(1);
    await expect(only).rejects.toMatchObject({ code: 'cancelled' });
    await waitFor('its cancel', () => h.on('cancel/ondemand').some((m) => m.payload === alone));
    expect(h.dispatcher.pending).toEqual([]);
    expect(h.dispatcher.counters.requests.cancelled).toBe(3);
    expect(h.dispatcher.counters.jobs.ondemand.cancelled).toBe(1);
  });

  it('tracks a valid account once, as nano_, and tells its listeners', async () => {
    const h = await harness();
    const heard: string[] = [];
    const stop = h.dispatcher.onTracked((a) => heard.push(a));
    const account = randomAddress();
    await h.dispatcher.track(account.replace('nano_', 'xrb_'));
    await h.dispatcher.track(account);
    await h.dispatcher.track('nano_1notanaddress');
    expect(heard).toEqual([account]);
    expect(await h.store.getTracked(account)).toMatchObject({ account, chain: account });
    stop();
    await h.dispatcher.track(randomAddress());
    expect(heard).toHaveLength(1);
  });

  it('turns a pending precache job into ondemand work when a service asks for it', async () => {
    const h = await harness();
    const root = randomRoot();
    await h.dispatcher.precache(root, EASY);
    const answer = h.dispatcher.requestWork({ hash: root, difficulty: EASY, workType: 'ondemand', timeoutMs: 5000 });
    await waitFor('the ondemand job', () => h.on('work/ondemand').length === 1);
    const address = randomAddress();
    await h.worker.publishAsync('result/precache', `${root},${findWork(root, EASY)},${address}`);
    await expect(answer).resolves.toMatchObject({ cached: false });
    // Workers that got it on either topic are told to stop.
    await waitFor('both cancels', () => h.on('cancel/precache').length === 1 && h.on('cancel/ondemand').length === 1);
  });
});

describe('Dispatcher restart', () => {
  it('republishes stored pending jobs and cancels the expired ones', async () => {
    const store = new MemoryStore();
    const live = randomRoot();
    const liveOd = randomRoot();
    const stale = randomRoot();
    const now = Date.now();
    await store.savePending({ hash: live, difficulty: EASY, workType: 'precache', expiresAt: now + 60_000, createdAt: now });
    await store.savePending({ hash: liveOd, difficulty: EASY, workType: 'ondemand', expiresAt: now + 60_000, createdAt: now });
    await store.savePending({ hash: stale, difficulty: EASY, workType: 'precache', expiresAt: now - 1, createdAt: now - 100_000 });
    const h = await harness({}, store);
    await waitFor('the ondemand job and the precache cancel', () => h.on('work/precache').length === 1 && h.on('work/ondemand').length === 1 && h.on('cancel/precache').length === 1);
    expect(h.on('work/precache')[0].payload).toBe(`${live},${toU64Hex(EASY)}`);
    expect(h.on('work/ondemand')[0].payload).toBe(`${liveOd},${toU64Hex(EASY)}`);
    expect(h.on('cancel/precache')[0].payload).toBe(stale);
    expect((await store.listPending()).map((p) => p.hash).sort()).toEqual([live, liveOd].sort());
    expect(h.dispatcher.counters.restored).toEqual({ republished: 2, expired: 1 });

    // The restored job is live: a result for it is accepted.
    const address = randomAddress();
    await h.worker.publishAsync('result/precache', `${live},${findWork(live, EASY)},${address}`);
    await waitFor('the accepted result', () => h.accepted.length === 1);
    expect(h.accepted[0]).toMatchObject({ hash: live, workType: 'precache', addressValid: true });
  });

  it('keeps pending jobs in the store across stop and start', async () => {
    const store = new MemoryStore();
    const h = await harness({}, store);
    const root = randomRoot();
    await h.dispatcher.precache(root, EASY);
    await waitFor('the precache job', () => h.on('work/precache').length === 1);
    await h.dispatcher.stop();
    expect((await store.listPending()).map((p) => p.hash)).toEqual([root]);
    await expect(h.dispatcher.precache(randomRoot(), EASY)).rejects.toMatchObject({ code: 'shutting-down' });
    await h.startDispatcher();
    await waitFor('the precache job published again', () => h.on('work/precache').length === 2);
    expect(h.on('work/precache').at(-1)!.payload).toBe(`${root},${toU64Hex(EASY)}`);
  });
});

describe('Dispatcher resilience', () => {
  it('holds a valid result while the store fails: no answer, no credit, until the store takes it', async () => {
    class FlakyStore extends MemoryStore {
      down = true;
      override async acceptResult(...args: Parameters<MemoryStore['acceptResult']>) {
        if (this.down) throw new Error('connection refused');
        return super.acceptResult(...args);
      }
    }
    const flaky = new FlakyStore();
    const h = await harness({ retryMs: 20 }, flaky);
    const root = randomRoot();
    const address = randomAddress();
    let answered = false;
    const answer = h.dispatcher.requestWork({ hash: root, difficulty: EASY, workType: 'ondemand', timeoutMs: 20_000 });
    void answer.then(() => (answered = true));
    await waitFor('the ondemand job', () => h.on('work/ondemand').length === 1);
    const work = findWork(root, EASY);
    await h.worker.publishAsync('result/ondemand', `${root},${work},${address}`);
    await waitFor('retries against the failing store', () => h.dispatcher.counters.storeErrors >= 3, 5000);
    expect(answered).toBe(false);
    expect(h.dispatcher.counters.deferred.held).toBe(1);
    expect(h.dispatcher.counters.results.accepted).toBe(0);
    expect(h.on(`client/${address}`)).toHaveLength(0);
    // A second copy of the result while the first is held is a duplicate, not a second claim.
    await h.worker.publishAsync('result/ondemand', `${root},${work},${address}`);
    await waitFor('the duplicate', () => h.dispatcher.counters.results.duplicate === 1);

    flaky.down = false;
    await expect(answer).resolves.toMatchObject({ work, cached: false });
    await waitFor('the client notice', () => h.on(`client/${address}`).length === 1, 5000);
    expect(h.dispatcher.counters.deferred).toMatchObject({ held: 0, total: 1 });
    expect(await flaky.getClient(address)).toMatchObject({ ondemand: 1 });
    expect(await flaky.getTotals()).toEqual({ precache: 0, ondemand: 1 });
    await waitFor('the cancel', () => h.on('cancel/ondemand').length === 1, 5000);
  });

  it('reconnects after the broker restarts and republishes what is still pending', async () => {
    const store = new MemoryStore();
    const first = await Broker.start({ users: USERS, tcpPort: 0 });
    const port = Number(new URL(first.tcpUrl!).port);
    const d = new Dispatcher({ brokerUrl: first.tcpUrl!, username: 'server', password: 'server-secret', store });
    await d.start();
    cleanup.push(() => d.stop());
    const root = randomRoot();
    await d.precache(root, EASY);
    await first.close();
    await waitFor('the disconnect', () => !d.connected, 5000);

    const second = closeAfter(cleanup, await Broker.start({ users: USERS, tcpPort: port }));
    const dash = await connectAs(second.tcpUrl!, 'dashboard', cleanup);
    const seen: Seen[] = [];
    dash.on('message', (topic, payload) => seen.push({ topic, payload: payload.toString() }));
    await dash.subscribeAsync('#');
    await waitFor('the republished job', () => seen.some((m) => m.topic === 'work/precache'), 10_000);
    expect(seen.find((m) => m.topic === 'work/precache')!.payload).toBe(`${root},${toU64Hex(EASY)}`);
    await waitFor('heartbeats again', () => seen.some((m) => m.topic === 'heartbeat'), 5000);
  });
});

describe('Dispatcher broker connection', () => {
  it('opens it through the injected connect, and start() fails with the reason a refusal gives', async () => {
    const broker = closeAfter(cleanup, await Broker.start({ users: USERS, tcpPort: 0 }));
    const opened: Array<{ url: string; username?: string; clientId?: string; protocolVersion?: number }> = [];
    const d = new Dispatcher({
      brokerUrl: broker.tcpUrl!,
      username: 'server',
      password: 'server-secret',
      store: new MemoryStore(),
      connect: (url, options) => {
        opened.push({ url, username: options.username, clientId: options.clientId, protocolVersion: options.protocolVersion });
        return mqtt.connect(url, options);
      },
    });
    await d.start();
    cleanup.push(() => d.stop());
    // An unguessable client id: 128 random bits, 23 characters as every MQTT 3.1.1 server takes.
    expect(opened).toEqual([{ url: broker.tcpUrl, username: 'server', clientId: expect.stringMatching(/^d[0-9A-Za-z]{22}$/), protocolVersion: 4 }]);
    expect(d.connected).toBe(true);

    // A connection the broker refuses (here: the connect function sends a wrong password).
    const refused = new Dispatcher({
      brokerUrl: broker.tcpUrl!,
      username: 'server',
      password: 'server-secret',
      store: new MemoryStore(),
      connect: (url, options) => mqtt.connect(url, { ...options, password: 'wrong' }),
    });
    await expect(refused.start()).rejects.toThrow(/^cannot connect to mqtt:\/\/.*: (Bad username or password|Not authorized)/);
    expect(refused.connected).toBe(false);
  });
});
