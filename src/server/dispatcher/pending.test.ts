import { describe, expect, it } from 'vitest';
import { cleanupsAfterEach } from '../../testkit/cleanups.ts';
import { quietLogger } from '../../testkit/log.ts';
import { redisForSuite, skipWithoutRedis } from '../../testkit/redis.ts';
import { SessionRecorder } from '../../testkit/session-recorder.ts';
import { waitForAsync } from '../../testkit/wait.ts';
import { randomRoot } from '../../testkit/work.ts';
import { MemoryStore } from '../store/memory-store.ts';
import { RedisStore } from '../store/redis-store.ts';
import type { DispatcherStore } from '../store/store.ts';
import { newCounters, storeCaller } from './counters.ts';
import { JobTable } from './jobs.ts';
import { PendingRecords } from './pending.ts';

const EASY = 0xff00000000000000n;

function setup(store: DispatcherStore = new MemoryStore()) {
  const session = new SessionRecorder();
  const counters = newCounters();
  const storeCall = storeCaller(counters, quietLogger);
  const jobs: JobTable = new JobTable({ counters, onEnded: (job, reason) => pending.ended(job, reason) });
  const pending = new PendingRecords({ store, storeCall, jobs, session, counters, log: quietLogger });
  return { store, session, counters, jobs, pending };
}

describe('PendingRecords', () => {
  it('keeps a live job in the store, and on its end removes it and cancels every type it went out on', async () => {
    const { store, session, jobs, pending } = setup();
    const root = randomRoot();
    const job = jobs.create(root, EASY, 'precache', Date.now() + 60_000, 'nano_acc');
    pending.save(job);
    pending.publish(job, 'precache');
    job.workType = 'ondemand';
    pending.save(job);
    pending.publish(job, 'ondemand');
    expect(session.work).toEqual([
      { hash: root, difficulty: EASY, workType: 'precache' },
      { hash: root, difficulty: EASY, workType: 'ondemand' },
    ]);
    expect(await store.getPending(root)).toMatchObject({ hash: root, workType: 'ondemand', account: 'nano_acc' });

    jobs.drop(job, 'withdrawn');
    expect(session.cancels).toEqual([
      { workType: 'precache', hash: root },
      { workType: 'ondemand', hash: root },
    ]);
    await waitForAsync('the record removed', async () => (await store.getPending(root)) === undefined);
  });

  it('cancels an accepted job without touching the store, and leaves a job answered elsewhere to the winner', async () => {
    const { store, session, jobs, pending } = setup();
    const accepted = jobs.create(randomRoot(), EASY, 'ondemand', Date.now() + 60_000);
    const answered = jobs.create(randomRoot(), EASY, 'ondemand', Date.now() + 60_000);
    for (const job of [accepted, answered]) {
      pending.save(job);
      pending.publish(job, 'ondemand');
    }
    jobs.drop(accepted, 'accepted');
    jobs.drop(answered, 'answered');
    expect(session.cancels).toEqual([{ workType: 'ondemand', hash: accepted.hash }]);
    // acceptResult removes the record in the same step as the credit; here nothing else does.
    expect((await store.listPending()).map((p) => p.hash).sort()).toEqual([accepted.hash, answered.hash].sort());
  });

  it('restores what the store holds: republishes the live, cancels and forgets the expired', async () => {
    const store = new MemoryStore();
    const live = randomRoot();
    const old = randomRoot();
    await store.savePending({ hash: live, difficulty: EASY, workType: 'precache', expiresAt: Date.now() + 60_000, createdAt: 1 });
    await store.savePending({ hash: old, difficulty: EASY, workType: 'ondemand', expiresAt: Date.now() - 1, createdAt: 1 });
    const { session, counters, jobs, pending } = setup(store);
    await pending.restore();
    expect(session.work).toEqual([{ hash: live, difficulty: EASY, workType: 'precache' }]);
    expect(session.cancels).toEqual([{ workType: 'ondemand', hash: old }]);
    expect(counters.restored).toEqual({ republished: 1, expired: 1 });
    expect(counters.jobs.ondemand.expired).toBe(1);
    expect(jobs.get(live.toLowerCase())).toMatchObject({ createdAt: 1 });
    expect((await store.listPending()).map((p) => p.hash)).toEqual([live]);
    jobs.clear();
  });

  it('expires records nobody here holds, whoever wrote them', async () => {
    const store = new MemoryStore();
    const { session, counters, jobs, pending } = setup(store);
    const mine = jobs.create(randomRoot(), EASY, 'precache', Date.now() + 60_000);
    const theirs = randomRoot();
    await store.savePending({ hash: mine.hash, difficulty: EASY, workType: 'precache', expiresAt: Date.now() - 1, createdAt: 1 });
    await store.savePending({ hash: theirs, difficulty: EASY, workType: 'precache', expiresAt: Date.now() - 1, createdAt: 1 });
    await pending.expire();
    expect(session.cancels).toEqual([{ workType: 'precache', hash: theirs }]);
    expect(counters.precache.expired).toBe(1);
    expect((await store.listPending()).map((p) => p.hash)).toEqual([mine.hash]);
    jobs.clear();
  });
});

describe.skipIf(skipWithoutRedis('pending.test.ts'))('PendingRecords on a shared store (real redis-server)', () => {
  const redis = redisForSuite();
  const cleanups = cleanupsAfterEach();

  it('keeps a job that timed out here while a requester elsewhere still waits, and cancels it once nobody does', async () => {
    const store = await RedisStore.open(redis().url(), { prefix: 'p:' });
    cleanups.push(() => store.close());
    const { session, jobs, pending } = setup(store);
    const root = randomRoot();
    const here = jobs.create(root, EASY, 'ondemand', Date.now() + 60_000);
    pending.publish(here, 'ondemand');
    // Another dispatcher's requester pushed the stored expiry out.
    await store.savePending({ hash: root, difficulty: EASY, workType: 'ondemand', expiresAt: Date.now() + 60_000, createdAt: 1 });
    jobs.drop(here, 'timeout');

    const again = jobs.create(root, EASY, 'ondemand', Date.now() + 60_000);
    pending.publish(again, 'ondemand');
    await store.savePending({ hash: root, difficulty: EASY, workType: 'precache', expiresAt: Date.now() - 1, createdAt: 1 });
    jobs.drop(again, 'timeout');
    await waitForAsync('the record removed', async () => (await store.getPending(root)) === undefined);
    // One store connection answers in order: the first job's decision (keep it) came before
    // this removal, so its cancels would be in this list too.
    expect(session.cancels).toEqual([
      { workType: 'ondemand', hash: root },
      { workType: 'precache', hash: root },
    ]);
  });
});
