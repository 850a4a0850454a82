/**
 * The DispatcherStore behaviour the dispatcher relies on, checked on the in-memory store and,
 * with the same cases, on the SQLite store, so either slots in without dispatcher changes.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStore } from './memory-store.ts';
import { SqliteStore } from './sqlite-store.ts';
import { KNOWN_BLOCKS_PER_CHAIN, type DispatcherStore, type ServiceRecord } from './store.ts';

const HASH = 'AB'.repeat(32);
const ADDR = 'nano_1111111111111111111111111111111111111111111111111111hifc8npp';

const service = (user: string, extra: Partial<ServiceRecord> = {}): ServiceRecord => ({
  user,
  apiKeyHash: 'h',
  display: user,
  website: `${user}.example`,
  public: true,
  precache: 0,
  ondemand: 0,
  rateLimit: 0,
  createdAt: 1,
  ...extra,
});

const stores: Array<[string, () => DispatcherStore]> = [
  ['MemoryStore', () => new MemoryStore()],
  ['SqliteStore', () => new SqliteStore(':memory:')],
];

describe.each(stores)('%s as the dispatcher sees it', (_name, make) => {
  let store: DispatcherStore;
  afterEach(async () => {
    await store?.close().catch(() => {});
  });
  const open = () => (store = make());

  it('credits clients per work type and records the rewarded block', async () => {
    open();
    expect(await store.getClient(ADDR)).toBeUndefined();
    await store.creditClient(ADDR, 'precache', HASH);
    const after = await store.creditClient(ADDR, 'ondemand', HASH.toLowerCase());
    expect(after).toMatchObject({ address: ADDR, precache: 1, ondemand: 1, snapshot_precache: 0, snapshot_ondemand: 0 });
    expect(after.block_rewarded?.toLowerCase()).toBe(HASH.toLowerCase());
    expect(await store.getTotals()).toEqual({ precache: 1, ondemand: 1 });
    await store.snapshotClients([ADDR], ['precache']);
    expect(await store.getClient(ADDR)).toMatchObject({ snapshot_precache: 1, snapshot_ondemand: 0 });
    expect((await store.listClients()).map((c) => c.address)).toEqual([ADDR]);
  });

  it('keeps services and their counters', async () => {
    open();
    await store.addService(service('a'));
    await store.addService(service('b', { public: false }));
    await store.creditService('a', 'ondemand');
    await store.creditService('a', 'ondemand');
    await store.creditService('nobody', 'ondemand');
    expect(await store.getService('a')).toMatchObject({ ondemand: 2, precache: 0, public: true, website: 'a.example' });
    expect((await store.listServices()).map((s) => s.user).sort()).toEqual(['a', 'b']);
    expect(await store.removeService('b')).toBe(true);
    expect(await store.removeService('b')).toBe(false);
  });

  it('finds work and pending jobs whatever the case of the hash', async () => {
    open();
    await store.saveWork({ hash: HASH, work: '0123456789abcdef', difficulty: 0xfffffff800000000n, workType: 'precache', address: ADDR, createdAt: 5 });
    const w = await store.getWork(HASH.toLowerCase());
    expect(w).toMatchObject({ work: '0123456789abcdef', difficulty: 0xfffffff800000000n, workType: 'precache' });
    expect(await store.getWork('CD'.repeat(32))).toBeUndefined();

    await store.savePending({ hash: HASH, difficulty: 0xff00000000000000n, workType: 'ondemand', expiresAt: 100, createdAt: 1 });
    // Saving again (difficulty raised, type changed) replaces the record instead of adding one.
    await store.savePending({ hash: HASH.toLowerCase(), difficulty: 0xfff0000000000000n, workType: 'ondemand', expiresAt: 200, createdAt: 1, account: ADDR });
    const pending = await store.listPending();
    expect(pending).toHaveLength(1);
    expect(pending[0]).toMatchObject({ difficulty: 0xfff0000000000000n, expiresAt: 200, workType: 'ondemand' });
    await store.removePending(HASH);
    expect(await store.listPending()).toEqual([]);
  });

  it('tracks accounts by chain', async () => {
    open();
    await store.trackAccount({ account: ADDR, chain: ADDR, updatedAt: 1 });
    await store.trackAccount({ account: ADDR, chain: ADDR, frontier: HASH, updatedAt: 2 });
    expect(await store.getTracked(ADDR)).toMatchObject({ frontier: HASH });
    expect(await store.listTracked()).toHaveLength(1);
  });

  it("remembers each chain's blocks, answering false for one already known", async () => {
    open();
    expect(await store.rememberBlock('chain-a', 'aa'.repeat(32))).toBe(true);
    expect(await store.rememberBlock('chain-a', 'aa'.repeat(32))).toBe(false);
    expect(await store.rememberBlock('chain-b', 'aa'.repeat(32))).toBe(true); // per chain
  });

  it('keeps at least the newest KNOWN_BLOCKS_PER_CHAIN blocks of a chain, forgetting older ones', async () => {
    open();
    const hash = (n: number) => n.toString(16).padStart(64, '0');
    const total = KNOWN_BLOCKS_PER_CHAIN + 200;
    for (let n = 0; n < total; n++) await store.rememberBlock('busy', hash(n));
    await store.rememberBlock('quiet', hash(0));
    for (let n = total - KNOWN_BLOCKS_PER_CHAIN; n < total; n += 997) expect(await store.rememberBlock('busy', hash(n)), `block ${n}`).toBe(false);
    expect(await store.rememberBlock('busy', hash(0))).toBe(true); // the oldest was forgotten
    expect(await store.rememberBlock('quiet', hash(0))).toBe(false);
  });

  it('refuses use after close', async () => {
    open();
    await store.close();
    await expect(store.getTotals()).rejects.toThrow(/closed/);
  });
});

describe('MemoryStore', () => {
  it('hands out copies, so callers cannot change what is stored', async () => {
    const store = new MemoryStore();
    await store.addService(service('a'));
    const s = await store.getService('a');
    s!.ondemand = 99;
    expect((await store.getService('a'))!.ondemand).toBe(0);
    const c = await store.creditClient(ADDR, 'precache', HASH);
    c.precache = 42;
    expect((await store.getClient(ADDR))!.precache).toBe(1);
  });
});
