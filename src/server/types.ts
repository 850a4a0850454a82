/**
 * The dispatcher's surface for its inputs: the service API, the work-server RPC and the
 * precache feeds all talk to it through this, never to MQTT directly.
 */
import type { WorkType } from '../dpow/codec.ts';

/**
 * Who made a request, so that a cancel reaches only its own: a service, by its user name (the
 * service API, and the work RPC in API-key mode), or `rpc`, the work RPC's open door (loopback or
 * `any` mode), whose callers (the operator's node, wallet or curl) are one requester.
 */
export type Requester = `service:${string}` | 'rpc';
export const RPC_REQUESTER: Requester = 'rpc';
export const serviceRequester = (user: string): Requester => `service:${user}`;

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
  /** Who may cancel this request (cancel()); without one, only a withdraw() ends it early. */
  requester?: Requester;
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
  /**
   * Withdraws a pending job whoever waits for it, and publishes cancel/<type>: for the server's
   * own sources (a precache feed whose frontier moved), never for a caller's cancel.
   */
  withdraw(hash: string): Promise<boolean>;
  /**
   * A caller's cancel (work_cancel): `requester`'s own requests for this hash are answered
   * `cancelled`, and nobody else's. The job is withdrawn (cancel/<type>) only once nobody waits
   * for it any more. Resolves to how many requests were cancelled (0 when it had none there).
   */
  cancel(hash: string, requester: Requester): Promise<number>;
  /** Tracks an account for precache (from service requests carrying `account`). */
  track(account: string): Promise<void>;
  /**
   * Calls `listener` with each account newly tracked (normalised: xrb_ as nano_), so a precache
   * feed can add it to its filter at once. Returns the unsubscribe function.
   */
  onTracked?(listener: (account: string) => void): () => void;
}
