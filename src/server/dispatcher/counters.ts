/**
 * What the dispatcher counts: one object, each part writing its own sections of it, read by
 * /metrics and the tests as `dispatcher.counters`. Also the parts' one way to call the store for
 * something that may fail without stopping them: the failure is counted and logged, and the call
 * gives undefined.
 */
import type { RejectCode, WorkType } from '../../dpow/codec.ts';
import type { Logger } from '../log.ts';

/** Every way a result can end; `malformed` and `dropped` results are also counted by reason. */
export type ResultOutcome = 'accepted' | 'invalid-work' | 'duplicate' | 'unknown-hash' | 'malformed' | 'ignored' | 'dropped';

/**
 * Why a result was dropped unchecked: its job is not held here and the bound on store lookups
 * was reached (lookup-bound.ts), or the store was down and the outage hold had no room for it.
 */
export type DropReason = 'lookup-bound' | 'hold-full';

export interface DispatcherCounters {
  results: Record<ResultOutcome, number>;
  /** Malformed results by codec reject code (bad-hash, bad-work, bad-field-count, …). */
  malformed: Partial<Record<RejectCode, number>>;
  /** Dropped results by reason. */
  dropped: Record<DropReason, number>;
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
  /**
   * Broker connections lost (either of two with a standby), and of those, the ones another login
   * took over by connecting with the client id (told apart only with a standby).
   */
  broker: { disconnects: number; takeovers: number };
  /** Times this dispatcher took the singleton lease (heartbeat, statistics, expiry). */
  leases: number;
  /** Stored works removed because they were older than the store's work retention. */
  workPruned: number;
  /** Times the broker connection came back on another node of a clustered broker than the one it lost. */
  brokerFailovers: number;
  /**
   * By work type: work/ messages published (republishes included), jobs that ended without
   * work (timed out or expired, cancel sent) and jobs withdrawn (cancel sent).
   */
  jobs: Record<WorkType, { published: number; expired: number; cancelled: number }>;
}

export function newCounters(): DispatcherCounters {
  return {
    results: { accepted: 0, 'invalid-work': 0, duplicate: 0, 'unknown-hash': 0, malformed: 0, ignored: 0, dropped: 0 },
    malformed: {},
    dropped: { 'lookup-bound': 0, 'hold-full': 0 },
    published: { work: 0, cancel: 0, heartbeat: 0, statistics: 0, client: 0 },
    requests: { cached: 0, dispatched: 0, shared: 0, answered: 0, timeout: 0, cancelled: 0 },
    precache: { published: 0, expired: 0, withdrawn: 0 },
    restored: { republished: 0, expired: 0 },
    invalidAddress: 0,
    storeErrors: 0,
    deferred: { total: 0, held: 0, retried: 0 },
    broker: { disconnects: 0, takeovers: 0 },
    leases: 0,
    workPruned: 0,
    brokerFailovers: 0,
    jobs: {
      precache: { published: 0, expired: 0, cancelled: 0 },
      ondemand: { published: 0, expired: 0, cancelled: 0 },
    },
  };
}

/** A store call whose failure is counted and logged; undefined when it failed. */
export type StoreCall = <T>(call: () => Promise<T>) => Promise<T | undefined>;

export function storeCaller(counters: Pick<DispatcherCounters, 'storeErrors'>, log: Logger): StoreCall {
  return async (call) => {
    try {
      return await call();
    } catch (err) {
      counters.storeErrors++;
      log.error(`dispatcher: store: ${(err as Error).message}`);
      return undefined;
    }
  };
}
