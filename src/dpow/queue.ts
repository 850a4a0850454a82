/**
 * The worker's job queue: which root to search next, and which work messages to refuse.
 *
 * - Priority: every queued ondemand job runs before any precache job; FIFO within a type.
 * - Dedupe, case-insensitive on the hash: a work message is a duplicate when the same hash is
 *   queued, in flight, or recently finished (the last `remember` hashes) at the same or a higher
 *   difficulty. A re-broadcast at a HIGHER difficulty is new work (a service may ask for more
 *   than a precache already holds), and an ondemand message for a hash queued as precache
 *   promotes it to ondemand.
 * - Bound: at most `limit` queued jobs (in-flight jobs do not count). When full, the oldest
 *   precache job is dropped to make room. If only ondemand jobs are queued, a new precache job is
 *   refused ('queue-full'), and a new ondemand job drops the oldest ondemand job: of two
 *   on-demand requests the older is the one whose service is most likely to have timed out or
 *   been served by another worker already.
 * - Expiry: a job is worth doing for `jobTimeoutMs` after it arrived; expired jobs are skipped,
 *   and one in flight past its limit is given up (expireInFlight).
 * - Preemption: ondemand work arriving while a precache job is in flight sends that job back to
 *   the head of its lane (AddResult.preempted): the caller stops its search, nothing else.
 * - Lifecycle: the queue is the one owner of each job's state (Job.state): queued -> computing
 *   -> done, or cancelled / expired / dropped at any point, or back to queued when preempted. The
 *   work loop reads the state when a search ends; it never keeps a copy of its own.
 * - Ceiling: work above the difficulty policy's ceiling (pow/difficulty.ts, shared with the
 *   engine) is refused ('difficulty-too-high'), so one absurd message cannot occupy the device
 *   forever.
 *
 * Pure and synchronous; the clock is injected.
 */
import { logHash } from '../format.ts';
import { DEFAULT_POLICY, difficultyError, type DifficultyPolicy } from '../pow/difficulty.ts';
import { toMultiplier, toU64Hex } from '../pow/work.ts';
import type { WorkType } from './codec.ts';
import type { QueuedJob } from './state.ts';

/** Where a job is in its life. Only the queue changes it. */
export type JobState = 'queued' | 'computing' | 'done' | 'cancelled' | 'expired' | 'dropped';

export interface Job extends QueuedJob {
  state: JobState;
  /** When its current search started (state 'computing'). */
  startedAt?: number;
  /** The difficulty as a number (QueuedJob.difficulty is its 16-hex-digit text). */
  target: bigint;
  /** Multiplier vs the Nano send threshold, for people. */
  multiplier: number;
  /** After this instant the job is not worth starting (or finishing). */
  expiresAt: number;
}

export interface QueueOptions {
  /** Most queued jobs (default 64). */
  limit?: number;
  /** Per-job time limit from arrival, ms (default 120 000). */
  jobTimeoutMs?: number;
  /** The difficulty bounds; share the engine's. Default DEFAULT_POLICY (64x the send threshold). */
  policy?: DifficultyPolicy;
  /** How many finished hashes are remembered for dedupe (default 1024). */
  remember?: number;
  now?: () => number;
}

export type RefuseCode = 'duplicate' | 'difficulty-too-high' | 'queue-full';

export type AddResult =
  | {
      ok: true;
      job: Job;
      /** True when an already-queued precache job was promoted to ondemand / a higher difficulty. */
      updated: boolean;
      /** A job dropped to make room for this one. */
      dropped?: Job;
      /** A precache job in flight that this ondemand job sent back to the queue: stop its search. */
      preempted?: Job;
    }
  | { ok: false; code: RefuseCode; reason: string };

export interface CancelOutcome {
  /** The job was queued and is now gone. */
  queued: Job | null;
  /** The job was in flight and is now cancelled: the caller must stop the search. */
  inFlight: Job | null;
}

export interface QueueCounters {
  /** Jobs dropped (oldest first) because the queue was full. */
  dropped: number;
  /** Jobs skipped because their time limit had passed. */
  expired: number;
}

export const DEFAULT_QUEUE_LIMIT = 64;
export const DEFAULT_JOB_TIMEOUT_MS = 120_000;
export const DEFAULT_REMEMBER = 1024;

const key = (hash: string) => hash.toLowerCase();

export class WorkQueue {
  readonly limit: number;
  readonly jobTimeoutMs: number;
  readonly policy: DifficultyPolicy;
  readonly counters: QueueCounters = { dropped: 0, expired: 0 };

  readonly #rememberLimit: number;
  readonly #now: () => number;
  readonly #lanes: Record<WorkType, Job[]> = { ondemand: [], precache: [] };
  readonly #inFlight = new Map<string, Job>();
  /** Recently finished (computed, cancelled, expired) hashes -> the difficulty they were done at. */
  readonly #finished = new Map<string, bigint>();

