/**
 * The DPoW dispatcher: hands jobs to volunteer workers over MQTT and takes their results.
 *
 *   requestWork / precache --> work/<type> "hash,difficulty"      (workers compute)
 *   result/<type> "hash,work,address" --> validate --> answer the request, cancel/<type>,
 *                                          credit, client/<address>
 *   heartbeat every second; statistics at start and every statisticsMs, from the store
 *
 * What it fixes relative to the old server (protocol-notes §3): a timed-out, expired or
 * withdrawn job publishes cancel/<type> so workers stop; pending jobs live in the store and are
 * republished (or cancelled, if expired) after a restart; malformed results are counted by
 * reason instead of vanishing. Jobs are keyed by the lower-cased hash; every message echoes the
 * hash exactly as the requester gave it.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import type { ConnectFn } from '../dpow/mqtt-connect.ts';
import { ALL_PREFIXES, checkAddress } from '../dpow/address.ts';
import {
  cancelCodec,
  clientCodec,
  heartbeatCodec,
  parseTopic,
  resultCodec,
  statisticsCodec,
  topics,
  workCodec,
  WORK_TYPES,
  type RejectCode,
  type Statistics,
  type WorkType,
} from '../dpow/codec.ts';
import { checkDifficulty, DEFAULT_POLICY, type DifficultyPolicy } from '../pow/difficulty.ts';
import {
  isRootHex,
  PowInputError,
  toMultiplier,
  toU64Hex,
  validateWork,
} from '../pow/work.ts';
import { AbuseGuard, type AbuseOptions, type Containment } from './abuse.ts';
import { type Logger, silentLogger } from './log.ts';
import type { Acceptance, AcceptOutcome, ClusterLink, DispatcherStore, PendingJob, StoredWork } from './store/store.ts';
import { DispatchError, type DispatcherApi, type WorkAnswer, type WorkRequest } from './types.ts';

export interface DispatcherOptions {
  /** mqtt://, ws:// or wss:// URL of the broker. */
  brokerUrl: string;
  /** The broker's `server` role login. */
  username: string;
  password: string;
  store: DispatcherStore;
  /** Default 1000 (the DPoW heartbeat). */
  heartbeatMs?: number;
  /** Default 300 000 (5 minutes, as the real server). */
  statisticsMs?: number;
  /**
   * Between the regular statistics, new statistics go out at most this often, and only when work
   * was credited since the last ones. Default 10 000. Statistics are retained on the broker, so
   * a worker that connects gets the latest at once.
   */
  statisticsChangeMs?: number;
  /** Used when a request carries no usable timeout. Default 5000. */
  defaultTimeoutMs?: number;
  /** How long a precache job stays pending before it is cancelled. Default 30 minutes. */
  precacheTtlMs?: number;
  /** The difficulty bounds (the ceiling applies here); share the service API's. Default DEFAULT_POLICY. */
  policy?: DifficultyPolicy;
  /** Payout prefixes credited; others get the "account is invalid" reply. Default all four. */
  addressPrefixes?: readonly string[];
  /** How long start() waits for the first broker connection. Default 10 000. */
  connectTimeoutMs?: number;
  /** MQTT client id. Default dpow-dispatcher-<random>. */
  clientId?: string;
  /**
   * Subscribe to results as `$share/<group>/result/+` so the broker hands each result to one
   * dispatcher of the group (Mosquitto 2, EMQX; not aedes). Default: every dispatcher sees every
   * result and the store's claim decides.
   */
  sharedGroup?: string;
  /** Singleton lease length on a shared store; another dispatcher takes over within it. Default 2000. */
  leaseMs?: number;
  /** First wait before a result the store could not take is tried again; doubles up to 5 s. Default 250. */
  retryMs?: number;
  /** How often the elected dispatcher asks the store to forget work past its retention. Default 1 hour. */
  pruneWorkMs?: number;
  /** Opens the broker connection (as the worker's client takes it). Default mqtt.js connect. */
  connect?: ConnectFn;
  log?: Logger;
  /**
   * Who published a result: the MQTT client id, when the broker can tell (the embedded one
   * can; see Broker.publisherOf). Unknown for an external broker: containment is then by address.
   */
  resultPublisher?: (topic: string, payload: Buffer) => string | undefined;
  /** Invalid-result containment (see abuse.ts); thresholds, window and cooldown. */
  abuse?: Partial<Omit<AbuseOptions, 'now'>>;
}

/** Every way a result can end; `malformed` results are also counted by codec reason. */
export type ResultOutcome = 'accepted' | 'invalid-work' | 'duplicate' | 'unknown-hash' | 'malformed' | 'ignored';

/** Outcomes that count against the source in abuse containment (duplicates are honest races). */
const INVALID_OUTCOMES: ReadonlySet<ResultOutcome> = new Set(['invalid-work', 'unknown-hash', 'malformed']);

export interface DispatcherCounters {
  results: Record<ResultOutcome, number>;
  /** Malformed results by codec reject code (bad-hash, bad-work, bad-field-count, …). */
  malformed: Partial<Record<RejectCode, number>>;
  published: { work: number; cancel: number; heartbeat: number; statistics: number; client: number };
  requests: { cached: number; dispatched: number; shared: number; answered: number; timeout: number; cancelled: number };
  precache: { published: number; expired: number; withdrawn: number };
  /** Jobs found in the store at start: republished, or cancelled because they had expired. */
  restored: { republished: number; expired: number };
  /** Accepted results whose payout address failed the check (not credited). */
  invalidAddress: number;
  storeErrors: number;
  /**
   * Valid results the store could not take (it was unreachable): held, not answered or credited,
   * and tried again until the store answers. `held` is how many wait now.
   */
  deferred: { total: number; held: number; retried: number };
  /** Times this dispatcher took the singleton lease (heartbeat, statistics, expiry). */
  leases: number;
  /** Stored works removed because they were older than the store's work retention. */
  workPruned: number;
  /**
   * By work type: work/ messages published (republishes included), jobs that ended without
   * work (timed out or expired, cancel sent) and jobs withdrawn (cancel sent).
   */
  jobs: Record<WorkType, { published: number; expired: number; cancelled: number }>;
}

