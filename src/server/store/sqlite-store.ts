/**
 * The embedded default DispatcherStore: one SQLite file (better-sqlite3, WAL mode).
 *
 * - The schema is versioned with `PRAGMA user_version`; MIGRATIONS[i] takes version i to i + 1, so a
 *   file written by an older build is upgraded in place and a file from a newer build is refused.
 * - u64 difficulties are stored as 16 lowercase hex digits (SQLite integers are signed 64-bit).
 * - Block hashes are keyed in lowercase so a hash asked for in either case finds its row; the
 *   hash as it arrived is kept beside the key and returned.
 * - Credit operations (counter + rewarded block + global total) run in one transaction: a crash
 *   between them cannot leave a client credited without the total, or the reverse.
 * - `acceptResult` is one savepoint (claim, work, credits, pending removed) in an IMMEDIATE
 *   transaction, so two processes on one file cannot both win a hash, and a crash leaves all of
 *   it or none.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { WorkType } from '../../dpow/codec.ts';
import { toU64Hex } from '../../pow/work.ts';
import type {
  AcceptOutcome,
  AcceptRequest,
  ClientRecord,
  DispatcherStore,
  PendingJob,
  ServiceRecord,
  SnapshotEntry,
  StoredWork,
  TrackedAccount,
} from './store.ts';
import { assertRetention, assertWeight, assertWorkType, DEFAULT_WORK_RETENTION_MS, KNOWN_BLOCKS_PER_CHAIN } from './store.ts';
import { PAYOUT_LEDGER_MIGRATION, SqlitePayoutLedger } from './sqlite-ledger.ts';

/** Each entry upgrades the schema by one version. Never edit a released entry: append. */
const MIGRATIONS: readonly string[] = [
  // 0 -> 1: the initial schema.
  `
  CREATE TABLE clients (
    address TEXT PRIMARY KEY,
    precache INTEGER NOT NULL DEFAULT 0,
    ondemand INTEGER NOT NULL DEFAULT 0,
    snapshot_precache INTEGER NOT NULL DEFAULT 0,
    snapshot_ondemand INTEGER NOT NULL DEFAULT 0,
    block_rewarded TEXT,
    updated_at INTEGER NOT NULL
  );
  CREATE TABLE services (
    user TEXT PRIMARY KEY,
    api_key_hash TEXT NOT NULL,
    display TEXT NOT NULL,
    website TEXT NOT NULL,
    public INTEGER NOT NULL,
    precache INTEGER NOT NULL DEFAULT 0,
    ondemand INTEGER NOT NULL DEFAULT 0,
    rate_limit INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
  );
  CREATE TABLE work (
    hash_key TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    work TEXT NOT NULL,
    difficulty TEXT NOT NULL,
    work_type TEXT NOT NULL CHECK (work_type IN ('precache', 'ondemand')),
    address TEXT,
    created_at INTEGER NOT NULL
  );
  CREATE INDEX work_created ON work (created_at);
  CREATE TABLE pending (
    hash_key TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    difficulty TEXT NOT NULL,
    work_type TEXT NOT NULL CHECK (work_type IN ('precache', 'ondemand')),
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    account TEXT
  );
  CREATE TABLE tracked (
    chain TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    frontier TEXT,
    updated_at INTEGER NOT NULL
  );
  CREATE INDEX tracked_account ON tracked (account);
  CREATE TABLE totals (
    work_type TEXT PRIMARY KEY CHECK (work_type IN ('precache', 'ondemand')),
    count INTEGER NOT NULL
  );
  INSERT INTO totals (work_type, count) VALUES ('precache', 0), ('ondemand', 0);
  `,
  // 1 -> 2: the precache feed's memory of each chain's blocks, so replays survive a restart.
  `
  CREATE TABLE chain_blocks (
    id INTEGER PRIMARY KEY,
    chain TEXT NOT NULL,
    hash TEXT NOT NULL,
    UNIQUE (chain, hash)
  );
  CREATE INDEX chain_blocks_age ON chain_blocks (chain, id);
  `,
  // 2 -> 3: work weighted by difficulty, for snapshot --weight difficulty. Work credited before
  // it counts one each.
  `
  ALTER TABLE clients ADD COLUMN weighted_precache REAL NOT NULL DEFAULT 0;
  ALTER TABLE clients ADD COLUMN weighted_ondemand REAL NOT NULL DEFAULT 0;
  ALTER TABLE clients ADD COLUMN snapshot_weighted_precache REAL NOT NULL DEFAULT 0;
  ALTER TABLE clients ADD COLUMN snapshot_weighted_ondemand REAL NOT NULL DEFAULT 0;
  UPDATE clients SET weighted_precache = precache, weighted_ondemand = ondemand,
    snapshot_weighted_precache = snapshot_precache, snapshot_weighted_ondemand = snapshot_ondemand;
  `,
  // 3 -> 4: the payout ledger (runs, payments, carried amounts).
  PAYOUT_LEDGER_MIGRATION,
];

