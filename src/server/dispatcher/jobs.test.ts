import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DispatchError } from '../types.ts';
import { newCounters } from './counters.ts';
import { JobTable, type DropReason, type Job } from './jobs.ts';

const ROOT = 'AB'.repeat(32);
const EASY = 0xff00000000000000n;

function setup() {
  const counters = newCounters();
  const ended: Array<{ hash: string; reason: DropReason }> = [];
  const jobs = new JobTable({ counters, onEnded: (job: Job, reason) => ended.push({ hash: job.hash, reason }) });
  return { jobs, counters, ended };
}

/** A promise's outcome once it settles, without an unhandled rejection meanwhile. */
function settled<T>(promise: Promise<T>) {
  const state: { value?: T; error?: unknown; done: boolean } = { done: false };
  promise.then(
    (value) => Object.assign(state, { value, done: true }),
    (error: unknown) => Object.assign(state, { error, done: true }),
  );
  return state;
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('JobTable', () => {
  it('keeps one job per hash whatever its case, and answers every waiter with the hash as each gave it', async () => {
    const { jobs, counters, ended } = setup();
    const job = jobs.create(ROOT, EASY, 'ondemand', Date.now() + 10_000);
    expect(jobs.get(ROOT.toLowerCase())).toBe(job);
    const upper = settled(jobs.wait(job, { hash: ROOT, service: 'wallet' }, 5000));
    const lower = settled(jobs.wait(job, { hash: ROOT.toLowerCase() }, 5000));
    expect(jobs.services(job)).toEqual(['wallet']);
    expect(jobs.pending()).toEqual([{ hash: ROOT, difficulty: 'ff00000000000000', workType: 'ondemand', expiresAt: job.expiresAt, waiters: 2 }]);

    expect(jobs.answer(job, '00000000000000aa', 0xff80000000000000n)).toBe(2);
    expect(jobs.drop(job, 'accepted')).toBe(true);
    await vi.advanceTimersByTimeAsync(0);
    expect(upper.value).toEqual({ hash: ROOT, work: '00000000000000aa', value: 'ff80000000000000', cached: false });
    expect(lower.value).toMatchObject({ hash: ROOT.toLowerCase() });
    expect(counters.requests.answered).toBe(2);
    expect(ended).toEqual([{ hash: ROOT, reason: 'accepted' }]);
    // Ends once.
    expect(jobs.drop(job, 'expired')).toBe(false);
    expect(jobs.live(job.key, job)).toBeUndefined();
    expect(counters.jobs.ondemand).toEqual({ published: 0, expired: 0, cancelled: 0 });
  });

  it('times a waiter out; the last one to give up on an ondemand job ends it', async () => {
    const { jobs, counters, ended } = setup();
    const job = jobs.create(ROOT, EASY, 'ondemand', Date.now() + 60_000);
    const short = settled(jobs.wait(job, { hash: ROOT }, 1000));
    const long = settled(jobs.wait(job, { hash: ROOT }, 3000));
    await vi.advanceTimersByTimeAsync(1000);
    expect(short.error).toBeInstanceOf(DispatchError);
    expect((short.error as DispatchError).code).toBe('timeout');
    expect(ended).toEqual([]);
    await vi.advanceTimersByTimeAsync(2000);
    expect((long.error as DispatchError).code).toBe('timeout');
    expect(ended).toEqual([{ hash: ROOT, reason: 'timeout' }]);
    expect(counters.requests.timeout).toBe(2);
    expect(counters.jobs.ondemand.expired).toBe(1);
    expect(jobs.has(job.key)).toBe(false);
  });

  it('expires a job at its expiry, later when extended, and counts a precache expiry', async () => {
    const { jobs, counters, ended } = setup();
    const job = jobs.create(ROOT, EASY, 'precache', Date.now() + 1000);
    jobs.extend(job, Date.now() + 500); // never earlier
    jobs.extend(job, Date.now() + 2000);
    await vi.advanceTimersByTimeAsync(1999);
    expect(ended).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(ended).toEqual([{ hash: ROOT, reason: 'expired' }]);
    expect(counters.precache.expired).toBe(1);
    expect(counters.jobs.precache.expired).toBe(1);
  });

  it('refuses waiters of a withdrawn job with "cancelled", and of a stopping dispatcher with "shutting-down"', async () => {
    const { jobs, counters, ended } = setup();
    const withdrawn = jobs.create(ROOT, EASY, 'ondemand', Date.now() + 10_000);
    const waiting = settled(jobs.wait(withdrawn, { hash: ROOT }, 5000));
    jobs.drop(withdrawn, 'withdrawn');
    await vi.advanceTimersByTimeAsync(0);
    expect((waiting.error as DispatchError).code).toBe('cancelled');
    expect(counters.requests.cancelled).toBe(1);
    expect(counters.jobs.ondemand.cancelled).toBe(1);

    const other = jobs.create('CD'.repeat(32), EASY, 'ondemand', Date.now() + 10_000);
    const stopping = settled(jobs.wait(other, { hash: other.hash }, 5000));
    jobs.clear();
    await vi.advanceTimersByTimeAsync(10_000);
    expect((stopping.error as DispatchError).code).toBe('shutting-down');
    expect(jobs.pending()).toEqual([]);
    // clear() ends nothing: the store keeps the records for a restart.
    expect(ended).toEqual([{ hash: ROOT, reason: 'withdrawn' }]);
  });

  it("cancels only the requester's own waiters; the job ends when nobody waits any more", async () => {
    const { jobs, counters, ended } = setup();
    const job = jobs.create(ROOT, EASY, 'ondemand', Date.now() + 10_000);
    const node = settled(jobs.wait(job, { hash: ROOT, requester: 'rpc' }, 5000));
    const wallet = settled(jobs.wait(job, { hash: ROOT, service: 'wallet', requester: 'service:wallet' }, 5000));
    const anonymous = settled(jobs.wait(job, { hash: ROOT }, 5000)); // no requester: no cancel reaches it
    // Another service's cancel, or a second one for the same requester, touches nothing.
    expect(jobs.cancel(job, 'service:thief')).toBe(0);
    expect(jobs.cancel(job, 'rpc')).toBe(1);
    expect(jobs.cancel(job, 'rpc')).toBe(0);
    await vi.advanceTimersByTimeAsync(0);
    expect((node.error as DispatchError).code).toBe('cancelled');
    expect(wallet.done || anonymous.done).toBe(false);
    expect(ended).toEqual([]);
    expect(jobs.services(job)).toEqual(['wallet']);

    // The last requester's cancel ends the job (its cancel/<type> goes out).
    const other = jobs.create('CD'.repeat(32), EASY, 'ondemand', Date.now() + 10_000);
    const last = settled(jobs.wait(other, { hash: other.hash, requester: 'service:wallet' }, 5000));
    expect(jobs.cancel(other, 'service:wallet')).toBe(1);
    await vi.advanceTimersByTimeAsync(0);
    expect((last.error as DispatchError).code).toBe('cancelled');
    expect(ended).toEqual([{ hash: other.hash, reason: 'cancelled' }]);
    expect(counters.requests.cancelled).toBe(2);
    expect(counters.jobs.ondemand.cancelled).toBe(1);
    jobs.clear();
  });

  it('tells a replaced job from the live one', () => {
    const { jobs } = setup();
    const first = jobs.create(ROOT, EASY, 'precache', Date.now() + 1000);
    jobs.drop(first, 'withdrawn');
    const second = jobs.create(ROOT, EASY, 'precache', Date.now() + 1000);
    expect(jobs.live(second.key, first)).toBeUndefined();
    expect(jobs.live(second.key, second)).toBe(second);
    expect(jobs.live(second.key)).toBe(second);
    jobs.clear();
  });
});
