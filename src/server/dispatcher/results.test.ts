import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encodeAddress } from '../../dpow/address.ts';
import { toU64Hex, workValue } from '../../pow/work.ts';
import { breakChecksum } from '../../testkit/address.ts';
import { collectingLog, quietLogger } from '../../testkit/log.ts';
import { SessionRecorder } from '../../testkit/session-recorder.ts';
import { waitFor } from '../../testkit/wait.ts';
import { findBadWork, findWork, randomRoot } from '../../testkit/work.ts';
import type { Logger } from '../log.ts';
import { MemoryStore } from '../store/memory-store.ts';
import type { ClusterLink } from '../store/store.ts';
import type { WorkAnswer } from '../types.ts';
import { Containment } from './containment.ts';
import { newCounters, storeCaller } from './counters.ts';
import { JobTable } from './jobs.ts';
import { LookupBound } from './lookup-bound.ts';
import { PendingRecords } from './pending.ts';
import { ResultPipeline, type AcceptedResult, type RejectedResult } from './results.ts';
import { NetworkStatistics } from './statistics.ts';

const EASY = 0xff00000000000000n;
const randomAddress = () => encodeAddress(randomBytes(32));

/** A store whose acceptResult and getPending can be taken down, whose lookups are counted and can be held up. */
class FlakyStore extends MemoryStore {
  down = false;
  lookups = 0;
  /** While set, lookups wait for it. */
  stall?: Promise<void>;
  override async acceptResult(...args: Parameters<MemoryStore['acceptResult']>) {
    if (this.down) throw new Error('connection refused');
    return super.acceptResult(...args);
  }
  override async getPending(hash: string) {
    this.lookups++;
    await this.stall;
    if (this.down) throw new Error('connection refused');
    return super.getPending(hash);
  }
}

/** A store several dispatchers share, as Redis is: results for jobs not held here are looked up in it. */
class SharedStore extends FlakyStore {
  readonly cluster: ClusterLink = {
    publishAcceptance: async () => {},
    onAcceptance: async () => async () => {},
    holdLease: async () => 1,
    releaseLease: async () => {},
  };
}

/** The pipeline with the real parts around it, as the Dispatcher wires them; the broker side recorded. */
function setup(options: { publisher?: string; threshold?: number; shared?: boolean; lookups?: LookupBound; heldUnchecked?: number; log?: Logger } = {}) {
  const store = options.shared ? new SharedStore() : new FlakyStore();
  const session = new SessionRecorder();
  const counters = newCounters();
  const storeCall = storeCaller(counters, quietLogger);
  const jobs: JobTable = new JobTable({ counters, onEnded: (job, reason) => pending.ended(job, reason) });
  const pending = new PendingRecords({ store, storeCall, jobs, session, counters, log: quietLogger });
  const containment = new Containment({ abuse: { threshold: options.threshold ?? 20 }, session, log: quietLogger });
  const statistics = new NetworkStatistics({ store, session, storeCall, running: () => true });
  const accepted: AcceptedResult[] = [];
  const rejected: RejectedResult[] = [];
  const results = new ResultPipeline({
    store, jobs, session, containment, statistics, counters, storeCall, log: options.log ?? quietLogger,
    addressPrefixes: ['nano', 'xrb'],
    proofFloor: EASY,
    lookups: options.lookups ?? new LookupBound(),
    heldUnchecked: options.heldUnchecked,
    retryMs: 10,
    resultPublisher: options.publisher === undefined ? undefined : () => options.publisher,
    onAccepted: (r) => accepted.push(r),
    onRejected: (r) => rejected.push(r),
  });
  /** An ondemand job as requestWork makes it, with one waiter. */
  const request = (root = randomRoot(), service?: string) => {
    const job = jobs.create(root, EASY, 'ondemand', Date.now() + 60_000);
    pending.save(job);
    pending.publish(job, 'ondemand');
    const answer: { value?: WorkAnswer } = {};
    void jobs.wait(job, { hash: root, service }, 60_000).then((a) => (answer.value = a));
    return { root, job, answer };
  };
  const receive = (topic: string, payload: string) => results.receive(topic, Buffer.from(payload));
  return { store, session, counters, jobs, results, accepted, rejected, request, receive };
}

