/**
 * The work loop: queue -> engine -> validate -> result. It is the only part of the client that
 * talks to the engine, and it runs one search at a time. Each job's state belongs to the queue
 * (queue.ts); the loop turns every change of that state into at most one engine call, in the
 * same step:
 *  - cancel: queue.cancel() says the job in flight is cancelled -> engine.cancel(hash);
 *  - expiry: queue.expireInFlight() says it ran out of time -> engine.cancel(hash);
 *  - preemption: queue.add() of ondemand work sends a precache job back -> engine.cancel(hash).
 * When a search ends, the job's state says what to do with its outcome: only a job still wanted
 * (computing, or preempted just as it was found) can produce a result, and only after the
 * reference rule agrees with this message's own difficulty.
 */
import { DEFAULT_POLICY, type DifficultyPolicy } from '../pow/difficulty.ts';
import { validateWork } from '../pow/work.ts';
import type { BackendName, EngineApi, EngineStatus, GenerateResult } from '../pow/types.ts';
import type { WorkMessage, WorkType } from './codec.ts';
import type { EventLog } from './event-log.ts';
import { logHash } from '../format.ts';
import { WorkQueue, type Job } from './queue.ts';
import { NO_SUSTAINED_RATES, type ClientSettings, type CurrentJob, type QueuedJob, type SustainedRates } from './state.ts';
import { withTimeout } from './with-timeout.ts';

/** The part of the engine the client uses (the page passes its Comlink proxy, Node a PowEngine). */
export type EngineLike = Pick<EngineApi, 'generate' | 'cancel' | 'onStatus'> & {
  /** What the engine's host has to say about the engine itself (the page: a replaced worker); logged as warnings. */
  onNotice?(callback: (message: string) => void): void;
};

export const DEFAULT_JOB_TIMEOUT_S = 120;
/** Hashrate-driven state pushes at most this often. */
const HASHRATE_NOTIFY_MS = 250;

export type WorkLoopSettings = Pick<
  ClientSettings,
  'backend' | 'threads' | 'intensity' | 'queueLimit' | 'jobTimeoutS'
>;

export interface WorkLoopOptions {
  engine: EngineLike;
  events: EventLog;
  now: () => number;
  /** Expiry check period. */
  tickMs: number;
  /** The bounds work messages are checked against; share the engine's. Default DEFAULT_POLICY. */
  policy?: DifficultyPolicy;
  /** A result that passed the reference check, ready to publish. */
  onResult: (job: Job, work: string) => void;
  onChange: () => void;
}

/** The engine's one search: the job it was given, and a promise that ends when the engine is free. */
interface Search {
  job: Job;
  ended: Promise<void>;
}

export class WorkLoop {
  readonly #o: WorkLoopOptions;
  #settings: WorkLoopSettings | null = null;
  #queue = new WorkQueue();
  #running = false;
  /** Paused: nothing is queued or computed (see pause()). Holds across start/stop. */
  #paused = false;
  /** Bumped on every start/stop so a search from an old session does nothing when it ends. */
  #generation = 0;
  #search: Search | null = null;
  #expiryTimer: ReturnType<typeof setInterval> | undefined;

  /** The engine's latest failure, cleared by its next good result. */
  error: string | null = null;
  hashrate = 0;
  /** The engine's sustained rate, busy share and tuned kernel. */
  sustained: SustainedRates = NO_SUSTAINED_RATES;
  backend: BackendName | null = null;
  backendLabel = '';
  #hashrateTimer: ReturnType<typeof setTimeout> | undefined;
  #lastHashrateNotify = 0;

  constructor(options: WorkLoopOptions) {
    this.#o = options;
    try {
      this.#o.engine.onStatus((status) => this.#onEngineStatus(status));
    } catch (err) {
      this.#o.events.add('warn', 'engine', `Engine status is unavailable: ${(err as Error).message}`);
    }
    this.#o.engine.onNotice?.((message) => this.#o.events.add('warn', 'engine', message));
  }

