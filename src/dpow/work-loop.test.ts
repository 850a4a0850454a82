/**
 * The work loop on the real engine (WASM, one thread): every cancel, expiry and preemption is one
 * engine.cancel from the loop, decided by the queue's job state; results are checked first.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventLog } from './event-log.ts';
import type { Job } from './queue.ts';
import { WorkLoop, type EngineLike, type WorkLoopSettings } from './work-loop.ts';
import type { PowEngine } from '../pow/engine.ts';
import { validateWork } from '../pow/work.ts';
import { createNodeEngine } from '../pow-node/engine.ts';
import { cleanupsAfterEach } from '../testkit/cleanups.ts';
import { waitFor } from '../testkit/wait.ts';

const EASY = 0xfff0000000000000n; // ~4096 hashes
const HARD = 0xfffffff800000000n; // minutes on one thread: always stopped first
const root = (n: number, c = 'a') => n.toString(16).padStart(4, '0').toUpperCase() + c.repeat(60);

let engine: PowEngine;
beforeAll(async () => {
  engine = await createNodeEngine({ backend: 'wasm', threads: 1 });
});
afterAll(() => engine?.dispose());
const cleanups = cleanupsAfterEach();

/** The real engine, with every call the loop makes written down. */
function watched(inner: EngineLike = engine) {
  const calls = { generate: [] as [string, bigint][], cancel: [] as string[] };
  const api: EngineLike = {
    generate: (r, d, o) => {
      calls.generate.push([r, d]);
      return inner.generate(r, d, o);
    },
    cancel: (r) => {
      calls.cancel.push(r);
      return inner.cancel(r);
    },
    onStatus: (cb) => inner.onStatus(cb),
  };
  return { api, calls };
}

function startLoop(api: EngineLike, settings: Partial<WorkLoopSettings> = {}) {
  const log = new EventLog({ now: Date.now, onChange: () => undefined });
  const results: { job: Job; work: string }[] = [];
  const loop = new WorkLoop({ engine: api, events: log, now: Date.now, tickMs: 50, onResult: (job, work) => results.push({ job, work }), onChange: () => undefined });
  loop.start({ backend: 'wasm', threads: 1, ...settings });
  cleanups.push(() => loop.stop());
  const events = (event: string) => log.events().filter((e) => e.job?.event === event).map((e) => e.job!.hash);
  return { loop, log, results, events };
}