describe('ResultPipeline', () => {
  it('walks a valid result to the answer: store claim, waiter, cancel, credit notice, accepted event', async () => {
    const h = setup();
    await h.store.addService({ user: 'wallet', apiKeyHash: 'x', display: 'W', website: 'w', public: true, precache: 0, ondemand: 0, rateLimit: 0, createdAt: 0 });
    const { root, answer } = h.request(randomRoot(), 'wallet');
    const address = randomAddress();
    const work = findWork(root, EASY);
    h.receive('result/ondemand', `${root.toLowerCase()},${work},${address}`);
    await waitFor('the accepted result', () => h.accepted.length === 1);

    const value = toU64Hex(workValue(root, work));
    expect(answer.value).toEqual({ hash: root, work, value, cached: false });
    expect(h.accepted[0]).toMatchObject({ hash: root, work, value, difficulty: toU64Hex(EASY), workType: 'ondemand', address, addressValid: true, answered: 1 });
    expect(h.session.cancels).toEqual([{ workType: 'ondemand', hash: root }]);
    expect(h.session.clients).toEqual([
      { address, message: { kind: 'stats', stats: { precache: 0, ondemand: 1, snapshot_precache: 0, snapshot_ondemand: 0, block_rewarded: root } } },
    ]);
    expect(await h.store.getClient(address)).toMatchObject({ ondemand: 1 });
    expect(await h.store.getService('wallet')).toMatchObject({ ondemand: 1 });
    expect(await h.store.getPending(root)).toBeUndefined();
    expect(h.counters.results.accepted).toBe(1);
    expect(h.jobs.has(root.toLowerCase())).toBe(false);

    // A late copy is a duplicate, not an unknown hash.
    h.receive('result/ondemand', `${root},${work},${address}`);
    expect(h.rejected.map((r) => r.outcome)).toEqual(['duplicate']);
  });

  it('refuses what is wrong, each by its reason, and credits no invalid payout address', async () => {
    const h = setup();
    const { root } = h.request();
    const address = randomAddress();
    h.receive('result/ondemand', 'junk');
    h.receive('result/other', `${root},${findWork(root, EASY)},${address}`);
    h.receive('result/ondemand', `${randomRoot()},${findWork(root, EASY)},${address}`);
    h.receive('result/ondemand', `${root},${findBadWork(root, EASY)},${address}`);
    await waitFor('four refusals', () => h.rejected.length === 4);
    expect(h.rejected.map((r) => r.outcome)).toEqual(['malformed', 'malformed', 'unknown-hash', 'invalid-work']);
    expect(h.counters.malformed).toEqual({ 'bad-field-count': 1, 'bad-topic': 1 });

    const bad = breakChecksum(address);
    h.receive('result/ondemand', `${root},${findWork(root, EASY)},${bad}`);
    await waitFor('the accept', () => h.accepted.length === 1);
    expect(h.accepted[0].addressValid).toBe(false);
    expect(h.counters.invalidAddress).toBe(1);
    expect(h.session.clients).toEqual([{ address: bad, message: { kind: 'error', error: `Work accepted but account ${bad} is invalid` } }]);
    expect(await h.store.getClient(bad)).toBeUndefined();
  });

  it('holds a valid result while the store is down: no answer, no credit, a second copy is a duplicate, then settles', async () => {
    const h = setup();
    const { root, answer } = h.request();
    const address = randomAddress();
    const work = findWork(root, EASY);
    h.store.down = true;
    h.receive('result/ondemand', `${root},${work},${address}`);
    await waitFor('a few retries', () => h.counters.deferred.retried >= 2);
    expect(h.counters.deferred).toMatchObject({ total: 1, held: 1 });
    expect(answer.value).toBeUndefined();
    expect(h.session.clients).toEqual([]);
    h.receive('result/ondemand', `${root},${work},${address}`);
    expect(h.rejected.map((r) => r.outcome)).toEqual(['duplicate']);

    h.store.down = false;
    await waitFor('the answer', () => answer.value !== undefined);
    expect(answer.value).toMatchObject({ work });
    expect(h.counters.deferred.held).toBe(0);
    expect(await h.store.getClient(address)).toMatchObject({ ondemand: 1 });
    expect(h.results.held).toBe(0);
  });

  it('answers with the winning work when another result won the claim first', async () => {
    const h = setup();
    const { root, answer } = h.request();
    // Another dispatcher's result got to the store first.
    const winner = findWork(root, EASY);
    await h.store.acceptResult({ hash: root, work: winner, value: workValue(root, winner), workType: 'ondemand', services: [] });
    h.receive('result/ondemand', `${root},${findWork(root, EASY)},${randomAddress()}`);
    await waitFor('the answer', () => answer.value !== undefined);
    expect(answer.value).toMatchObject({ work: winner });
    expect(h.rejected.map((r) => r.outcome)).toEqual(['duplicate']);
    // The winner cancels and notifies; this one does neither.
    expect(h.session.cancels).toEqual([]);
    expect(h.session.clients).toEqual([]);

    const other = h.request();
    const elsewhere = findWork(other.root, EASY);
    h.results.acceptedElsewhere({ hash: other.root.toLowerCase(), work: elsewhere, value: '', workType: 'ondemand' });
    await waitFor('the other answer', () => other.answer.value !== undefined);
    expect(other.answer.value).toMatchObject({ hash: other.root, work: elsewhere });
    expect(h.session.cancels).toEqual([]);
  });

  it('ignores a connection past the abuse threshold before reading its results', async () => {
    const h = setup({ publisher: 'flooder', threshold: 3 });
    const { root, answer } = h.request();
    for (let i = 0; i < 3; i++) h.receive('result/ondemand', 'junk');
    h.receive('result/ondemand', `${root},${findWork(root, EASY)},${randomAddress()}`);
    await waitFor('four results', () => h.rejected.length === 4);
    expect(h.rejected.map((r) => r.outcome)).toEqual(['malformed', 'malformed', 'malformed', 'ignored']);
    expect(h.rejected[3].reason).toBe('connection "flooder" is contained');
    expect(h.counters.results.ignored).toBe(1);
    expect(answer.value).toBeUndefined();
  });

  it("takes a contained address's valid work (the publisher unknown): naming a victim only silences invalid results", async () => {
    const h = setup({ threshold: 3 });
    const victim = randomAddress();
    // Someone floods with the victim's public address: bad work for live jobs, junk for unknown hashes.
    const bait = h.request();
    for (let i = 0; i < 3; i++) h.receive('result/ondemand', `${bait.root},${findBadWork(bait.root, EASY)},${victim}`);
    await waitFor('the containment', () => h.counters.results['invalid-work'] === 3);
    h.receive('result/ondemand', `${bait.root},${findBadWork(bait.root, EASY)},${victim}`);
    h.receive('result/precache', `${randomRoot()},0000000000000000,${victim}`);
    expect(h.rejected.slice(3).map((r) => r.outcome)).toEqual(['ignored', 'ignored']);
    expect(h.rejected[3].reason).toBe(`address "${victim}" is contained`);

    // The victim's own valid results are credited all the same, for its jobs and the bait's.
    for (const job of [h.request(), bait]) {
      h.receive('result/ondemand', `${job.root},${findWork(job.root, EASY)},${victim}`);
      await waitFor('the answer', () => job.answer.value !== undefined);
    }
    expect((await h.store.getClient(victim))?.ondemand).toBe(2);
    // Work that proves itself for a hash nobody asked for is looked at (and refused) as ever.
    const stray = randomRoot();
    h.receive('result/precache', `${stray},${findWork(stray, EASY)},${victim}`);
    expect(h.counters.results).toMatchObject({ accepted: 2, 'invalid-work': 3, ignored: 2, 'unknown-hash': 1 });
  });
});

