/**
 * The DPoW dispatcher: hands jobs to volunteer workers over MQTT and takes their results. A small
 * composition of single-job parts, each with its own tests:
 *
 *   requestWork / precache --> JobTable (jobs.ts: one job per hash, its waiters, expiry)
 *                          --> PendingRecords (pending.ts: the job in the store, work/ and cancel/)
 *                          --> BrokerSession (broker-session.ts) --work/<type> "hash,difficulty"--> workers
 *   result/<type> --> BrokerSession --> ResultPipeline (results.ts: codec, claim, validateWork,
 *                     store.acceptResult, then answer the waiters, cancel/<type>, credit,
 *                     client/<address>; the OutageHold keeps results while the store is down;
 *                     Containment ignores floods; LookupBound bounds the store lookups that
 *                     results for jobs not held here cost)
 *   Leadership (leadership.ts): the lease on a shared store and the leader's clocks: heartbeat
 *                     every second, NetworkStatistics (statistics.ts), expiry sweep, work prune
 *
 * What it fixes relative to the old server (protocol-notes §3): a timed-out, expired or
 * withdrawn job publishes cancel/<type> so workers stop; pending jobs live in the store and are
 * republished (or cancelled, if expired) after a restart; malformed results are counted by
 * reason instead of vanishing. Jobs are keyed by the lower-cased hash; every message echoes the
 * hash exactly as the requester gave it.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { ALL_PREFIXES, checkAddress } from '../../dpow/address.ts';
import type { Statistics, WorkType } from '../../dpow/codec.ts';
import { checkDifficulty, DEFAULT_POLICY, type DifficultyPolicy } from '../../pow/difficulty.ts';
import { isRootHex, PowInputError, toU64Hex, validateWork } from '../../pow/work.ts';
import { type Logger, silentLogger } from '../log.ts';
import type { DispatcherStore } from '../store/store.ts';
import { DispatchError, type DispatcherApi, type Requester, type WorkAnswer, type WorkRequest } from '../types.ts';
import type { AbuseGuard } from './abuse.ts';
import { BrokerSession } from './broker-session.ts';
import { Containment } from './containment.ts';
import { newCounters, storeCaller, type StoreCall } from './counters.ts';
import { StatisticsOnEveryNode } from './every-node.ts';
import { JobTable, MAX_TIMER_MS } from './jobs.ts';
import { Leadership } from './leadership.ts';
import { LookupBound } from './lookup-bound.ts';
import type { DispatcherEvents, DispatcherOptions } from './options.ts';
import { PendingRecords } from './pending.ts';
import { ResultPipeline } from './results.ts';
import { NetworkStatistics } from './statistics.ts';

export type { DispatcherCounters, ResultOutcome } from './counters.ts';
export type { DispatcherEvents, DispatcherOptions, DispatcherTuning } from './options.ts';
export type { AcceptedResult, RejectedResult } from './results.ts';

export class Dispatcher extends EventEmitter<DispatcherEvents> implements DispatcherApi {
  readonly counters = newCounters();
  /** Invalid results by source and the containments they started (read by /metrics). */
  readonly abuse: AbuseGuard;
  /** Store lookups for results whose job is not held here: in flight, and tokens left (read by /metrics). */
  readonly resultLookups: Pick<LookupBound, 'inFlight' | 'tokens'>;

  readonly #store: DispatcherStore;
  readonly #log: Logger;
  /** The broker login's user, for the log. */
  readonly #brokerUser: string;
  readonly #storeCall: StoreCall;
  readonly #policy: DifficultyPolicy;
  readonly #addressPrefixes: readonly string[];
  readonly #defaultTimeoutMs: number;
  readonly #precacheTtlMs: number;
  readonly #session: BrokerSession;
  readonly #jobs: JobTable;
  readonly #pending: PendingRecords;
  readonly #results: ResultPipeline;
  readonly #containment: Containment;
  readonly #statistics: NetworkStatistics;
  /** With a clustered broker: the retained statistics through a connection to each node. */
  readonly #everyNode?: StatisticsOnEveryNode;
  readonly #leadership: Leadership;
  #unsubscribeAcceptances?: () => Promise<void>;
  #state: 'new' | 'starting' | 'running' | 'stopped' = 'new';

  constructor(options: DispatcherOptions) {
    super();
    const counters = this.counters;
    const log = (this.#log = options.log ?? silentLogger);
    const store = (this.#store = options.store);
    const storeCall = (this.#storeCall = storeCaller(counters, log));
    this.#policy = options.policy ?? DEFAULT_POLICY;
    this.#addressPrefixes = options.addressPrefixes ?? ALL_PREFIXES;
    this.#defaultTimeoutMs = options.defaultTimeoutMs ?? 5000;
    this.#precacheTtlMs = options.precacheTtlMs ?? 30 * 60_000;
    this.#brokerUser = options.username;
    const failoverUrls = options.failoverBrokerUrls ?? [];
    const session = (this.#session = new BrokerSession({
      url: options.brokerUrl,
      failoverUrls,
      username: options.username,
      password: options.password,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      sharedGroup: options.sharedGroup,
      standby: options.standby,
      connect: options.connect,
      counters,
      log,
      onResult: (topic, payload) => this.#results.receive(topic, payload),
      onReconnect: () => {
        this.#pending.republish();
        // The statistics' own links to every node put the latest back as each one reconnects.
        if (this.leadership.leader && !this.#everyNode) void this.publishStatistics();
      },
    }));
    const jobs = (this.#jobs = new JobTable({ counters, onEnded: (job, reason) => this.#pending.ended(job, reason) }));
    this.#pending = new PendingRecords({ store, storeCall, jobs, session, counters, log });
    // Retained messages stay on the node that took them (RabbitMQ): one copy on each node, then.
    const everyNode = (this.#everyNode = failoverUrls.length
      ? new StatisticsOnEveryNode({ urls: [options.brokerUrl, ...failoverUrls], username: options.username, password: options.password, connect: options.connect, counters, log })
      : undefined);
    const statistics = (this.#statistics = new NetworkStatistics({ store, session: everyNode ?? session, storeCall, running: () => this.#state === 'running' }));
    const containment = (this.#containment = new Containment({ abuse: options.abuse, session, log }));
    this.abuse = containment.guard;
    const { held: heldUnchecked, ...bound } = options.resultLookups ?? {};
    const lookups = (this.resultLookups = new LookupBound(bound));
    this.#results = new ResultPipeline({
      store,
      jobs,
      session,
      containment,
      statistics,
      counters,
      storeCall,
      log,
      addressPrefixes: this.#addressPrefixes,
      proofFloor: this.#policy.min,
      lookups,
      heldUnchecked,
      retryMs: options.retryMs ?? 250,
      resultPublisher: options.resultPublisher,
      onAccepted: (result) => this.emit('accepted', result),
      onRejected: (result) => this.emit('rejected', result),
    });
    this.#leadership = new Leadership({
      cluster: store.cluster,
      // Its name in the lease (and the log); never its MQTT client ids, which nobody may learn.
      holder: `dispatcher-${randomBytes(4).toString('hex')}`,
      leaseMs: options.leaseMs ?? 2000,
      heartbeatMs: options.heartbeatMs ?? 1000,
      statisticsMs: options.statisticsMs ?? 300_000,
      statisticsChangeMs: options.statisticsChangeMs ?? 10_000,
      pruneWorkMs: options.pruneWorkMs ?? 3_600_000,
      counters,
      log,
      onChange: (leader) => {
        if (!leader) void everyNode?.forget();
        this.emit('leadership', leader);
      },
      duties: {
        restore: () => this.#pending.restore(),
        statistics: () => this.publishStatistics(),
        statisticsIfChanged: () => statistics.publishIfChanged(),
        heartbeat: () => session.publishHeartbeat(),
        expireStored: () => this.#pending.expire(),
        pruneWork: () => this.#pruneWork(),
      },
    });
  }

  /**
   * Whether this dispatcher runs the singletons (heartbeat, statistics, precache feeds, expiry
   * of other dispatchers' jobs). Always true on a store of its own; on a shared store, while it
   * holds the lease. `token` is the lease's fencing token.
   */
  get leadership(): { leader: boolean; token?: number } {
    return this.#leadership.state;
  }

  /** Jobs waiting for a result, for status displays and tests. */
  get pending(): Array<{ hash: string; difficulty: string; workType: WorkType; expiresAt: number; waiters: number }> {
    return this.#jobs.pending();
  }

  get connected(): boolean {
    return this.#session.connected;
  }

  // ------------------------------------------------------------------ lifecycle

  /** Connects as the server user, subscribes to results, restores stored jobs, starts the clocks. */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new Error(`dispatcher already ${this.#state}`);
    this.#state = 'starting';
    try {
      if (!(await this.#session.open())) return; // stopped while connecting
    } catch (err) {
      this.#state = 'stopped';
      throw err;
    }
    if (this.#state !== 'starting') return;
    const cluster = this.#store.cluster;
    if (cluster) this.#unsubscribeAcceptances = await cluster.onAcceptance((a) => this.#results.acceptedElsewhere(a));
    if (this.#state !== 'starting') return void (await this.#unsubscribeAcceptances?.().catch(() => {}));
    this.#state = 'running';
    await this.#leadership.start();
    this.#log.info(`dispatcher: connected to ${this.#session.nodes.join(' and ')} as ${this.#brokerUser}`);
  }

  /**
   * Stops the clocks and disconnects. Pending jobs stay in the store (a restart republishes
   * them); requests still waiting are rejected with `shutting-down`.
   */
  async stop(): Promise<void> {
    if (this.#state === 'stopped') return;
    this.#state = 'stopped';
    this.#results.stop();
    this.#containment.close();
    await this.#leadership.stop();
    await this.#unsubscribeAcceptances?.().catch(() => {});
    this.#jobs.clear();
    await this.#everyNode?.close();
    await this.#session.close();
  }

  // ------------------------------------------------------------------ DispatcherApi

  async requestWork(request: WorkRequest): Promise<WorkAnswer> {
    this.#ensureRunning();
    const { hash, difficulty } = request;
    if (!isRootHex(hash)) throw new PowInputError('bad-root', 'hash must be 64 hex characters');
    checkDifficulty(difficulty, this.#policy);
    const usable = Number.isFinite(request.timeoutMs) && request.timeoutMs > 0;
    const timeoutMs = Math.min(MAX_TIMER_MS, usable ? request.timeoutMs : this.#defaultTimeoutMs);
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
    const elsewhere = this.#store.cluster && !this.#jobs.has(key) ? await this.#storeCall(() => this.#store.getPending(key)) : undefined;
    this.#ensureRunning();

    const now = Date.now();
    let job = this.#jobs.get(key);
    if (!job && elsewhere && elsewhere.expiresAt > now) {
      job = this.#jobs.create(elsewhere.hash, elsewhere.difficulty, elsewhere.workType, elsewhere.expiresAt, elsewhere.account, elsewhere.createdAt);
      job.published.add(elsewhere.workType);
    }
    if (!job) {
      job = this.#jobs.create(hash, difficulty, 'ondemand', now + timeoutMs, request.account);
      this.counters.requests.dispatched++;
      this.#pending.save(job);
      this.#pending.publish(job, 'ondemand');
    } else {
      this.counters.requests.shared++;
      // Someone is waiting now: workers that take ondemand first should see it.
      const republish = job.workType !== 'ondemand' || difficulty > job.difficulty;
      job.workType = 'ondemand';
      if (difficulty > job.difficulty) job.difficulty = difficulty;
      this.#jobs.extend(job, now + timeoutMs);
      this.#pending.save(job);
      if (republish) this.#pending.publish(job, job.workType);
    }
    return this.#jobs.wait(job, { hash, service: request.service, requester: request.requester }, timeoutMs);
  }

  async precache(hash: string, difficulty: bigint, account?: string): Promise<void> {
    this.#ensureRunning();
    if (!isRootHex(hash)) throw new PowInputError('bad-root', 'hash must be 64 hex characters');
    checkDifficulty(difficulty, this.#policy);
    const key = hash.toLowerCase();
    const stored = await this.#storeCall(() => this.#store.getWork(key));
    if (stored && validateWork(hash, stored.work, difficulty).valid) return;
    this.#ensureRunning();

    const job = this.#jobs.get(key);
    if (job) {
      if (difficulty > job.difficulty) {
        job.difficulty = difficulty;
        this.#pending.save(job);
        this.#pending.publish(job, job.workType);
      }
      return;
    }
    const fresh = this.#jobs.create(hash, difficulty, 'precache', Date.now() + this.#precacheTtlMs, account);
    this.counters.precache.published++;
    this.#pending.save(fresh);
    this.#pending.publish(fresh, 'precache');
  }

  async withdraw(hash: string): Promise<boolean> {
    const job = typeof hash === 'string' ? this.#jobs.get(hash.toLowerCase()) : undefined;
    if (!job) return false;
    this.counters.precache.withdrawn++;
    return this.#jobs.drop(job, 'withdrawn');
  }

  async cancel(hash: string, requester: Requester): Promise<number> {
    const job = typeof hash === 'string' ? this.#jobs.get(hash.toLowerCase()) : undefined;
    return job ? this.#jobs.cancel(job, requester) : 0;
  }

  async track(account: string): Promise<void> {
    if (!checkAddress(account, this.#addressPrefixes).ok) return;
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

  /** The statistics message, built from the store's real counters. */
  buildStatistics(): Promise<Statistics> {
    return this.#statistics.build();
  }

  /** Publishes the statistics, retained; `onlyIfChanged` skips a payload equal to the last one. */
  publishStatistics(options: { onlyIfChanged?: boolean } = {}): Promise<void> {
    return this.#statistics.publish(options);
  }

  // ------------------------------------------------------------------ helpers

  /** Has the store forget work past its retention (SQLite deletes rows; Redis keys expire alone). */
  async #pruneWork(): Promise<void> {
    const pruned = await this.#storeCall(() => this.#store.pruneWork());
    if (!pruned) return;
    this.counters.workPruned += pruned;
    this.#log.info(`dispatcher: forgot ${pruned} stored works past the work retention`);
  }

  #ensureRunning(): void {
    if (this.#state === 'stopped') throw new DispatchError('shutting-down', 'The dispatcher is shutting down');
    if (this.#state !== 'running') throw new DispatchError('shutting-down', 'The dispatcher is not running yet');
  }
}
