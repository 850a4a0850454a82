import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { cleanupsAfterEach } from '../../testkit/cleanups.ts';
import { quietLogger } from '../../testkit/log.ts';
import { RedisServer, redisForSuite, skipWithoutRedis } from '../../testkit/redis.ts';
import { waitFor } from '../../testkit/wait.ts';
import { RedisStore } from '../store/redis-store.ts';
import type { ClusterLink } from '../store/store.ts';
import { newCounters } from './counters.ts';
import { Leadership } from './leadership.ts';

/** A Leadership whose duties only say that they ran, in order (`restore` waits for `restoring` when given). */
function leadership(options: { cluster?: ClusterLink; holder?: string; restoring?: Promise<void> } = {}) {
  const ran: string[] = [];
  const changes: boolean[] = [];
  const counters = newCounters();
  const duty = (name: string) => () => void ran.push(name);
  const asyncDuty = (name: string) => async () => {
    if (name === 'restore') await options.restoring;
    ran.push(name);
  };
  const lead = new Leadership({
    cluster: options.cluster,
    holder: options.holder ?? 'd1',
    leaseMs: 400,
    heartbeatMs: 1000,
    statisticsMs: 300_000,
    statisticsChangeMs: 10_000,
    pruneWorkMs: 3_600_000,
    counters,
    log: quietLogger,
    onChange: (leader) => changes.push(leader),
    duties: {
      restore: asyncDuty('restore'),
      statistics: asyncDuty('statistics'),
      statisticsIfChanged: duty('statisticsIfChanged'),
      heartbeat: duty('heartbeat'),
      expireStored: asyncDuty('expireStored'),
      pruneWork: asyncDuty('pruneWork'),
    },
  });
  return { lead, ran, changes, counters };
}

describe('Leadership on a store of its own', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('runs the singletons from start to stop: the heartbeat first, then restore, statistics and each clock', async () => {
    const { lead, ran, changes, counters } = leadership();
    expect(lead.state).toEqual({ leader: false });
    await lead.start();
    expect(ran).toEqual(['heartbeat', 'restore', 'statistics', 'pruneWork']);
    expect(changes).toEqual([true]);
    expect(lead.state).toEqual({ leader: true });
    expect(counters.leases).toBe(1);

    ran.length = 0;
    await vi.advanceTimersByTimeAsync(10_000);
    expect(ran.filter((d) => d === 'heartbeat')).toHaveLength(10);
    expect(ran.filter((d) => d === 'statisticsIfChanged')).toHaveLength(1);
    // The expiry sweep is for other dispatchers' jobs on a shared store: none here.
    expect(ran).not.toContain('expireStored');
    await vi.advanceTimersByTimeAsync(290_000);
    expect(ran.filter((d) => d === 'statistics')).toHaveLength(1);

    await lead.stop();
    ran.length = 0;
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(ran).toEqual([]);
    expect(lead.leader).toBe(false);
    // Stopping is not losing: no event.
    expect(changes).toEqual([true]);
  });

  it('keeps the heartbeat going while the stored jobs are still being restored', async () => {
    let restored!: () => void;
    const { lead, ran, changes } = leadership({ restoring: new Promise<void>((resolve) => (restored = resolve)) });
    const starting = lead.start();
    await vi.advanceTimersByTimeAsync(3000);
    expect(ran).toEqual(['heartbeat', 'heartbeat', 'heartbeat', 'heartbeat']);
    expect(changes).toEqual([]);
    restored();
    await starting;
    expect(ran.slice(4)).toEqual(['restore', 'statistics', 'pruneWork']);
    expect(changes).toEqual([true]);
    await lead.stop();
  });
});