export const SCHEMA_VERSION = MIGRATIONS.length;


/** Column names are interpolated into SQL only from this fixed map, never from input. */
const COUNTER: Record<WorkType, { count: string; snapshot: string; weighted: string; snapshotWeighted: string }> = {
  precache: { count: 'precache', snapshot: 'snapshot_precache', weighted: 'weighted_precache', snapshotWeighted: 'snapshot_weighted_precache' },
  ondemand: { count: 'ondemand', snapshot: 'snapshot_ondemand', weighted: 'weighted_ondemand', snapshotWeighted: 'snapshot_weighted_ondemand' },
};

interface ClientRow {
  address: string;
  precache: number;
  ondemand: number;
  snapshot_precache: number;
  snapshot_ondemand: number;
  block_rewarded: string | null;
  weighted_precache: number;
  weighted_ondemand: number;
  snapshot_weighted_precache: number;
  snapshot_weighted_ondemand: number;
}
interface ServiceRow {
  user: string;
  api_key_hash: string;
  display: string;
  website: string;
  public: number;
  precache: number;
  ondemand: number;
  rate_limit: number;
  created_at: number;
}
interface WorkRow {
  hash: string;
  work: string;
  difficulty: string;
  work_type: WorkType;
  address: string | null;
  created_at: number;
}
interface PendingRow {
  hash: string;
  difficulty: string;
  work_type: WorkType;
  expires_at: number;
  created_at: number;
  account: string | null;
}
interface TrackedRow {
  chain: string;
  account: string;
  frontier: string | null;
  updated_at: number;
}

const hexToBig = (hex: string) => BigInt(`0x${hex}`);

function toClient(row: ClientRow): ClientRecord {
  const record: ClientRecord = {
    address: row.address,
    precache: row.precache,
    ondemand: row.ondemand,
    snapshot_precache: row.snapshot_precache,
    snapshot_ondemand: row.snapshot_ondemand,
    weighted_precache: row.weighted_precache,
    weighted_ondemand: row.weighted_ondemand,
    snapshot_weighted_precache: row.snapshot_weighted_precache,
    snapshot_weighted_ondemand: row.snapshot_weighted_ondemand,
  };
  if (row.block_rewarded !== null) record.block_rewarded = row.block_rewarded;
  return record;
}

function toService(row: ServiceRow): ServiceRecord {
  return {
    user: row.user,
    apiKeyHash: row.api_key_hash,
    display: row.display,
    website: row.website,
    public: row.public !== 0,
    precache: row.precache,
    ondemand: row.ondemand,
    rateLimit: row.rate_limit,
    createdAt: row.created_at,
  };
}

function toWork(row: WorkRow): StoredWork {
  const work: StoredWork = {
    hash: row.hash,
    work: row.work,
    difficulty: hexToBig(row.difficulty),
    workType: row.work_type,
    createdAt: row.created_at,
  };
  if (row.address !== null) work.address = row.address;
  return work;
}

