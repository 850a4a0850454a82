/**
 * The shared store suite on a real redis-server (one per file, on a free loopback port), plus
 * what is particular to Redis: the lease, the acceptance channel and an outage.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisServer, skipWithoutRedis } from '../../testkit/redis.ts';
import { cleanupsAfterEach } from '../../testkit/cleanups.ts';
import { waitFor, waitForAsync } from '../../testkit/wait.ts';
import { RedisStore } from './redis-store.ts';
import { describeDispatcherStore } from './store-suite.ts';
import type { Acceptance } from './store.ts';

const skip = skipWithoutRedis('redis-store.test.ts');
let redis: RedisServer;
/** A prefix per store keeps tests on one server apart without flushing it. */
const open = (options: { workRetentionMs?: number } = {}) => RedisStore.open(redis.url(), { prefix: `t${randomBytes(4).toString('hex')}:`, ...options });

describe.skipIf(skip)('on a real redis-server', () => {
  beforeAll(async () => {
    redis = await RedisServer.start();
  });
  afterAll(async () => {
    await redis?.close();
  });
  const cleanups = cleanupsAfterEach();

  describeDispatcherStore('RedisStore', open, { workExpiresByItself: true });

  describe('RedisStore', () => {
    it('lets two connections (two dispatchers) race for a hash: one wins', async () => {
      const prefix = `race${randomBytes(4).toString('hex')}:`;
      const [a, b] = await Promise.all([RedisStore.open(redis.url(), { prefix }), RedisStore.open(redis.url(), { prefix })]);
      cleanups.push(() => a.close(), () => b.close());
      const hash = 'CD'.repeat(32);
      await a.savePending({ hash, difficulty: 1n, workType: 'ondemand', expiresAt: 9, createdAt: 1 });
      const outcomes = await Promise.all(
        Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).acceptResult({ hash, work: i.toString(16).padStart(16, '0'), value: 5n, workType: 'ondemand', address: `addr${i}`, services: [] })),
      );
      expect(outcomes.filter((o) => o.won)).toHaveLength(1);
      expect((await a.listClients()).reduce((n, c) => n + c.ondemand, 0)).toBe(1);
    });

    it('hands the lease to one holder, renews it for that holder, and gives the next holder a larger token', async () => {
      const store = await open();
      cleanups.push(() => store.close());
      const first = await store.cluster.holdLease('singletons', 'a', 300);
      expect(first).toBeGreaterThan(0);
      expect(await store.cluster.holdLease('singletons', 'b', 300)).toBeUndefined();
      expect(await store.cluster.holdLease('singletons', 'a', 300)).toBe(first);
      // a stops renewing: after the lease runs out, b takes it with a new token.
      const second = await waitForAsync('b to take the lease', () => store.cluster.holdLease('singletons', 'b', 300), 3000);
      expect(second).toBeGreaterThan(first!);
      await store.cluster.releaseLease('singletons', 'a'); // not a's any more: no effect
      expect(await store.cluster.holdLease('singletons', 'a', 300)).toBeUndefined();
      await store.cluster.releaseLease('singletons', 'b');
      expect(await store.cluster.holdLease('singletons', 'a', 300)).toBeGreaterThan(second);
    });

    it('broadcasts acceptances to every subscriber', async () => {
      const prefix = `bus${randomBytes(4).toString('hex')}:`;
      const [a, b] = await Promise.all([RedisStore.open(redis.url(), { prefix }), RedisStore.open(redis.url(), { prefix })]);
      cleanups.push(() => a.close(), () => b.close());
      const heard: Acceptance[] = [];
      const stop = await b.cluster.onAcceptance((x) => heard.push(x));
      const acceptance: Acceptance = { hash: 'EF'.repeat(32), work: '0000000000000001', value: 'ffffffffffffffff', workType: 'precache' };
      await a.cluster.publishAcceptance(acceptance);
      await waitFor('the acceptance', () => heard.length === 1);
      expect(heard[0]).toEqual(acceptance);
      await stop();
    });

    it('fails calls at once while Redis is down and works again, scripts included, once it is back', async () => {
      const store = await open();
      cleanups.push(() => store.close());
      await store.savePending({ hash: 'AA'.repeat(32), difficulty: 1n, workType: 'precache', expiresAt: 9, createdAt: 1 });
      await redis.stop();
      try {
        await expect(store.acceptResult({ hash: 'AA'.repeat(32), work: '0000000000000001', value: 5n, workType: 'precache', address: 'x', services: [] })).rejects.toThrow();
        await expect(store.getTotals()).rejects.toThrow();
      } finally {
        await redis.start();
      }
      // The restarted server lost everything (no persistence here) and its script cache.
      const outcome = await waitForAsync('Redis back', () => store.acceptResult({ hash: 'AA'.repeat(32), work: '0000000000000001', value: 5n, workType: 'precache', address: 'x', services: [] }).catch(() => undefined), 10_000);
      expect(outcome.won).toBe(true);
      expect(await store.getTotals()).toEqual({ precache: 1, ondemand: 0 });
    });

    it('says which server it could not reach', async () => {
      await expect(RedisStore.open('redis://127.0.0.1:1/0', { connectTimeoutMs: 500 })).rejects.toThrow(/cannot connect to Redis at redis:\/\/127\.0\.0\.1:1\/0/);
    });
  });
});