describe('Leadership on a lease whose confirmations pause (a Redis failover)', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  /** A lease that answers at once, or, once `stall()` is called, only when `answer()` is. */
  function stallingLease() {
    let stalled: Array<() => void> | undefined;
    let asked = 0;
    const cluster: ClusterLink = {
      publishAcceptance: async () => {},
      onAcceptance: async () => async () => {},
      holdLease: async () => {
        asked++;
        if (stalled) await new Promise<void>((resolve) => stalled!.push(resolve));
        return 7;
      },
      releaseLease: async () => {},
    };
    return {
      cluster,
      asked: () => asked,
      stall: () => (stalled = []),
      answer: () => {
        const waiting = stalled ?? [];
        stalled = undefined;
        for (const resolve of waiting) resolve();
      },
    };
  }

  it('keeps renewing the lease while a new leader restores its stored jobs, however long that takes', async () => {
    const lease = stallingLease();
    let restored!: () => void;
    const { lead, ran, changes } = leadership({ cluster: lease.cluster, restoring: new Promise<void>((resolve) => (restored = resolve)) });
    const starting = lead.start();
    await vi.advanceTimersByTimeAsync(2000);
    expect(lease.asked()).toBeGreaterThanOrEqual(20);
    expect(lead.state).toEqual({ leader: true, token: 7 });
    expect(ran.filter((d) => d === 'heartbeat')).toHaveLength(3);
    restored();
    await starting;
    expect(changes).toEqual([true]);
    await lead.stop();
  });

  it('sends a heartbeat the moment a lapsed lease is confirmed again, and restores nothing', async () => {
    const lease = stallingLease();
    const { lead, ran, changes, counters } = leadership({ cluster: lease.cluster });
    await lead.start();
    expect(lead.state).toEqual({ leader: true, token: 7 });
    lease.stall();
    // The renewal asked at 100 ms goes unanswered past the lease's end: no heartbeat meanwhile.
    await vi.advanceTimersByTimeAsync(1000);
    expect(lead.leader).toBe(false);
    ran.length = 0;
    await vi.advanceTimersByTimeAsync(1600);
    expect(ran).toEqual([]);

    // Its answer (at 2.6 s) confirms the lease only until 100 ms + 300 ms: still nothing.
    lease.answer();
    await vi.advanceTimersByTimeAsync(0);
    expect(lead.leader).toBe(false);
    expect(ran).toEqual([]);
    // The next renewal, at 2.7 s, is answered at once: the heartbeat goes out then, not at 3 s.
    await vi.advanceTimersByTimeAsync(100);
    expect(lead.state).toEqual({ leader: true, token: 7 });
    expect(ran).toEqual(['heartbeat']);
    await vi.advanceTimersByTimeAsync(300);
    expect(ran.filter((d) => d === 'heartbeat')).toEqual(['heartbeat', 'heartbeat']);
    // Same token, same holder: nothing restored again, no change told.
    expect(changes).toEqual([true]);
    expect(counters.leases).toBe(1);
    await lead.stop();
  });
});

describe.skipIf(skipWithoutRedis('leadership.test.ts'))('Leadership on a shared store (real redis-server)', () => {
  const redis = redisForSuite();
  const cleanups = cleanupsAfterEach();

  async function cluster(prefix: string): Promise<ClusterLink> {
    const store = await RedisStore.open(redis().url(), { prefix });
    cleanups.push(() => store.close());
    return store.cluster;
  }

  it('lets one holder run the singletons; another takes over with a larger token when it goes', async () => {
    const prefix = `l${randomBytes(4).toString('hex')}:`;
    const a = leadership({ cluster: await cluster(prefix), holder: 'a' });
    const b = leadership({ cluster: await cluster(prefix), holder: 'b' });
    cleanups.push(() => a.lead.stop(), () => b.lead.stop());
    await a.lead.start();
    await b.lead.start();
    const first = a.lead.state;
    expect(first).toMatchObject({ leader: true, token: expect.any(Number) });
    expect(b.lead.leader).toBe(false);
    expect(b.ran).toEqual([]);
    await waitFor('a sweep of stored jobs by the leader', () => a.ran.includes('expireStored'));

    await a.lead.stop();
    await waitFor('b to take over', () => b.lead.leader);
    expect(b.lead.state.token!).toBeGreaterThan(first.token!);
    expect(b.ran.slice(0, 3)).toEqual(['heartbeat', 'restore', 'statistics']);
    expect(b.changes).toEqual([true]);
  });

  it('stops leading once its lease runs out while the store is unreachable, and leads again when it is back', async () => {
    const own = await RedisServer.start();
    cleanups.push(() => own.close());
    const store = await RedisStore.open(own.url(), { prefix: 'x:' });
    cleanups.push(() => store.close());
    const { lead, changes, counters } = leadership({ cluster: store.cluster });
    cleanups.push(() => lead.stop());
    await lead.start();
    expect(lead.leader).toBe(true);

    await own.stop();
    await waitFor('the lost lease', () => changes.length === 2, 15_000);
    expect(changes).toEqual([true, false]);
    expect(lead.leader).toBe(false);
    expect(counters.storeErrors).toBeGreaterThan(0);

    await own.start();
    await waitFor('the lease again', () => changes.length === 3, 15_000);
    expect(lead.state).toMatchObject({ leader: true, token: expect.any(Number) });
    expect(counters.leases).toBe(2);
  });
});
