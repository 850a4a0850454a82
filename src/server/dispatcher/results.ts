/**
 * The walk of a result, top to bottom in this file:
 *
 *   result/<type> "hash,work,address"                         (BrokerSession -> receive)
 *   receive   a contained connection is ignored before anything is read; the topic and the
 *             payload go through their codecs; a contained address's result is ignored unless
 *             its work proves itself (one blake2b); a late copy is a duplicate, a hash nobody
 *             asked for is unknown. One claim per hash at a time. On a shared store a hash not
 *             held here may be another dispatcher's job, which only a store lookup tells: the
 *             LookupBound (lookup-bound.ts) drops the result unlooked-up past its bound, and
 *             answers junk repeated word for word from memory.
 *   accept    the difficulty is the job's (on a shared store, its pending record's), never the
 *             result's; validateWork; then store.acceptResult claims the hash, stores the work,
 *             credits the volunteer and the services, and drops the pending record, in one step.
 *             A store that does not answer: the claim waits in the OutageHold and comes back here
 *             (a result not yet looked up has a share of the hold of its own, oldest let go first).
 *   won       the waiters get the work, cancel/<type> goes out, client/<address> gets the new
 *             totals (or why the address was not credited), the other dispatchers hear of it.
 *   lost      a duplicate: an earlier result won, and the waiters here get that work.
 *
 * Invalid results (bad work, malformed, unknown hash) count against their source (Containment).
 * Refusals are logged once per outcome per interval with a count: a flood of junk results, each
 * naming another address, stays a few lines.
 */
import { checkAddress } from '../../dpow/address.ts';
import { logHash } from '../../format.ts';
import { parseTopic, resultCodec, type RejectCode, type WorkType } from '../../dpow/codec.ts';
import { toMultiplier, toU64Hex, validateWork, workValue } from '../../pow/work.ts';
import { clip, LogLimiter } from '../log-limit.ts';
import type { Logger } from '../log.ts';
import type { Acceptance, AcceptOutcome, DispatcherStore, PendingJob, StoredWork } from '../store/store.ts';
import type { BrokerSession } from './broker-session.ts';
import type { SourceKind } from './abuse.ts';
import type { Containment, ResultSource } from './containment.ts';
import type { DispatcherCounters, DropReason, ResultOutcome, StoreCall } from './counters.ts';
import type { Job, JobTable } from './jobs.ts';
import { resultKey, type LookupBound } from './lookup-bound.ts';
import { MAX_HELD, OutageHold } from './outage-hold.ts';
import type { NetworkStatistics } from './statistics.ts';

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

/** A valid-looking result on its way into the store (or held until the store answers again). */
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
  source: ResultSource;
  /** When its job was created (for the accept latency). */
  createdAt?: number;
  /** Holds a place in the LookupBound until its lookup ends. */
  lookingUp?: boolean;
}

/** Outcomes that count against the source in abuse containment (duplicates are honest races). */
const INVALID_OUTCOMES: ReadonlySet<ResultOutcome> = new Set(['invalid-work', 'unknown-hash', 'malformed']);

/** Hashes remembered after acceptance so late results count as duplicates, not unknown. */
const RECENT_LIMIT = 10_000;

/** Results not yet looked up (their job held elsewhere, their work unchecked) held while the store is down. */
export const HELD_UNCHECKED = 10_000;

export interface ResultPipelineOptions {
  store: DispatcherStore;
  jobs: JobTable;
  session: Pick<BrokerSession, 'publishCancel' | 'publishClient'>;
  containment: Containment;
  statistics: Pick<NetworkStatistics, 'markChanged'>;
  counters: DispatcherCounters;
  storeCall: StoreCall;
  log: Logger;
  /** Payout prefixes credited; others get the "account is invalid" reply. */
  addressPrefixes: readonly string[];
  /**
   * The least a result's work must reach to be looked up when it names a contained address and
   * its hash is no job here (another dispatcher's, on a shared store): the policy's minimum.
   */
  proofFloor: bigint;
  /** The bound on store lookups for results whose job is not held here. */
  lookups: LookupBound;
  /** Of the results held while the store is down, how many may be ones not yet looked up. Default HELD_UNCHECKED. */
  heldUnchecked?: number;
  /** First wait before a result the store could not take is offered again. */
  retryMs: number;
  /** The MQTT client id that published a result, when the broker can tell. */
  resultPublisher?: (topic: string, payload: Buffer) => string | undefined;
  onAccepted(result: AcceptedResult): void;
  onRejected(result: RejectedResult): void;
}

