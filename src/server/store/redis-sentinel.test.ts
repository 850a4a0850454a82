/**
 * The Redis store on a Sentinel group (a primary, 2 replicas, 3 sentinels; Debian's
 * redis-server and redis-sentinel on free loopback ports): the shared store suite through
 * `redis+sentinel://`, a promotion followed by itself, accepts and the lease that wait for a
 * replica, and what happens to one the primary never replicated before it died.
 *
 * Replicas are frozen with SIGSTOP to make "no replica confirmed it" happen on demand; the
 * primary dies by SIGKILL. Every wait is on the processes' own answers, never on a clock.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cleanupsAfterEach } from '../../testkit/cleanups.ts';
import { RedisSentinelGroup, skipWithoutSentinel } from '../../testkit/redis-sentinel.ts';
import { waitForAsync } from '../../testkit/wait.ts';
import { RedisStore, type RedisStoreOptions } from './redis-store.ts';
import { describeDispatcherStore } from './store-suite.ts';
import type { AcceptRequest } from './store.ts';

const skip = skipWithoutSentinel('redis-sentinel.test.ts');
const ADDR = 'nano_1111111111111111111111111111111111111111111111111111hifc8npp';
let group: RedisSentinelGroup;
const PASSWORD = randomBytes(9).toString('hex');
const credentials = () => ({ credentials: { password: PASSWORD } });
/**
 * A store whose writes wait up to `waitMs` for a replica. WAIT answers as soon as a replica has
 * the write, so the long default costs nothing while the group is whole and keeps a loaded
 * machine's slow replica from reading as a shortfall; the tests that freeze the replicas to
 * make a shortfall happen ask for a short wait.
 */
const open = (options: RedisStoreOptions = {}, waitMs = 15_000) =>
  RedisStore.open(group.url(0, `?wait=${waitMs}`), { prefix: `t${randomBytes(4).toString('hex')}:`, commandTimeoutMs: 20_000, ...credentials(), ...options });
const SHORT_WAIT_MS = 300;

const accept = (hash: string, work = '00000000000000aa'): AcceptRequest => ({ hash, work, value: 5n, workType: 'precache', address: ADDR, services: [] });
const pend = (store: RedisStore, hash: string, workType: AcceptRequest['workType']) =>
  store.savePending({ hash, difficulty: 1n, workType, expiresAt: Date.now() + 60_000, createdAt: Date.now() });

/** Freezes (SIGSTOP) every replica of the primary now, so nothing written from here on is replicated. */
async function freezeReplicas() {
  const primary = await group.primary();
  const replicas = group.servers.filter((s) => s !== primary);
  for (const r of replicas) r.pause();
  return { primary, replicas };
}

