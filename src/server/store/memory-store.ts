/**
 * DispatcherStore in memory: for tests, and as the fallback when no data directory is given.
 * Nothing survives a restart. Semantics match what the dispatcher expects of any store:
 *
 * - hashes are looked up case-insensitively (records keep the hash as it was saved);
 * - `creditClient` adds one to the global total for the work's type (as the SQLite store does:
 *   the totals count credited work);
 * - records handed out are copies, so a caller cannot change the store by mutating them;
 * - `acceptResult` runs without an await inside, so no other call interleaves with it.
 */
import type { WorkType } from '../../dpow/codec.ts';
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
import { MemoryPayoutLedger } from './memory-ledger.ts';

export interface MemoryStoreOptions {
  /** See DEFAULT_WORK_RETENTION_MS. */
  workRetentionMs?: number;
  /** Clock for created_at and the retention (tests pin it). */
  now?: () => number;
}

export class MemoryStore implements DispatcherStore {
  readonly #clients = new Map<string, ClientRecord>();
  readonly #services = new Map<string, ServiceRecord>();
  readonly #work = new Map<string, StoredWork>();
  readonly #pending = new Map<string, PendingJob>();
  readonly #tracked = new Map<string, TrackedAccount>();
  /** Chain -> its known block hashes, oldest first (a Set keeps insertion order). */
  readonly #blocks = new Map<string, Set<string>>();
  readonly #totals = { precache: 0, ondemand: 0 };
  #closed = false;
  readonly #retentionMs: number;
  readonly #now: () => number;
  readonly payouts = new MemoryPayoutLedger({ client: (address) => this.#clients.get(address), check: () => this.#open() });

  constructor(options: MemoryStoreOptions = {}) {
    this.#retentionMs = options.workRetentionMs ?? DEFAULT_WORK_RETENTION_MS;
    assertRetention(this.#retentionMs);
    this.#now = options.now ?? Date.now;
  }

  #open(): void {
    if (this.#closed) throw new Error('store is closed');
  }

  // ------------------------------------------------------------ accept

  async acceptResult({ hash, work, value, workType, address, services, weight = 1 }: AcceptRequest): Promise<AcceptOutcome> {
    this.#open();
    assertWorkType(workType);
    assertWeight(weight);
    const key = hash.toLowerCase();
    const stored = this.#work.get(key);
    if (!this.#pending.delete(key) && stored) return { won: false, work: { ...stored } };
    const record: StoredWork = { hash, work, difficulty: value, workType, createdAt: this.#now(), ...(address ? { address } : {}) };
    this.#work.set(key, record);
    for (const user of services) {
      const s = this.#services.get(user);
      if (s) s[workType] += 1;
    }
    // The totals count credited work (the credit adds to them), as creditClient does.
    const client = address ? this.#credit(address, workType, hash, weight) : undefined;
    return { won: true, work: { ...record }, ...(client ? { client } : {}) };
  }

  // ------------------------------------------------------------ clients

  async getClient(address: string): Promise<ClientRecord | undefined> {
    this.#open();
    const c = this.#clients.get(address);
    return c && { ...c };
  }

  async creditClient(address: string, workType: WorkType, hash: string, weight = 1): Promise<ClientRecord> {
    this.#open();
    assertWorkType(workType);
    assertWeight(weight);
    return this.#credit(address, workType, hash, weight);
  }

  /** The caller has checked the work type and the weight. */
  #credit(address: string, workType: WorkType, hash: string, weight: number): ClientRecord {
    const c = this.#clients.get(address) ?? {
      address,
      precache: 0,
      ondemand: 0,
      snapshot_precache: 0,
      snapshot_ondemand: 0,
      weighted_precache: 0,
      weighted_ondemand: 0,
      snapshot_weighted_precache: 0,
      snapshot_weighted_ondemand: 0,
    };
    c[workType] += 1;
    c[`weighted_${workType}`] = (c[`weighted_${workType}`] ?? 0) + weight;
    c.block_rewarded = hash;
    this.#clients.set(address, c);
    this.#totals[workType] += 1;
    return { ...c };
  }

  async listClients(): Promise<ClientRecord[]> {
    this.#open();
    return [...this.#clients.values()].map((c) => ({ ...c }));
  }

  async snapshotClients(addresses: string[], workTypes: WorkType[]): Promise<void> {
    this.#open();
    for (const address of addresses) {
      const c = this.#clients.get(address);
      if (!c) continue;
      for (const t of workTypes) {
        if (t === 'precache') {
          c.snapshot_precache = c.precache;
          c.snapshot_weighted_precache = c.weighted_precache;
        } else {
          c.snapshot_ondemand = c.ondemand;
          c.snapshot_weighted_ondemand = c.weighted_ondemand;
        }
      }
    }
  }

  async recordSnapshot(entries: SnapshotEntry[]): Promise<void> {
    this.#open();
    for (const e of entries) {
      const c = this.#clients.get(e.address);
      if (!c) continue;
      if (e.precache !== undefined) c.snapshot_precache = e.precache;
      if (e.ondemand !== undefined) c.snapshot_ondemand = e.ondemand;
      if (e.weighted_precache !== undefined) c.snapshot_weighted_precache = e.weighted_precache;
      if (e.weighted_ondemand !== undefined) c.snapshot_weighted_ondemand = e.weighted_ondemand;
    }
  }

  // ------------------------------------------------------------ services

  async addService(service: ServiceRecord): Promise<void> {
    this.#open();
    this.#services.set(service.user, { ...service });
  }

  async getService(user: string): Promise<ServiceRecord | undefined> {
    this.#open();
    const s = this.#services.get(user);
    return s && { ...s };
  }

  async listServices(): Promise<ServiceRecord[]> {
    this.#open();
    return [...this.#services.values()].map((s) => ({ ...s }));
  }

  async removeService(user: string): Promise<boolean> {
    this.#open();
    return this.#services.delete(user);
  }

  async creditService(user: string, workType: WorkType): Promise<void> {
    this.#open();
    const s = this.#services.get(user);
    if (s) s[workType] += 1;
  }

  // ------------------------------------------------------------ work and jobs

  async saveWork(work: StoredWork): Promise<void> {
    this.#open();
    this.#work.set(work.hash.toLowerCase(), { ...work });
  }

  async getWork(hash: string): Promise<StoredWork | undefined> {
    this.#open();
    const w = this.#work.get(hash.toLowerCase());
    return w && w.createdAt > this.#now() - this.#retentionMs ? { ...w } : undefined;
  }

  async pruneWork(): Promise<number> {
    this.#open();
    const before = this.#now() - this.#retentionMs;
    let n = 0;
    for (const [key, w] of this.#work) {
      if (w.createdAt > before) continue;
      this.#work.delete(key);
      n++;
    }
    return n;
  }

  async savePending(job: PendingJob): Promise<void> {
    this.#open();
    this.#pending.set(job.hash.toLowerCase(), { ...job });
  }

  async getPending(hash: string): Promise<PendingJob | undefined> {
    this.#open();
    const j = this.#pending.get(hash.toLowerCase());
    return j && { ...j };
  }

  async removePending(hash: string): Promise<void> {
    this.#open();
    this.#pending.delete(hash.toLowerCase());
  }

  async listPending(): Promise<PendingJob[]> {
    this.#open();
    return [...this.#pending.values()].map((j) => ({ ...j }));
  }

  // ------------------------------------------------------------ precache tracking

  async trackAccount(account: TrackedAccount): Promise<void> {
    this.#open();
    // Tracking again without a frontier keeps the known one (as the SQLite store does).
    const known = this.#tracked.get(account.chain)?.frontier;
    const next = { ...account };
    if (next.frontier === undefined && known !== undefined) next.frontier = known;
    this.#tracked.set(account.chain, next);
  }

  async getTracked(chain: string): Promise<TrackedAccount | undefined> {
    this.#open();
    const t = this.#tracked.get(chain);
    return t && { ...t };
  }

  async listTracked(): Promise<TrackedAccount[]> {
    this.#open();
    return [...this.#tracked.values()].map((t) => ({ ...t }));
  }

  async rememberBlock(chain: string, hash: string): Promise<boolean> {
    this.#open();
    let known = this.#blocks.get(chain);
    if (!known) this.#blocks.set(chain, (known = new Set()));
    if (known.has(hash)) return false;
    known.add(hash);
    if (known.size > KNOWN_BLOCKS_PER_CHAIN) known.delete(known.values().next().value as string);
    return true;
  }

  // ------------------------------------------------------------ totals

  async getTotals(): Promise<{ precache: number; ondemand: number }> {
    this.#open();
    return { ...this.#totals };
  }

  async close(): Promise<void> {
    this.#closed = true;
  }
}