export class ResultPipeline {
  readonly #opts: ResultPipelineOptions;
  readonly #recent = new Map<string, number>();
  /** Hashes whose claim is in flight here, so a second result for one does not race the first. */
  readonly #claiming = new Set<string>();
  readonly #hold: OutageHold<Claim>;
  readonly #refusals: LogLimiter;

  constructor(options: ResultPipelineOptions) {
    this.#opts = options;
    this.#refusals = new LogLimiter(options.log);
    this.#hold = new OutageHold<Claim>({
      retryMs: options.retryMs,
      counters: options.counters.deferred,
      log: options.log,
      retry: (claim) => this.#accept(claim),
      describe: (claim) => `result ${logHash(claim.hash)} from ${claim.address}`,
      expendable: {
        is: (claim) => claim.difficulty === undefined,
        limit: options.heldUnchecked ?? HELD_UNCHECKED,
        drop: (claim) => {
          this.#claiming.delete(claim.key);
          this.#drop(claim.topic, 'hold-full', `store unavailable; let go of ${logHash(claim.hash)} from ${claim.address}, the oldest held result not yet looked up`);
        },
      },
    });
  }

  /** Results still held for the store. */
  get held(): number {
    return this.#hold.size;
  }

  stop(): void {
    this.#hold.stop();
    this.#refusals.close();
  }

  receive(topic: string, payload: Buffer): void {
    const { jobs, containment } = this.#opts;
    const publisher = this.#opts.resultPublisher?.(topic, payload);
    // A contained connection costs one lookup, before anything is parsed.
    const connection = publisher === undefined ? undefined : containment.contained({ publisher });
    if (connection) return this.#ignore(topic, connection);
    const parsed = parseTopic(topic);
    if (!parsed.ok || parsed.value.kind !== 'result') {
      this.#malformed(topic, 'bad-topic', `unexpected topic ${clip(topic)}`, { publisher });
      return;
    }
    const decoded = resultCodec.decode(payload);
    if (!decoded.ok) {
      this.#malformed(topic, decoded.code, decoded.reason, { publisher });
      return;
    }
    const { hash, work, address } = decoded.value;
    const source = { address, publisher };
    const key = hash.toLowerCase();
    const job = jobs.get(key);
    // A contained address is anyone's to name: it spares us the cost of invalid results naming
    // it, never the credit of valid work. One blake2b tells them apart, before any store lookup.
    const named = publisher === undefined ? containment.contained({ address }) : undefined;
    if (named && workValue(hash, work) < (job?.difficulty ?? this.#opts.proofFloor)) return this.#ignore(topic, named);
    if (this.#claiming.has(key) || (!job && this.#recent.has(key))) {
      this.#reject(topic, 'duplicate', `late result ${logHash(hash)} from ${address}`, source);
      return;
    }
    if (!job && !this.#opts.store.cluster) {
      this.#reject(topic, 'unknown-hash', `result for a hash not pending ${logHash(hash)} from ${address}`, source);
      return;
    }
    // On a shared store a job may be another dispatcher's: its pending record gives the
    // difficulty. Either way the difficulty is the one asked for, never anything the result claims.
    const claim: Claim = { topic, key, hash: job?.hash ?? hash, work, address, source, workType: job?.workType ?? parsed.value.workType };
    if (job) {
      claim.difficulty = job.difficulty;
      claim.createdAt = job.createdAt;
      claim.job = job;
    } else {
      const { lookups } = this.#opts;
      if (lookups.knownNotPending(resultKey(hash, work, address))) {
        this.#reject(topic, 'unknown-hash', `result for a hash not pending ${logHash(hash)} from ${address} (this very result was looked up lately)`, source);
        return;
      }
      const full = lookups.start();
      if (full) {
        const what = full === 'rate' ? 'the lookup rate is spent' : 'too many lookups are in flight';
        this.#drop(topic, 'lookup-bound', `${logHash(hash)} from ${address} is no job here and ${what}`);
        return;
      }
      claim.lookingUp = true;
    }
    this.#claiming.add(key);
    void this.#accept(claim);
  }

  /**
   * Checks a result and asks the store to accept it. Only a won claim answers and credits; a lost
   * one is a duplicate. A store that does not answer holds the result for a retry: nothing is
   * answered or credited until the store has it.
   */
  async #accept(claim: Claim): Promise<void> {
    const { store, jobs } = this.#opts;
    let outcome: AcceptOutcome;
    let value: bigint;
    try {
      if (claim.difficulty === undefined) {
        const pending = await this.#lookUp(claim);
        if (!pending) {
          this.#claiming.delete(claim.key);
          this.#reject(claim.topic, 'unknown-hash', `result for a hash not pending ${logHash(claim.hash)} from ${claim.address}`, claim.source);
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
        const below = `is below ${toU64Hex(claim.difficulty)} (value ${toU64Hex(value)})`;
        this.#reject(claim.topic, 'invalid-work', `work ${claim.work} for ${logHash(claim.hash)} from ${claim.address} ${below}`, claim.source);
        return;
      }
      const addressValid = checkAddress(claim.address, this.#opts.addressPrefixes).ok;
      const job = jobs.live(claim.key, claim.job);
      outcome = await store.acceptResult({
        hash: claim.hash,
        work: claim.work,
        value,
        workType: claim.workType,
        ...(addressValid ? { address: claim.address } : {}),
        services: job ? jobs.services(job) : [],
        // Weighted by the difficulty asked for (never the luck of the value found), for payouts by difficulty.
        weight: toMultiplier(claim.difficulty),
      });
    } catch (err) {
      this.#opts.counters.storeErrors++;
      if (!this.#hold.hold(claim, err as Error)) {
        this.#claiming.delete(claim.key);
        this.#drop(claim.topic, 'hold-full', `store unavailable (${(err as Error).message}) and ${MAX_HELD} results already held; ${logHash(claim.hash)} from ${claim.address}`);
      }
      return;
    }
    this.#claiming.delete(claim.key);
    this.#remember(claim.key);
    if (outcome.won) this.#won(claim, value, outcome);
    else this.#lost(claim, outcome.work);
  }

  /** The pending record of a job not held here; a place the claim holds in the LookupBound is given back. */
  async #lookUp(claim: Claim): Promise<PendingJob | undefined> {
    const { store, lookups } = this.#opts;
    try {
      const pending = await store.getPending(claim.key);
      if (!pending) lookups.notPending(resultKey(claim.hash, claim.work, claim.address));
      return pending;
    } finally {
      if (claim.lookingUp) lookups.end();
      claim.lookingUp = false;
    }
  }

  #won(claim: Claim, value: bigint, outcome: Extract<AcceptOutcome, { won: true }>): void {
    const { jobs, session, counters } = this.#opts;
    const job = jobs.live(claim.key, claim.job);
    const answered = job ? jobs.answer(job, claim.work, value) : 0;
    if (job) jobs.drop(job, 'accepted');
    else session.publishCancel(claim.workType, claim.hash);
    counters.results.accepted++;
    const addressValid = outcome.client !== undefined;
    this.#opts.log.info(`dispatcher: accepted ${claim.workType} ${logHash(claim.hash)} from ${claim.address}${addressValid ? '' : ' (invalid address)'}`);
    this.#opts.statistics.markChanged();
    if (outcome.client) {
      const record = outcome.client;
      const stats = {
        precache: record.precache,
        ondemand: record.ondemand,
        snapshot_precache: record.snapshot_precache,
        snapshot_ondemand: record.snapshot_ondemand,
        ...(record.block_rewarded ? { block_rewarded: record.block_rewarded } : {}),
      };
      session.publishClient(claim.address, { kind: 'stats', stats });
    } else {
      counters.invalidAddress++;
      session.publishClient(claim.address, { kind: 'error', error: `Work accepted but account ${claim.address} is invalid` });
    }
    const cluster = this.#opts.store.cluster;
    if (cluster) {
      const acceptance: Acceptance = { hash: claim.hash, work: claim.work, value: toU64Hex(value), workType: claim.workType };
      void this.#opts.storeCall(() => cluster.publishAcceptance(acceptance));
    }
    this.#opts.onAccepted({
      hash: claim.hash,
      work: claim.work,
      value: toU64Hex(value),
      difficulty: toU64Hex(claim.difficulty!),
      workType: claim.workType,
      address: claim.address,
      addressValid,
      answered,
      latencyMs: Math.max(0, Date.now() - (claim.createdAt ?? Date.now())),
    });
  }

  /** Another result (here or at another dispatcher) won: waiters here get that work. */
  #lost(claim: Claim, winner: StoredWork | undefined): void {
    this.#reject(claim.topic, 'duplicate', `result ${logHash(claim.hash)} from ${claim.address} lost the claim to an earlier one`, claim.source);
    const job = this.#opts.jobs.live(claim.key, claim.job);
    if (job && winner) this.#settleElsewhere(job, winner.work);
  }

  /** A result accepted by another dispatcher, heard on the shared store's channel. */
  acceptedElsewhere(acceptance: Acceptance): void {
    const key = acceptance.hash.toLowerCase();
    this.#remember(key);
    const job = this.#opts.jobs.get(key);
    if (job) this.#settleElsewhere(job, acceptance.work);
  }

  /** Answers a job's waiters with work another result won with, and credits their services. */
  #settleElsewhere(job: Job, work: string): void {
    const { jobs, store, storeCall } = this.#opts;
    const { valid, value } = validateWork(job.hash, work, job.difficulty);
    if (!valid) return; // won at a lower difficulty than asked here: keep waiting
    const services = jobs.services(job);
    jobs.answer(job, work, value);
    jobs.drop(job, 'answered');
    for (const s of services) void storeCall(() => store.creditService(s, job.workType));
    if (services.length) this.#opts.statistics.markChanged();
  }

  // ------------------------------------------------------------------ refusals

  /** A result from a contained source, ignored: counted, and logged at debug only. */
  #ignore(topic: string, contained: { kind: SourceKind; reason: string }): void {
    this.#opts.counters.results.ignored++;
    this.#opts.containment.ignored(contained.kind);
    // Debug only: a contained flood must not become a log flood.
    this.#opts.log.debug?.(`dispatcher: ignored result on ${clip(topic)}: ${contained.reason}`);
    this.#opts.onRejected({ outcome: 'ignored', reason: contained.reason, topic });
  }

  #malformed(topic: string, code: RejectCode, reason: string, source: ResultSource): void {
    const { malformed } = this.#opts.counters;
    malformed[code] = (malformed[code] ?? 0) + 1;
    this.#reject(topic, 'malformed', `${code}: ${reason}`, source);
  }

  /** A result let go unchecked (its source is not told apart from anyone's: nothing counts against it). */
  #drop(topic: string, why: DropReason, reason: string): void {
    const { counters } = this.#opts;
    counters.results.dropped++;
    counters.dropped[why]++;
    this.#refusals.warn(`dispatcher: dropped result (${why})`, `dispatcher: dropped result on ${clip(topic)} (${why}): ${reason}`);
    this.#opts.onRejected({ outcome: 'dropped', reason: `${why}: ${reason}`, topic });
  }

  #reject(topic: string, outcome: RejectedResult['outcome'], reason: string, source: ResultSource): void {
    this.#opts.counters.results[outcome]++;
    const from = source.publisher !== undefined ? ` (client id ${clip(source.publisher)})` : '';
    const level = outcome === 'duplicate' ? 'info' : 'warn';
    this.#refusals[level](`dispatcher: ${outcome} result`, `dispatcher: ${outcome} result on ${clip(topic)}: ${reason}${from}`);
    this.#opts.onRejected({ outcome, reason, topic });
    if (INVALID_OUTCOMES.has(outcome)) this.#opts.containment.noteInvalid(source);
  }

  #remember(key: string): void {
    this.#recent.delete(key);
    this.#recent.set(key, Date.now());
    if (this.#recent.size > RECENT_LIMIT) this.#recent.delete(this.#recent.keys().next().value!);
  }
}
