/**
 * The DPoW worker session: MQTT in, proofs of work out.
 *
 *   broker --work/<type>--> parse (codec.ts) --> WorkQueue --> engine.generate
 *          --> validateWork again --> outbox --result/<type>--> broker
 *
 * Plain TypeScript over mqtt.js (MQTT 3.1.1 over ws://, wss://, or mqtt:// in Node): no DOM, no
 * Node APIs, so the page and the headless worker share it. Every payload goes through the
 * codecs; a bad one becomes a counted, logged rejection and never an exception out of the message
 * handler. Reconnects are ours (exponential backoff with jitter, resubscribe on every connect,
 * since the session is clean), and so is the outbox: a result found while offline waits in it and
 * is handed to mqtt.js only once connected, so a cancel that arrives first can still withdraw it.
 */
import mqtt from 'mqtt';
import type { IClientOptions, MqttClient } from 'mqtt';
import { checkAddress } from './address.ts';
import {
  cancelCodec,
  clientCodec,
  heartbeatCodec,
  parseTopic,
  resultCodec,
  statisticsCodec,
  topics,
  workCodec,
  type ClientMessage,
  type Statistics,
  type WorkType,
} from './codec.ts';
import { WorkQueue, type Job } from './queue.ts';
import type {
  ClientCounters,
  ClientEvent,
  ClientSettings,
  ClientState,
  ConnectionState,
  JobEventInfo,
  SustainedRates,
  WorkerClient,
} from './state.ts';
import { NO_SUSTAINED_RATES } from './state.ts';
import { validateWork } from '../pow/work.ts';
import type { BackendName, EngineApi, EngineStatus, GenerateResult } from '../pow/types.ts';
import { backoffDelay } from './backoff.ts';

/** The part of the engine the client uses (the page passes its Comlink proxy, Node a PowEngine). */
export type EngineLike = Pick<EngineApi, 'generate' | 'cancel' | 'onStatus'>;

/** mqtt.connect, or anything shaped like it. */
export type ConnectFn = (brokerUrl: string, options: IClientOptions) => MqttClient;

export interface ReconnectPolicy {
  /** First retry delay (before jitter). Default 1000 ms. */
  initialMs: number;
  /** Ceiling of the doubling delay. Default 120 000 ms. */
  maxMs: number;
}

export interface DpowClientOptions {
  engine: EngineLike;
  connect?: ConnectFn;
  now?: () => number;
  /** Every event, as it happens (the headless worker prints them). */
  log?: (event: ClientEvent) => void;
  reconnect?: Partial<ReconnectPolicy>;
  /** Jitter source in [0, 1). */
  random?: () => number;
  /** Watchdog period (heartbeat age, job expiry). Default 1000 ms. */
  tickMs?: number;
}

export const DEFAULT_HEARTBEAT_TIMEOUT_S = 5;
export const DEFAULT_JOB_TIMEOUT_S = 120;
export const MAX_EVENTS = 200;
/** Results kept while offline; beyond this the oldest is given up. */
export const MAX_OUTBOX = 256;
/** Hashrate-driven state pushes at most this often. */
const HASHRATE_NOTIFY_MS = 250;
/** A connection that lasted this long resets the backoff. */
const STABLE_CONNECTION_MS = 10_000;

interface Running {
  job: Job;
  startedAt: number;
  /** Why we asked the engine to stop, if we did. */
  stopping: null | 'cancelled' | 'expired' | 'stopped' | 'preempted';
  done: Promise<void>;
  /** Put the job back in the queue when it ends (preempted before it found work). */
  requeue?: boolean;
}

interface Outgoing {
  job: Job;
  topic: string;
  payload: string;
  foundAt: number;
  /** The connection it was handed to, awaiting PUBACK; null = not sent yet. */
  via: MqttClient | null;
}

interface ActiveSettings extends ClientSettings {
  url: string;
  heartbeatTimeoutMs: number;
}

const freshCounters = (): ClientCounters => ({
  received: 0,
  rejected: {},
  computed: 0,
  published: 0,
  cancelled: 0,
  accepted: 0,
  expired: 0,
});

