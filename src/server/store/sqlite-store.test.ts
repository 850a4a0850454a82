import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SCHEMA_VERSION, SqliteStore } from './sqlite-store.ts';
import { describeDispatcherStore } from './store-suite.ts';
import type { ServiceRecord } from './store.ts';

const ADDR_A = 'nano_1111111111111111111111111111111111111111111111111111hifc8npp';
const ADDR_B = 'nano_3t6k35gi95xu6tergt6p69ck76ogmitsa8mnijtpxm9fkcm736xtoncuohr3';
const HASH_1 = 'A'.repeat(64);
const HASH_2 = '0123456789abcdef'.repeat(4);
const HIGH = 0xfffffff800000000n; // above 2^63: must survive the round trip unsigned

let dir: string;
let path: string;
const open = () => new SqliteStore(path);
/** A work's created_at within the work retention, so getWork still answers it. */
const RECENT = Date.now();

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'dpow-sqlite-'));
  path = join(dir, 'nested', 'dpow.sqlite');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const service = (user: string, extra: Partial<ServiceRecord> = {}): ServiceRecord => ({
  user,
  apiKeyHash: `scrypt$salt$${user}-hash`,
  display: `${user} display`,
  website: `https://${user}.example`,
  public: true,
  precache: 0,
  ondemand: 0,
  rateLimit: 60,
  createdAt: 1_700_000_000_000,
  ...extra,
});

describeDispatcherStore('SqliteStore', (options) => new SqliteStore(':memory:', options));