function toPending(row: PendingRow): PendingJob {
  const job: PendingJob = {
    hash: row.hash,
    difficulty: hexToBig(row.difficulty),
    workType: row.work_type,
    expiresAt: row.expires_at,
    createdAt: row.created_at,
  };
  if (row.account !== null) job.account = row.account;
  return job;
}

function toTracked(row: TrackedRow): TrackedAccount {
  const tracked: TrackedAccount = { account: row.account, chain: row.chain, updatedAt: row.updated_at };
  if (row.frontier !== null) tracked.frontier = row.frontier;
  return tracked;
}

export interface SqliteStoreOptions {
  /** Clock for `updated_at` and `created_at` columns and the work retention (tests pin it). */
  now?: () => number;
  /** See DEFAULT_WORK_RETENTION_MS. */
  workRetentionMs?: number;
}

export class SqliteStore implements DispatcherStore {
  readonly db: Database.Database;
  readonly payouts: SqlitePayoutLedger;
  readonly #now: () => number;
  readonly #retentionMs: number;
  #closed = false;
  /** New chain_blocks rows since the last trim (see rememberBlock). */
  #blocksSinceTrim = 0;

  /** Opens (creating if needed) the database at `path`; `':memory:'` gives a throwaway store. */
  constructor(readonly path: string, options: SqliteStoreOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#retentionMs = options.workRetentionMs ?? DEFAULT_WORK_RETENTION_MS;
    assertRetention(this.#retentionMs);
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path);
    try {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('foreign_keys = ON');
      this.db.pragma('busy_timeout = 5000');
      this.#migrate();
    } catch (err) {
      this.db.close();
      throw err;
    }
    this.payouts = new SqlitePayoutLedger(this.db, () => this.#check());
  }

  /** The schema version the file is at (SCHEMA_VERSION after a successful open). */
  get schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  #migrate(): void {
    const current = this.schemaVersion;
    if (current > MIGRATIONS.length) {
      throw new Error(
        `${this.path} has schema version ${current}, newer than this build understands (${MIGRATIONS.length}); upgrade dpow-web`,
      );
    }
    for (let v = current; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v]);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  /** Statements compiled once each: compiling costs more than running most of them. */
  readonly #statements = new Map<string, Database.Statement>();