describe.skipIf(skip)('RedisStore on Redis Sentinel', () => {
  beforeAll(async () => {
    group = await RedisSentinelGroup.start({ password: PASSWORD });
  });
  afterAll(async () => {
    await group?.close();
  });
  // Each test leaves the group whole: every process running, the replicas linked, the sentinels agreed.
  afterEach(async () => {
    for (const s of group.servers) {
      s.resume();
      await group.restart(s);
    }
    await group.ready();
  }, 180_000);
  const cleanups = cleanupsAfterEach();

  describeDispatcherStore('RedisStore (Sentinel)', (options) => open(options), { workExpiresByItself: true });

  it('refuses a login the data nodes do not know, without printing the password it tried', async () => {
    const wrong = `x${PASSWORD}`;
    const err = await RedisStore.open(group.url(), { credentials: { password: wrong }, connectTimeoutMs: 3000 }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^cannot connect to Redis at redis\+sentinel:\/\/.*(WRONGPASS|invalid username-password)/);
    expect((err as Error).message).not.toContain(wrong);
  });

  it('follows a promotion by itself: what was confirmed before the primary died is there after', async () => {
    const store = await open();
    cleanups.push(() => store.close());
    const before = await store.acceptResult(accept('A1'.repeat(32)));
    expect(before.won).toBe(true);
    expect(store.replication).toEqual({ confirmed: 1, shortfall: 0 });

    const old = await group.primary();
    await old.stop('SIGKILL');
    const promoted = await group.promotion(old);
    expect(promoted).not.toBe(old);

    // The same store, no reopening: calls reach the new primary.
    const after = await waitForAsync('an accept on the new primary', () => store.acceptResult(accept('A2'.repeat(32))).catch(() => undefined), 30_000);
    expect(after.won).toBe(true);
    expect(await store.getClient(ADDR)).toMatchObject({ precache: 2 });
    expect(await store.getTotals()).toEqual({ precache: 2, ondemand: 0 });
  });

  it('holds an accept no replica confirmed (counted), and credits it once when its retry is confirmed', async () => {
    const store = await open({}, SHORT_WAIT_MS);
    cleanups.push(() => store.close());
    const hash = 'B1'.repeat(32);
    await pend(store, hash, 'precache');
    await freezeReplicas();
    await expect(store.acceptResult(accept(hash))).rejects.toThrow(/accept b1b1b1b1: 0 of 1 Redis replicas confirmed it within 300 ms/);
    expect(store.replication).toMatchObject({ shortfall: 1 });
    for (const s of group.servers) s.resume();

    // The retry of the same result is the same accept: won, and not credited a second time.
    const retried = await waitForAsync('the retry to be confirmed', () => store.acceptResult(accept(hash)).catch(() => undefined), 30_000);
    expect(retried).toMatchObject({ won: true, client: { precache: 1 } });
    expect(await store.getTotals()).toEqual({ precache: 1, ondemand: 0 });
    // Another worker's result for the hash is a duplicate.
    expect(await store.acceptResult({ ...accept(hash, '00000000000000bb'), address: 'nano_other' })).toMatchObject({ won: false, work: { work: '00000000000000aa' } });
  });

  it('wins again on the promoted replica an accept the dying primary never replicated: credited exactly once', async () => {
    const store = await open({}, SHORT_WAIT_MS);
    cleanups.push(() => store.close());
    const hash = 'C1'.repeat(32);
    await pend(store, hash, 'ondemand');
    // The pending job reached the replicas before they froze.
    await waitForAsync('the replicas to catch up', async () => {
      const offsets = await Promise.all(group.servers.map((s) => group.offset(s)));
      return offsets.every((o) => o === offsets[0]);
    });
    const { primary: old, replicas } = await freezeReplicas();
    await expect(store.acceptResult({ ...accept(hash), workType: 'ondemand' })).rejects.toThrow(/0 of 1 Redis replicas confirmed it/);
    // The primary wrote the accept, and dies with it.
    await old.stop('SIGKILL');
    for (const r of replicas) r.resume();
    await group.promotion(old);

    const retried = await waitForAsync('the retry on the new primary', () => store.acceptResult({ ...accept(hash), workType: 'ondemand' }).catch(() => undefined), 30_000);
    expect(retried).toMatchObject({ won: true, client: { ondemand: 1 } });
    expect(await store.getTotals()).toEqual({ precache: 0, ondemand: 1 });
    expect(await store.getWork(hash)).toMatchObject({ work: '00000000000000aa', address: ADDR });
  });

  it('keeps a confirmed lease with its holder across a promotion; the next holder gets a larger token', async () => {
    const prefix = `lease${randomBytes(4).toString('hex')}:`;
    const [x, y] = await Promise.all([open({ prefix }), open({ prefix })]);
    cleanups.push(() => x.close(), () => y.close());
    // Long enough to outlive the promotion: the question is whose it is on the new primary.
    const token = await x.cluster.holdLease('singletons', 'x', 60_000);
    expect(token).toBeGreaterThan(0);
    expect(await y.cluster.holdLease('singletons', 'y', 60_000)).toBeUndefined();

    const old = await group.primary();
    await old.stop('SIGKILL');
    await group.promotion(old);

    expect(await waitForAsync('y to reach the new primary', () => y.cluster.holdLease('singletons', 'y', 60_000).then((t) => t ?? 'refused').catch(() => undefined), 30_000)).toBe('refused');
    // Renewed on the new primary once a replica follows it there (WAIT needs one).
    expect(await waitForAsync('x to renew on the new primary', () => x.cluster.holdLease('singletons', 'x', 60_000).then((t) => t ?? 'refused').catch(() => undefined), 60_000)).toBe(token);
    await x.cluster.releaseLease('singletons', 'x');
    expect(await y.cluster.holdLease('singletons', 'y', 60_000)).toBeGreaterThan(token!);
  });

  it('does not count a lease no replica confirmed as held', async () => {
    const store = await open({}, SHORT_WAIT_MS);
    cleanups.push(() => store.close());
    await freezeReplicas();
    await expect(store.cluster.holdLease('singletons', 'z', 5000)).rejects.toThrow(/lease: 0 of 1 Redis replicas confirmed it/);
    for (const s of group.servers) s.resume();
    // Retried once a replica answers: the same holder is confirmed (the token it was first given, or a new one).
    expect(await waitForAsync('the lease to be confirmed', () => store.cluster.holdLease('singletons', 'z', 5000).catch(() => undefined), 30_000)).toBeGreaterThan(0);
  });
});