const short = (hash: string) => `${hash.slice(0, 16)}…`;

export function formatMultiplier(m: number): string {
  if (!Number.isFinite(m)) return String(m);
  return m >= 0.01 ? `×${m.toFixed(2)}` : `×${m.toExponential(2)}`;
}

/** Resolves a broker URL (relative ones against the page) and checks its scheme. */
export function resolveBrokerUrl(input: string): { ok: true; url: string } | { ok: false; reason: string } {
  const base = (globalThis as { location?: { href?: string } }).location?.href;
  let url: URL;
  try {
    url = new URL(input, base);
  } catch {
    return { ok: false, reason: `broker URL "${input}" is not a URL` };
  }
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  if (!['ws:', 'wss:', 'mqtt:', 'mqtts:'].includes(url.protocol)) {
    return { ok: false, reason: `broker URL must be ws://, wss:// or mqtt://, got "${input}"` };
  }
  return { ok: true, url: url.href };
}

function checkSettings(s: ClientSettings): string | null {
  const positive = (v: number | undefined) => v === undefined || (Number.isFinite(v) && v > 0);
  if (!['any', 'precache', 'ondemand'].includes(s.work)) return `work must be any, precache or ondemand, got "${s.work}"`;
  if (!['auto', 'webgpu', 'wasm'].includes(s.backend)) return `backend must be auto, webgpu or wasm, got "${s.backend}"`;
  if (s.threads !== undefined && !(Number.isInteger(s.threads) && s.threads >= 1)) return 'threads must be a whole number >= 1';
  if (s.intensity !== undefined && !(positive(s.intensity) && s.intensity <= 1)) return 'intensity must be in (0, 1]';
  if (!positive(s.maxMultiplier)) return 'maxMultiplier must be a positive number';
  if (!positive(s.heartbeatTimeoutS)) return 'heartbeatTimeoutS must be a positive number';
  if (s.queueLimit !== undefined && !(Number.isInteger(s.queueLimit) && s.queueLimit >= 1)) return 'queueLimit must be a whole number >= 1';
  if (!positive(s.jobTimeoutS)) return 'jobTimeoutS must be a positive number';
  return null;
}

