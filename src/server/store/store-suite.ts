/**
 * The DispatcherStore behaviour the dispatcher relies on, as one suite that every store's test
 * file runs against its own store (memory, SQLite, Redis), so any of them slots in without
 * dispatcher changes. Test-only: imported by *.test.ts files, never by the product.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { WorkType } from '../../dpow/codec.ts';
import { KNOWN_BLOCKS_PER_CHAIN, type DispatcherStore, type ServiceRecord } from './store.ts';
import { describePayoutLedger } from './ledger-suite.ts';

const HASH = 'AB'.repeat(32);
const ADDR = 'nano_1111111111111111111111111111111111111111111111111111hifc8npp';
const ADDR_B = 'nano_3t6k35gi95xu6tergt6p69ck76ogmitsa8mnijtpxm9fkcm736xtoncuohr3';
const VALUE = 0xfffffff912345678n; // above 2^63: must survive the round trip unsigned

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

const pendingJob = (hash = HASH) => ({ hash, difficulty: 0xff00000000000000n, workType: 'ondemand' as const, expiresAt: 100, createdAt: 1 });

export interface StoreTraits {
  /** Its stored work expires by itself (Redis key expiry): pruneWork has nothing to remove. */
  workExpiresByItself?: boolean;
}

/** What a suite's store may be opened with. */
export interface SuiteStoreOptions {
  workRetentionMs?: number;
}