describe('ResultPipeline on a shared store: results for jobs not held here', () => {
  /** A clock the test steps: the lookup rate refills only when told. */
  const clock = () => {
    let t = 0;
    return { now: () => t, step: (ms: number) => void (t += ms) };
  };
  const junk = () => `${randomRoot()},0000000000000000,${randomAddress()}`;
  const settled = (h: ReturnType<typeof setup>) => h.accepted.length + h.rejected.length;

  it('looks up at most the burst, then one per token; past it drops them without a store call, and results for jobs held here pass', async () => {
    const time = clock();
    const h = setup({ shared: true, lookups: new LookupBound({ inFlight: 100, perSecond: 10, burst: 5, now: time.now }) });
    for (let i = 0; i < 50; i++) h.receive('result/precache', junk());
    await waitFor('50 results settled', () => settled(h) === 50);
    expect(h.store.lookups).toBe(5);
    expect(h.counters.results).toMatchObject({ 'unknown-hash': 5, dropped: 45 });
    expect(h.counters.dropped).toEqual({ 'lookup-bound': 45, 'hold-full': 0 });
    expect(h.rejected.find((r) => r.outcome === 'dropped')?.reason).toMatch(/^lookup-bound: .* is no job here and the lookup rate is spent$/);

    // A job held here needs no lookup: its result is taken however spent the bound is.
    const { root, answer } = h.request();
    h.receive('result/ondemand', `${root},${findWork(root, EASY)},${randomAddress()}`);
    await waitFor('the answer', () => answer.value !== undefined);

    // Another dispatcher's job, once the rate gives a token again (100 ms at 10/s).
    const elsewhere = randomRoot();
    await h.store.savePending({ hash: elsewhere, difficulty: EASY, workType: 'precache', expiresAt: Date.now() + 60_000, createdAt: Date.now() });
    const address = randomAddress();
    h.receive('result/precache', `${elsewhere},${findWork(elsewhere, EASY)},${address}`);
    await waitFor('the drop', () => h.counters.dropped['lookup-bound'] === 46);
    time.step(100);
    h.receive('result/precache', `${elsewhere},${findWork(elsewhere, EASY)},${address}`);
    await waitFor('the credit', () => h.accepted.length === 2);
    expect(h.accepted[1]).toMatchObject({ hash: elsewhere, address });
    expect(h.store.lookups).toBe(6);
  });

  it('keeps at most the bound of lookups in flight, and gives each place back when its answer comes', async () => {
    const h = setup({ shared: true, lookups: new LookupBound({ inFlight: 3, perSecond: 1000, burst: 1000 }) });
    let answer!: () => void;
    h.store.stall = new Promise((resolve) => (answer = resolve));
    for (let i = 0; i < 20; i++) h.receive('result/precache', junk());
    expect(h.store.lookups).toBe(3);
    expect(h.counters.dropped['lookup-bound']).toBe(17);
    expect(h.rejected.find((r) => r.outcome === 'dropped')?.reason).toMatch(/too many lookups are in flight$/);
    answer();
    await waitFor('the three answers', () => h.counters.results['unknown-hash'] === 3);
    for (let i = 0; i < 3; i++) h.receive('result/precache', junk());
    await waitFor('three more answers', () => h.counters.results['unknown-hash'] === 6);
    expect(h.store.lookups).toBe(6);
  });

  it('looks the same junk up once: repeated word for word it is answered from memory; other work for the hash is looked up', async () => {
    const h = setup({ shared: true });
    // Work that reaches the lowest difficulty (one cheap proof, then repeated): containment by
    // address does not spare its lookups, since such work may be for another dispatcher's job.
    const stray = randomRoot();
    const payload = `${stray},${findWork(stray, EASY)},${randomAddress()}`;
    h.receive('result/precache', payload);
    await waitFor('the first answer', () => h.counters.results['unknown-hash'] === 1);
    for (let i = 0; i < 1000; i++) h.receive('result/precache', payload);
    expect(h.counters.results['unknown-hash']).toBe(1001);
    expect(h.store.lookups).toBe(1);
    expect(h.rejected.at(-1)?.reason).toMatch(/\(this very result was looked up lately\)$/);
    const [, , address] = payload.split(',');
    h.receive('result/precache', `${stray},${findWork(stray, EASY)},${address}`);
    await waitFor('the second answer', () => h.counters.results['unknown-hash'] === 1002);
    expect(h.store.lookups).toBe(2);
  });

  it('while the store is down, holds at most its share of results not yet looked up, lets the oldest go, and logs a few lines', async () => {
    const log = collectingLog();
    const h = setup({ shared: true, heldUnchecked: 10, log, lookups: new LookupBound({ inFlight: 1000, burst: 1000 }) });
    h.store.down = true;
    // A valid result for a job held here: its work checked, it is never let go for junk.
    const { root, answer } = h.request();
    const work = findWork(root, EASY);
    h.receive('result/ondemand', `${root},${work},${randomAddress()}`);
    await waitFor('the held result', () => h.results.held === 1);
    for (let i = 0; i < 300; i++) h.receive('result/precache', junk());
    await waitFor('300 junk results held or let go', () => h.counters.deferred.total === 301 && h.results.held === 11);
    expect(h.counters.dropped).toEqual({ 'lookup-bound': 0, 'hold-full': 290 });
    expect(h.counters.results.dropped).toBe(290);
    // One line when each kind's 10 s opens (held, let go); the retry rounds' own lines are one a round.
    expect(log.lines.filter((l) => !l.includes('store still failing'))).toEqual([
      expect.stringMatching(/^error dispatcher: store: connection refused; holding result .* \(1 held\), not answered until the store takes it$/),
      expect.stringMatching(/^warn dispatcher: dropped result on "result\/precache" \(hold-full\): store unavailable; let go of .*, the oldest held result not yet looked up$/),
    ]);

    h.store.down = false;
    await waitFor('the answer', () => answer.value !== undefined);
    await waitFor('the junk refused', () => h.counters.results['unknown-hash'] === 10);
    expect(h.results.held).toBe(0);
    h.results.stop();
    expect(log.lines).toContainEqual(expect.stringMatching(/^error dispatcher: holding result: 300 more in 10 s, not logged one by one; the last: /));
  });
});
