/**
 * The live jobs' records: in the store (PendingJob) and on the broker (work/ and cancel/).
 *
 * - publish: work/<type> "hash,difficulty", remembering each type a job went out on, so its
 *   cancel reaches every worker that got it; republish after a reconnect;
 * - save: each job's record is written as it is created or changed, so a restart (or another
 *   dispatcher on a shared store) knows it;
 * - ended: a job that timed out, expired, was cancelled or withdrawn loses its record and workers
 *   get cancel/<type>. On a shared store a job whose requesters here timed out or cancelled may
 *   still be awaited elsewhere, so its record goes only once the stored expiry has passed. An accepted job's record went with the
 *   accept; a job answered elsewhere was cleaned up by the winner.
 * - restore: the leader republishes unexpired records and cancels expired ones;
 * - expire: on a shared store, the leader cancels records past their expiry, whoever wrote them.
 */
import type { WorkType } from '../../dpow/codec.ts';
import { logHash } from '../../format.ts';
import type { Logger } from '../log.ts';
import type { DispatcherStore, PendingJob } from '../store/store.ts';
import type { BrokerSession } from './broker-session.ts';
import type { DispatcherCounters, StoreCall } from './counters.ts';
import type { DropReason, Job, JobTable } from './jobs.ts';

export interface PendingRecordsOptions {
  store: DispatcherStore;
  storeCall: StoreCall;
  jobs: JobTable;
  session: Pick<BrokerSession, 'publishWork' | 'publishCancel'>;
  counters: Pick<DispatcherCounters, 'restored' | 'jobs' | 'precache'>;
  log: Logger;
}

export class PendingRecords {
  readonly #opts: PendingRecordsOptions;

  constructor(options: PendingRecordsOptions) {
    this.#opts = options;
  }

  publish(job: Job, workType: WorkType): void {
    job.published.add(workType);
    this.#opts.session.publishWork(job.hash, job.difficulty, workType);
  }

  /** Every live job again (the broker connection came back; nothing of ours was retained). */
  republish(): void {
    for (const job of this.#opts.jobs.values()) this.publish(job, job.workType);
  }

  /** Called, not awaited: the store applies calls in order, and the job is already live. */
  save(job: Job): void {
    const { hash, difficulty, workType, expiresAt, createdAt, account } = job;
    const record: PendingJob = { hash, difficulty, workType, expiresAt, createdAt, ...(account ? { account } : {}) };
    void this.#opts.storeCall(() => this.#opts.store.savePending(record));
  }

  /** A job left the table: tell the workers to stop, and forget its record, unless a winner did. */
  ended(job: Job, reason: DropReason): void {
    const { store, storeCall } = this.#opts;
    if (reason === 'accepted') this.#cancel(job.hash, job.published);
    if (reason === 'accepted' || reason === 'answered') return;
    if (store.cluster && reason !== 'withdrawn') {
      void this.#releaseShared(job);
    } else {
      void storeCall(() => store.removePending(job.key));
      this.#cancel(job.hash, job.published);
    }
    this.#opts.log.debug?.(`dispatcher: ${reason} ${job.workType} ${logHash(job.hash)}; cancel published`);
  }

  /** Republishes unexpired stored jobs; cancels and forgets expired ones. */
  async restore(): Promise<void> {
    const { store, storeCall, jobs, counters } = this.#opts;
    const stored = (await storeCall(() => store.listPending())) ?? [];
    for (const p of stored) {
      const key = p.hash.toLowerCase();
      if (jobs.has(key)) continue;
      if (p.expiresAt <= Date.now()) {
        counters.restored.expired++;
        counters.jobs[p.workType].expired++;
        await storeCall(() => store.removePending(key));
        this.#cancel(p.hash, [p.workType]);
        continue;
      }
      const job = jobs.create(p.hash, p.difficulty, p.workType, p.expiresAt, p.account, p.createdAt);
      counters.restored.republished++;
      this.publish(job, job.workType);
    }
    if (stored.length) {
      this.#opts.log.info(`dispatcher: restored ${counters.restored.republished} pending jobs, cancelled ${counters.restored.expired} expired`);
    }
  }

  /** Cancels stored jobs past their expiry that no live job here holds, whoever published them. */
  async expire(): Promise<void> {
    const { store, storeCall, jobs, counters } = this.#opts;
    const stored = await storeCall(() => store.listPending());
    for (const p of stored ?? []) {
      if (p.expiresAt > Date.now() || jobs.has(p.hash.toLowerCase())) continue;
      await storeCall(() => store.removePending(p.hash));
      if (p.workType === 'precache') counters.precache.expired++;
      this.#cancel(p.hash, [p.workType]);
    }
  }

  /**
   * A shared job that timed out, expired or was cancelled here: other dispatchers may still wait
   * for it (each requester pushes the stored expiry out to its own deadline). Only when the
   * stored expiry has passed is the record removed and the cancel published.
   */
  async #releaseShared(job: Job): Promise<void> {
    const { store, storeCall } = this.#opts;
    const stored = await storeCall(() => store.getPending(job.key));
    if (!stored || stored.expiresAt > Date.now() + 50) return;
    await storeCall(() => store.removePending(job.key));
    this.#cancel(job.hash, new Set([...job.published, stored.workType]));
  }

  #cancel(hash: string, types: Iterable<WorkType>): void {
    for (const t of types) this.#opts.session.publishCancel(t, hash);
  }
}
