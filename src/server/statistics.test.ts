import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import mqtt from 'mqtt';
import { encodeAddress } from '../dpow/address.ts';
import { statisticsCodec, type Statistics } from '../dpow/codec.ts';
import { cleanupsAfterEach } from '../testkit/cleanups.ts';
import { ReferenceWorker } from '../testkit/reference-worker.ts';
import { sleep, waitFor } from '../testkit/wait.ts';
import { randomRoot } from '../testkit/work.ts';
import { createServer } from './create-server.ts';
import { MemoryStore } from './store/memory-store.ts';

const cleanups = cleanupsAfterEach();

async function subscribeStatistics(url: string): Promise<Statistics[]> {
  const c = await mqtt.connectAsync(url, { username: 'client', password: 'client', protocolVersion: 4, reconnectPeriod: 0 });
  cleanups.push(() => c.endAsync(true));
  const seen: Statistics[] = [];
  c.on('message', (_topic, payload) => {
    const s = statisticsCodec.decode(payload);
    if (s.ok) seen.push(s.value);
  });
  await c.subscribeAsync('statistics');
  return seen;
}

describe('network statistics', () => {
  it('reach a worker that connects late at once, and follow new work within seconds, not minutes', async () => {
    const store = new MemoryStore();
    await store.creditClient(encodeAddress(randomBytes(32)), 'precache', randomRoot());
    const app = await createServer({
      kind: 'app',
      http: { port: 0, staticDir: 'no-such-dir' },
      store: { kind: 'given', store },
      // The regular five-minute statistics would never come within this test.
      dispatcher: { statisticsMs: 300_000, statisticsChangeMs: 50 },
    });
    cleanups.push(() => app.close());
    const dispatcher = app.dispatcher!;
    await waitFor('the statistics at start', () => dispatcher.counters.published.statistics === 1);

    // Long after the one message at start, a newcomer still gets it straight away.
    await sleep(200);
    const late = await subscribeStatistics(app.brokerWsUrl);
    await waitFor('the retained statistics', () => late.length === 1, 2000);
    expect(late[0].work).toEqual({ precache: 1, ondemand: 0 });

    // Nothing changed: nothing more is sent.
    await sleep(200);
    expect(dispatcher.counters.published.statistics).toBe(1);

    // One ondemand work: new statistics within a few change periods.
    const worker = await ReferenceWorker.start({ brokerUrl: app.brokerWsUrl, username: 'client', password: 'client', address: encodeAddress(randomBytes(32)) });
    cleanups.push(() => worker.client.endAsync(true));
    await dispatcher.requestWork({ hash: randomRoot(), difficulty: 0xff00000000000000n, workType: 'ondemand', timeoutMs: 10_000 });
    await waitFor('statistics with the new work', () => late.some((s) => s.work.ondemand === 1), 5000);
    await sleep(200);
    expect(dispatcher.counters.published.statistics).toBe(2);

    const fresh = await subscribeStatistics(app.brokerWsUrl);
    await waitFor('the latest statistics', () => fresh.length === 1, 2000);
    expect(fresh[0].work).toEqual({ precache: 1, ondemand: 1 });
  });
});