  constructor(options: QueueOptions = {}) {
    this.limit = Math.max(1, Math.floor(options.limit ?? DEFAULT_QUEUE_LIMIT));
    this.jobTimeoutMs = options.jobTimeoutMs ?? DEFAULT_JOB_TIMEOUT_MS;
    this.policy = options.policy ?? DEFAULT_POLICY;
    this.#rememberLimit = Math.max(0, Math.floor(options.remember ?? DEFAULT_REMEMBER));
    this.#now = options.now ?? Date.now;
  }

  /** Queued jobs (not in flight), in the order they will run. */
  get size(): number {
    return this.#lanes.ondemand.length + this.#lanes.precache.length;
  }

  /** Offers a work message; `hash` is kept exactly as given (it is echoed in the result). */
  add(hash: string, difficulty: bigint, workType: WorkType): AddResult {
    const refused = difficultyError(difficulty, this.policy);
    if (refused) return { ok: false, code: 'difficulty-too-high', reason: refused.message };
    const k = key(hash);

    const running = this.#inFlight.get(k);
    if (running && difficulty <= running.target) {
      return { ok: false, code: 'duplicate', reason: `${logHash(hash)} is already being computed` };
    }
    const done = this.#finished.get(k);
    if (!running && done !== undefined && difficulty <= done) {
      return { ok: false, code: 'duplicate', reason: `${logHash(hash)} was finished recently` };
    }

    const queued = this.#findQueued(k);
    if (queued) {
      const { job, lane } = queued;
      const higher = difficulty > job.target;
      const promote = workType === 'ondemand' && job.workType === 'precache';
      if (!higher && !promote) {
        return { ok: false, code: 'duplicate', reason: `${logHash(hash)} is already queued` };
      }
      if (higher) this.#setTarget(job, difficulty);
      if (promote) {
        lane.splice(lane.indexOf(job), 1);
        job.workType = 'ondemand';
        this.#lanes.ondemand.push(job);
      }
      return this.#withPreemption({ ok: true, job, updated: true });
    }

    let dropped: Job | undefined;
    if (this.size >= this.limit) {
      // Expired jobs are the cheapest room to make.
      this.expire();
    }
    if (this.size >= this.limit) {
      if (this.#lanes.precache.length > 0) dropped = this.#lanes.precache.shift();
      else if (workType === 'ondemand') dropped = this.#lanes.ondemand.shift();
      else {
        return {
          ok: false,
          code: 'queue-full',
          reason: `queue is full of ondemand work (${this.limit}); precache ${logHash(hash)} refused`,
        };
      }
      if (dropped) dropped.state = 'dropped';
      this.counters.dropped++;
    }

    const receivedAt = this.#now();
    const job: Job = {
      state: 'queued',
      hash,
      difficulty: '',
      target: 0n,
      multiplier: 0,
      workType,
      receivedAt,
      expiresAt: receivedAt + this.jobTimeoutMs,
    };
    this.#setTarget(job, difficulty);
    this.#lanes[workType].push(job);
    return this.#withPreemption(dropped ? { ok: true, job, updated: false, dropped } : { ok: true, job, updated: false });
  }

  /** The job being computed (the first, if a caller runs several), or null. */
  get computing(): Job | null {
    return this.#inFlight.values().next().value ?? null;
  }

  /**
   * Takes the next job (ondemand first) and marks it in flight. Expired jobs met on the way are
   * dropped and counted; they are returned in `expired` for logging.
   */
  next(): { job: Job | null; expired: Job[] } {
    const expired = this.expire();
    const job = this.#lanes.ondemand.shift() ?? this.#lanes.precache.shift() ?? null;
    if (job) {
      job.state = 'computing';
      job.startedAt = this.#now();
      this.#inFlight.set(key(job.hash), job);
    }
    return { job, expired };
  }

  /** Drops queued jobs whose time limit has passed, counts and returns them. */
  expire(): Job[] {
    const now = this.#now();
    const out: Job[] = [];
    for (const lane of [this.#lanes.ondemand, this.#lanes.precache]) {
      for (let i = lane.length - 1; i >= 0; i--) {
        if (lane[i].expiresAt <= now) out.unshift(...lane.splice(i, 1));
      }
    }
    for (const job of out) {
      job.state = 'expired';
      this.#remember(job);
    }
    this.counters.expired += out.length;
    return out;
  }

  /** Gives up in-flight jobs whose time limit has passed (stop their searches), counted. */
  expireInFlight(): Job[] {
    const out = [...this.#inFlight.values()].filter((job) => this.isExpired(job));
    for (const job of out) this.#settle(job, 'expired');
    this.counters.expired += out.length;
    return out;
  }

  /** True when this in-flight (or any) job's time limit has passed. */
  isExpired(job: Job): boolean {
    return job.expiresAt <= this.#now();
  }

  /**
   * A search ended with work for this job: it is done, wherever it was (in flight, or sent back to
   * the queue by preemption just as it was found). Remembered for dedupe.
   */
  finish(job: Job): void {
    if (job.state !== 'computing' && job.state !== 'queued') return; // ended otherwise already
    this.#removeQueued(job);
    this.#settle(job, 'done');
  }

  /** A search ended without work (the engine failed): the job is dropped and remembered. */
  fail(job: Job): void {
    this.#removeQueued(job);
    this.#settle(job, 'dropped');
  }

  /**
   * Puts an in-flight job back at the head of its lane (a precache search preempted by ondemand
   * work). The search is memoryless, so restarting later from a fresh nonce loses nothing in
   * expectation. May leave the queue one over its bound until the next job is taken.
   */
  requeue(job: Job): void {
    const k = key(job.hash);
    if (this.#inFlight.get(k) === job) this.#inFlight.delete(k);
    if (this.#findQueued(k) || this.#finished.has(k)) {
      if (job.state === 'computing') job.state = 'dropped'; // superseded or cancelled meanwhile
      return;
    }
    job.state = 'queued';
    this.#lanes[job.workType].unshift(job);
  }

  /** A cancel for `hash` (any case, any type): drop it if queued; say if it is in flight. */
  cancel(hash: string): CancelOutcome {
    const k = key(hash);
    const queued = this.#findQueued(k);
    if (queued) {
      queued.lane.splice(queued.lane.indexOf(queued.job), 1);
      queued.job.state = 'cancelled';
      this.#remember(queued.job);
    }
    const inFlight = this.#inFlight.get(k) ?? null;
    if (inFlight) this.#settle(inFlight, 'cancelled');
    return { queued: queued?.job ?? null, inFlight };
  }

  /** Was this hash finished (or cancelled) recently? */
  isFinished(hash: string): boolean {
    return this.#finished.has(key(hash));
  }

  /** Queued jobs in the order they will run (copies, for views). */
  snapshot(): QueuedJob[] {
    return [...this.#lanes.ondemand, ...this.#lanes.precache].map(({ hash, difficulty, workType, receivedAt }) => ({
      hash,
      difficulty,
      workType,
      receivedAt,
    }));
  }

  /** Drops every queued job (in-flight bookkeeping and memory of finished hashes stay). */
  clear(): Job[] {
    const all = [...this.#lanes.ondemand, ...this.#lanes.precache];
    this.#lanes.ondemand.length = 0;
    this.#lanes.precache.length = 0;
    for (const job of all) job.state = 'dropped';
    return all;
  }

  /** Drops the jobs in flight (the worker is stopping); returns them so their searches stop. */
  abandon(): Job[] {
    const all = [...this.#inFlight.values()];
    for (const job of all) this.#settle(job, 'dropped');
    return all;
  }

  /** Ondemand work sends a precache search in flight back to the head of its lane. */
  #withPreemption(added: AddResult & { ok: true }): AddResult {
    if (added.job.workType !== 'ondemand') return added;
    const running = [...this.#inFlight.values()].find((j) => j.workType === 'precache');
    if (!running) return added;
    this.requeue(running);
    return { ...added, preempted: running };
  }

  /** An in-flight job leaves flight in its final state, remembered for dedupe. */
  #settle(job: Job, state: JobState): void {
    const k = key(job.hash);
    if (this.#inFlight.get(k) === job) this.#inFlight.delete(k);
    job.state = state;
    this.#remember(job);
  }

  #removeQueued(job: Job): void {
    const lane = this.#lanes[job.workType];
    const i = lane.indexOf(job);
    if (i >= 0) lane.splice(i, 1);
  }

  #setTarget(job: Job, difficulty: bigint): void {
    job.target = difficulty;
    job.difficulty = toU64Hex(difficulty);
    job.multiplier = toMultiplier(difficulty);
  }

  #findQueued(k: string): { job: Job; lane: Job[] } | null {
    for (const lane of [this.#lanes.ondemand, this.#lanes.precache]) {
      const job = lane.find((j) => key(j.hash) === k);
      if (job) return { job, lane };
    }
    return null;
  }

  #remember(job: Job): void {
    if (this.#rememberLimit === 0) return;
    const k = key(job.hash);
    const before = this.#finished.get(k);
    this.#finished.delete(k); // re-insert to refresh its age
    this.#finished.set(k, before !== undefined && before > job.target ? before : job.target);
    while (this.#finished.size > this.#rememberLimit) {
      this.#finished.delete(this.#finished.keys().next().value as string);
    }
  }
}