export interface AcceptedResult {
  /** The hash as the job was published. */
  hash: string;
  work: string;
  /** Work value, 16 hex. */
  value: string;
  difficulty: string;
  workType: WorkType;
  address: string;
  addressValid: boolean;
  /** Requests answered by this result. */
  answered: number;
  /** From the job's creation to this result, in ms. */
  latencyMs: number;
}

export interface RejectedResult {
  outcome: Exclude<ResultOutcome, 'accepted'>;
  reason: string;
  topic: string;
}

export interface DispatcherEvents {
  /** After a result was accepted and its store writes and client notice are done. */
  accepted: [result: AcceptedResult];
  /** A result that was not accepted, with the reason. */
  rejected: [result: RejectedResult];
  /** An account newly tracked for precache (normalised: xrb_ as nano_). */
  tracked: [account: string];
  /** This dispatcher took (true) or lost (false) the singletons. */
  leadership: [leader: boolean];
}

interface Waiter {
  hash: string;
  service?: string;
  timer: NodeJS.Timeout;
  resolve(answer: WorkAnswer): void;
  reject(err: DispatchError): void;
}

/** A valid result on its way into the store (or held there until the store answers again). */
interface Claim {
  topic: string;
  key: string;
  hash: string;
  work: string;
  /** Unknown while a result for another dispatcher's job waits for its pending record. */
  difficulty?: bigint;
  workType: WorkType;
  address: string;
  /** The local job it answers, if this dispatcher published it. */
  job?: Job;
  /** Set once it has been held for a retry. */
  held?: boolean;
  source: ResultSource;
  /** When its job was created (for the accept latency). */
  createdAt?: number;
}

interface Job {
  /** Lower-case hash: the job's identity. */
  key: string;
  /** The hash as first given; used in work/ and cancel/ messages. */
  hash: string;
  difficulty: bigint;
  workType: WorkType;
  /** Types this hash went out on, so a cancel reaches every worker that got it. */
  published: Set<WorkType>;
  expiresAt: number;
  createdAt: number;
  account?: string;
  waiters: Set<Waiter>;
  expiry?: NodeJS.Timeout;
}

/** Hashes remembered after acceptance so late results count as duplicates, not unknown. */
const RECENT_LIMIT = 10_000;

/** setTimeout fires at once for delays above 2^31-1 ms; nothing here needs longer than 24 days. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** What is known about who sent a result: the payout address it names, the MQTT client id. */
interface ResultSource {
  address?: string;
  publisher?: string;
}

/** 'answered': accepted here or by another dispatcher; workers were or will be told by the winner. */
type DropReason = 'accepted' | 'answered' | 'timeout' | 'expired' | 'withdrawn';

const SINGLETON_LEASE = 'singletons';
const MAX_RETRY_MS = 5000;
/** Held results beyond this are refused (logged and counted): memory is finite. */
const MAX_DEFERRED = 100_000;

export class Dispatcher extends EventEmitter<DispatcherEvents> implements DispatcherApi {
  readonly counters: DispatcherCounters = {
    results: { accepted: 0, 'invalid-work': 0, duplicate: 0, 'unknown-hash': 0, malformed: 0, ignored: 0 },
    malformed: {},
    published: { work: 0, cancel: 0, heartbeat: 0, statistics: 0, client: 0 },
    requests: { cached: 0, dispatched: 0, shared: 0, answered: 0, timeout: 0, cancelled: 0 },
    precache: { published: 0, expired: 0, withdrawn: 0 },
    restored: { republished: 0, expired: 0 },
    invalidAddress: 0,
    storeErrors: 0,
    deferred: { total: 0, held: 0, retried: 0 },
    leases: 0,
    workPruned: 0,
    jobs: {
      precache: { published: 0, expired: 0, cancelled: 0 },
      ondemand: { published: 0, expired: 0, cancelled: 0 },
    },
  };

  /** Invalid results by source and the containments they started (read by /metrics). */
  readonly abuse: AbuseGuard;