  #sql(source: string): Database.Statement {
    let statement = this.#statements.get(source);
    if (!statement) {
      statement = this.db.prepare(source);
      this.#statements.set(source, statement);
    }
    return statement;
  }

  #check(): void {
    if (this.#closed) throw new Error('store is closed');
  }

  // ------------------------------------------------------------------ accept

  /**
   * Accepts wait one event-loop turn and commit together (group commit): a commit costs ~15x a
   * row here, and every caller still hears only after the commit that holds its result. Each
   * accept is its own savepoint inside the batch, so one that fails rolls back alone.
   */
  async acceptResult(result: AcceptRequest): Promise<AcceptOutcome> {
    this.#check();
    assertWorkType(result.workType);
    assertWeight(result.weight ?? 1);
    return new Promise<AcceptOutcome>((resolve, reject) => {
      this.#accepts.push({ result, resolve, reject });
      if (this.#accepts.length === 1) setImmediate(() => this.#commitAccepts());
    });
  }

  readonly #accepts: Array<{
    result: AcceptRequest;
    resolve(outcome: AcceptOutcome): void;
    reject(err: unknown): void;
  }> = [];

  #commitAccepts(): void {
    const batch = this.#accepts.splice(0);
    if (this.#closed) {
      for (const item of batch) item.reject(new Error('store is closed'));
      return;
    }
    const one = this.db.transaction((result: AcceptRequest) => this.#acceptOne(result));
    let settled: Array<{ ok: true; outcome: AcceptOutcome } | { ok: false; err: unknown }>;
    try {
      settled = this.db
        .transaction(() =>
          batch.map((item) => {
            try {
              return { ok: true as const, outcome: one(item.result) };
            } catch (err) {
              return { ok: false as const, err };
            }
          }),
        )
        .immediate();
    } catch (err) {
      for (const item of batch) item.reject(err);
      return;
    }
    settled.forEach((r, i) => (r.ok ? batch[i].resolve(r.outcome) : batch[i].reject(r.err)));
  }

  #acceptOne({ hash, work, value, workType, address, services, weight = 1 }: AcceptRequest): AcceptOutcome {
    const key = hash.toLowerCase();
    const column = COUNTER[workType].count;
    const removed = this.#sql('DELETE FROM pending WHERE hash_key = ?').run(key).changes > 0;
    if (!removed) {
      const stored = this.#sql('SELECT * FROM work WHERE hash_key = ?').get(key) as WorkRow | undefined;
      if (stored) return { won: false, work: toWork(stored) };
    }
    const record: StoredWork = { hash, work, difficulty: value, workType, createdAt: this.#now(), ...(address ? { address } : {}) };
    this.#saveWork(record);
    const credit = this.#sql(`UPDATE services SET ${column} = ${column} + 1 WHERE user = ?`);
    for (const user of services) credit.run(user);
    if (!address) return { won: true, work: record };
    return { won: true, work: record, client: toClient(this.#creditClient(address, workType, hash, weight)) };
  }

  // ------------------------------------------------------------------ clients

  async getClient(address: string): Promise<ClientRecord | undefined> {
    this.#check();
    const row = this.#sql('SELECT * FROM clients WHERE address = ?').get(address) as ClientRow | undefined;
    return row ? toClient(row) : undefined;
  }

  async creditClient(address: string, workType: WorkType, hash: string, weight = 1): Promise<ClientRecord> {
    this.#check();
    assertWorkType(workType);
    assertWeight(weight);
    return toClient(this.db.transaction(() => this.#creditClient(address, workType, hash, weight))());
  }

  /** The counter, the weighted sum, the rewarded block and the total; the caller holds the transaction. */
  #creditClient(address: string, workType: WorkType, hash: string, weight: number): ClientRow {
    const { count: column, weighted } = COUNTER[workType];
    this.#sql(
      `INSERT INTO clients (address, ${column}, ${weighted}, block_rewarded, updated_at) VALUES (?, 1, ?, ?, ?)
       ON CONFLICT (address) DO UPDATE SET ${column} = ${column} + 1, ${weighted} = ${weighted} + excluded.${weighted},
         block_rewarded = excluded.block_rewarded, updated_at = excluded.updated_at`,
    ).run(address, weight, hash, this.#now());
    this.#sql('UPDATE totals SET count = count + 1 WHERE work_type = ?').run(workType);
    return this.#sql('SELECT * FROM clients WHERE address = ?').get(address) as ClientRow;
  }

  async listClients(): Promise<ClientRecord[]> {
    this.#check();
    const rows = this.#sql('SELECT * FROM clients ORDER BY address').all() as ClientRow[];
    return rows.map(toClient);
  }

  async snapshotClients(addresses: string[], workTypes: WorkType[]): Promise<void> {
    this.#check();
    workTypes.forEach(assertWorkType);
    if (addresses.length === 0 || workTypes.length === 0) return;
    const sets = [...new Set(workTypes)]
      .map((t) => `${COUNTER[t].snapshot} = ${COUNTER[t].count}, ${COUNTER[t].snapshotWeighted} = ${COUNTER[t].weighted}`)
      .join(', ');
    const stmt = this.#sql(`UPDATE clients SET ${sets}, updated_at = ? WHERE address = ?`);
    const now = this.#now();
    this.db.transaction(() => {
      for (const address of addresses) stmt.run(now, address);
    })();
  }

  async recordSnapshot(entries: SnapshotEntry[]): Promise<void> {
    this.#check();
    const now = this.#now();
    const stmt = this.#sql(
      `UPDATE clients SET snapshot_precache = COALESCE(?, snapshot_precache),
       snapshot_ondemand = COALESCE(?, snapshot_ondemand),
       snapshot_weighted_precache = COALESCE(?, snapshot_weighted_precache),
       snapshot_weighted_ondemand = COALESCE(?, snapshot_weighted_ondemand), updated_at = ? WHERE address = ?`,
    );
    this.db.transaction(() => {
      for (const e of entries) {
        stmt.run(e.precache ?? null, e.ondemand ?? null, e.weighted_precache ?? null, e.weighted_ondemand ?? null, now, e.address);
      }
    })();
  }

  // ------------------------------------------------------------------ services

  async addService(service: ServiceRecord): Promise<void> {
    this.#check();
    this.#sql(
      `INSERT INTO services (user, api_key_hash, display, website, public, precache, ondemand, rate_limit, created_at)
       VALUES (@user, @apiKeyHash, @display, @website, @public, @precache, @ondemand, @rateLimit, @createdAt)
       ON CONFLICT (user) DO UPDATE SET api_key_hash = excluded.api_key_hash, display = excluded.display,
         website = excluded.website, public = excluded.public, precache = excluded.precache,
         ondemand = excluded.ondemand, rate_limit = excluded.rate_limit, created_at = excluded.created_at`,
    ).run({ ...service, public: service.public ? 1 : 0 });
  }

  async getService(user: string): Promise<ServiceRecord | undefined> {
    this.#check();
    const row = this.#sql('SELECT * FROM services WHERE user = ?').get(user) as ServiceRow | undefined;
    return row ? toService(row) : undefined;
  }

  async listServices(): Promise<ServiceRecord[]> {
    this.#check();
    return (this.#sql('SELECT * FROM services ORDER BY user').all() as ServiceRow[]).map(toService);
  }

  async removeService(user: string): Promise<boolean> {
    this.#check();
    return this.#sql('DELETE FROM services WHERE user = ?').run(user).changes > 0;
  }

  async creditService(user: string, workType: WorkType): Promise<void> {
    this.#check();
    assertWorkType(workType);
    const column = COUNTER[workType].count;
    this.db.transaction(() => {
      this.#sql(`UPDATE services SET ${column} = ${column} + 1 WHERE user = ?`).run(user);
    })();
  }

  // ------------------------------------------------------------------ work and jobs

  async saveWork(work: StoredWork): Promise<void> {
    this.#check();
    assertWorkType(work.workType);
    this.#saveWork(work);
  }

  #saveWork(work: StoredWork): void {
    this.#sql(
      `INSERT INTO work (hash_key, hash, work, difficulty, work_type, address, created_at)
       VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (hash_key) DO UPDATE SET hash = excluded.hash, work = excluded.work,
         difficulty = excluded.difficulty, work_type = excluded.work_type,
         address = excluded.address, created_at = excluded.created_at`,
    ).run(
        work.hash.toLowerCase(),
        work.hash,
        work.work,
        toU64Hex(work.difficulty),
        work.workType,
        work.address ?? null,
        work.createdAt,
      );
  }

  async getWork(hash: string): Promise<StoredWork | undefined> {
    this.#check();
    const row = this.#sql('SELECT * FROM work WHERE hash_key = ? AND created_at > ?').get(hash.toLowerCase(), this.#now() - this.#retentionMs) as
      | WorkRow
      | undefined;
    return row ? toWork(row) : undefined;
  }

  async pruneWork(): Promise<number> {
    this.#check();
    // Batches, so a first prune of a large old file does not hold the write lock for long.
    const remove = this.#sql('DELETE FROM work WHERE rowid IN (SELECT rowid FROM work WHERE created_at <= ? LIMIT 5000)');
    const before = this.#now() - this.#retentionMs;
    let total = 0;
    for (;;) {
      const { changes } = remove.run(before);
      total += changes;
      if (changes < 5000) return total;
      await new Promise((r) => setImmediate(r));
      this.#check();
    }
  }

  async savePending(job: PendingJob): Promise<void> {
    this.#check();
    assertWorkType(job.workType);
    this.#sql(
      `INSERT INTO pending (hash_key, hash, difficulty, work_type, expires_at, created_at, account)
       VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (hash_key) DO UPDATE SET hash = excluded.hash, difficulty = excluded.difficulty,
         work_type = excluded.work_type, expires_at = excluded.expires_at,
         created_at = excluded.created_at, account = excluded.account`,
    ).run(
        job.hash.toLowerCase(),
        job.hash,
        toU64Hex(job.difficulty),
        job.workType,
        job.expiresAt,
        job.createdAt,
        job.account ?? null,
      );
  }

  async getPending(hash: string): Promise<PendingJob | undefined> {
    this.#check();
    const row = this.#sql('SELECT * FROM pending WHERE hash_key = ?').get(hash.toLowerCase()) as PendingRow | undefined;
    return row ? toPending(row) : undefined;
  }

  async removePending(hash: string): Promise<void> {
    this.#check();
    this.#sql('DELETE FROM pending WHERE hash_key = ?').run(hash.toLowerCase());
  }

  async listPending(): Promise<PendingJob[]> {
    this.#check();
    const rows = this.#sql('SELECT * FROM pending ORDER BY created_at, hash_key').all() as PendingRow[];
    return rows.map(toPending);
  }

  // ------------------------------------------------------------------ precache tracking

  async trackAccount(account: TrackedAccount): Promise<void> {
    this.#check();
    // A missing frontier never erases a known one: tracking an account again (a new service
    // request) must not make the feed forget where the chain is.
    this.#sql(
      `INSERT INTO tracked (chain, account, frontier, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (chain) DO UPDATE SET account = excluded.account,
         frontier = COALESCE(excluded.frontier, tracked.frontier), updated_at = excluded.updated_at`,
    ).run(account.chain, account.account, account.frontier ?? null, account.updatedAt);
  }

  async getTracked(chain: string): Promise<TrackedAccount | undefined> {
    this.#check();
    const row = this.#sql('SELECT * FROM tracked WHERE chain = ?').get(chain) as TrackedRow | undefined;
    return row ? toTracked(row) : undefined;
  }

  async listTracked(): Promise<TrackedAccount[]> {
    this.#check();
    return (this.#sql('SELECT * FROM tracked ORDER BY chain').all() as TrackedRow[]).map(toTracked);
  }

  async rememberBlock(chain: string, hash: string): Promise<boolean> {
    this.#check();
    const added = this.db.prepare('INSERT OR IGNORE INTO chain_blocks (chain, hash) VALUES (?, ?)').run(chain, hash).changes > 0;
    // Trimming costs an index walk of KNOWN_BLOCKS_PER_CHAIN rows: do it once every 100 new blocks.
    if (added && ++this.#blocksSinceTrim >= 100) {
      this.#blocksSinceTrim = 0;
      this.db
        .prepare(
          `DELETE FROM chain_blocks WHERE chain = ? AND id <= (
             SELECT id FROM chain_blocks WHERE chain = ? ORDER BY id DESC LIMIT 1 OFFSET ?)`,
        )
        .run(chain, chain, KNOWN_BLOCKS_PER_CHAIN);
    }
    return added;
  }

  // ------------------------------------------------------------------ totals

  async getTotals(): Promise<{ precache: number; ondemand: number }> {
    this.#check();
    const rows = this.#sql('SELECT work_type, count FROM totals').all() as { work_type: WorkType; count: number }[];
    const totals = { precache: 0, ondemand: 0 };
    for (const row of rows) totals[row.work_type] = row.count;
    return totals;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.db.close();
  }
}
