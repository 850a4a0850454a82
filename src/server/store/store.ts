/**
 * The dispatcher's state, behind one interface so the embedded default (SQLite) and a shared
 * store for several dispatchers (e.g. Redis) can be swapped without touching dispatcher logic.
 * Every method is async for that reason, even where SQLite is synchronous.
 */
import type { ClientStats, WorkType } from '../../dpow/codec.ts';

export interface ServiceRecord {
  user: string;
  /** scrypt/sha256 hash of the API key; the key itself is never stored. */
  apiKeyHash: string;
  display: string;
  website: string;
  /** Public services are listed by name in `statistics`; private ones are aggregated. */
  public: boolean;
  precache: number;
  ondemand: number;
  /** Requests per minute allowed; 0 = unlimited. */
  rateLimit: number;
  createdAt: number;
}

export interface StoredWork {
  hash: string;
  work: string;
  difficulty: bigint;
  workType: WorkType;
  /** Address credited for it, if it came from a worker. */
  address?: string;
  createdAt: number;
}

export interface PendingJob {
  hash: string;
  difficulty: bigint;
  workType: WorkType;
  /** ms since epoch after which the job is expired and cancelled. */
  expiresAt: number;
  createdAt: number;
  /** The tracked account this precache belongs to, if any. */
  account?: string;
}

export interface TrackedAccount {
  account: string;
  /** Chain key: for Nano the account; for QLC `${account}:${token}`. */
  chain: string;
  /** The current frontier (the root of the chain's next block), if known. */
  frontier?: string;
  updatedAt: number;
}

export interface ClientRecord extends ClientStats {
  address: string;
  /**
   * Work weighted by difficulty: the sum, over every credited work of the type, of its requested
   * difficulty as a multiplier of the Nano send threshold (a receive-threshold work adds 0.125).
   * `snapshot weighted` are their values at the last payout. For `dpow-web snapshot --weight
   * difficulty`; a store without them pays one work, one share.
   */
  weighted_precache?: number;
  weighted_ondemand?: number;
  snapshot_weighted_precache?: number;
  snapshot_weighted_ondemand?: number;
}

export interface SnapshotShare {
  address: string;
  precache: number;
  ondemand: number;
  /** With --weight difficulty: the paid works' summed multipliers the share came from. */
  weighted?: number;
  share: number;
}

export interface SnapshotEntry {
  address: string;
  precache?: number;
  ondemand?: number;
  /** The weighted sums the payout was computed from (set beside the counters they go with). */
  weighted_precache?: number;
  weighted_ondemand?: number;
}

/**
 * Block hashes a store keeps per chain for `rememberBlock`, at least; older ones may be
 * forgotten, so a replay from further back than this many blocks of one chain is not caught.
 */
export const KNOWN_BLOCKS_PER_CHAIN = 10_000;

export interface DispatcherStore {
  // clients
  getClient(address: string): Promise<ClientRecord | undefined>;
  /**
   * Adds one to the client's counter for `workType`, `weight` (default 1: the work's difficulty
   * as a multiplier) to its weighted sum, and records the rewarded block.
   */
  creditClient(address: string, workType: WorkType, hash: string, weight?: number): Promise<ClientRecord>;
  listClients(): Promise<ClientRecord[]>;
  /** Copies counters (and weighted sums) into snapshot_* for the given addresses. */
  snapshotClients(addresses: string[], workTypes: WorkType[]): Promise<void>;
  /**
   * Sets snapshot_<type> to the counter values a payout was computed from (not the counters at
   * the time of the call, which may have grown since: that work stays for the next payout).
   * Types left out of an entry are not touched. Unknown addresses are ignored.
   */
  recordSnapshot(entries: SnapshotEntry[]): Promise<void>;

  // services
  addService(service: ServiceRecord): Promise<void>;
  getService(user: string): Promise<ServiceRecord | undefined>;
  listServices(): Promise<ServiceRecord[]>;
  removeService(user: string): Promise<boolean>;
  creditService(user: string, workType: WorkType): Promise<void>;

  // work and jobs
  saveWork(work: StoredWork): Promise<void>;
  getWork(hash: string): Promise<StoredWork | undefined>;
  savePending(job: PendingJob): Promise<void>;
  removePending(hash: string): Promise<void>;
  listPending(): Promise<PendingJob[]>;

  // precache tracking
  /** Upserts by chain; a missing `frontier` keeps the chain's known frontier. */
  trackAccount(account: TrackedAccount): Promise<void>;
  getTracked(chain: string): Promise<TrackedAccount | undefined>;
  listTracked(): Promise<TrackedAccount[]>;
  /**
   * Records block `hash` (lowercase hex) as part of `chain`'s history: a block seen, or the
   * `previous` of one. True when it was not known yet; false for a block already known, so a
   * replayed old block is recognised after a restart and by every dispatcher sharing the store.
   * Keeps at least the newest KNOWN_BLOCKS_PER_CHAIN hashes of each chain.
   */
  rememberBlock(chain: string, hash: string): Promise<boolean>;

  // global counters
  getTotals(): Promise<{ precache: number; ondemand: number }>;

  close(): Promise<void>;
}