  readonly #opts: Required<Omit<DispatcherOptions, 'log' | 'clientId' | 'connect' | 'resultPublisher' | 'abuse' | 'sharedGroup'>> & {
    clientId: string;
    sharedGroup?: string;
  };
  readonly #connect: ConnectFn;
  readonly #resultPublisher?: (topic: string, payload: Buffer) => string | undefined;
  readonly #log: Logger;
  readonly #store: DispatcherStore;
  readonly #jobs = new Map<string, Job>();
  readonly #recent = new Map<string, number>();
  /** Hashes whose claim is in flight here, so a second result for one does not race the first. */
  readonly #claiming = new Set<string>();
  readonly #deferred: Claim[] = [];
  #retryTimer?: NodeJS.Timeout;
  #retryDelay = 0;
  readonly #cluster?: ClusterLink;
  #unsubscribeAcceptances?: () => Promise<void>;
  #leaseTimer?: NodeJS.Timeout;
  /** The fencing token while this dispatcher holds the singleton lease. */
  #leaseToken?: number;
  #leaseUntil = 0;
  #client?: MqttClient;
  #heartbeat?: NodeJS.Timeout;
  #statistics?: NodeJS.Timeout;
  #sweep?: NodeJS.Timeout;
  #prune?: NodeJS.Timeout;
  #statisticsChange?: NodeJS.Timeout;
  /** Work was credited since the last statistics went out. */
  #statisticsDirty = false;
  /** The last statistics payload published, so an unchanged one is not sent again early. */
  #lastStatistics?: string;
  #state: 'new' | 'starting' | 'running' | 'stopped' = 'new';
  #connectedOnce = false;

  constructor(options: DispatcherOptions) {
    super();
    this.#opts = {
      brokerUrl: options.brokerUrl,
      username: options.username,
      password: options.password,
      store: options.store,
      heartbeatMs: options.heartbeatMs ?? 1000,
      statisticsMs: options.statisticsMs ?? 300_000,
      statisticsChangeMs: options.statisticsChangeMs ?? 10_000,
      defaultTimeoutMs: options.defaultTimeoutMs ?? 5000,
      precacheTtlMs: options.precacheTtlMs ?? 30 * 60_000,
      policy: options.policy ?? DEFAULT_POLICY,
      addressPrefixes: options.addressPrefixes ?? ALL_PREFIXES,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      clientId: options.clientId ?? `dpow-dispatcher-${randomBytes(4).toString('hex')}`,
      ...(options.sharedGroup ? { sharedGroup: options.sharedGroup } : {}),
      leaseMs: options.leaseMs ?? 2000,
      retryMs: options.retryMs ?? 250,
      pruneWorkMs: options.pruneWorkMs ?? 3_600_000,
    };
    this.#connect = options.connect ?? mqtt.connect;
    this.#log = options.log ?? silentLogger;
    this.#store = options.store;
    this.#cluster = options.store.cluster;
    this.#retryDelay = this.#opts.retryMs;
    this.#resultPublisher = options.resultPublisher;
    this.abuse = new AbuseGuard(options.abuse);
  }

  /**
   * Whether this dispatcher runs the singletons (heartbeat, statistics, precache feeds, expiry
   * of other dispatchers' jobs). Always true on a store of its own; on a shared store, while it
   * holds the lease. `token` is the lease's fencing token.
   */
  get leadership(): { leader: boolean; token?: number } {
    if (!this.#cluster) return { leader: this.#state === 'running' };
    const leader = this.#leaseToken !== undefined && Date.now() < this.#leaseUntil;
    return leader ? { leader, token: this.#leaseToken } : { leader };
  }

  /** Jobs waiting for a result, for status displays and tests. */
  get pending(): Array<{ hash: string; difficulty: string; workType: WorkType; expiresAt: number; waiters: number }> {
    return [...this.#jobs.values()].map((j) => ({
      hash: j.hash,
      difficulty: toU64Hex(j.difficulty),
      workType: j.workType,
      expiresAt: j.expiresAt,
      waiters: j.waiters.size,
    }));
  }

  get connected(): boolean {
    return this.#client?.connected ?? false;
  }

  // ------------------------------------------------------------------ lifecycle

  /** Connects as the server user, subscribes to results, restores stored jobs, starts the clocks. */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new Error(`dispatcher already ${this.#state}`);
    this.#state = 'starting';
    const client = this.#connect(this.#opts.brokerUrl, {
      username: this.#opts.username,
      password: this.#opts.password,
      protocolVersion: 4,
      clientId: this.#opts.clientId,
      clean: true,
      keepalive: 60,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
    });
    // The first connection must succeed (or fail) within connectTimeoutMs: a wrong password, a
    // refused port or a WebSocket path that answers 404 all end start() with the reason.
    try {
      await new Promise<void>((resolve, reject) => {
        const done = (err?: Error) => {
          clearTimeout(timer);
          client.off('connect', onConnect);
          client.off('error', onError);
          client.off('close', onClose);
          if (err) reject(err);
          else resolve();
        };
        const onConnect = () => done();
        const onError = (err: Error) => done(new Error(`cannot connect to ${this.#opts.brokerUrl}: ${err.message}`));
        let closes = 0;
        const onClose = () => {
          // Retried a few times without ever connecting: not a broker we can use.
          if (++closes >= 3) done(new Error(`cannot connect to ${this.#opts.brokerUrl}: connection closed ${closes} times`));
        };
        const timer = setTimeout(
          () => done(new Error(`cannot connect to ${this.#opts.brokerUrl}: no answer within ${this.#opts.connectTimeoutMs} ms`)),
          this.#opts.connectTimeoutMs,
        );
        client.on('connect', onConnect);
        client.on('error', onError);
        client.on('close', onClose);
      });
    } catch (err) {
      this.#state = 'stopped';
      client.end(true);
      throw err;
    }
    this.#client = client;
    if (this.#state !== 'starting') {
      // stop() was called while the connection was being made.
      await client.endAsync(true);
      return;
    }
    client.on('message', (topic, payload) => {
      try {
        this.#onResult(topic, payload);
      } catch (err) {
        // Nothing in #onResult should throw; if it does, the loop must survive it.
        this.#log.error(`dispatcher: result on ${topic} failed: ${(err as Error).stack ?? err}`);
      }
    });
    client.on('connect', () => {
      if (!this.#connectedOnce) return;
      this.#log.info('dispatcher: reconnected to the broker; republishing pending jobs');
      for (const job of this.#jobs.values()) this.#publishWork(job, job.workType);
      if (this.leadership.leader) void this.publishStatistics();
    });
    client.on('offline', () => this.#log.warn('dispatcher: broker connection lost, retrying'));
    client.on('error', (err) => this.#log.warn(`dispatcher: broker: ${err.message}`));

    const resultTopics = WORK_TYPES.map((t) => topics.result(t));
    const group = this.#opts.sharedGroup;
    await client.subscribeAsync(group ? resultTopics.map((t) => `$share/${group}/${t}`) : resultTopics, { qos: 1 });
    this.#connectedOnce = true;
    if (this.#state !== 'starting') return; // stopped while connecting
    if (this.#cluster) this.#unsubscribeAcceptances = await this.#cluster.onAcceptance((a) => this.#onAcceptance(a));
    this.#state = 'running';
    if (this.#cluster) await this.#holdLease();
    else await this.#takeSingletons();
    this.#log.info(`dispatcher: connected to ${this.#opts.brokerUrl} as ${this.#opts.username}`);
  }

  // ------------------------------------------------------------------ singletons

  /** Restores stored jobs, publishes statistics and starts the heartbeat and statistics clocks. */
  async #takeSingletons(): Promise<void> {
    this.counters.leases++;
    await this.#restore();
    if (this.#state !== 'running') return;
    await this.publishStatistics();
    this.#heartbeat = setInterval(() => this.#publishHeartbeat(), this.#opts.heartbeatMs);
    this.#publishHeartbeat();
    this.#statistics = setInterval(() => void this.publishStatistics(), this.#opts.statisticsMs);
    this.#statisticsChange = setInterval(() => {
      if (this.#statisticsDirty) void this.publishStatistics({ onlyIfChanged: true });
    }, this.#opts.statisticsChangeMs);
    if (this.#cluster) this.#sweep = setInterval(() => void this.#expireStored(), Math.min(this.#opts.leaseMs, 2000));
    this.#prune = setInterval(() => void this.#pruneWork(), this.#opts.pruneWorkMs);
    void this.#pruneWork();
    this.emit('leadership', true);
  }

  #dropSingletons(): void {
    this.#stopSingletonClocks();
    this.emit('leadership', false);
  }

  /** The one list of the singletons' clocks, for losing the lease and for stop(). */
  #stopSingletonClocks(): void {
    clearInterval(this.#heartbeat);
    clearInterval(this.#statistics);
    clearInterval(this.#statisticsChange);
    clearInterval(this.#sweep);
    clearInterval(this.#prune);
    this.#heartbeat = this.#statistics = this.#statisticsChange = this.#sweep = this.#prune = undefined;
  }

  /**
   * Takes or renews the singleton lease, every quarter of its length. The lease counts as held
   * until `leaseMs` after the request was sent, minus a margin, so this dispatcher stops before
   * another can take over; a new holder gets a larger fencing token.
   */
  async #holdLease(): Promise<void> {
    clearTimeout(this.#leaseTimer);
    if (this.#state !== 'running') return;
    const asked = Date.now();
    let token: number | undefined;
    try {
      token = await this.#cluster!.holdLease(SINGLETON_LEASE, this.#opts.clientId, this.#opts.leaseMs);
    } catch (err) {
      this.counters.storeErrors++;
      this.#log.warn(`dispatcher: lease: ${(err as Error).message}`);
    }
    if (this.#state !== 'running') return;
    const held = this.#leaseToken !== undefined;
    if (token !== undefined) {
      this.#leaseUntil = asked + this.#opts.leaseMs - Math.min(250, this.#opts.leaseMs / 4);
      if (!held || token !== this.#leaseToken) {
        if (held) this.#dropSingletons();
        this.#leaseToken = token;
        this.#log.info(`dispatcher: ${this.#opts.clientId} runs the singletons (lease token ${token})`);
        await this.#takeSingletons();
      }
    } else if (held && Date.now() >= this.#leaseUntil) {
      this.#log.warn(`dispatcher: ${this.#opts.clientId} lost the singleton lease (token ${this.#leaseToken})`);
      this.#leaseToken = undefined;
      this.#dropSingletons();
    }
    if (this.#state === 'running') this.#leaseTimer = setTimeout(() => void this.#holdLease(), this.#opts.leaseMs / 4);
  }

  /** The elected dispatcher has the store forget work past its retention (SQLite deletes rows; Redis keys expire alone). */
  async #pruneWork(): Promise<void> {
    if (!this.leadership.leader) return;
    const pruned = await this.#storeCall(() => this.#store.pruneWork());
    if (!pruned) return;
    this.counters.workPruned += pruned;
    this.#log.info(`dispatcher: forgot ${pruned} stored works past the work retention`);
  }

  /** The elected dispatcher cancels stored jobs past their expiry, whoever published them. */
  async #expireStored(): Promise<void> {
    if (!this.leadership.leader) return;
    const stored = await this.#storeCall(() => this.#store.listPending());
    const now = Date.now();
    for (const p of stored ?? []) {
      if (p.expiresAt > now || this.#jobs.has(p.hash.toLowerCase())) continue;
      await this.#storeCall(() => this.#store.removePending(p.hash));
      if (p.workType === 'precache') this.counters.precache.expired++;
      this.#publishCancel(p.workType, p.hash);
    }
  }

  /**
   * Stops the clocks and disconnects. Pending jobs stay in the store (a restart republishes
   * them); requests still waiting are rejected with `shutting-down`.
   */
  async stop(): Promise<void> {
    if (this.#state === 'stopped') return;
    this.#state = 'stopped';
    this.#stopSingletonClocks();
    clearTimeout(this.#leaseTimer);
    clearTimeout(this.#retryTimer);
    if (this.#deferred.length) {
      this.#log.error(`dispatcher: stopping with ${this.#deferred.length} valid results the store never took (not answered, not credited)`);
    }
    if (this.#cluster) {
      if (this.#leaseToken !== undefined) await this.#cluster.releaseLease(SINGLETON_LEASE, this.#opts.clientId).catch(() => {});
      await this.#unsubscribeAcceptances?.().catch(() => {});
    }
    for (const job of this.#jobs.values()) {
      clearTimeout(job.expiry);
      for (const w of job.waiters) {
        clearTimeout(w.timer);
        w.reject(new DispatchError('shutting-down', 'The dispatcher is shutting down'));
      }
    }
    this.#jobs.clear();
    if (this.#client) await this.#client.endAsync();
  }

  // ------------------------------------------------------------------ DispatcherApi

  async requestWork(request: WorkRequest): Promise<WorkAnswer> {
    this.#ensureRunning();
    const { hash, difficulty } = request;
    if (!isRootHex(hash)) throw new PowInputError('bad-root', 'hash must be 64 hex characters');
    checkDifficulty(difficulty, this.#opts.policy);
    const timeoutMs = Math.min(
      MAX_TIMER_MS,
      Number.isFinite(request.timeoutMs) && request.timeoutMs > 0 ? request.timeoutMs : this.#opts.defaultTimeoutMs,
    );
    const key = hash.toLowerCase();
    if (request.account) void this.track(request.account);

    const stored = await this.#storeCall(() => this.#store.getWork(key));
    if (stored) {
      const { valid, value } = validateWork(hash, stored.work, difficulty);
      if (valid) {
        this.counters.requests.cached++;
        if (request.service) void this.#storeCall(() => this.#store.creditService(request.service!, stored.workType));
        return { hash, work: stored.work, value: toU64Hex(value), cached: true };
      }
    }
    // On a shared store another dispatcher may have published this hash already: share its job.
    const elsewhere = this.#cluster && !this.#jobs.has(key) ? await this.#storeCall(() => this.#store.getPending(key)) : undefined;
    this.#ensureRunning();

    const now = Date.now();
    let job = this.#jobs.get(key);
    if (!job && elsewhere && elsewhere.expiresAt > now) {
      job = this.#newJob(elsewhere.hash, elsewhere.difficulty, elsewhere.workType, elsewhere.expiresAt, elsewhere.account, elsewhere.createdAt);
      job.published.add(elsewhere.workType);
    }
    if (!job) {
      job = this.#newJob(hash, difficulty, 'ondemand', now + timeoutMs, request.account);
      this.counters.requests.dispatched++;
      this.#savePending(job);
      this.#publishWork(job, 'ondemand');
    } else {
      this.counters.requests.shared++;
      let republish = false;
      if (job.workType !== 'ondemand') {
        // Someone is waiting now: workers that take ondemand first should see it.
        job.workType = 'ondemand';
        republish = true;
      }
      if (difficulty > job.difficulty) {
        job.difficulty = difficulty;
        republish = true;
      }
      if (now + timeoutMs > job.expiresAt) {
        job.expiresAt = now + timeoutMs;
        this.#scheduleExpiry(job);
      }
      this.#savePending(job);
      if (republish) this.#publishWork(job, job.workType);
    }

    const current = job;
    return new Promise<WorkAnswer>((resolve, reject) => {
      const waiter: Waiter = {
        hash,
        service: request.service,
        resolve,
        reject,
        timer: setTimeout(() => {
          current.waiters.delete(waiter);
          this.counters.requests.timeout++;
          reject(new DispatchError('timeout', 'Timeout reached without work'));
          // Nobody else waiting: stop the workers instead of letting them finish for nothing.
          if (current.waiters.size === 0 && current.workType === 'ondemand') this.#drop(current, 'timeout');
        }, timeoutMs),
      };
      current.waiters.add(waiter);
    });
  }

  async precache(hash: string, difficulty: bigint, account?: string): Promise<void> {
    this.#ensureRunning();
    if (!isRootHex(hash)) throw new PowInputError('bad-root', 'hash must be 64 hex characters');
    checkDifficulty(difficulty, this.#opts.policy);
    const key = hash.toLowerCase();
    const stored = await this.#storeCall(() => this.#store.getWork(key));
    if (stored && validateWork(hash, stored.work, difficulty).valid) return;
    this.#ensureRunning();

    const job = this.#jobs.get(key);
    if (job) {
      if (difficulty > job.difficulty) {
        job.difficulty = difficulty;
        this.#savePending(job);
        this.#publishWork(job, job.workType);
      }
      return;
    }
    const fresh = this.#newJob(hash, difficulty, 'precache', Date.now() + this.#opts.precacheTtlMs, account);
    this.counters.precache.published++;
    this.#savePending(fresh);
    this.#publishWork(fresh, 'precache');
  }

  async withdraw(hash: string): Promise<boolean> {
    const job = typeof hash === 'string' ? this.#jobs.get(hash.toLowerCase()) : undefined;
    if (!job) return false;
    this.counters.precache.withdrawn++;
    return this.#drop(job, 'withdrawn');
  }

  async track(account: string): Promise<void> {
    if (!checkAddress(account, this.#opts.addressPrefixes).ok) return;
    // One chain per Nano account whichever prefix it came with (as the precache policy keys it).
    const normal = account.replace(/^xrb_/, 'nano_');
    const existing = await this.#storeCall(() => this.#store.getTracked(normal));
    if (existing) return;
    await this.#storeCall(() => this.#store.trackAccount({ account: normal, chain: normal, updatedAt: Date.now() }));
    this.emit('tracked', normal);
  }

  onTracked(listener: (account: string) => void): () => void {
    this.on('tracked', listener);
    return () => this.off('tracked', listener);
  }

  // ------------------------------------------------------------------ statistics

  /** The statistics message, built from the store's real counters. */
  async buildStatistics(): Promise<Statistics> {
    const [services, totals] = await Promise.all([this.#store.listServices(), this.#store.getTotals()]);
    const stats: Statistics = {
      services: { public: [], private: { count: 0, precache: 0, ondemand: 0 } },
      work: { precache: totals.precache, ondemand: totals.ondemand },
    };
    for (const s of services) {
      if (s.public) {
        stats.services.public.push({ display: s.display, website: s.website, precache: s.precache, ondemand: s.ondemand });
      } else {
        stats.services.private.count++;
        stats.services.private.precache += s.precache;
        stats.services.private.ondemand += s.ondemand;
      }
    }
    return stats;
  }

  /** Publishes the statistics, retained; `onlyIfChanged` skips a payload equal to the last one. */
  async publishStatistics(options: { onlyIfChanged?: boolean } = {}): Promise<void> {
    this.#statisticsDirty = false;
    const stats = await this.#storeCall(() => this.buildStatistics());
    if (!stats || this.#state !== 'running') return;
    const payload = statisticsCodec.encode(stats);
    if (options.onlyIfChanged && payload === this.#lastStatistics) return;
    this.#lastStatistics = payload;
    this.#publish(topics.statistics, payload, 0, true);
    this.counters.published.statistics++;
  }

  // ------------------------------------------------------------------ results

  #onResult(topic: string, payload: Buffer): void {
    const publisher = this.#resultPublisher?.(topic, payload);
    // A contained connection costs one lookup, before anything is parsed.
    if (publisher !== undefined && this.#ignored(topic, undefined, publisher)) return;
    const parsed = parseTopic(topic);
    if (!parsed.ok || parsed.value.kind !== 'result') {
      this.#malformed(topic, 'bad-topic', `unexpected topic "${topic}"`, { publisher });
      return;
    }
    const decoded = resultCodec.decode(payload);
    if (!decoded.ok) {
      this.#malformed(topic, decoded.code, decoded.reason, { publisher });
      return;
    }
    const { hash, work, address } = decoded.value;
    if (publisher === undefined && this.#ignored(topic, address, undefined)) return;
    const source = { address, publisher };
    const key = hash.toLowerCase();
    const job = this.#jobs.get(key);
    if (this.#claiming.has(key) || (!job && this.#recent.has(key))) {
      this.#reject(topic, 'duplicate', `late result ${short(hash)} from ${address}`, source);
      return;
    }
    if (!job && !this.#cluster) {
      this.#reject(topic, 'unknown-hash', `result for a hash not pending ${short(hash)} from ${address}`, source);
      return;
    }
    // On a shared store a job may be another dispatcher's: its pending record gives the
    // difficulty. Either way the difficulty is the one asked for, never anything the result claims.
    const claim: Claim = { topic, key, hash: job?.hash ?? hash, work, address, source, workType: job?.workType ?? parsed.value.workType };
    if (job) {
      claim.difficulty = job.difficulty;
      claim.createdAt = job.createdAt;
      claim.job = job;
    }
    this.#claiming.add(key);
    void this.#accept(claim);
  }

  /**
   * Checks a result and asks the store to accept it. Only a won claim answers and credits; a lost
   * one is a duplicate (its waiters here get the work that won). A store that does not answer
   * holds the result for a retry: nothing is answered or credited until the store has it.
   */
  async #accept(claim: Claim): Promise<void> {
    let outcome: AcceptOutcome;
    let value: bigint;
    try {
      if (claim.difficulty === undefined) {
        const pending = await this.#store.getPending(claim.key);
        if (!pending) {
          this.#claiming.delete(claim.key);
          this.#reject(claim.topic, 'unknown-hash', `result for a hash not pending ${short(claim.hash)} from ${claim.address}`, claim.source);
          return;
        }
        claim.hash = pending.hash;
        claim.difficulty = pending.difficulty;
        claim.workType = pending.workType;
        claim.createdAt = pending.createdAt;
      }
      const check = validateWork(claim.hash, claim.work, claim.difficulty);
      value = check.value;
      if (!check.valid) {
        this.#claiming.delete(claim.key);
        this.#reject(
          claim.topic,
          'invalid-work',
          `work ${claim.work} for ${short(claim.hash)} from ${claim.address} is below ${toU64Hex(claim.difficulty)} (value ${toU64Hex(value)})`,
          claim.source,
        );
        return;
      }
      const addressValid = checkAddress(claim.address, this.#opts.addressPrefixes).ok;
      const job = this.#liveJob(claim);
      const services = job ? [...job.waiters].map((w) => w.service).filter((s): s is string => !!s) : [];
      // Weighted by the difficulty asked for (never the luck of the value found), for payouts by difficulty.
      const weight = toMultiplier(claim.difficulty);
      outcome = await this.#store.acceptResult({
        hash: claim.hash,
        work: claim.work,
        value,
        workType: claim.workType,
        ...(addressValid ? { address: claim.address } : {}),
        services,
        weight,
      });
    } catch (err) {
      this.#defer(claim, err as Error);
      return;
    }
    this.#claiming.delete(claim.key);
    this.#remember(claim.key);
    if (outcome.won) this.#won(claim, value, outcome);
    else this.#lost(claim, outcome.work);
  }

  /** The claim's job if it is still this dispatcher's live job for the hash. */
  #liveJob(claim: Claim): Job | undefined {
    const job = claim.job ?? this.#jobs.get(claim.key);
    return job && this.#jobs.get(claim.key) === job ? job : undefined;
  }

  #won(claim: Claim, value: bigint, outcome: Extract<AcceptOutcome, { won: true }>): void {
    const job = this.#liveJob(claim);
    const answered = job ? this.#answer(job, claim.work, value) : 0;
    if (job) this.#drop(job, 'accepted');
    else this.#publishCancel(claim.workType, claim.hash);
    this.counters.results.accepted++;
    const addressValid = outcome.client !== undefined;
    const accepted: AcceptedResult = {
      hash: claim.hash,
      work: claim.work,
      value: toU64Hex(value),
      difficulty: toU64Hex(claim.difficulty!),
      workType: claim.workType,
      address: claim.address,
      addressValid,
      answered,
      latencyMs: Math.max(0, Date.now() - (claim.createdAt ?? Date.now())),
    };
    this.#log.info(`dispatcher: accepted ${claim.workType} ${short(claim.hash)} from ${claim.address}${addressValid ? '' : ' (invalid address)'}`);
    this.#statisticsDirty = true;
    const topic = topics.client(claim.address);
    if (outcome.client) {
      const record = outcome.client;
      const stats = {
        precache: record.precache,
        ondemand: record.ondemand,
        snapshot_precache: record.snapshot_precache,
        snapshot_ondemand: record.snapshot_ondemand,
        ...(record.block_rewarded ? { block_rewarded: record.block_rewarded } : {}),
      };
      this.#publish(topic, clientCodec.encode({ kind: 'stats', stats }), 0);
    } else {
      this.counters.invalidAddress++;
      const error = `Work accepted but account ${claim.address} is invalid`;
      this.#publish(topic, clientCodec.encode({ kind: 'error', error }), 0);
    }
    this.counters.published.client++;
    if (this.#cluster) {
      const acceptance: Acceptance = { hash: claim.hash, work: claim.work, value: toU64Hex(value), workType: claim.workType };
      void this.#storeCall(() => this.#cluster!.publishAcceptance(acceptance));
    }
    this.emit('accepted', accepted);
  }

  /** Another result (here or at another dispatcher) won: waiters here get that work. */
  #lost(claim: Claim, winner: StoredWork | undefined): void {
    this.#reject(claim.topic, 'duplicate', `result ${short(claim.hash)} from ${claim.address} lost the claim to an earlier one`, claim.source);
    const job = this.#liveJob(claim);
    if (job && winner) this.#settleElsewhere(job, winner.work);
  }

  /** A result accepted by another dispatcher, heard on the shared store's channel. */
  #onAcceptance(acceptance: Acceptance): void {
    const key = acceptance.hash.toLowerCase();
    this.#remember(key);
    const job = this.#jobs.get(key);
    if (job) this.#settleElsewhere(job, acceptance.work);
  }

  /** Answers a job's waiters with work another result won with, and credits their services. */
  #settleElsewhere(job: Job, work: string): void {
    const { valid, value } = validateWork(job.hash, work, job.difficulty);
    if (!valid) return; // won at a lower difficulty than asked here: keep waiting
    const services = [...job.waiters].map((w) => w.service).filter((s): s is string => !!s);
    this.#answer(job, work, value);
    this.#drop(job, 'answered');
    for (const s of services) void this.#storeCall(() => this.#store.creditService(s, job.workType));
    if (services.length) this.#statisticsDirty = true;
  }

  #answer(job: Job, work: string, value: bigint): number {
    const answered = job.waiters.size;
    for (const w of job.waiters) {
      clearTimeout(w.timer);
      w.resolve({ hash: w.hash, work, value: toU64Hex(value), cached: false });
    }
    job.waiters.clear();
    this.counters.requests.answered += answered;
    return answered;
  }

  /** Holds a result the store could not take and tries again, backing off up to 5 s. */
  #defer(claim: Claim, err: Error): void {
    this.counters.storeErrors++;
    if (this.#deferred.length >= MAX_DEFERRED) {
      this.#claiming.delete(claim.key);
      this.#log.error(`dispatcher: store unavailable and ${MAX_DEFERRED} results already held; refused ${short(claim.hash)} from ${claim.address}`);
      this.#reject(claim.topic, 'malformed', `store-unavailable: ${err.message}`, claim.source);
      return;
    }
    this.#deferred.push(claim);
    this.counters.deferred.held = this.#deferred.length;
    if (!claim.held) {
      claim.held = true;
      this.counters.deferred.total++;
      this.#log.error(`dispatcher: store: ${err.message}; holding result ${short(claim.hash)} from ${claim.address} (${this.#deferred.length} held), not answered until the store takes it`);
    } else if (this.#deferred.length === 1) {
      this.#log.warn(`dispatcher: store still failing (${err.message}); retrying in ${this.#retryDelay} ms`);
    }
    if (!this.#retryTimer && this.#state !== 'stopped') {
      this.#retryTimer = setTimeout(() => void this.#retryDeferred(), this.#retryDelay);
    }
  }

  async #retryDeferred(): Promise<void> {
    this.#retryTimer = undefined;
    const batch = this.#deferred.splice(0);
    this.counters.deferred.held = 0;
    const before = this.counters.storeErrors;
    for (const claim of batch) {
      this.counters.deferred.retried++;
      await this.#accept(claim);
    }
    // Still failing: wait longer before the next round; answered: back to the first delay.
    this.#retryDelay = this.counters.storeErrors > before ? Math.min(MAX_RETRY_MS, this.#retryDelay * 2) : this.#opts.retryMs;
    if (this.#deferred.length && !this.#retryTimer && this.#state !== 'stopped') {
      this.#retryTimer = setTimeout(() => void this.#retryDeferred(), this.#retryDelay);
    } else if (!this.#deferred.length && batch.length) {
      this.#log.info(`dispatcher: store answers again; ${batch.length} held results settled`);
    }
  }

  #malformed(topic: string, code: RejectCode, reason: string, source: ResultSource): void {
    this.counters.malformed[code] = (this.counters.malformed[code] ?? 0) + 1;
    this.#reject(topic, 'malformed', `${code}: ${reason}`, source);
  }

  #reject(topic: string, outcome: RejectedResult['outcome'], reason: string, source: ResultSource = {}): void {
    this.counters.results[outcome]++;
    const from = source.publisher !== undefined ? ` (client id ${JSON.stringify(source.publisher.slice(0, 64))})` : '';
    const level = outcome === 'duplicate' ? 'info' : 'warn';
    this.#log[level](`dispatcher: ${outcome} result on ${topic}: ${reason}${from}`);
    this.emit('rejected', { outcome, reason, topic });
    if (INVALID_OUTCOMES.has(outcome)) {
      const contained = this.abuse.noteInvalid(source.address, source.publisher);
      if (contained) this.#contain(contained);
    }
  }

  /** True (and counted, quietly) when the result's source is contained. */
  #ignored(topic: string, address: string | undefined, publisher: string | undefined): boolean {
    const containment = this.abuse.check(address, publisher);
    if (!containment) return false;
    this.counters.results.ignored++;
    const reason = `${containment.kind} ${JSON.stringify(containment.key.slice(0, 64))} is contained`;
    // Debug only: a contained flood must not become a log flood.
    this.#log.debug?.(`dispatcher: ignored result on ${topic}: ${reason}`);
    this.emit('rejected', { outcome: 'ignored', reason, topic });
    return true;
  }

  /**
   * A source just crossed the threshold: log it once, and tell the volunteer on the payout
   * address it last named (the one crossing may be an unreadable payload that names none).
   */
  #contain(c: Containment): void {
    const address = c.notify;
    const seconds = Math.max(1, Math.round((c.until - Date.now()) / 1000));
    this.#log.warn(
      `dispatcher: too many invalid results from ${c.kind} ${JSON.stringify(c.key.slice(0, 64))}; its results are ignored for ${seconds} s`,
    );
    if (address === undefined) return;
    const error = `Too many invalid results: results from this ${c.kind} are ignored for ${seconds} s`;
    this.#publish(topics.client(address), clientCodec.encode({ kind: 'error', error }), 0);
    this.counters.published.client++;
  }

  #remember(key: string): void {
    this.#recent.delete(key);
    this.#recent.set(key, Date.now());
    if (this.#recent.size > RECENT_LIMIT) this.#recent.delete(this.#recent.keys().next().value!);
  }

  // ------------------------------------------------------------------ jobs

  #newJob(hash: string, difficulty: bigint, workType: WorkType, expiresAt: number, account?: string, createdAt = Date.now()): Job {
    const job: Job = {
      key: hash.toLowerCase(),
      hash,
      difficulty,
      workType,
      published: new Set(),
      expiresAt,
      createdAt,
      account,
      waiters: new Set(),
    };
    this.#jobs.set(job.key, job);
    this.#scheduleExpiry(job);
    return job;
  }

  #scheduleExpiry(job: Job): void {
    clearTimeout(job.expiry);
    job.expiry = setTimeout(() => {
      if (job.workType === 'precache') this.counters.precache.expired++;
      this.#drop(job, 'expired');
    }, Math.min(MAX_TIMER_MS, Math.max(0, job.expiresAt - Date.now())));
  }

  /** Removes a job (idempotent), rejects anyone still waiting and tells workers to stop. */
  #drop(job: Job, reason: DropReason): boolean {
    if (this.#jobs.get(job.key) !== job) return false;
    this.#jobs.delete(job.key);
    clearTimeout(job.expiry);
    for (const w of job.waiters) {
      clearTimeout(w.timer);
      if (reason === 'withdrawn') this.counters.requests.cancelled++;
      else this.counters.requests.timeout++;
      w.reject(
        reason === 'withdrawn'
          ? new DispatchError('cancelled', 'Cancelled')
          : new DispatchError('timeout', 'Timeout reached without work'),
      );
    }
    job.waiters.clear();
    if (reason === 'withdrawn') this.counters.jobs[job.workType].cancelled++;
    else if (reason !== 'accepted' && reason !== 'answered') this.counters.jobs[job.workType].expired++;
    if (reason === 'accepted') {
      // The pending record went with the accept.
      for (const t of job.published) this.#publishCancel(t, job.hash);
    } else if (reason === 'answered') {
      // The winner removed the pending record and cancelled.
    } else if (this.#cluster && reason !== 'withdrawn') {
      void this.#releaseShared(job);
    } else {
      void this.#storeCall(() => this.#store.removePending(job.key));
      for (const t of job.published) this.#publishCancel(t, job.hash);
    }
    if (reason !== 'accepted' && reason !== 'answered') this.#log.debug?.(`dispatcher: ${reason} ${job.workType} ${short(job.hash)}; cancel published`);
    return true;
  }

  /**
   * A shared job that timed out or expired here: other dispatchers may still wait for it (each
   * requester pushes the stored expiry out to its own deadline). Only when the stored expiry has
   * passed is the record removed and the cancel published.
   */
  async #releaseShared(job: Job): Promise<void> {
    const stored = await this.#storeCall(() => this.#store.getPending(job.key));
    if (!stored || stored.expiresAt > Date.now() + 50) return;
    await this.#storeCall(() => this.#store.removePending(job.key));
    for (const t of new Set([...job.published, stored.workType])) this.#publishCancel(t, job.hash);
  }

  #savePending(job: Job): void {
    const record: PendingJob = {
      hash: job.hash,
      difficulty: job.difficulty,
      workType: job.workType,
      expiresAt: job.expiresAt,
      createdAt: job.createdAt,
      ...(job.account ? { account: job.account } : {}),
    };
    // Called, not awaited: the store applies calls in order, and the job is already live.
    void this.#storeCall(() => this.#store.savePending(record));
  }

  /** Republishes unexpired stored jobs; cancels and forgets expired ones. */
  async #restore(): Promise<void> {
    const stored = (await this.#storeCall(() => this.#store.listPending())) ?? [];
    const now = Date.now();
    for (const p of stored) {
      const key = p.hash.toLowerCase();
      if (this.#jobs.has(key)) continue;
      if (p.expiresAt <= now) {
        this.counters.restored.expired++;
        this.counters.jobs[p.workType].expired++;
        await this.#storeCall(() => this.#store.removePending(key));
        this.#publishCancel(p.workType, p.hash);
        continue;
      }
      const job = this.#newJob(p.hash, p.difficulty, p.workType, p.expiresAt, p.account, p.createdAt);
      this.counters.restored.republished++;
      this.#publishWork(job, job.workType);
    }
    if (stored.length) {
      this.#log.info(`dispatcher: restored ${this.counters.restored.republished} pending jobs, cancelled ${this.counters.restored.expired} expired`);
    }
  }

  // ------------------------------------------------------------------ publishing

  #publishWork(job: Job, workType: WorkType): void {
    job.published.add(workType);
    this.#publish(topics.work(workType), workCodec.encode({ hash: job.hash, difficulty: job.difficulty }), 0);
    this.counters.published.work++;
    this.counters.jobs[workType].published++;
  }

  #publishCancel(workType: WorkType, hash: string): void {
    // QoS 1: a missed cancel costs a volunteer a whole job's worth of hashing.
    this.#publish(topics.cancel(workType), cancelCodec.encode(hash), 1);
    this.counters.published.cancel++;
  }

  #publishHeartbeat(): void {
    if (!this.#client?.connected || !this.leadership.leader) return;
    this.#publish(topics.heartbeat, heartbeatCodec.encode(), 0);
    this.counters.published.heartbeat++;
  }

  #publish(topic: string, payload: string, qos: 0 | 1, retain = false): void {
    const client = this.#client;
    if (!client) return;
    client.publish(topic, payload, { qos, retain }, (err) => {
      if (err) this.#log.warn(`dispatcher: publish on ${topic} failed: ${err.message}`);
    });
  }

  // ------------------------------------------------------------------ helpers

  #ensureRunning(): void {
    if (this.#state === 'stopped') throw new DispatchError('shutting-down', 'The dispatcher is shutting down');
    if (this.#state !== 'running') throw new DispatchError('shutting-down', 'The dispatcher is not running yet');
  }

  async #storeCall<T>(call: () => Promise<T>): Promise<T | undefined> {
    try {
      return await call();
    } catch (err) {
      this.counters.storeErrors++;
      this.#log.error(`dispatcher: store: ${(err as Error).message}`);
      return undefined;
    }
  }
}

function short(hash: string): string {
  return hash.length > 16 ? `${hash.slice(0, 16)}…` : hash;
}