function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export class DpowClient implements WorkerClient {
  private readonly engine: EngineLike;
  private readonly connectFn: ConnectFn;
  private readonly now: () => number;
  private readonly logFn: ((event: ClientEvent) => void) | undefined;
  private readonly policy: ReconnectPolicy;
  private readonly random: () => number;
  private readonly tickMs: number;

  private settings: ActiveSettings | null = null;
  private running = false;
  /** Bumped on every start/stop so late callbacks from an old session do nothing. */
  private session = 0;

  private mq: MqttClient | null = null;
  private connection: ConnectionState = 'idle';
  private connectedAt: number | null = null;
  private lastHeartbeatAt: number | null = null;
  private reconnectAttempt = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private tickTimer: ReturnType<typeof setInterval> | undefined;
  private lastError: string | null = null;

  private queue = new WorkQueue();
  private current: Running | null = null;
  private outbox: Outgoing[] = [];

  private counters = freshCounters();
  private events: ClientEvent[] = [];
  private error: string | null = null;
  private hashrate = 0;
  private sustained: SustainedRates = NO_SUSTAINED_RATES;
  private backend: BackendName | null = null;
  private backendLabel = '';
  private lastClientMessage: ClientMessage | null = null;
  private lastClientTotal: number | null = null;
  private lastStatistics: Statistics | null = null;

  private readonly listeners = new Set<(state: ClientState) => void>();
  private snapshot: ClientState | null = null;
  private notifyQueued = false;
  private hashrateTimer: ReturnType<typeof setTimeout> | undefined;
  private lastHashrateNotify = 0;

  constructor(options: DpowClientOptions) {
    this.engine = options.engine;
    this.connectFn = options.connect ?? ((url, opts) => mqtt.connect(url, opts));
    this.now = options.now ?? Date.now;
    this.logFn = options.log;
    this.policy = { initialMs: 1000, maxMs: 120_000, ...options.reconnect };
    this.random = options.random ?? Math.random;
    this.tickMs = options.tickMs ?? 1000;
    try {
      this.engine.onStatus((status) => this.onEngineStatus(status));
    } catch (err) {
      this.addEvent('warn', 'engine', `Engine status is unavailable: ${(err as Error).message}`);
    }
  }

  // ------------------------------------------------------------------ WorkerClient

  getState(): ClientState {
    if (!this.snapshot) {
      const now = this.now();
      const cur = this.current;
      this.snapshot = {
        connection: this.connection,
        heartbeatAgeMs: this.lastHeartbeatAt === null ? null : Math.max(0, now - this.lastHeartbeatAt),
        lastHeartbeatAt: this.lastHeartbeatAt,
        queue: this.queue.snapshot(),
        current: cur
          ? {
              hash: cur.job.hash,
              difficulty: cur.job.difficulty,
              workType: cur.job.workType,
              receivedAt: cur.job.receivedAt,
              startedAt: cur.startedAt,
              multiplier: cur.job.multiplier,
            }
          : null,
        hashrate: this.hashrate,
        sustained: this.sustained,
        backend: this.backend,
        backendLabel: this.backendLabel,
        counters: { ...this.counters, rejected: { ...this.counters.rejected }, expired: this.queue.counters.expired },
        lastClientMessage: this.lastClientMessage,
        lastStatistics: this.lastStatistics,
        events: this.events.slice(),
        error: this.error,
      };
    }
    return this.snapshot;
  }

  subscribe(listener: (state: ClientState) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /**
   * Checks the settings (payout address checksum first), then connects. Resolves once the first
   * connection attempt has an outcome; an unreachable broker is not an error here (the client
   * keeps retrying and says so in its state). Rejects only for bad settings.
   */
  async start(settings: ClientSettings): Promise<void> {
    if (this.running) await this.stop();
    const address = checkAddress(settings.address, settings.addressPrefixes ?? ['nano', 'xrb']);
    const problem = !address.ok
      ? `Invalid payout address: ${address.reason}`
      : (checkSettings(settings) ?? null);
    const url = resolveBrokerUrl(settings.brokerUrl);
    const refusal = problem ?? (url.ok ? null : url.reason);
    if (refusal || !url.ok) {
      this.error = refusal;
      this.addEvent('error', 'connection', refusal ?? 'invalid settings');
      this.changed();
      throw new Error(refusal ?? 'invalid settings');
    }

    this.session++;
    this.settings = {
      ...settings,
      url: url.url,
      heartbeatTimeoutMs: (settings.heartbeatTimeoutS ?? DEFAULT_HEARTBEAT_TIMEOUT_S) * 1000,
    };
    this.queue = new WorkQueue({
      limit: settings.queueLimit,
      jobTimeoutMs: (settings.jobTimeoutS ?? DEFAULT_JOB_TIMEOUT_S) * 1000,
      maxMultiplier: settings.maxMultiplier,
      now: this.now,
    });
    this.outbox = [];
    this.counters = freshCounters();
    this.error = null;
    this.lastError = null;
    this.lastHeartbeatAt = null;
    this.connectedAt = null;
    this.lastClientMessage = null;
    this.lastClientTotal = null;
    this.lastStatistics = null;
    this.reconnectAttempt = 0;
    this.running = true;
    this.connection = 'connecting';
    this.addEvent('info', 'connection', `Connecting to ${url.url} for ${settings.work} work, paying ${settings.address}`);
    this.tickTimer = setInterval(() => this.tick(), Math.min(this.tickMs, this.settings.heartbeatTimeoutMs / 4));
    this.changed();
    await this.openConnection();
  }

  /** Cancels the job in flight, drops the queue, unsubscribes and closes the connection. */
  async stop(): Promise<void> {
    if (!this.running) {
      if (this.connection !== 'idle' && this.connection !== 'stopped') this.connection = 'stopped';
      this.changed();
      return;
    }
    this.running = false;
    this.session++;
    clearInterval(this.tickTimer);
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.hashrateTimer);
    this.hashrateTimer = undefined;
    const cur = this.current;
    if (cur) {
      cur.stopping = 'stopped';
      await this.engine.cancel(cur.job.hash).catch(() => false);
    }
    const dropped = this.queue.clear().length;
    const unsent = this.outbox.length;
    this.outbox = [];
    const client = this.mq;
    this.mq = null;
    if (client) await this.closeClient(client);
    if (cur) await withTimeout(cur.done, 5000);
    this.connection = 'stopped';
    this.connectedAt = null;
    const extra = [dropped ? `${dropped} queued jobs dropped` : '', unsent ? `${unsent} unpublished results discarded` : '']
      .filter(Boolean)
      .join(', ');
    this.addEvent('info', 'connection', `Stopped${extra ? ` (${extra})` : ''}`);
    this.changed();
  }

  /**
   * Retries at once instead of waiting out the backoff (the page calls this when the browser
   * says the network is back). Does nothing unless a retry is pending.
   */
  reconnectNow(): void {
    if (!this.running || this.connection !== 'reconnecting' || this.mq || this.reconnectTimer === undefined) return;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    this.reconnectAttempt = 0;
    this.addEvent('info', 'connection', 'Retrying now');
    void this.openConnection();
  }

  // ------------------------------------------------------------------ connection

  private openConnection(): Promise<void> {
    const s = this.settings!;
    const session = this.session;
    const client = this.connectFn(s.url, {
      protocolVersion: 4,
      username: s.username,
      password: s.password,
      clientId: `dpow-web_${randomId()}`,
      clean: true,
      keepalive: 60,
      reconnectPeriod: 0, // reconnects are ours: backoff, resubscribe, outbox
      connectTimeout: 10_000,
      resubscribe: false,
      queueQoSZero: false,
    });
    this.mq = client;
    return new Promise((resolve) => {
      let settled = false;
      const settle = () => {
        if (!settled) {
          settled = true;
          resolve();
        }
      };
      client.on('connect', () => {
        if (this.mq !== client || session !== this.session) return;
        this.onConnect(client);
        settle();
      });
      client.on('message', (topic, payload) => {
        if (this.mq !== client || session !== this.session) return;
        this.onMessage(topic, payload);
      });
      client.on('error', (err) => {
        if (this.mq !== client || session !== this.session) return;
        this.lastError = err.message;
        this.error = `Broker: ${err.message}`;
        this.changed();
      });
      client.on('close', () => {
        if (this.mq !== client || session !== this.session) {
          settle();
          return;
        }
        this.onClose(client);
        settle();
      });
    });
  }

  private onConnect(client: MqttClient): void {
    const s = this.settings!;
    this.connectedAt = this.now();
    this.error = null;
    this.lastError = null;
    const wanted = this.subscriptions(s);
    // 'online' means work can arrive: only once the broker has acknowledged the subscriptions.
    client.subscribe(wanted, (err, granted) => {
      if (this.mq !== client) return;
      this.connectedAt = this.now();
      this.connection = 'online';
      this.addEvent('info', 'connection', `Connected to ${s.url}`);
      if (err) {
        this.addEvent('error', 'connection', `Subscribe failed: ${err.message}`);
      } else {
        const refused = (granted ?? []).filter((g) => g.qos === 128).map((g) => g.topic);
        if (refused.length) {
          this.error = `Broker refused subscriptions: ${refused.join(', ')}`;
          this.addEvent('error', 'connection', this.error);
        }
      }
      this.flushOutbox();
      this.changed();
    });
    this.changed();
  }

  private subscriptions(s: ActiveSettings): Record<string, { qos: 0 | 1 }> {
    // 'any' takes work/# and cancel/# as the official client did (the broker ACL allows them);
    // anything under them that is not precache/ondemand is rejected by parseTopic.
    const t = s.work === 'any' ? '#' : s.work;
    return {
      heartbeat: { qos: 0 },
      statistics: { qos: 0 },
      [`work/${t}`]: { qos: 0 },
      [`cancel/${t}`]: { qos: 1 },
      [topics.client(s.address)]: { qos: 1 },
    };
  }

  private onClose(client: MqttClient): void {
    this.mq = null;
    client.removeAllListeners('message');
    client.end(true);
    const wasConnected = this.connectedAt !== null;
    if (wasConnected && this.now() - this.connectedAt! >= STABLE_CONNECTION_MS) this.reconnectAttempt = 0;
    this.connectedAt = null;
    for (const entry of this.outbox) if (entry.via === client) entry.via = null;
    if (!this.running) return;
    const delay = backoffDelay(this.reconnectAttempt++, this.policy.initialMs, this.policy.maxMs, this.random);
    this.connection = 'reconnecting';
    const secs = (delay / 1000).toFixed(delay < 10_000 ? 1 : 0);
    const why = this.lastError ? ` (${this.lastError})` : '';
    this.addEvent(
      'warn',
      'connection',
      wasConnected ? `Disconnected from the broker${why}; reconnecting in ${secs} s` : `Cannot reach the broker${why}; retrying in ${secs} s`,
    );
    const session = this.session;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (!this.running || session !== this.session) return;
      void this.openConnection();
    }, delay);
    this.changed();
  }

  private closeClient(client: MqttClient): Promise<void> {
    client.removeAllListeners('message');
    if (!client.connected) {
      client.end(true);
      return Promise.resolve();
    }
    const topicsList = Object.keys(this.subscriptions(this.settings!));
    return withTimeout(
      new Promise<void>((resolve) => {
        client.unsubscribe(topicsList, () => client.end(false, {}, () => resolve()));
      }),
      2000,
    ).then(() => {
      if (client.connected) client.end(true);
    });
  }

  private tick(): void {
    if (!this.running) return;
    const s = this.settings!;
    const now = this.now();
    if (this.connection === 'online' && this.connectedAt !== null) {
      const since = Math.max(this.lastHeartbeatAt ?? -Infinity, this.connectedAt);
      const age = now - since;
      if (age > s.heartbeatTimeoutMs) {
        this.connection = 'server-offline';
        const secs = Math.round(age / 1000);
        this.addEvent(
          'warn',
          'heartbeat',
          this.lastHeartbeatAt === null
            ? `Server appears to be offline... no heartbeat in ${secs} seconds since connecting`
            : `Server appears to be offline... ${secs} seconds since last heartbeat`,
        );
      }
    }
    for (const job of this.queue.expire()) this.jobEvent('warn', 'job', 'expired', job, 'before it started');
    const cur = this.current;
    if (cur && !cur.stopping && this.queue.isExpired(cur.job)) {
      cur.stopping = 'expired';
      void this.engine.cancel(cur.job.hash).catch(() => false);
    }
    this.changed();
  }

  // ------------------------------------------------------------------ messages

  private onMessage(topic: string, payload: Uint8Array): void {
    try {
      const parsed = parseTopic(topic);
      if (!parsed.ok) return this.reject(parsed.code, parsed.reason);
      const t = parsed.value;
      switch (t.kind) {
        case 'work':
          return this.onWork(t.workType, payload);
        case 'cancel':
          return this.onCancel(payload);
        case 'client':
          return this.onClientMessage(t.address, payload);
        case 'heartbeat':
          return this.onHeartbeat(payload);
        case 'statistics':
          return this.onStatistics(payload);
        case 'result':
          return this.reject('bad-topic', `workers do not read ${topic}`);
      }
    } catch (err) {
      this.reject('internal-error', `Message on ${topic} could not be handled: ${(err as Error).message}`, 'error');
    }
  }

  private onWork(workType: WorkType, payload: Uint8Array): void {
    this.counters.received++;
    const s = this.settings!;
    if (s.work !== 'any' && s.work !== workType) {
      return this.reject('bad-topic', `work/${workType} arrived but this worker takes ${s.work} work only`);
    }
    const msg = workCodec.decode(payload);
    if (!msg.ok) return this.reject(msg.code, `work/${workType}: ${msg.reason}`);
    const added = this.queue.add(msg.value.hash, msg.value.difficulty, workType);
    if (!added.ok) {
      if (added.code === 'duplicate') this.reject('duplicate', added.reason, 'info');
      else this.reject(added.code, `work/${workType}: ${added.reason}`);
      return;
    }
    if (added.dropped) {
      this.bump('queue-overflow');
      this.jobEvent('warn', 'reject', 'dropped', added.dropped, 'to make room: the queue is full');
    }
    this.jobEvent('info', 'job', added.updated ? 'updated' : 'queued', added.job);
    // Ondemand work has a service waiting on it: a precache search in progress steps aside.
    const cur = this.current;
    if (added.job.workType === 'ondemand' && cur && cur.job.workType === 'precache' && !cur.stopping) {
      cur.stopping = 'preempted';
      void this.engine.cancel(cur.job.hash).catch(() => false);
    }
    this.changed();
    this.pump();
  }

  private onCancel(payload: Uint8Array): void {
    const msg = cancelCodec.decode(payload);
    if (!msg.ok) return this.reject(msg.code, `cancel: ${msg.reason}`);
    const hash = msg.value;
    const out = this.queue.cancel(hash);
    if (out.queued) {
      this.counters.cancelled++;
      this.jobEvent('info', 'cancel', 'cancelled', out.queued, 'while queued');
    }
    const cur = this.current;
    if (out.inFlight && cur && cur.job === out.inFlight) {
      if (!cur.stopping) void this.engine.cancel(cur.job.hash).catch(() => false);
      // A preempted (or expiring) search that is cancelled now ends as cancelled, not requeued.
      if (cur.stopping !== 'stopped') cur.stopping = 'cancelled';
    }
    const lower = hash.toLowerCase();
    const withdrawn = this.outbox.filter((e) => e.via === null && e.job.hash.toLowerCase() === lower);
    if (withdrawn.length) {
      this.outbox = this.outbox.filter((e) => !withdrawn.includes(e));
      for (const e of withdrawn) {
        this.counters.cancelled++;
        this.jobEvent('info', 'cancel', 'cancelled', e.job, 'before its result could be published');
      }
    }
    this.changed();
  }

  private onClientMessage(address: string, payload: Uint8Array): void {
    if (address !== this.settings!.address) {
      return this.reject('bad-topic', `client message for another address (${address.slice(0, 16)}…)`);
    }
    const msg = clientCodec.decode(payload);
    if (!msg.ok) return this.reject(msg.code, `client/: ${msg.reason}`);
    this.lastClientMessage = msg.value;
    if (msg.value.kind === 'error') {
      this.addEvent('warn', 'stats', `Server: ${msg.value.error}`);
    } else {
      const st = msg.value.stats;
      const total = st.precache + st.ondemand;
      if (this.lastClientTotal === null || total > this.lastClientTotal) this.counters.accepted++;
      this.lastClientTotal = total;
      const block = st.block_rewarded ? ` for ${short(st.block_rewarded)}` : '';
      this.addEvent('info', 'stats', `Work accepted${block}: ${st.precache} precache, ${st.ondemand} ondemand in total`);
    }
    this.changed();
  }

  private onHeartbeat(payload: Uint8Array): void {
    const msg = heartbeatCodec.decode(payload);
    if (!msg.ok) return this.reject(msg.code, `heartbeat: ${msg.reason}`);
    this.lastHeartbeatAt = this.now();
    this.reconnectAttempt = 0;
    if (this.connection === 'server-offline') {
      this.connection = 'online';
      this.addEvent('info', 'heartbeat', 'Server is back online');
      this.flushOutbox();
    }
    this.changed();
  }

  private onStatistics(payload: Uint8Array): void {
    const msg = statisticsCodec.decode(payload);
    if (!msg.ok) return this.reject(msg.code, `statistics: ${msg.reason}`);
    const first = this.lastStatistics === null;
    this.lastStatistics = msg.value;
    if (first) {
      const w = msg.value.work;
      this.addEvent('info', 'stats', `Network statistics: ${w.precache} precache and ${w.ondemand} ondemand works so far`);
    }
    this.changed();
  }

  // ------------------------------------------------------------------ the work loop

  /** Starts the next queued job if the engine is free. */
  private pump(): void {
    if (!this.running || this.current) return;
    const queue = this.queue;
    const session = this.session;
    const { job, expired } = queue.next();
    for (const e of expired) this.jobEvent('warn', 'job', 'expired', e, 'before it started');
    if (!job) {
      this.changed();
      return;
    }
    const s = this.settings!;
    const running: Running = { job, startedAt: this.now(), stopping: null, done: Promise.resolve() };
    this.current = running;
    running.done = this.engine
      .generate(job.hash, job.difficulty, { backend: s.backend, threads: s.threads, intensity: s.intensity })
      .then(
        (result) => this.onComputed(running, result, session),
        (err) => this.onFailed(running, err),
      )
      .catch((err) => this.reject('internal-error', `Work loop: ${(err as Error).message}`, 'error'))
      .finally(() => {
        if (running.requeue) queue.requeue(job);
        else queue.finish(job);
        if (this.current === running) this.current = null;
        this.changed();
        if (session === this.session) this.pump();
      });
    this.changed();
  }

  private onComputed(running: Running, result: GenerateResult, session: number): void {
    const { job } = running;
    const ms = Math.round(this.now() - running.startedAt);
    if (running.stopping === 'cancelled' || running.stopping === 'stopped' || session !== this.session) {
      if (running.stopping === 'cancelled') {
        this.counters.cancelled++;
        this.jobEvent('info', 'cancel', 'cancelled', job, 'as it was found: not published');
      }
      return;
    }
    // Never trust the engine's word alone: check against this message's own difficulty.
    let valid = false;
    try {
      valid = validateWork(job.hash, result.work, job.target).valid;
    } catch {
      valid = false;
    }
    if (!valid) {
      this.reject(
        'work-mismatch',
        `Engine returned work "${String(result.work).slice(0, 20)}" for ${short(job.hash)} that does not meet ${job.difficulty}; not published`,
        'error',
      );
      return;
    }
    this.counters.computed++;
    if (this.error?.startsWith('Engine')) this.error = null;
    this.jobEvent('info', 'job', 'computed', job, undefined, { ms, backend: result.backend });
    const s = this.settings!;
    this.outbox.push({
      job,
      topic: topics.result(job.workType),
      payload: resultCodec.encode({ hash: job.hash, work: result.work, address: s.address }),
      foundAt: this.now(),
      via: null,
    });
    while (this.outbox.length > MAX_OUTBOX) {
      const lost = this.outbox.shift()!;
      this.reject('outbox-full', `Result for ${short(lost.job.hash)} given up: too many results waiting for the broker`);
    }
    this.flushOutbox();
  }

  private onFailed(running: Running, err: unknown): void {
    const { job } = running;
    const cancelled = err instanceof Error && err.name === 'PowCancelledError';
    if (cancelled || running.stopping) {
      if (running.stopping === 'preempted') {
        running.requeue = true;
        this.jobEvent('info', 'job', 'preempted', job, 'by ondemand work: back in the queue');
      } else if (running.stopping === 'expired') {
        this.queue.countExpired();
        this.jobEvent('warn', 'job', 'expired', job, 'while computing: time limit reached');
      } else if (running.stopping !== 'stopped') {
        this.counters.cancelled++;
        this.jobEvent('info', 'cancel', 'cancelled', job, 'while computing');
      }
      return;
    }
    const message = err instanceof Error ? err.message : String(err);
    const code = (err as { code?: unknown })?.code;
    this.error = `Engine: ${message}`;
    this.reject(typeof code === 'string' ? code : 'engine-error', `Engine failed on ${short(job.hash)}: ${message}`, 'error');
  }

  /** Hands waiting results to mqtt.js, only while connected. PUBACK removes them. */
  private flushOutbox(): void {
    const client = this.mq;
    if (!client || !client.connected || this.connectedAt === null) return;
    // A server that has been heard from and then went quiet would not receive a result (nothing
    // is retained): hold results until its next heartbeat. One that never sent heartbeats is
    // not second-guessed.
    if (this.connection === 'server-offline' && this.lastHeartbeatAt !== null) return;
    for (const entry of this.outbox) {
      if (entry.via) continue;
      entry.via = client;
      client.publish(entry.topic, entry.payload, { qos: 1 }, (err) => {
        if (entry.via !== client || !this.outbox.includes(entry)) return;
        if (err) {
          entry.via = null; // retried on the next connection
          return;
        }
        this.outbox = this.outbox.filter((e) => e !== entry);
        this.counters.published++;
        this.jobEvent('info', 'publish', 'published', entry.job, `to ${entry.topic}`);
        this.changed();
      });
    }
  }

  // ------------------------------------------------------------------ engine status

  private onEngineStatus(status: EngineStatus): void {
    const changedBackend = status.backend !== null && (status.backend !== this.backend || status.label !== this.backendLabel);
    this.hashrate = status.hashrate;
    this.sustained = {
      hashrate: status.sustainedHashrate ?? 0,
      busyShare: status.busyShare ?? 0,
      kernel: status.kernel ?? null,
      capacity: status.capacity ?? null,
    };
    if (status.backend !== null) {
      this.backend = status.backend;
      this.backendLabel = status.label;
    }
    if (changedBackend) return this.changed();
    // Hashrate alone: a few pushes a second at most.
    const wait = this.lastHashrateNotify + HASHRATE_NOTIFY_MS - this.now();
    if (wait <= 0) {
      this.lastHashrateNotify = this.now();
      this.changed();
    } else if (this.hashrateTimer === undefined) {
      this.hashrateTimer = setTimeout(() => {
        this.hashrateTimer = undefined;
        this.lastHashrateNotify = this.now();
        this.changed();
      }, wait);
    }
  }

  // ------------------------------------------------------------------ state and events

  private bump(code: string): void {
    this.counters.rejected[code] = (this.counters.rejected[code] ?? 0) + 1;
  }

  private reject(code: string, reason: string, level: ClientEvent['level'] = 'warn'): void {
    this.bump(code);
    this.addEvent(level, 'reject', `Rejected (${code}): ${reason}`);
    this.changed();
  }

  private jobEvent(
    level: ClientEvent['level'],
    kind: string,
    event: JobEventInfo['event'],
    job: Job,
    note?: string,
    extra: { ms?: number; backend?: BackendName } = {},
  ): void {
    const info: JobEventInfo = { event, hash: job.hash, workType: job.workType, multiplier: job.multiplier, ...extra };
    const parts = [`${event[0].toUpperCase()}${event.slice(1)}`, job.workType, short(job.hash), formatMultiplier(job.multiplier)];
    if (extra.ms !== undefined) parts.push(`in ${extra.ms} ms`);
    if (extra.backend) parts.push(`on ${extra.backend}`);
    if (note) parts.push(note);
    this.addEvent(level, kind, parts.join(' '), info);
  }

  private addEvent(level: ClientEvent['level'], kind: string, message: string, job?: JobEventInfo): void {
    const event: ClientEvent = job ? { at: this.now(), level, kind, message, job } : { at: this.now(), level, kind, message };
    this.events.unshift(event);
    if (this.events.length > MAX_EVENTS) this.events.length = MAX_EVENTS;
    try {
      this.logFn?.(event);
    } catch {
      // A failing log sink must not break the session.
    }
    this.changed();
  }

  /** Marks the state changed; listeners hear about it once per microtask burst. */
  private changed(): void {
    this.snapshot = null;
    if (this.notifyQueued || this.listeners.size === 0) return;
    this.notifyQueued = true;
    queueMicrotask(() => {
      this.notifyQueued = false;
      const state = this.getState();
      for (const listener of [...this.listeners]) {
        try {
          listener(state);
        } catch {
          // A view's bug must not stop the worker.
        }
      }
    });
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), ms);
    }),
  ]);
}