/** `make` opens a fresh, empty store; the suite closes it after each test. */
export function describeDispatcherStore(
  name: string,
  make: (options?: SuiteStoreOptions) => DispatcherStore | Promise<DispatcherStore>,
  traits: StoreTraits = {},
): void {
  describe(`${name} as the dispatcher sees it`, () => {
    let store: DispatcherStore;
    afterEach(async () => {
      await store?.close().catch(() => {});
    });
    const open = async (options?: SuiteStoreOptions) => (store = await make(options));

    it('credits clients per work type and records the rewarded block', async () => {
      await open();
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

    it('records a snapshot at given counter values, per type, ignoring unknown addresses', async () => {
      await open();
      for (let i = 0; i < 3; i++) await store.creditClient(ADDR, 'precache', HASH);
      await store.creditClient(ADDR, 'ondemand', HASH);
      await store.recordSnapshot([{ address: ADDR, precache: 2 }, { address: ADDR_B, ondemand: 5 }]);
      expect(await store.getClient(ADDR)).toMatchObject({ precache: 3, snapshot_precache: 2, snapshot_ondemand: 0 });
      expect(await store.getClient(ADDR_B)).toBeUndefined();
    });

    it('keeps services and their counters', async () => {
      await open();
      await store.addService(service('a'));
      await store.addService(service('b', { public: false }));
      await store.creditService('a', 'ondemand');
      await store.creditService('a', 'ondemand');
      await store.creditService('nobody', 'ondemand');
      expect(await store.getService('a')).toMatchObject({ ondemand: 2, precache: 0, public: true, website: 'a.example', apiKeyHash: 'h' });
      expect(await store.getService('b')).toMatchObject({ public: false });
      expect(await store.getService('nobody')).toBeUndefined();
      expect((await store.listServices()).map((s) => s.user).sort()).toEqual(['a', 'b']);
      expect(await store.removeService('b')).toBe(true);
      expect(await store.removeService('b')).toBe(false);
      expect((await store.listServices()).map((s) => s.user)).toEqual(['a']);
    });

    it('finds work and pending jobs whatever the case of the hash', async () => {
      await open();
      const createdAt = Date.now() - 5; // within the work retention
      await store.saveWork({ hash: HASH, work: '0123456789abcdef', difficulty: 0xfffffff800000000n, workType: 'precache', address: ADDR, createdAt });
      const w = await store.getWork(HASH.toLowerCase());
      expect(w).toEqual({ hash: HASH, work: '0123456789abcdef', difficulty: 0xfffffff800000000n, workType: 'precache', address: ADDR, createdAt });
      expect(await store.getWork('CD'.repeat(32))).toBeUndefined();

      await store.savePending({ hash: HASH, difficulty: 0xff00000000000000n, workType: 'ondemand', expiresAt: 100, createdAt: 1 });
      // Saving again (difficulty raised, type changed) replaces the record instead of adding one.
      await store.savePending({ hash: HASH.toLowerCase(), difficulty: 0xfff0000000000000n, workType: 'ondemand', expiresAt: 200, createdAt: 1, account: ADDR });
      const pending = await store.listPending();
      expect(pending).toHaveLength(1);
      expect(pending[0]).toMatchObject({ difficulty: 0xfff0000000000000n, expiresAt: 200, workType: 'ondemand', account: ADDR });
      expect(await store.getPending(HASH)).toMatchObject({ difficulty: 0xfff0000000000000n });
      await store.removePending(HASH);
      expect(await store.listPending()).toEqual([]);
      expect(await store.getPending(HASH)).toBeUndefined();
    });

    it('tracks accounts by chain and never forgets a frontier when tracked again', async () => {
      await open();
      await store.trackAccount({ account: ADDR, chain: ADDR, updatedAt: 1 });
      await store.trackAccount({ account: ADDR, chain: ADDR, frontier: HASH, updatedAt: 2 });
      await store.trackAccount({ account: ADDR, chain: ADDR, updatedAt: 3 });
      expect(await store.getTracked(ADDR)).toEqual({ account: ADDR, chain: ADDR, frontier: HASH, updatedAt: 3 });
      expect(await store.getTracked(ADDR_B)).toBeUndefined();
      expect(await store.listTracked()).toHaveLength(1);
    });

    it("remembers each chain's blocks, answering false for one already known", async () => {
      await open();
      expect(await store.rememberBlock('chain-a', 'aa'.repeat(32))).toBe(true);
      expect(await store.rememberBlock('chain-a', 'aa'.repeat(32))).toBe(false);
      expect(await store.rememberBlock('chain-b', 'aa'.repeat(32))).toBe(true); // per chain
    });

    it('keeps at least the newest KNOWN_BLOCKS_PER_CHAIN blocks of a chain, forgetting older ones', { timeout: 30_000 }, async () => {
      await open();
      const hash = (n: number) => n.toString(16).padStart(64, '0');
      const total = KNOWN_BLOCKS_PER_CHAIN + 200;
      for (let n = 0; n < total; n++) await store.rememberBlock('busy', hash(n));
      await store.rememberBlock('quiet', hash(0));
      for (let n = total - KNOWN_BLOCKS_PER_CHAIN; n < total; n += 997) expect(await store.rememberBlock('busy', hash(n)), `block ${n}`).toBe(false);
      expect(await store.rememberBlock('busy', hash(0))).toBe(true); // the oldest was forgotten
      expect(await store.rememberBlock('quiet', hash(0))).toBe(false);
    });

    it('accepts a result all at once: work stored, client and services credited, pending removed', async () => {
      await open();
      await store.addService(service('wallet'));
      await store.addService(service('exchange'));
      await store.savePending(pendingJob());
      const outcome = await store.acceptResult({ hash: HASH, work: '00000000000000ff', value: VALUE, workType: 'ondemand', address: ADDR, services: ['wallet', 'exchange', 'gone'] });
      expect(outcome.won).toBe(true);
      expect(outcome.won && outcome.client).toMatchObject({ address: ADDR, ondemand: 1, precache: 0, block_rewarded: HASH });
      expect(await store.getWork(HASH)).toMatchObject({ hash: HASH, work: '00000000000000ff', difficulty: VALUE, workType: 'ondemand', address: ADDR });
      expect(await store.getPending(HASH)).toBeUndefined();
      expect(await store.getService('wallet')).toMatchObject({ ondemand: 1 });
      expect(await store.getService('exchange')).toMatchObject({ ondemand: 1 });
      expect(await store.getTotals()).toEqual({ precache: 0, ondemand: 1 });
    });

    it('adds the weight of an accepted work to the weighted sum, which a snapshot copies', async () => {
      await open();
      await store.acceptResult({ hash: '11'.repeat(32), work: '00000000000000ff', value: VALUE, workType: 'ondemand', address: ADDR, services: [], weight: 2.5 });
      await store.acceptResult({ hash: '22'.repeat(32), work: '00000000000000ff', value: VALUE, workType: 'ondemand', address: ADDR, services: [], weight: 0.125 });
      expect(await store.getClient(ADDR)).toMatchObject({ ondemand: 2, weighted_ondemand: 2.625 });
      await store.snapshotClients([ADDR], ['ondemand']);
      expect(await store.getClient(ADDR)).toMatchObject({ snapshot_ondemand: 2, snapshot_weighted_ondemand: 2.625 });
      await expect(store.acceptResult({ hash: '33'.repeat(32), work: '00000000000000ff', value: VALUE, workType: 'ondemand', address: ADDR, services: [], weight: -1 })).rejects.toThrow(/weight/);
    });

    it('forgets stored work older than the work retention, keeping the credits it earned', async () => {
      await open({ workRetentionMs: 1000 });
      const old = 'CD'.repeat(32);
      const fresh = 'EF'.repeat(32);
      await store.saveWork({ hash: old, work: '00000000000000aa', difficulty: VALUE, workType: 'precache', createdAt: Date.now() - 1500 });
      await store.saveWork({ hash: fresh, work: '00000000000000bb', difficulty: VALUE, workType: 'precache', createdAt: Date.now() });
      expect(await store.getWork(old)).toBeUndefined();
      expect(await store.getWork(fresh)).toMatchObject({ work: '00000000000000bb' });
      await store.savePending(pendingJob());
      await store.acceptResult({ hash: HASH, work: '00000000000000ff', value: VALUE, workType: 'ondemand', address: ADDR, services: [] });
      expect(await store.getWork(HASH)).toMatchObject({ work: '00000000000000ff' });
      await new Promise((r) => setTimeout(r, 1200));
      expect(await store.getWork(HASH)).toBeUndefined();
      expect(await store.getWork(fresh)).toBeUndefined();
      expect(await store.pruneWork()).toBe(traits.workExpiresByItself ? 0 : 3);
      expect(await store.pruneWork()).toBe(0);
      expect(await store.getClient(ADDR)).toMatchObject({ ondemand: 1 });
      expect(await store.getTotals()).toEqual({ precache: 0, ondemand: 1 });
    });

    it('keeps stored work within the retention through a prune', async () => {
      await open();
      await store.saveWork({ hash: HASH, work: '00000000000000aa', difficulty: VALUE, workType: 'precache', createdAt: Date.now() - 24 * 3600_000 });
      expect(await store.pruneWork()).toBe(0);
      expect(await store.getWork(HASH)).toMatchObject({ work: '00000000000000aa' });
    });

    it('refuses an unknown work type or a bad weight before writing anything', async () => {
      await open();
      await store.savePending(pendingJob());
      const bogus = 'bulk' as WorkType;
      await expect(store.acceptResult({ hash: HASH, work: '00000000000000ff', value: VALUE, workType: bogus, address: ADDR, services: [] })).rejects.toThrow(/unknown work type "bulk"/);
      await expect(store.acceptResult({ hash: HASH, work: '00000000000000ff', value: VALUE, workType: 'ondemand', address: ADDR, services: [], weight: Number.NaN })).rejects.toThrow(/weight/);
      expect(await store.getPending(HASH)).toBeDefined();
      expect(await store.getWork(HASH)).toBeUndefined();
      expect(await store.getClient(ADDR)).toBeUndefined();
      expect(await store.getTotals()).toEqual({ precache: 0, ondemand: 0 });
    });

    it('loses every later claim for an accepted hash, handing back the work that won', async () => {
      await open();
      await store.savePending(pendingJob());
      await store.acceptResult({ hash: HASH, work: '00000000000000ff', value: VALUE, workType: 'ondemand', address: ADDR, services: [] });
      const late = await store.acceptResult({ hash: HASH.toLowerCase(), work: '00000000000000aa', value: VALUE, workType: 'ondemand', address: ADDR_B, services: [] });
      expect(late).toMatchObject({ won: false, work: { work: '00000000000000ff', address: ADDR } });
      expect(await store.getClient(ADDR_B)).toBeUndefined();
      expect(await store.getTotals()).toEqual({ precache: 0, ondemand: 1 });
      // A new job for the hash (asked again at a higher difficulty) is a new claim.
      await store.savePending(pendingJob());
      expect((await store.acceptResult({ hash: HASH, work: '00000000000000bb', value: VALUE, workType: 'ondemand', address: ADDR_B, services: [] })).won).toBe(true);
      expect(await store.getWork(HASH)).toMatchObject({ work: '00000000000000bb', address: ADDR_B });
    });

    it('wins a hash with neither pending job nor work (its pending record never arrived)', async () => {
      await open();
      const outcome = await store.acceptResult({ hash: HASH, work: '00000000000000ff', value: VALUE, workType: 'precache', address: ADDR, services: [] });
      expect(outcome).toMatchObject({ won: true, client: { precache: 1 } });
    });

    it('stores work with no creditable address but credits nobody', async () => {
      await open();
      await store.savePending(pendingJob());
      const outcome = await store.acceptResult({ hash: HASH, work: '00000000000000ff', value: VALUE, workType: 'ondemand', services: [] });
      expect(outcome).toMatchObject({ won: true });
      expect(outcome.won && outcome.client).toBeUndefined();
      expect(await store.getWork(HASH)).toMatchObject({ work: '00000000000000ff' });
      expect(await store.getWork(HASH)).not.toHaveProperty('address');
      expect(await store.listClients()).toEqual([]);
    });

    it('lets exactly one of many concurrent claims for a hash win', async () => {
      await open();
      const hashes = ['11', '22', '33'].map((b) => b.repeat(32));
      for (const h of hashes.slice(0, 2)) await store.savePending(pendingJob(h));
      // The third hash has no pending job: the claim still goes to exactly one caller.
      const attempts = hashes.flatMap((h) =>
        Array.from({ length: 12 }, (_, i) => ({ h, work: i.toString(16).padStart(16, '0'), address: i % 2 ? ADDR : ADDR_B })),
      );
      const outcomes = await Promise.all(attempts.map((a) => store.acceptResult({ hash: a.h, work: a.work, value: VALUE, workType: 'precache', address: a.address, services: [] })));
      for (const h of hashes) {
        const mine = outcomes.filter((_, i) => attempts[i].h === h);
        const winners = mine.filter((o) => o.won);
        expect(winners).toHaveLength(1);
        const stored = await store.getWork(h);
        expect(stored?.work).toBe(winners[0].work!.work);
        for (const o of mine) if (!o.won) expect(o.work?.work).toBe(stored?.work);
      }
      const clients = await store.listClients();
      expect(clients.reduce((sum, c) => sum + c.precache, 0)).toBe(3);
      expect(await store.getTotals()).toEqual({ precache: 3, ondemand: 0 });
      expect(await store.listPending()).toEqual([]);
    });

    it('refuses use after close', async () => {
      await open();
      await store.close();
      await expect(store.getTotals()).rejects.toThrow(/closed/);
    });
  });
  describePayoutLedger(name, () => make());
}
