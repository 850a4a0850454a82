/**
 * What the worker client shows the world: the UI and the headless worker's log are both views of
 * this state. The client (client.ts) owns it; views subscribe and send commands only.
 */
import type { ClientMessage, Statistics, WorkType } from './codec.ts';
import type { BackendChoice, BackendName, DeviceInfo, KernelState } from '../pow/types.ts';

export type WorkChoice = 'any' | WorkType;

export interface ClientSettings {
  /** ws:// or wss:// URL of the broker's WebSocket listener (mqtt:// also works in Node). */
  brokerUrl: string;
  /** Other nodes of the same clustered broker, tried in turn after brokerUrl when a connection fails. */
  failoverBrokerUrls?: readonly string[];
  username: string;
  password: string;
  /** Payout address; its checksum is checked before the client starts. */
  address: string;
  work: WorkChoice;
  backend: BackendChoice;
  /** WASM threads. */
  threads?: number;
  /** Share of time the GPU or the CPU threads compute, in (0, 1]. */
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

/**
 * What the engine's backend did over its last minute of computing, and what its device can do:
 * every figure of one backend (see EngineStatus).
 */
export interface SustainedRates {
  /** Hashes per second of computing time over the backend's last minute of computing. */
  hashrate: number;
  /** Share of the last minute spent computing, in [0, 1]. */
  busyShare: number;
  /** The time busyShare is over: a minute, or less since the first job. */
  busyOverMs: number;
  /** What the backend can do (never below `hashrate` once known), or null. */
  capacity: number | null;
  /** WebGPU kernel variant, its calibrated rate, and what the kernel tuner is doing. */
  kernel: string | null;
  calibratedRate: number | null;
  kernelState: KernelState | null;
  /** The backend's hashes and computing ms so far, only growing (for per-interval rates). */
  totals: { hashes: number; busyMs: number };
  /** What the backend computes on. */
  device: DeviceInfo | null;
}

export const NO_SUSTAINED_RATES: SustainedRates = {
  hashrate: 0,
  busyShare: 0,
  busyOverMs: 0,
  capacity: null,
  kernel: null,
  calibratedRate: null,
  kernelState: null,
  totals: { hashes: 0, busyMs: 0 },
  device: null,
};

/**
 * Why a worker that wants work is not taking any: the machine runs on battery, another tab of
 * the same browser computes, or the page is hidden (each a volunteer's setting in the page).
 */
export type PauseReason = 'battery' | 'another-tab' | 'hidden';

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
  /** Set while paused: no work is taken (work topics unsubscribed, nothing queued or computed). */
  paused: PauseReason | null;
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
  /**
   * Stops taking work for `reason` (the search in flight stops, the queue is dropped, the work
   * topics are unsubscribed) while staying connected; null takes work again. Holds across
   * start() and stop().
   */
  pause(reason: PauseReason | null): void;
}
