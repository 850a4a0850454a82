/**
 * The dispatcher's live jobs and the requests waiting on them. One job per hash (keyed by the
 * lower-cased hash; the hash as first given is what work/ and cancel/ messages carry). A job
 * ends once: answered, timed out, expired or withdrawn. Its waiters are settled then, and
 * `onEnded` decides what the broker and the store hear about it.
 */
import { toU64Hex } from '../../pow/work.ts';
import type { WorkType } from '../../dpow/codec.ts';
import { DispatchError, type Requester, type WorkAnswer } from '../types.ts';
import type { DispatcherCounters } from './counters.ts';

/** setTimeout fires at once for delays above 2^31-1 ms; nothing here needs longer than 24 days. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface Waiter {
  /** The hash as this requester gave it; the answer echoes it. */
  hash: string;
  /** The service credited when the job is answered. */
  service?: string;
  /** Who may cancel this wait (cancel()); none: only the job's end settles it. */
  requester?: Requester;
  timer: NodeJS.Timeout;
  resolve(answer: WorkAnswer): void;
  reject(err: DispatchError): void;
}

export interface Job {
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

/**
 * 'accepted': a result won here. 'answered': one won elsewhere (another dispatcher, or a claim
 * this one lost); the winner told the workers. 'withdrawn': the server's own source gave the job
 * up; 'cancelled': its last requester here cancelled (as 'timeout', when the last one gave up).
 */
export type DropReason = 'accepted' | 'answered' | 'timeout' | 'expired' | 'withdrawn' | 'cancelled';

export interface JobTableOptions {
  counters: Pick<DispatcherCounters, 'requests' | 'precache' | 'jobs'>;
  /** A job left the table (after its waiters were settled). */
  onEnded(job: Job, reason: DropReason): void;
}

export class JobTable {
  readonly #opts: JobTableOptions;
  readonly #jobs = new Map<string, Job>();

  constructor(options: JobTableOptions) {
    this.#opts = options;
  }

  get(key: string): Job | undefined {
    return this.#jobs.get(key);
  }

  has(key: string): boolean {
    return this.#jobs.has(key);
  }

  values(): IterableIterator<Job> {
    return this.#jobs.values();
  }

  /** The job if it is still the live one for its key (it may have ended, or been replaced). */
  live(key: string, job = this.#jobs.get(key)): Job | undefined {
    return job && this.#jobs.get(key) === job ? job : undefined;
  }

  /** Jobs waiting for a result, for status displays and tests. */
  pending(): Array<{ hash: string; difficulty: string; workType: WorkType; expiresAt: number; waiters: number }> {
    return [...this.#jobs.values()].map((j) => ({
      hash: j.hash,
      difficulty: toU64Hex(j.difficulty),
      workType: j.workType,
      expiresAt: j.expiresAt,
      waiters: j.waiters.size,
    }));
  }

  create(hash: string, difficulty: bigint, workType: WorkType, expiresAt: number, account?: string, createdAt = Date.now()): Job {
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

  /** Moves a job's expiry later (a new requester waits longer than the ones before). */
  extend(job: Job, expiresAt: number): void {
    if (expiresAt <= job.expiresAt) return;
    job.expiresAt = expiresAt;
    this.#scheduleExpiry(job);
  }

  /**
   * Waits for the job's work, for at most `timeoutMs`. The last requester of an ondemand job to
   * give up ends it, so the workers stop instead of finishing for nothing.
   */
  wait(job: Job, request: Pick<Waiter, 'hash' | 'service' | 'requester'>, timeoutMs: number): Promise<WorkAnswer> {
    return new Promise<WorkAnswer>((resolve, reject) => {
      const waiter: Waiter = {
        ...request,
        resolve,
        reject,
        timer: setTimeout(() => {
          job.waiters.delete(waiter);
          this.#opts.counters.requests.timeout++;
          reject(new DispatchError('timeout', 'Timeout reached without work'));
          if (job.waiters.size === 0 && job.workType === 'ondemand') this.drop(job, 'timeout');
        }, timeoutMs),
      };
      job.waiters.add(waiter);
    });
  }

  /**
   * Refuses `requester`'s waiters on this job with `cancelled` and leaves everyone else's; an
   * ondemand job nobody waits for any more then ends, as when its last requester times out.
   * Returns how many were cancelled.
   */
  cancel(job: Job, requester: Requester): number {
    let cancelled = 0;
    for (const w of job.waiters) {
      if (w.requester !== requester) continue;
      job.waiters.delete(w);
      clearTimeout(w.timer);
      cancelled++;
      this.#opts.counters.requests.cancelled++;
      w.reject(new DispatchError('cancelled', 'Cancelled'));
    }
    if (cancelled && job.waiters.size === 0 && job.workType === 'ondemand') this.drop(job, 'cancelled');
    return cancelled;
  }

  /** The services whose requests wait on this job (credited when it is answered). */
  services(job: Job): string[] {
    return [...job.waiters].map((w) => w.service).filter((s): s is string => !!s);
  }

  /** Answers every waiter with this work; returns how many there were. */
  answer(job: Job, work: string, value: bigint): number {
    const answered = job.waiters.size;
    for (const w of job.waiters) {
      clearTimeout(w.timer);
      w.resolve({ hash: w.hash, work, value: toU64Hex(value), cached: false });
    }
    job.waiters.clear();
    this.#opts.counters.requests.answered += answered;
    return answered;
  }

  /** Ends a job (idempotent): anyone still waiting is refused, then `onEnded` runs. */
  drop(job: Job, reason: DropReason): boolean {
    if (this.#jobs.get(job.key) !== job) return false;
    this.#jobs.delete(job.key);
    clearTimeout(job.expiry);
    const { counters } = this.#opts;
    const cancelled = reason === 'withdrawn' || reason === 'cancelled';
    for (const w of job.waiters) {
      clearTimeout(w.timer);
      if (cancelled) counters.requests.cancelled++;
      else counters.requests.timeout++;
      w.reject(cancelled ? new DispatchError('cancelled', 'Cancelled') : new DispatchError('timeout', 'Timeout reached without work'));
    }
    job.waiters.clear();
    if (cancelled) counters.jobs[job.workType].cancelled++;
    else if (reason !== 'accepted' && reason !== 'answered') counters.jobs[job.workType].expired++;
    this.#opts.onEnded(job, reason);
    return true;
  }

  /** Refuses every waiter (the dispatcher is stopping) and forgets the jobs; the store keeps them. */
  clear(): void {
    for (const job of this.#jobs.values()) {
      clearTimeout(job.expiry);
      for (const w of job.waiters) {
        clearTimeout(w.timer);
        w.reject(new DispatchError('shutting-down', 'The dispatcher is shutting down'));
      }
    }
    this.#jobs.clear();
  }

  #scheduleExpiry(job: Job): void {
    clearTimeout(job.expiry);
    job.expiry = setTimeout(() => {
      if (job.workType === 'precache') this.#opts.counters.precache.expired++;
      this.drop(job, 'expired');
    }, Math.min(MAX_TIMER_MS, Math.max(0, job.expiresAt - Date.now())));
  }
}
