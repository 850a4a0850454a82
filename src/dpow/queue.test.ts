import { describe, expect, it } from 'vitest';
import { WorkQueue, type Job } from './queue.ts';
import { difficultyPolicy } from '../pow/difficulty.ts';
import { THRESHOLDS, fromMultiplier } from '../pow/work.ts';

const hash = (n: number, c = 'a') => n.toString(16).padStart(4, '0') + c.repeat(60);
const LOW = 0xfff0000000000000n;

function clock(start = 1_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

function drain(q: WorkQueue): Job[] {
  const out: Job[] = [];
  for (let r = q.next(); r.job; r = q.next()) {
    out.push(r.job);
    q.finish(r.job);
  }
  return out;
}

describe('WorkQueue priority', () => {
  it('runs every ondemand job before any precache job, FIFO within a type', () => {
    const q = new WorkQueue();
    q.add(hash(1), LOW, 'precache');
    q.add(hash(2), LOW, 'ondemand');
    q.add(hash(3), LOW, 'precache');
    q.add(hash(4), LOW, 'ondemand');
    expect(q.snapshot().map((j) => j.hash)).toEqual([hash(2), hash(4), hash(1), hash(3)]);
    expect(drain(q).map((j) => [j.hash, j.workType])).toEqual([
      [hash(2), 'ondemand'],
      [hash(4), 'ondemand'],
      [hash(1), 'precache'],
      [hash(3), 'precache'],
    ]);
  });

  it('keeps the hash exactly as it arrived and records difficulty text and multiplier', () => {
    const q = new WorkQueue();
    const h = 'BFEB8AA91D346E6EFBB41D11FD247E48E0BC0DBC183DDEB9F26F3A98AA17522F';
    const r = q.add(h, THRESHOLDS.nanoSend, 'ondemand');
    expect(r.ok).toBe(true);
    const { job } = q.next();
    expect(job?.hash).toBe(h);
    expect(job?.difficulty).toBe('fffffff800000000');
    expect(job?.multiplier).toBeCloseTo(1, 10);
  });
});

describe('WorkQueue dedupe', () => {
  it('drops a duplicate that is queued, in any case', () => {
    const q = new WorkQueue();
    expect(q.add(hash(1, 'a'), LOW, 'precache').ok).toBe(true);
    expect(q.add(hash(1, 'A'), LOW, 'precache')).toMatchObject({ ok: false, code: 'duplicate' });
    expect(q.size).toBe(1);
  });

  it('drops a duplicate of the job in flight and of recently finished jobs', () => {
    const q = new WorkQueue();
    q.add(hash(1), LOW, 'ondemand');
    const { job } = q.next();
    expect(q.add(hash(1, 'A'), LOW, 'ondemand')).toMatchObject({ ok: false, code: 'duplicate' });
    q.finish(job!);
    expect(q.add(hash(1), LOW, 'precache')).toMatchObject({ ok: false, code: 'duplicate' });
    expect(q.add(hash(1, 'A'), LOW, 'ondemand')).toMatchObject({ ok: false, code: 'duplicate' });
    expect(q.isFinished(hash(1, 'A'))).toBe(true);
  });

  it('forgets the oldest finished hashes beyond its memory', () => {
    const q = new WorkQueue({ remember: 2 });
    for (const n of [1, 2, 3]) q.add(hash(n), LOW, 'precache');
    drain(q);
    expect(q.add(hash(1), LOW, 'precache').ok).toBe(true);
    expect(q.add(hash(3), LOW, 'precache')).toMatchObject({ code: 'duplicate' });
  });

  it('accepts the same hash again at a higher difficulty, and promotes precache to ondemand', () => {
    const q = new WorkQueue();
    q.add(hash(1), LOW, 'precache');
    q.add(hash(2), LOW, 'precache');
    const up = q.add(hash(1), THRESHOLDS.nanoReceive, 'precache');
    expect(up).toMatchObject({ ok: true, updated: true });
    const promoted = q.add(hash(2), LOW, 'ondemand');
    expect(promoted).toMatchObject({ ok: true, updated: true });
    expect(q.snapshot()).toMatchObject([
      { hash: hash(2), workType: 'ondemand' },
      { hash: hash(1), workType: 'precache', difficulty: 'fffffe0000000000' },
    ]);
    const first = drain(q);
    expect(first).toHaveLength(2);
    // Finished at the receive threshold: a send-threshold request for it is new work.
    expect(q.add(hash(1), THRESHOLDS.nanoSend, 'ondemand').ok).toBe(true);
  });
});

describe('WorkQueue cancel', () => {
  it('drops a queued hash (any case) and remembers it', () => {
    const q = new WorkQueue();
    q.add(hash(1, 'a'), LOW, 'precache');
    const out = q.cancel(hash(1, 'A'));
    expect(out.queued?.hash).toBe(hash(1, 'a'));
    expect(out.inFlight).toBeNull();
    expect(q.size).toBe(0);
    expect(q.add(hash(1), LOW, 'precache')).toMatchObject({ code: 'duplicate' });
  });

  it('reports a hash that is in flight', () => {
    const q = new WorkQueue();
    q.add(hash(1), LOW, 'ondemand');
    const { job } = q.next();
    const out = q.cancel(hash(1).toUpperCase());
    expect(out.queued).toBeNull();
    expect(out.inFlight).toBe(job);
  });

  it('reports nothing for an unknown hash', () => {
    expect(new WorkQueue().cancel(hash(9))).toEqual({ queued: null, inFlight: null });
  });
});

describe('WorkQueue requeue', () => {
  it('puts a preempted job back at the head of its lane, not remembered as finished', () => {
    const q = new WorkQueue();
    q.add(hash(1), LOW, 'precache');
    q.add(hash(2), LOW, 'precache');
    const { job } = q.next();
    q.add(hash(3), LOW, 'ondemand');
    q.requeue(job!);
    expect(q.isFinished(hash(1))).toBe(false);
    expect(q.snapshot().map((j) => j.hash)).toEqual([hash(3), hash(1), hash(2)]);
    expect(q.add(hash(1), LOW, 'precache')).toMatchObject({ code: 'duplicate' });
  });

  it('does not requeue a job that was cancelled meanwhile', () => {
    const q = new WorkQueue();
    q.add(hash(1), LOW, 'precache');
    const { job } = q.next();
    q.cancel(hash(1));
    q.requeue(job!);
    expect(q.size).toBe(0);
  });
});

describe('WorkQueue bound', () => {
  it('drops the oldest precache job when full, and counts it', () => {
    const q = new WorkQueue({ limit: 3 });
    q.add(hash(1), LOW, 'precache');
    q.add(hash(2), LOW, 'ondemand');
    q.add(hash(3), LOW, 'precache');
    const r = q.add(hash(4), LOW, 'precache');
    expect(r).toMatchObject({ ok: true, dropped: { hash: hash(1) } });
    expect(q.counters.dropped).toBe(1);
    expect(q.snapshot().map((j) => j.hash)).toEqual([hash(2), hash(3), hash(4)]);
    const r2 = q.add(hash(5), LOW, 'ondemand');
    expect(r2).toMatchObject({ ok: true, dropped: { hash: hash(3) } });
    expect(q.counters.dropped).toBe(2);
  });

  it('refuses precache when full of ondemand; a new ondemand drops the oldest ondemand', () => {
    const q = new WorkQueue({ limit: 2 });
    q.add(hash(1), LOW, 'ondemand');
    q.add(hash(2), LOW, 'ondemand');
    expect(q.add(hash(3), LOW, 'precache')).toMatchObject({ ok: false, code: 'queue-full' });
    expect(q.add(hash(4), LOW, 'ondemand')).toMatchObject({ ok: true, dropped: { hash: hash(1) } });
    expect(q.snapshot().map((j) => j.hash)).toEqual([hash(2), hash(4)]);
  });

  it('does not count the job in flight against the bound', () => {
    const q = new WorkQueue({ limit: 1 });
    q.add(hash(1), LOW, 'precache');
    q.next();
    expect(q.add(hash(2), LOW, 'precache')).toMatchObject({ ok: true });
    expect(q.counters.dropped).toBe(0);
  });
});

describe('WorkQueue expiry', () => {
  it('skips and counts jobs past their time limit', () => {
    const c = clock();
    const q = new WorkQueue({ jobTimeoutMs: 1_000, now: c.now });
    q.add(hash(1), LOW, 'ondemand');
    c.advance(600);
    q.add(hash(2), LOW, 'ondemand');
    c.advance(500);
    const r = q.next();
    expect(r.expired.map((j) => j.hash)).toEqual([hash(1)]);
    expect(r.job?.hash).toBe(hash(2));
    expect(q.counters.expired).toBe(1);
    expect(q.isExpired(r.job!)).toBe(false);
    c.advance(500);
    expect(q.isExpired(r.job!)).toBe(true);
  });

  it('makes room from expired jobs before dropping live ones', () => {
    const c = clock();
    const q = new WorkQueue({ limit: 2, jobTimeoutMs: 1_000, now: c.now });
    q.add(hash(1), LOW, 'ondemand');
    c.advance(900);
    q.add(hash(2), LOW, 'precache');
    c.advance(200);
    expect(q.add(hash(3), LOW, 'precache')).toMatchObject({ ok: true });
    expect(q.counters).toEqual({ dropped: 0, expired: 1 });
    expect(q.snapshot().map((j) => j.hash)).toEqual([hash(2), hash(3)]);
  });
});

describe('WorkQueue ceiling', () => {
  it('refuses work above the maximum multiplier with difficulty-too-high', () => {
    const q = new WorkQueue({ policy: difficultyPolicy({ maxMultiplier: 8 }) });
    expect(q.add(hash(1), 0xffffffffffffffffn, 'ondemand')).toMatchObject({ ok: false, code: 'difficulty-too-high' });
    expect(q.add(hash(2), fromMultiplier(16), 'ondemand')).toMatchObject({ ok: false, code: 'difficulty-too-high' });
    expect(q.add(hash(3), fromMultiplier(8), 'ondemand')).toMatchObject({ ok: true });
    expect(q.size).toBe(1);
  });

  it('defaults to 64x the send threshold', () => {
    const q = new WorkQueue();
    expect(q.add(hash(1), fromMultiplier(64), 'ondemand').ok).toBe(true);
    expect(q.add(hash(2), fromMultiplier(65), 'ondemand').ok).toBe(false);
  });
});

describe('WorkQueue owns each job\'s life', () => {
  it('moves a job queued -> computing -> done', () => {
    const c = clock();
    const q = new WorkQueue({ now: c.now });
    const added = q.add(hash(1), LOW, 'ondemand');
    expect(added.ok && added.job.state).toBe('queued');
    c.advance(5);
    const { job } = q.next();
    expect(job).toMatchObject({ state: 'computing', startedAt: 1_005 });
    expect(q.computing).toBe(job);
    q.finish(job!);
    expect(job!.state).toBe('done');
    expect(q.computing).toBeNull();
  });

  it('cancels a job in flight at once: it leaves flight and a late finish does not revive it', () => {
    const q = new WorkQueue();
    q.add(hash(1), LOW, 'ondemand');
    const { job } = q.next();
    expect(q.cancel(hash(1)).inFlight).toBe(job);
    expect(job!.state).toBe('cancelled');
    expect(q.computing).toBeNull();
    q.finish(job!);
    expect(job!.state).toBe('cancelled');
    expect(q.add(hash(1), LOW, 'ondemand')).toMatchObject({ code: 'duplicate' });
  });

  it('sends a precache job in flight back to the head of its lane when ondemand work arrives', () => {
    const q = new WorkQueue();
    q.add(hash(1), LOW, 'precache');
    q.add(hash(2), LOW, 'precache');
    const { job } = q.next();
    const added = q.add(hash(3), LOW, 'ondemand');
    expect(added).toMatchObject({ ok: true, preempted: { hash: hash(1), state: 'queued' } });
    expect(q.computing).toBeNull();
    expect(q.snapshot().map((j) => j.hash)).toEqual([hash(3), hash(1), hash(2)]);
    // Found just as it was preempted: the work is still good, and the job is done, not queued.
    q.finish(job!);
    expect(job!.state).toBe('done');
    expect(q.snapshot().map((j) => j.hash)).toEqual([hash(3), hash(2)]);
  });

  it('does not preempt ondemand work, and precache work preempts nothing', () => {
    const q = new WorkQueue();
    q.add(hash(1), LOW, 'ondemand');
    q.next();
    expect(q.add(hash(2), LOW, 'ondemand')).not.toHaveProperty('preempted');
    const r = new WorkQueue();
    r.add(hash(1), LOW, 'precache');
    r.next();
    expect(r.add(hash(2), LOW, 'precache')).not.toHaveProperty('preempted');
  });

  it('expires a job in flight past its limit, counted once', () => {
    const c = clock();
    const q = new WorkQueue({ jobTimeoutMs: 1_000, now: c.now });
    q.add(hash(1), LOW, 'ondemand');
    const { job } = q.next();
    expect(q.expireInFlight()).toEqual([]);
    c.advance(1_000);
    expect(q.expireInFlight()).toEqual([job]);
    expect(q.expireInFlight()).toEqual([]);
    expect(job!.state).toBe('expired');
    expect(q.counters.expired).toBe(1);
  });

  it('drops queued and in-flight jobs when the worker stops', () => {
    const q = new WorkQueue();
    q.add(hash(1), LOW, 'ondemand');
    q.add(hash(2), LOW, 'ondemand');
    const { job } = q.next();
    const [queued] = q.clear();
    expect(q.abandon()).toEqual([job]);
    expect([job!.state, queued.state]).toEqual(['dropped', 'dropped']);
    expect(q.computing).toBeNull();
  });
});
