/**
 * The dispatcher's state, behind one interface so the embedded default (SQLite) and a shared
 * store for several dispatchers (e.g. Redis) can be swapped without touching dispatcher logic.
 * Every method is async for that reason, even where SQLite is synchronous.
 */
import { WORK_TYPES, type ClientStats, type WorkType } from '../../dpow/codec.ts';
import type { PayoutLedger, SnapshotEntry } from './payout-ledger.ts';

export type { SnapshotEntry };

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

/** Every store refuses an unknown work type the same way, before writing anything. */
export function assertWorkType(workType: WorkType): void {
  if (!WORK_TYPES.includes(workType)) throw new TypeError(`unknown work type "${String(workType)}"`);
}

/** A credit's weight (the work's difficulty as a multiplier) is a finite number >= 0. */
export function assertWeight(weight: number): void {
  if (!Number.isFinite(weight) || weight < 0) throw new RangeError(`work weight must be a finite number >= 0, got ${weight}`);
}

/**
 * How long stored work answers a request for its hash (and stays in the store): about four
 * months, as the original DPoW server kept each block's work. Long after a block is confirmed,
 * nobody asks for its work again, and a store that keeps every work grows without bound.
 */
export const DEFAULT_WORK_RETENTION_MS = 120 * 24 * 60 * 60 * 1000;

/** A work retention is a whole number of milliseconds, at least one second. */
export function assertRetention(ms: number): void {
  if (!Number.isSafeInteger(ms) || ms < 1000) throw new RangeError(`work retention must be a whole number of ms >= 1000, got ${ms}`);
}

/** A checked, valid result that `acceptResult` claims, stores and credits in one step. */
export interface AcceptRequest {
  hash: string;
  work: string;
  /** The work's value, stored as its difficulty. */
  value: bigint;
  workType: WorkType;
  /** The payout address to credit; left out when the result named an invalid one. */
  address?: string;
  /** Users of the services whose requests this work answers; each is credited. */
  services: readonly string[];
  /** Added to the client's weighted sum (the difficulty asked for, as a multiplier). Default 1. */
  weight?: number;
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

/**
 * What `acceptResult` did. Exactly one caller wins each claim: the winner's work is stored and
 * credited; a loser gets the work that won, so it can answer its own waiters with the same work.
 */
export type AcceptOutcome =
  | { won: true; work: StoredWork; /** The credited client, when an address was credited. */ client?: ClientRecord }
  | { won: false; work?: StoredWork };

/** An accepted result as it is broadcast to the other dispatchers sharing a store. */
export interface Acceptance {
  hash: string;
  work: string;
  /** Work value, 16 hex. */
  value: string;
  workType: WorkType;
}

/**
 * What several dispatchers on one store need besides the data: acceptances broadcast to all
 * (so a request waiting at A is answered when B accepts), and a lease for the singletons
 * (heartbeat, statistics, precache feeds, job expiry) with a fencing token.
 */
export interface ClusterLink {
  publishAcceptance(acceptance: Acceptance): Promise<void>;
  /** Resolves once subscribed; the returned function unsubscribes. */
  onAcceptance(listener: (acceptance: Acceptance) => void): Promise<() => Promise<void>>;
  /**
   * Takes the lease `name` for `holder` or extends it if `holder` has it, for `ttlMs`. Returns
   * the fencing token (it grows with every new holder) while held, undefined while another
   * holder has it.
   */
  holdLease(name: string, holder: string, ttlMs: number): Promise<number | undefined>;
  /** Gives the lease up if `holder` has it, so another dispatcher takes over at once. */
  releaseLease(name: string, holder: string): Promise<void>;
}

/**
 * Block hashes a store keeps per chain for `rememberBlock`, at least; older ones may be
 * forgotten, so a replay from further back than this many blocks of one chain is not caught.
 */
export const KNOWN_BLOCKS_PER_CHAIN = 10_000;

export interface DispatcherStore {
  /**
   * Present when several dispatchers may share this store (Redis): results for jobs another
   * dispatcher published are looked up here, acceptances are broadcast, singletons are leased.
   */
  readonly cluster?: ClusterLink;

  /**
   * Present when writes that pay or elect wait for replicas (Redis with `replicas` > 0): how many
   * were confirmed, and how many were not in time (each one failed, so it was held, not answered).
   */
  readonly replication?: { readonly confirmed: number; readonly shortfall: number };

  /**
   * Accepts a valid result, all at once: claims the hash, stores the work (`value` as its
   * difficulty), credits `address` (when given, as creditClient with `weight`) and every service
   * in `services` for `workType`, adds one to the total, and removes the pending job. An unknown
   * work type or a bad weight is refused before anything is written.
   *
   * The claim is won while the hash has a pending job (which this call removes), or when it has
   * neither a pending job nor stored work (a pending record that never reached the store). Any
   * other caller loses and nothing is written: a result for a hash already accepted is a duplicate.
   */
  acceptResult(result: AcceptRequest): Promise<AcceptOutcome>;

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
  /** The stored work for `hash`, unless it was created longer ago than the store's work retention. */
  getWork(hash: string): Promise<StoredWork | undefined>;
  /**
   * Removes stored work older than the store's work retention and says how many records went.
   * A store whose records expire by themselves (Redis, by key expiry) has nothing to do: 0.
   */
  pruneWork(): Promise<number>;
  savePending(job: PendingJob): Promise<void>;
  getPending(hash: string): Promise<PendingJob | undefined>;
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

  /** Payout runs and payments (payout-ledger.ts). */
  readonly payouts: PayoutLedger;

  close(): Promise<void>;
}
