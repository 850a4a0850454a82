/**
 * What the worker client shows the world: the UI and the headless worker's log are both views of
 * this state. The client (client.ts) owns it; views subscribe and send commands only.
 */
import type { ClientMessage, Statistics, WorkType } from './codec.ts';
import type { BackendChoice, BackendName, KernelState } from '../pow/types.ts';

export type WorkChoice = 'any' | WorkType;

export interface ClientSettings {
  /** ws:// or wss:// URL of the broker's WebSocket listener (mqtt:// also works in Node). */
  brokerUrl: string;
  username: string;
  password: string;
  /** Payout address; its checksum is checked before the client starts. */
  address: string;
  work: WorkChoice;
  backend: BackendChoice;
  /** WASM threads. */
  threads?: number;
  /** GPU share of time in (0, 1]. */
  intensity?: number;
  /** Seconds without a heartbeat before the server is shown as offline. Default 5. */
  heartbeatTimeoutS?: number;
  /** Queue size bound; when full the oldest precache job is dropped. Default 64. */
  queueLimit?: number;
  /** Per-job time limit in seconds. Default 120. */
  jobTimeoutS?: number;
  /** Address prefixes accepted for payout. Default nano_/xrb_. */
  addressPrefixes?: string[];
}

export type ConnectionState = 'idle' | 'connecting' | 'online' | 'server-offline' | 'reconnecting' | 'stopped';

export interface QueuedJob {
  hash: string;
  difficulty: string;
  workType: WorkType;
  receivedAt: number;
}

export interface CurrentJob extends QueuedJob {
  startedAt: number;
  /** Multiplier relative to the Nano send threshold. */
  multiplier: number;
}

export interface ClientCounters {
  received: number;
  /** Rejected payloads by reason code (bad-hash, difficulty-too-high, duplicate, queue-full, …). */
  rejected: Record<string, number>;
  computed: number;
  published: number;
  cancelled: number;
  /**
   * This worker's own results that the dispatcher credited: a client/<address> notice whose
   * block_rewarded is a hash this worker published (and the broker acknowledged).
   */
  accepted: number;
  /**
   * Every credit to the payout address while this session ran (notices that raised its total),
   * whichever tab or machine earned it.
   */
  addressAccepted: number;
  expired: number;
}

export interface ClientEvent {
  at: number;
  level: 'info' | 'warn' | 'error';
  /** Short category for filtering: job, publish, cancel, reject, connection, heartbeat, stats. */
  kind: string;
  message: string;
  /** Set on job events (kind 'job', 'publish', 'cancel'), so a log can print one structured line. */
  job?: JobEventInfo;
}

export interface JobEventInfo {
  event: 'queued' | 'updated' | 'preempted' | 'computed' | 'published' | 'cancelled' | 'expired' | 'dropped';
  hash: string;
  workType: WorkType;
  /** Multiplier vs the Nano send threshold. */
  multiplier: number;
  /** Search time, on computed. */
  ms?: number;
  backend?: BackendName;
}

/** What the engine did over the last minute, and what its device can do. */
export interface SustainedRates {
  /** Hashes per second of computing time. */
  hashrate: number;
  /** Share of the time spent computing, in [0, 1]. */
  busyShare: number;
  /** WebGPU kernel variant, and its calibrated rate (the tuned capacity). */
  kernel: string | null;
  capacity: number | null;
  /** What the kernel tuner is doing (calibrating, cached, tuned, forced, default), or null. */
  kernelState: KernelState | null;
}

export const NO_SUSTAINED_RATES: SustainedRates = { hashrate: 0, busyShare: 0, kernel: null, capacity: null, kernelState: null };

export interface ClientState {
  connection: ConnectionState;
  /** ms since the last heartbeat, or null if none yet. */
  heartbeatAgeMs: number | null;
  lastHeartbeatAt: number | null;
  queue: QueuedJob[];
  current: CurrentJob | null;
  hashrate: number;
  /** The engine's sustained rate, busy share and tuned kernel (see EngineStatus). */
  sustained: SustainedRates;
  backend: BackendName | null;
  backendLabel: string;
  counters: ClientCounters;
  lastClientMessage: ClientMessage | null;
  lastStatistics: Statistics | null;
  /** Most recent first, bounded. */
  events: ClientEvent[];
  error: string | null;
}

/** The surface views use: state out, commands in. */
export interface WorkerClient {
  getState(): ClientState;
  /** Called on every change; returns an unsubscribe function. */
  subscribe(listener: (state: ClientState) => void): () => void;
  start(settings: ClientSettings): Promise<void>;
  stop(): Promise<void>;
}
