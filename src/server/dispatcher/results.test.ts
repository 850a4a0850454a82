import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encodeAddress } from '../../dpow/address.ts';
import { toU64Hex, workValue } from '../../pow/work.ts';
import { breakChecksum } from '../../testkit/address.ts';
import { quietLogger } from '../../testkit/log.ts';
import { SessionRecorder } from '../../testkit/session-recorder.ts';
import { waitFor } from '../../testkit/wait.ts';
import { findBadWork, findWork, randomRoot } from '../../testkit/work.ts';
import { MemoryStore } from '../store/memory-store.ts';
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

/** A store whose acceptResult can be taken down. */
class FlakyStore extends MemoryStore {
  down = false;
  override async acceptResult(...args: Parameters<MemoryStore['acceptResult']>) {
    if (this.down) throw new Error('connection refused');
    return super.acceptResult(...args);
  }
}

/** The pipeline with the real parts around it, as the Dispatcher wires them; the broker side recorded. */
function setup(options: { publisher?: string; threshold?: number } = {}) {
  const store = new FlakyStore();
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
    store, jobs, session, containment, statistics, counters, storeCall, log: quietLogger,
    addressPrefixes: ['nano', 'xrb'],
    proofFloor: EASY,
    lookups: new LookupBound(),
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
