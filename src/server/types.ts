/**
 * The dispatcher's surface for its inputs: the service API, the work-server RPC and the
 * precache feeds all talk to it through this, never to MQTT directly.
 */
import type { WorkType } from '../dpow/codec.ts';

export interface WorkRequest {
  /** 64 hex, any case; the answer echoes it as given. */
  hash: string;
  difficulty: bigint;
  workType: WorkType;
  /** How long to wait for a worker, in ms. */
  timeoutMs: number;
  /** Service user on whose behalf the work is done (credited on success). */
  service?: string;
  /** Account to track for precache after this request. */
  account?: string;
}

export interface WorkAnswer {
  hash: string;
  work: string;
  /** The work value, 16 hex. */
  value: string;
  /** True when answered from stored work (e.g. precache) without dispatching. */
  cached: boolean;
}

export type DispatchErrorCode = 'timeout' | 'cancelled' | 'shutting-down';

export class DispatchError extends Error {
  override readonly name = 'DispatchError';
  constructor(
    readonly code: DispatchErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface DispatcherApi {
  /**
   * Ondemand work: answered from stored work if it meets the difficulty, otherwise published on
   * work/ondemand. Concurrent requests for one hash share one job. Rejects with DispatchError.
   */
  requestWork(request: WorkRequest): Promise<WorkAnswer>;
  /** Publishes a precache job (idempotent per hash); the feed calls this on a new frontier. */
  precache(hash: string, difficulty: bigint, account?: string): Promise<void>;
  /** Withdraws a pending job and publishes cancel/<type> (frontier moved, work_cancel). */
  withdraw(hash: string): Promise<boolean>;
  /** Tracks an account for precache (from service requests carrying `account`). */
  track(account: string): Promise<void>;
  /**
   * Calls `listener` with each account newly tracked (normalised: xrb_ as nano_), so a precache
   * feed can add it to its filter at once. Returns the unsubscribe function.
   */
  onTracked?(listener: (account: string) => void): () => void;
}
