import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encodeAddress } from '../../dpow/address.ts';
import { statisticsCodec, workCodec } from '../../dpow/codec.ts';
import { Broker } from '../broker.ts';
import { DEMO_DEFAULTS, DemoSource } from './demo-source.ts';
import { Dispatcher } from '../dispatcher/dispatcher.ts';
import { MemoryStore } from '../store/memory-store.ts';
import { cleanupsAfterEach, closeAfter } from '../../testkit/cleanups.ts';
import { connectAs } from '../../testkit/mqtt.ts';
import { sleep, waitFor } from '../../testkit/wait.ts';
import { findWork } from '../../testkit/work.ts';

const cleanup = cleanupsAfterEach();
async function setup() {
  const users = { server: { username: 's', password: 'sp' }, client: { username: 'client', password: 'client' } };
  const broker = closeAfter(cleanup, await Broker.start({ users }));
  const store = new MemoryStore();
  const dispatcher = new Dispatcher({ brokerUrl: broker.wsUrl, username: 's', password: 'sp', store, statisticsMs: 200 });
  await dispatcher.start();
  cleanup.push(() => dispatcher.stop());
  const worker = await connectAs(broker.wsUrl, 'client', cleanup);
  const seen: Array<{ topic: string; payload: string }> = [];
  worker.on('message', (topic, payload) => seen.push({ topic, payload: payload.toString() }));
  await worker.subscribeAsync(['work/#', 'statistics']);
  return { store, dispatcher, worker, seen };
}

describe('demo work source', () => {
  it('defaults to work a laptop finishes in well under a second', () => {
    // 2^20 hashes expected: ~0.15 s on one WASM thread at ~7 MH/s.
    expect(DEMO_DEFAULTS.difficulty).toBe('fffff00000000000');
    expect(DEMO_DEFAULTS.precacheEveryMs).toBeLessThan(DEMO_DEFAULTS.ondemandEveryMs);
  });

  it('streams precache and ondemand jobs, and credits a public demo service in statistics', async () => {
    const { store, dispatcher, worker, seen } = await setup();
    const demo = await DemoSource.start({ dispatcher, store, precacheEveryMs: 100, ondemandEveryMs: 150, difficulty: 'ff00000000000000' });
    cleanup.push(() => demo.stop());
    expect(await store.getService('demo')).toMatchObject({ public: true, display: 'dpow-web demo' });

    const address = encodeAddress(randomBytes(32));
    worker.on('message', (topic, payload) => {
      if (topic !== 'work/ondemand') return;
      const job = workCodec.decode(payload);
      if (!job.ok) return;
      worker.publish('result/ondemand', `${job.value.hash},${findWork(job.value.hash, job.value.difficulty)},${address}`);
    });
    await waitFor('demo jobs', () => demo.counters.answered >= 1 && seen.filter((m) => m.topic === 'work/precache').length >= 2, 8000);
    const jobs = seen.filter((m) => m.topic.startsWith('work/')).map((m) => workCodec.decode(m.payload));
    expect(jobs.every((j) => j.ok && j.value.difficulty === 0xff00000000000000n)).toBe(true);
    const roots = new Set(jobs.map((j) => (j.ok ? j.value.hash : '')));
    expect(roots.size).toBe(jobs.length); // fresh random roots

    await waitFor(
      'statistics listing the demo service',
      () =>
        seen.some((m) => {
          if (m.topic !== 'statistics') return false;
          const s = statisticsCodec.decode(m.payload);
          return s.ok && s.value.services.public.some((p) => p.display === 'dpow-web demo' && p.ondemand >= 1);
        }),
      5000,
    );
  });

  it('publishes nothing when disabled, and stops when told', async () => {
    const { store, dispatcher, seen } = await setup();
    const off = await DemoSource.start({ dispatcher, store, enabled: false, precacheEveryMs: 50, ondemandEveryMs: 50 });
    await sleep(300);
    expect(seen.filter((m) => m.topic.startsWith('work/'))).toEqual([]);
    off.stop();

    const on = await DemoSource.start({ dispatcher, store, precacheEveryMs: 50, ondemandEveryMs: 0, ondemandTimeoutMs: 100 });
    await waitFor('a precache job', () => seen.some((m) => m.topic === 'work/precache'));
    on.stop();
    await sleep(100);
    const count = seen.filter((m) => m.topic.startsWith('work/')).length;
    await sleep(300);
    expect(seen.filter((m) => m.topic.startsWith('work/')).length).toBe(count);
    expect(seen.some((m) => m.topic === 'work/ondemand')).toBe(false);
  });

  it('refuses a malformed difficulty', async () => {
    const { store, dispatcher } = await setup();
    await expect(DemoSource.start({ dispatcher, store, difficulty: 'fffff' })).rejects.toThrow(/16 hex/);
  });
});