  start(settings: WorkLoopSettings): void {
    this.#settings = settings;
    this.#generation++;
    this.#queue = new WorkQueue({
      limit: settings.queueLimit,
      jobTimeoutMs: (settings.jobTimeoutS ?? DEFAULT_JOB_TIMEOUT_S) * 1000,
      policy: this.#o.policy ?? DEFAULT_POLICY,
      now: this.#o.now,
    });
    this.error = null;
    this.#running = true;
    this.#expiryTimer = setInterval(() => this.expire(), this.#o.tickMs);
  }

  /** Drops the queue and stops the search in flight; resolves once the engine is free (5 s at most). */
  async stop(): Promise<{ dropped: number }> {
    if (!this.#running) return { dropped: 0 };
    this.#running = false;
    this.#generation++;
    clearInterval(this.#expiryTimer);
    clearTimeout(this.#hashrateTimer);
    this.#hashrateTimer = undefined;
    const dropped = this.#queue.clear().length;
    for (const job of this.#queue.abandon()) this.#stopSearch(job);
    const search = this.#search;
    if (search) await withTimeout(search.ended, 5000);
    this.#o.onChange();
    return { dropped };
  }

  /**
   * Takes no work until resume(): the search in flight stops and the queue is dropped (a paused
   * worker keeps no work that another worker could do now). Returns how many jobs were dropped.
   */
  pause(): number {
    if (this.#paused) return 0;
    this.#paused = true;
    const dropped = this.#queue.clear();
    const stopped = this.#queue.abandon();
    for (const job of stopped) this.#stopSearch(job);
    this.#o.onChange();
    return dropped.length + stopped.length;
  }

  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#pump();
  }

  /** The job being computed, for views. */
  current(): CurrentJob | null {
    const job = this.#queue.computing;
    if (!job) return null;
    const { hash, difficulty, workType, receivedAt, multiplier } = job;
    return { hash, difficulty, workType, receivedAt, startedAt: job.startedAt ?? receivedAt, multiplier };
  }

  queued(): QueuedJob[] {
    return this.#queue.snapshot();
  }

  get expiredCount(): number {
    return this.#queue.counters.expired;
  }

  /** A decoded work message. */
  offer(workType: WorkType, work: WorkMessage): void {
    if (this.#paused) return; // a message sent before the work topics were unsubscribed
    const { events } = this.#o;
    const added = this.#queue.add(work.hash, work.difficulty, workType);
    if (!added.ok) {
      if (added.code === 'duplicate') events.reject('duplicate', added.reason, 'info');
      else events.reject(added.code, `work/${workType}: ${added.reason}`);
      return;
    }
    if (added.dropped) {
      events.bump('queue-overflow');
      events.job('warn', 'reject', 'dropped', added.dropped, 'to make room: the queue is full');
    }
    events.job('info', 'job', added.updated ? 'updated' : 'queued', added.job);
    // Ondemand work has a service waiting on it: the queue sent the precache job back.
    if (added.preempted) {
      events.job('info', 'job', 'preempted', added.preempted, 'by ondemand work: back in the queue');
      this.#stopSearch(added.preempted);
    }
    this.#pump();
  }

  /** A cancel for `hash`: a queued job is dropped, the one in flight is stopped. */
  cancel(hash: string): void {
    const { events } = this.#o;
    const out = this.#queue.cancel(hash);
    if (out.queued) {
      events.count('cancelled');
      events.job('info', 'cancel', 'cancelled', out.queued, 'while queued');
    }
    if (out.inFlight) {
      events.count('cancelled');
      events.job('info', 'cancel', 'cancelled', out.inFlight, 'while computing');
      this.#stopSearch(out.inFlight);
    }
  }

  /** Gives up jobs past their time limit, queued or in flight. */
  expire(): void {
    if (!this.#running) return;
    const { events } = this.#o;
    for (const job of this.#queue.expire()) events.job('warn', 'job', 'expired', job, 'before it started');
    for (const job of this.#queue.expireInFlight()) {
      events.job('warn', 'job', 'expired', job, 'while computing: time limit reached');
      this.#stopSearch(job);
    }
    this.#o.onChange();
  }

  // ---------------------------------------------------------------- the engine's one search

  #stopSearch(job: Job): void {
    if (this.#search?.job === job) void this.#o.engine.cancel(job.hash).catch(() => false);
  }

  /** Starts the next queued job if the engine is free. */
  #pump(): void {
    if (!this.#running || this.#paused || this.#search) return;
    const { events } = this.#o;
    const { job, expired } = this.#queue.next();
    for (const e of expired) events.job('warn', 'job', 'expired', e, 'before it started');
    if (!job) {
      this.#o.onChange();
      return;
    }
    const s = this.#settings!;
    const generation = this.#generation;
    const search: Search = { job, ended: Promise.resolve() };
    this.#search = search;
    search.ended = this.#o.engine
      .generate(job.hash, job.target, { backend: s.backend, threads: s.threads, intensity: s.intensity })
      .then(
        (result) => this.#onFound(job, result, generation),
        (err) => this.#onFailed(job, err, generation),
      )
      .catch((err) => events.reject('internal-error', `Work loop: ${(err as Error).message}`, 'error'))
      .finally(() => {
        if (this.#search === search) this.#search = null;
        this.#o.onChange();
        // The engine is free: the next job may start, in this session or in one started since
        // (a search that outlived stop()'s wait holds the next session's first job until now).
        this.#pump();
      });
    this.#o.onChange();
  }

  #onFound(job: Job, result: GenerateResult, generation: number): void {
    // Cancelled, expired or dropped while the engine worked: its outcome was settled then.
    if (generation !== this.#generation || (job.state !== 'computing' && job.state !== 'queued')) return;
    const { events } = this.#o;
    const ms = Math.round(this.#o.now() - (job.startedAt ?? job.receivedAt));
    // Never trust the engine's word alone: check against this message's own difficulty.
    let valid = false;
    try {
      valid = validateWork(job.hash, result.work, job.target).valid;
    } catch {
      valid = false;
    }
    if (!valid) {
      this.#queue.fail(job);
      events.reject(
        'work-mismatch',
        `Engine returned work "${String(result.work).slice(0, 20)}" for ${logHash(job.hash)} that does not meet ${job.difficulty}; not published`,
        'error',
      );
      return;
    }
    this.#queue.finish(job);
    events.count('computed');
    if (this.error) this.error = null;
    events.job('info', 'job', 'computed', job, undefined, { ms, backend: result.backend });
    this.#o.onResult(job, result.work);
  }

  #onFailed(job: Job, err: unknown, generation: number): void {
    // Stopped on purpose (cancelled, expired, preempted, dropped): nothing left to do.
    if (generation !== this.#generation || job.state !== 'computing') return;
    const { events } = this.#o;
    if (err instanceof Error && err.name === 'PowCancelledError') {
      // Someone else stopped the engine: the job ends as cancelled.
      this.#queue.cancel(job.hash);
      events.count('cancelled');
      events.job('info', 'cancel', 'cancelled', job, 'while computing');
      return;
    }
    this.#queue.fail(job);
    const message = err instanceof Error ? err.message : String(err);
    const code = (err as { code?: unknown })?.code;
    this.error = `Engine: ${message}`;
    events.reject(typeof code === 'string' ? code : 'engine-error', `Engine failed on ${logHash(job.hash)}: ${message}`, 'error');
  }

  // ---------------------------------------------------------------- engine status

  #onEngineStatus(status: EngineStatus): void {
    const changedBackend = status.backend !== null && (status.backend !== this.backend || status.label !== this.backendLabel);
    this.hashrate = status.hashrate;
    this.sustained = {
      hashrate: status.sustainedHashrate ?? 0,
      busyShare: status.busyShare ?? 0,
      busyOverMs: status.busyOverMs ?? 0,
      capacity: status.capacity ?? null,
      kernel: status.kernel ?? null,
      calibratedRate: status.calibratedRate ?? null,
      kernelState: status.kernelState ?? null,
      totals: status.totals ?? NO_SUSTAINED_RATES.totals,
      device: status.device ?? null,
    };
    if (status.backend !== null) {
      this.backend = status.backend;
      this.backendLabel = status.label;
    }
    if (changedBackend) return this.#o.onChange();
    // Hashrate alone: a few pushes a second at most.
    const wait = this.#lastHashrateNotify + HASHRATE_NOTIFY_MS - this.#o.now();
    if (wait <= 0) {
      this.#lastHashrateNotify = this.#o.now();
      this.#o.onChange();
    } else if (this.#hashrateTimer === undefined) {
      this.#hashrateTimer = setTimeout(() => {
        this.#hashrateTimer = undefined;
        this.#lastHashrateNotify = this.#o.now();
        this.#o.onChange();
      }, wait);
    }
  }
}