describe('WorkLoop', () => {
  it("logs the engine host's notices (a replaced worker) as engine warnings", async () => {
    let notify: ((message: string) => void) | undefined;
    const { api } = watched();
    const { loop, log, results } = startLoop({ ...api, onNotice: (callback) => (notify = callback) });
    expect(notify).toBeDefined();
    notify!('Engine worker replaced (1 of at most 2): it did not answer within 10 s');
    expect(log.events().filter((e) => e.kind === 'engine').map((e) => [e.level, e.message])).toEqual([
      ['warn', 'Engine worker replaced (1 of at most 2): it did not answer within 10 s'],
    ]);
    // The loop computes on as before.
    loop.offer('ondemand', { hash: root(40), difficulty: EASY });
    await waitFor('result', () => results[0]);
  });

  it('hands the engine the bigint difficulty and publishes only checked work', async () => {
    const { api, calls } = watched();
    const { loop, results } = startLoop(api);
    loop.offer('ondemand', { hash: root(1), difficulty: EASY });
    await waitFor('result', () => results[0]);
    expect(calls.generate).toEqual([[root(1), EASY]]);
    expect(typeof calls.generate[0][1]).toBe('bigint');
    expect(validateWork(root(1), results[0].work, EASY).valid).toBe(true);
    expect(results[0].job.state).toBe('done');
  });

  it('cancels the job in flight in one step: one engine.cancel, counted at once, never a result', async () => {
    const { api, calls } = watched();
    const { loop, log, results, events } = startLoop(api);
    loop.offer('ondemand', { hash: root(2), difficulty: HARD });
    await waitFor('in flight', () => loop.current()?.hash === root(2));
    loop.offer('ondemand', { hash: root(3), difficulty: EASY });
    loop.cancel(root(2).toLowerCase());
    expect(calls.cancel).toEqual([root(2)]);
    expect(log.counters(0).cancelled).toBe(1);
    expect(events('cancelled')).toEqual([root(2)]);
    expect(loop.current()).toBeNull();
    // The next job waits for the engine to be free, then runs.
    await waitFor('next result', () => results.find((r) => r.job.hash === root(3)));
    expect(results.map((r) => r.job.hash)).toEqual([root(3)]);
    loop.cancel(root(2)); // already ended: nothing to stop
    expect(calls.cancel).toEqual([root(2)]);
  });

  it('lets ondemand work preempt a precache search in one step; the precache job resumes', async () => {
    const { api, calls } = watched();
    const { loop, log, results, events } = startLoop(api);
    loop.offer('precache', { hash: root(4), difficulty: HARD });
    await waitFor('precache in flight', () => loop.current()?.hash === root(4));
    loop.offer('ondemand', { hash: root(5), difficulty: EASY });
    expect(calls.cancel).toEqual([root(4)]);
    expect(events('preempted')).toEqual([root(4)]);
    expect(loop.queued().map((j) => j.hash)).toEqual([root(5), root(4)]);
    await waitFor('ondemand result', () => results[0]);
    expect(results[0].job.hash).toBe(root(5));
    await waitFor('precache resumed', () => loop.current()?.hash === root(4));
    expect(calls.generate.map(([r]) => r)).toEqual([root(4), root(5), root(4)]);
    expect(log.counters(0).cancelled).toBe(0);
  });

  it('gives up a job in flight past its time limit in one step', async () => {
    const { api, calls } = watched();
    const { loop, log, events } = startLoop(api, { jobTimeoutS: 0.2 });
    loop.offer('ondemand', { hash: root(6), difficulty: HARD });
    await waitFor('expired', () => loop.expiredCount === 1);
    expect(calls.cancel).toEqual([root(6)]);
    expect(events('expired')).toEqual([root(6)]);
    expect(loop.current()).toBeNull();
    expect(log.counters(loop.expiredCount)).toMatchObject({ computed: 0, cancelled: 0, expired: 1 });
  });

  it('refuses work the engine got wrong, against the message\'s own difficulty', async () => {
    const { api } = watched({
      generate: async (r, d, o) => {
        const result = await engine.generate(r, d, o);
        return { ...result, work: 'x'.repeat(16) };
      },
      cancel: (r) => engine.cancel(r),
      onStatus: (cb) => engine.onStatus(cb),
    });
    const { loop, log, results } = startLoop(api);
    loop.offer('ondemand', { hash: root(7), difficulty: EASY });
    await waitFor('mismatch', () => log.counters(0).rejected['work-mismatch'] === 1);
    expect(results).toEqual([]);
    expect(log.counters(0).computed).toBe(0);
  });

  it('stops: drops the queue, stops the search and leaves the engine free', async () => {
    const { api, calls } = watched();
    const { loop, results } = startLoop(api);
    loop.offer('ondemand', { hash: root(8), difficulty: HARD });
    loop.offer('precache', { hash: root(9), difficulty: EASY });
    await waitFor('in flight', () => loop.current()?.hash === root(8));
    expect(await loop.stop()).toEqual({ dropped: 1 });
    expect(calls.cancel).toEqual([root(8)]);
    expect((await engine.status()).root).toBeNull();
    expect(results).toEqual([]);
  });

  it('never asks a busy engine: a new session waits for a search that outlived stop()', async () => {
    // The engine's answer to the cancel is held back, as a slow worker thread would.
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const { api, calls } = watched({
      generate: async (r, d, o) => {
        try {
          return await engine.generate(r, d, o);
        } finally {
          await held;
        }
      },
      cancel: (r) => engine.cancel(r),
      onStatus: (cb) => engine.onStatus(cb),
    });
    const { loop, results } = startLoop(api);
    loop.offer('ondemand', { hash: root(10), difficulty: HARD });
    await waitFor('in flight', () => loop.current()?.hash === root(10));
    const stopping = loop.stop();
    loop.start({ backend: 'wasm', threads: 1 });
    loop.offer('ondemand', { hash: root(11), difficulty: EASY });
    expect(calls.generate.map(([r]) => r)).toEqual([root(10)]);
    release();
    await stopping;
    await waitFor('the new session\'s result', () => results[0]);
    expect(results.map((r) => r.job.hash)).toEqual([root(11)]);
    expect(calls.generate.map(([r]) => r)).toEqual([root(10), root(11)]);
  });
});

