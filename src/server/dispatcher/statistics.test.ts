import { describe, expect, it } from 'vitest';
import { statisticsCodec } from '../../dpow/codec.ts';
import { quietLogger } from '../../testkit/log.ts';
import { SessionRecorder } from '../../testkit/session-recorder.ts';
import { MemoryStore } from '../store/memory-store.ts';
import { newCounters, storeCaller } from './counters.ts';
import { NetworkStatistics } from './statistics.ts';

const SERVICE = { apiKeyHash: 'x', website: 'w.example', precache: 0, ondemand: 0, rateLimit: 0, createdAt: 0 };

async function setup() {
  const store = new MemoryStore();
  await store.addService({ ...SERVICE, user: 'pub', display: 'Public', public: true, precache: 2, ondemand: 1 });
  await store.addService({ ...SERVICE, user: 'p1', display: 'P1', public: false, precache: 3, ondemand: 0 });
  await store.addService({ ...SERVICE, user: 'p2', display: 'P2', public: false, precache: 1, ondemand: 4 });
  const session = new SessionRecorder();
  const counters = newCounters();
  const state = { running: true };
  const statistics = new NetworkStatistics({ store, session, storeCall: storeCaller(counters, quietLogger), running: () => state.running });
  return { store, session, counters, state, statistics };
}

describe('NetworkStatistics', () => {
  it('lists public services by name and private ones only as totals, with the work done from the store', async () => {
    const { store, statistics } = await setup();
    await store.creditClient('nano_x', 'precache', 'AA'.repeat(32));
    expect(await statistics.build()).toEqual({
      services: {
        public: [{ display: 'Public', website: 'w.example', precache: 2, ondemand: 1 }],
        private: { count: 2, precache: 4, ondemand: 4 },
      },
      work: { precache: 1, ondemand: 0 },
    });
  });

  it('publishes after credited work only when the payload changed, and nothing once stopped or while the store fails', async () => {
    const { store, session, counters, state, statistics } = await setup();
    await statistics.publish();
    expect(session.statistics).toHaveLength(1);

    statistics.publishIfChanged(); // nothing credited: nothing to do
    statistics.markChanged();
    statistics.publishIfChanged(); // credited, but the totals are the same
    await statistics.publish({ onlyIfChanged: true });
    expect(session.statistics).toHaveLength(1);

    await store.creditClient('nano_x', 'ondemand', 'BB'.repeat(32));
    await statistics.publish({ onlyIfChanged: true });
    expect(session.statistics).toHaveLength(2);
    const last = statisticsCodec.decode(session.statistics[1]);
    expect(last.ok && last.value.work).toEqual({ precache: 0, ondemand: 1 });

    state.running = false;
    await statistics.publish();
    expect(session.statistics).toHaveLength(2);

    state.running = true;
    await store.close();
    await statistics.publish();
    expect(session.statistics).toHaveLength(2);
    expect(counters.storeErrors).toBe(1);
  });
});
