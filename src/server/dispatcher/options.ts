/**
 * What a Dispatcher is given, and what it tells its listeners. DispatcherTuning is what a
 * deployment tunes (createServer's `dispatcher` section); the rest of DispatcherOptions is wiring
 * that createServer fills in: the broker login, the store, the difficulty policy, the log.
 */
import type { ConnectFn } from '../../dpow/mqtt-connect.ts';
import type { DifficultyPolicy } from '../../pow/difficulty.ts';
import type { Logger } from '../log.ts';
import type { DispatcherStore } from '../store/store.ts';
import type { AbuseOptions } from './abuse.ts';
import type { LookupBoundOptions } from './lookup-bound.ts';
import type { AcceptedResult, RejectedResult } from './results.ts';

/** What a deployment tunes. */
export interface DispatcherTuning {
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
  /** Payout prefixes credited; others get the "account is invalid" reply. Default all four. */
  addressPrefixes?: readonly string[];
  /** How long start() waits for the first broker connection. Default 10 000. */
  connectTimeoutMs?: number;
  /** Singleton lease length on a shared store; another dispatcher takes over within it. Default 2000. */
  leaseMs?: number;
  /** First wait before a result the store could not take is tried again; doubles up to 5 s. Default 250. */
  retryMs?: number;
  /** How often the elected dispatcher asks the store to forget work past its retention. Default 1 hour. */
  pruneWorkMs?: number;
  /** Invalid-result containment (see abuse.ts); thresholds, window and cooldown. */
  abuse?: Partial<Omit<AbuseOptions, 'now'>>;
  /**
   * On a shared store, the bound on store lookups for results whose job is not held here
   * (lookup-bound.ts: in flight, rate, burst), and how many such results not yet looked up may
   * be held while the store is down (default 10,000; the oldest is let go first).
   */
  resultLookups?: Partial<Omit<LookupBoundOptions, 'now'>> & { held?: number };
}

export interface DispatcherOptions extends DispatcherTuning {
  /** mqtt://, ws:// or wss:// URL of the broker (of its first node). */
  brokerUrl: string;
  /**
   * The other nodes of a clustered broker (RabbitMQ), same scheme and path: the connection moves
   * to the next when its node dies, and the leader keeps the retained statistics on every node.
   */
  failoverBrokerUrls?: readonly string[];
  /** The broker's `server` role login. */
  username: string;
  password: string;
  store: DispatcherStore;
  /** The difficulty bounds (the ceiling applies here); share the service API's. Default DEFAULT_POLICY. */
  policy?: DifficultyPolicy;
  /**
   * Subscribe to results as `$share/<group>-<secret>/result/+` (the secret derived from the
   * password) so the broker hands each result to one dispatcher of the group (Mosquitto 2, EMQX;
   * not aedes). Default: every dispatcher sees every result and the store's claim decides.
   */
  sharedGroup?: string;
  /**
   * Hold a second broker connection that takes results too, so a result published while one is
   * knocked off (a broker where any login can take over a client id: Mosquitto, EMQX) is not
   * lost, and a takeover is told from an outage. createServer sets it for an external broker;
   * the embedded one refuses a takeover of the server's client id. Default false.
   */
  standby?: boolean;
  /** Opens the broker connection. Default mqtt.js connect. */
  connect?: ConnectFn;
  log?: Logger;
  /**
   * Who published a result: the MQTT client id, when the broker can tell (the embedded one
   * can; see Broker.publisherOf). Unknown for an external broker: containment is then by address.
   */
  resultPublisher?: (topic: string, payload: Buffer) => string | undefined;
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