describe('SqliteStore', () => {
  it('gives a hash to one of two handles on one file (two processes), whichever order they claim in', async () => {
    const a = open();
    const b = open();
    try {
      await a.savePending({ hash: HASH_1, difficulty: HIGH, workType: 'precache', expiresAt: 9, createdAt: 1 });
      const [first, second] = await Promise.all([
        b.acceptResult({ hash: HASH_1, work: '00000000000000aa', value: HIGH, workType: 'precache', address: ADDR_B, services: [] }),
        a.acceptResult({ hash: HASH_1, work: '00000000000000bb', value: HIGH, workType: 'precache', address: ADDR_A, services: [] }),
      ]);
      expect([first.won, second.won]).toEqual([true, false]);
      expect(second).toMatchObject({ won: false, work: { work: '00000000000000aa', address: ADDR_B } });
      expect(await a.getTotals()).toEqual({ precache: 1, ondemand: 0 });
      expect(await a.getClient(ADDR_A)).toBeUndefined();
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('rolls an accept back whole when any part fails', async () => {
    const store = open();
    try {
      await store.savePending({ hash: HASH_1, difficulty: HIGH, workType: 'precache', expiresAt: 9, createdAt: 1 });
      // A trigger makes the last write of the transaction (the total) fail.
      store.db.exec(`CREATE TRIGGER fail_total BEFORE UPDATE ON totals BEGIN SELECT RAISE(ABORT, 'disk full'); END`);
      await expect(store.acceptResult({ hash: HASH_1, work: '00000000000000aa', value: HIGH, workType: 'precache', address: ADDR_A, services: [] })).rejects.toThrow(/disk full/);
      expect(await store.getPending(HASH_1)).toBeDefined();
      expect(await store.getWork(HASH_1)).toBeUndefined();
      expect(await store.getClient(ADDR_A)).toBeUndefined();
    } finally {
      await store.close();
    }
  });

  it('creates the file in WAL mode at the current schema version', async () => {
    const store = open();
    expect(store.schemaVersion).toBe(SCHEMA_VERSION);
    expect(store.db.pragma('journal_mode', { simple: true })).toBe('wal');
    await store.close();
  });

  it('upgrades a version 2 file: work credited before weights counts one each', async () => {
    const store = open();
    await store.close();
    const raw = new Database(path);
    for (const c of ['weighted_precache', 'weighted_ondemand', 'snapshot_weighted_precache', 'snapshot_weighted_ondemand']) {
      raw.exec(`ALTER TABLE clients DROP COLUMN ${c}`);
    }
    raw.exec('DROP TABLE payout_payments; DROP TABLE payout_runs; DROP TABLE payout_carry');
    raw.prepare('INSERT INTO clients (address, precache, ondemand, snapshot_precache, snapshot_ondemand, updated_at) VALUES (?, 5, 3, 2, 1, 0)').run(ADDR_A);
    raw.pragma('user_version = 2');
    raw.close();
    const upgraded = open();
    expect(upgraded.schemaVersion).toBe(SCHEMA_VERSION);
    expect(await upgraded.getClient(ADDR_A)).toMatchObject({
      weighted_precache: 5,
      weighted_ondemand: 3,
      snapshot_weighted_precache: 2,
      snapshot_weighted_ondemand: 1,
    });
    const credited = await upgraded.creditClient(ADDR_A, 'ondemand', HASH_1, 8);
    expect(credited).toMatchObject({ ondemand: 4, weighted_ondemand: 11 });
    await expect(upgraded.creditClient(ADDR_A, 'ondemand', HASH_1, Number.NaN)).rejects.toThrow(/weight/);
    await upgraded.close();
  });

  it('upgrades a version 3 file to the payout ledger, keeping its clients', async () => {
    const store = open();
    await store.creditClient(ADDR_A, 'precache', HASH_1);
    await store.close();
    const raw = new Database(path);
    raw.exec('DROP TABLE payout_payments; DROP TABLE payout_runs; DROP TABLE payout_carry');
    raw.pragma('user_version = 3');
    raw.close();
    const upgraded = open();
    expect(upgraded.schemaVersion).toBe(SCHEMA_VERSION);
    expect(await upgraded.getClient(ADDR_A)).toMatchObject({ precache: 1 });
    expect(await upgraded.payouts.listRuns(5)).toEqual([]);
    expect(await upgraded.payouts.forAddress(ADDR_A, 5)).toMatchObject({ paid: 0n, serverRuns: 0 });
    await upgraded.close();
  });

  it('refuses a file written by a newer schema', async () => {
    const store = open();
    await store.close();
    const raw = new Database(path);
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    expect(() => open()).toThrow(/newer than this build/);
  });

  it('credits clients per work type, records the block and counts totals', async () => {
    const store = open();
    expect(await store.getClient(ADDR_A)).toBeUndefined();
    const first = await store.creditClient(ADDR_A, 'precache', HASH_1);
    expect(first).toEqual({
      address: ADDR_A,
      precache: 1,
      ondemand: 0,
      snapshot_precache: 0,
      snapshot_ondemand: 0,
      weighted_precache: 1,
      weighted_ondemand: 0,
      snapshot_weighted_precache: 0,
      snapshot_weighted_ondemand: 0,
      block_rewarded: HASH_1,
    });
    await store.creditClient(ADDR_A, 'ondemand', HASH_2);
    const third = await store.creditClient(ADDR_A, 'ondemand', HASH_1);
    expect(third).toMatchObject({ precache: 1, ondemand: 2, block_rewarded: HASH_1 });
    await store.creditClient(ADDR_B, 'precache', HASH_2);
    expect(await store.getTotals()).toEqual({ precache: 2, ondemand: 2 });
    expect((await store.listClients()).map((c) => c.address)).toEqual([ADDR_A, ADDR_B].sort());
    await expect(store.creditClient(ADDR_A, 'bogus' as never, HASH_1)).rejects.toThrow(/unknown work type/);
    expect(await store.getTotals()).toEqual({ precache: 2, ondemand: 2 });
    await store.close();
  });

  it('snapshots only the named addresses and work types', async () => {
    const store = open();
    await store.creditClient(ADDR_A, 'precache', HASH_1);
    await store.creditClient(ADDR_A, 'precache', HASH_1);
    await store.creditClient(ADDR_A, 'ondemand', HASH_1);
    await store.creditClient(ADDR_B, 'precache', HASH_1);
    await store.snapshotClients([ADDR_A], ['precache']);
    expect(await store.getClient(ADDR_A)).toMatchObject({ snapshot_precache: 2, snapshot_ondemand: 0 });
    expect(await store.getClient(ADDR_B)).toMatchObject({ snapshot_precache: 0 });
    await store.snapshotClients([ADDR_A, ADDR_B, 'nano_unknown'], ['precache', 'ondemand']);
    expect(await store.getClient(ADDR_A)).toMatchObject({ snapshot_precache: 2, snapshot_ondemand: 1 });
    expect(await store.getClient(ADDR_B)).toMatchObject({ snapshot_precache: 1 });
    expect(await store.getClient('nano_unknown')).toBeUndefined();
    await store.close();
  });

  it('records a snapshot at given counter values, per type', async () => {
    const store = open();
    for (let i = 0; i < 5; i++) await store.creditClient(ADDR_A, 'precache', HASH_1);
    await store.creditClient(ADDR_A, 'ondemand', HASH_1);
    await store.recordSnapshot([{ address: ADDR_A, precache: 3 }, { address: 'nano_unknown', ondemand: 9 }]);
    expect(await store.getClient(ADDR_A)).toMatchObject({ precache: 5, snapshot_precache: 3, snapshot_ondemand: 0 });
    await store.recordSnapshot([{ address: ADDR_A, ondemand: 1 }]);
    expect(await store.getClient(ADDR_A)).toMatchObject({ snapshot_precache: 3, snapshot_ondemand: 1 });
    expect(await store.getClient('nano_unknown')).toBeUndefined();
    await store.close();
  });

  it('two handles on one file (dispatcher and CLI) see each other’s writes', async () => {
    const a = open();
    const b = open();
    await a.creditClient(ADDR_A, 'ondemand', HASH_1);
    expect((await b.getClient(ADDR_A))?.ondemand).toBe(1);
    await b.recordSnapshot([{ address: ADDR_A, ondemand: 1 }]);
    expect((await a.getClient(ADDR_A))?.snapshot_ondemand).toBe(1);
    await a.close();
    await b.close();
  });

  it('adds, replaces, credits, lists and removes services', async () => {
    const store = open();
    await store.addService(service('alice'));
    await store.addService(service('bob', { public: false, rateLimit: 0 }));
    expect(await store.getService('bob')).toEqual(service('bob', { public: false, rateLimit: 0 }));
    await store.creditService('alice', 'ondemand');
    await store.creditService('alice', 'ondemand');
    await store.creditService('alice', 'precache');
    await store.creditService('nobody', 'precache');
    expect(await store.getService('alice')).toMatchObject({ ondemand: 2, precache: 1 });
    await store.addService(service('alice', { display: 'Alice 2', precache: 1, ondemand: 2 }));
    expect(await store.getService('alice')).toMatchObject({ display: 'Alice 2' });
    expect((await store.listServices()).map((s) => s.user)).toEqual(['alice', 'bob']);
    expect(await store.removeService('bob')).toBe(true);
    expect(await store.removeService('bob')).toBe(false);
    expect(await store.getService('bob')).toBeUndefined();
    await store.close();
  });

  it('stores work with u64 difficulties and finds it in either case', async () => {
    const store = open();
    await store.saveWork({ hash: HASH_1, work: '2b3d689bbcb21dca', difficulty: HIGH, workType: 'precache', createdAt: RECENT });
    const got = await store.getWork(HASH_1.toLowerCase());
    expect(got).toEqual({ hash: HASH_1, work: '2b3d689bbcb21dca', difficulty: HIGH, workType: 'precache', createdAt: RECENT });
    await store.saveWork({
      hash: HASH_1.toLowerCase(),
      work: '0000000000000001',
      difficulty: 0xffffffffffffffffn,
      workType: 'ondemand',
      address: ADDR_A,
      createdAt: RECENT + 1,
    });
    expect(await store.getWork(HASH_1)).toMatchObject({ work: '0000000000000001', difficulty: 0xffffffffffffffffn, address: ADDR_A });
    expect(await store.getWork(HASH_2)).toBeUndefined();
    await store.close();
  });

  it('keeps pending jobs until removed', async () => {
    const store = open();
    await store.savePending({ hash: HASH_2, difficulty: HIGH, workType: 'ondemand', expiresAt: 100, createdAt: 2 });
    await store.savePending({ hash: HASH_1, difficulty: 0xfffffe0000000000n, workType: 'precache', expiresAt: 200, createdAt: 1, account: ADDR_A });
    expect(await store.listPending()).toEqual([
      { hash: HASH_1, difficulty: 0xfffffe0000000000n, workType: 'precache', expiresAt: 200, createdAt: 1, account: ADDR_A },
      { hash: HASH_2, difficulty: HIGH, workType: 'ondemand', expiresAt: 100, createdAt: 2 },
    ]);
    await store.removePending(HASH_1.toLowerCase());
    expect((await store.listPending()).map((j) => j.hash)).toEqual([HASH_2]);
    await store.close();
  });

  it('tracks chains and never forgets a frontier when an account is tracked again', async () => {
    const store = open();
    await store.trackAccount({ account: ADDR_A, chain: ADDR_A, updatedAt: 1 });
    expect(await store.getTracked(ADDR_A)).toEqual({ account: ADDR_A, chain: ADDR_A, updatedAt: 1 });
    await store.trackAccount({ account: ADDR_A, chain: ADDR_A, frontier: HASH_1, updatedAt: 2 });
    await store.trackAccount({ account: ADDR_A, chain: ADDR_A, updatedAt: 3 });
    expect(await store.getTracked(ADDR_A)).toEqual({ account: ADDR_A, chain: ADDR_A, frontier: HASH_1, updatedAt: 3 });
    await store.trackAccount({ account: ADDR_A, chain: ADDR_A, frontier: HASH_2, updatedAt: 4 });
    expect((await store.getTracked(ADDR_A))?.frontier).toBe(HASH_2);
    const qlcChain = `qlc_x:${'b'.repeat(64)}`;
    await store.trackAccount({ account: 'qlc_x', chain: qlcChain, frontier: HASH_1, updatedAt: 5 });
    expect((await store.listTracked()).map((t) => t.chain)).toEqual([ADDR_A, qlcChain]);
    await store.close();
  });

  it('keeps everything across close and reopen', async () => {
    let store = open();
    await store.creditClient(ADDR_A, 'precache', HASH_1);
    await store.creditClient(ADDR_A, 'ondemand', HASH_2);
    await store.snapshotClients([ADDR_A], ['precache']);
    await store.creditClient(ADDR_A, 'precache', HASH_2);
    await store.addService(service('alice'));
    await store.creditService('alice', 'ondemand');
    await store.saveWork({ hash: HASH_1, work: '2b3d689bbcb21dca', difficulty: HIGH, workType: 'ondemand', address: ADDR_A, createdAt: RECENT + 4 });
    await store.savePending({ hash: HASH_2, difficulty: HIGH, workType: 'precache', expiresAt: 99, createdAt: 8, account: ADDR_B });
    await store.trackAccount({ account: ADDR_B, chain: ADDR_B, frontier: HASH_2, updatedAt: 7 });
    await store.close();
    await expect(store.getClient(ADDR_A)).rejects.toThrow(/closed/);

    store = open();
    expect(await store.getClient(ADDR_A)).toEqual({
      address: ADDR_A,
      precache: 2,
      ondemand: 1,
      snapshot_precache: 1,
      snapshot_ondemand: 0,
      weighted_precache: 2,
      weighted_ondemand: 1,
      snapshot_weighted_precache: 1,
      snapshot_weighted_ondemand: 0,
      block_rewarded: HASH_2,
    });
    expect(await store.getTotals()).toEqual({ precache: 2, ondemand: 1 });
    expect(await store.getService('alice')).toEqual(service('alice', { ondemand: 1 }));
    expect(await store.getWork(HASH_1)).toEqual({ hash: HASH_1, work: '2b3d689bbcb21dca', difficulty: HIGH, workType: 'ondemand', address: ADDR_A, createdAt: RECENT + 4 });
    expect(await store.listPending()).toEqual([{ hash: HASH_2, difficulty: HIGH, workType: 'precache', expiresAt: 99, createdAt: 8, account: ADDR_B }]);
    expect(await store.listTracked()).toEqual([{ account: ADDR_B, chain: ADDR_B, frontier: HASH_2, updatedAt: 7 }]);
    await store.close();
  });

  it('stores api key hashes as given and never a key', async () => {
    const store = open();
    await store.addService(service('carol', { apiKeyHash: 'sha256$deadbeef' }));
    const raw = store.db.prepare('SELECT * FROM services').all();
    expect(JSON.stringify(raw)).toContain('sha256$deadbeef');
    await store.close();
  });
});
