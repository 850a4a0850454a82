/**
 * The DPoW worker: MQTT in, proofs of work out. A small composition of four parts, each with one
 * job and its own tests:
 *
 *   MqttSession (session.ts)  connect, backoff, subscribe, heartbeat watch
 *     --message--> route on the first topic segment, decode with its codec (codec.ts)
 *     --> WorkLoop (work-loop.ts)  WorkQueue -> engine.generate -> validateWork
 *     --> Outbox (outbox.ts)  waits for a connection that can take it, QoS 1
 *     --result/<type>--> broker
 *   EventLog (event-log.ts) and StateFeed (state-feed.ts): what views read.
 *
 * Plain TypeScript over mqtt.js (MQTT 3.1.1 over ws://, wss://, or mqtt:// in Node): no DOM, no
 * Node APIs, so the page and the headless worker share it. Every payload goes through its codec;
 * a bad one becomes a counted, logged rejection and never an exception out of the message handler.
 */
import mqtt from 'mqtt';
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
import { DEFAULT_POLICY, type DifficultyPolicy } from '../pow/difficulty.ts';
import { PAUSE_WORDS } from './activity.ts';
import { logHash } from '../format.ts';
import { EventLog } from './event-log.ts';
import { Outbox } from './outbox.ts';
import type { Job } from './queue.ts';
import type { ConnectFn } from './mqtt-connect.ts';
import { MqttSession, subscriptionsFor, type ReconnectPolicy } from './session.ts';
import { StateFeed } from './state-feed.ts';
import type { ClientEvent, ClientSettings, ClientState, PauseReason, WorkerClient } from './state.ts';
import { WorkLoop, type EngineLike } from './work-loop.ts';

export type { EngineLike } from './work-loop.ts';
export type { ConnectFn } from './mqtt-connect.ts';
export type { ReconnectPolicy } from './session.ts';

export interface DpowClientOptions {
  engine: EngineLike;
  connect?: ConnectFn;
  now?: () => number;
  /** Every event, as it happens (the headless worker prints them). */
  onEvent?: (event: ClientEvent) => void;
  reconnect?: Partial<ReconnectPolicy>;
  /** Jitter source in [0, 1). */
  random?: () => number;
  /** Watchdog period (heartbeat age, job expiry). Default 1000 ms. */
  tickMs?: number;
  /** The bounds work messages are checked against; share the engine's. Default DEFAULT_POLICY. */
  policy?: DifficultyPolicy;
}

export const DEFAULT_HEARTBEAT_TIMEOUT_S = 5;
/** Published hashes remembered for matching the dispatcher's credit notices. */
const REMEMBER_PUBLISHED = 1024;

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
  if (!positive(s.heartbeatTimeoutS)) return 'heartbeatTimeoutS must be a positive number';
  if (s.queueLimit !== undefined && !(Number.isInteger(s.queueLimit) && s.queueLimit >= 1)) return 'queueLimit must be a whole number >= 1';
  if (!positive(s.jobTimeoutS)) return 'jobTimeoutS must be a positive number';
  return null;
}

export class DpowClient implements WorkerClient {
  readonly #now: () => number;
  readonly #feed: StateFeed<ClientState>;
  readonly #events: EventLog;
  readonly #session: MqttSession;
  readonly #loop: WorkLoop;
  readonly #outbox: Outbox<Job>;

  #settings: ClientSettings | null = null;
  #running = false;
  /** Why no work is taken (pause()), or null; kept across start and stop. */
  #paused: PauseReason | null = null;
  /** Settings that were refused, shown until the next start. */
  #refusal: string | null = null;
  #lastClientMessage: ClientMessage | null = null;
  #lastClientTotal: number | null = null;
  #lastStatistics: Statistics | null = null;
  /** Lower-case hashes this session published, oldest first, until a notice credits them. */
  readonly #uncredited = new Set<string>();

  constructor(options: DpowClientOptions) {
    this.#now = options.now ?? Date.now;
    const tickMs = options.tickMs ?? 1000;
    const changed = () => this.#feed.changed();
    this.#feed = new StateFeed(() => this.#buildState());
    this.#events = new EventLog({ now: this.#now, onEvent: options.onEvent, onChange: changed });
    this.#outbox = new Outbox<Job>({
      onPublished: (entry) => {
        this.#remember(entry.job.hash);
        this.#events.count('published');
        this.#events.job('info', 'publish', 'published', entry.job, `to ${entry.topic}`);
      },
      onGivenUp: (entry) =>
        this.#events.reject('outbox-full', `Result for ${logHash(entry.job.hash)} given up: too many results waiting for the broker`),
    });
    this.#session = new MqttSession({
      connect: options.connect ?? ((url, opts) => mqtt.connect(url, opts)),
      events: this.#events,
      now: this.#now,
      policy: { initialMs: 1000, maxMs: 120_000, ...options.reconnect },
      random: options.random ?? Math.random,
      tickMs,
      onMessage: (topic, payload) => this.#route(topic, payload),
      onReady: (link) => this.#outbox.flush(link),
      onLinkLost: (link) => this.#outbox.linkLost(link),
      onChange: changed,
    });
    this.#loop = new WorkLoop({
      engine: options.engine,
      events: this.#events,
      now: this.#now,
      tickMs,
      policy: options.policy ?? DEFAULT_POLICY,
      onResult: (job, work) => this.#deliver(job, work),
      onChange: changed,
    });
  }

  // ------------------------------------------------------------------ WorkerClient

  getState(): ClientState {
    return this.#feed.get();
  }

  subscribe(listener: (state: ClientState) => void): () => void {
    return this.#feed.subscribe(listener);
  }

  /**
   * Checks the settings (payout address checksum first), then connects. Resolves once the first
   * connection attempt has an outcome; an unreachable broker is not an error here (the client
   * keeps retrying and says so in its state). Rejects only for bad settings.
   */
  async start(settings: ClientSettings): Promise<void> {
    if (this.#running) await this.stop();
    const address = checkAddress(settings.address, settings.addressPrefixes ?? ['nano', 'xrb']);
    const problem = !address.ok ? `Invalid payout address: ${address.reason}` : (checkSettings(settings) ?? null);
    const urls = [settings.brokerUrl, ...(settings.failoverBrokerUrls ?? [])].map(resolveBrokerUrl);
    const badUrl = urls.find((u) => !u.ok);
    const refusal = problem ?? (badUrl && !badUrl.ok ? badUrl.reason : null);
    if (refusal) {
      this.#refusal = refusal;
      this.#events.add('error', 'connection', refusal);
      throw new Error(refusal);
    }
    const brokers = urls.flatMap((u) => (u.ok ? [u.url] : []));

    this.#settings = settings;
    this.#refusal = null;
    this.#outbox.clear();
    this.#events.resetCounters();
    this.#lastClientMessage = null;
    this.#lastClientTotal = null;
    this.#lastStatistics = null;
    this.#uncredited.clear();
    this.#running = true;
    this.#loop.start(settings);
    if (this.#paused) this.#loop.pause();
    const also = brokers.length > 1 ? ` (then ${brokers.slice(1).join(', ')})` : '';
    this.#events.add('info', 'connection', `Connecting to ${brokers[0]}${also} for ${settings.work} work, paying ${settings.address}`);
    await this.#session.open({
      urls: brokers,
      username: settings.username,
      password: settings.password,
      heartbeatTimeoutMs: (settings.heartbeatTimeoutS ?? DEFAULT_HEARTBEAT_TIMEOUT_S) * 1000,
      subscriptions: subscriptionsFor(settings.work, settings.address, this.#paused === null),
    });
  }

  pause(reason: PauseReason | null): void {
    if (reason === this.#paused) return;
    const was = this.#paused;
    this.#paused = reason;
    if (this.#running) {
      const s = this.#settings!;
      if (reason !== null && was === null) {
        const dropped = this.#loop.pause();
        this.#events.add('info', 'connection', `Paused (${PAUSE_WORDS[reason]}): taking no work${dropped ? `, ${dropped} jobs dropped` : ''}`);
      } else if (reason === null) {
        this.#events.add('info', 'connection', 'Resumed: taking work again');
      } else {
        this.#events.add('info', 'connection', `Paused (${PAUSE_WORDS[reason]})`);
      }
      this.#session.resubscribe(subscriptionsFor(s.work, s.address, reason === null));
      if (reason === null) this.#loop.resume();
    } else if (reason === null) {
      this.#loop.resume();
    }
    this.#feed.changed();
  }

  /** Cancels the job in flight, drops the queue, unsubscribes and closes the connection. */
  async stop(): Promise<void> {
    if (!this.#running) {
      await this.#session.close();
      return;
    }
    this.#running = false;
    const stopping = this.#loop.stop();
    const unsent = this.#outbox.clear();
    await this.#session.close();
    const { dropped } = await stopping;
    const extra = [dropped ? `${dropped} queued jobs dropped` : '', unsent ? `${unsent} unpublished results discarded` : '']
      .filter(Boolean)
      .join(', ');
    this.#events.add('info', 'connection', `Stopped${extra ? ` (${extra})` : ''}`);
  }

  /**
   * Retries at once instead of waiting out the backoff (the page calls this when the browser
   * says the network is back). Does nothing unless a retry is pending.
   */
  reconnectNow(): void {
    this.#session.reconnectNow();
  }

  // ------------------------------------------------------------------ routing

  /** One message: its first topic segment picks the codec and the part that owns what it says. */
  #route(topic: string, payload: Uint8Array): void {
    try {
      const parsed = parseTopic(topic);
      if (!parsed.ok) return this.#events.reject(parsed.code, parsed.reason);
      const t = parsed.value;
      switch (t.kind) {
        case 'work':
          return this.#onWork(t.workType, payload);
        case 'cancel':
          return this.#onCancel(payload);
        case 'client':
          return this.#onClientMessage(t.address, payload);
        case 'heartbeat': {
          const msg = heartbeatCodec.decode(payload);
          if (!msg.ok) return this.#events.reject(msg.code, `heartbeat: ${msg.reason}`);
          return this.#session.heartbeat();
        }
        case 'statistics':
          return this.#onStatistics(payload);
        case 'result':
          return this.#events.reject('bad-topic', `workers do not read ${topic}`);
      }
    } catch (err) {
      this.#events.reject('internal-error', `Message on ${topic} could not be handled: ${(err as Error).message}`, 'error');
    }
  }

  #onWork(workType: WorkType, payload: Uint8Array): void {
    if (this.#paused) return; // sent before the unsubscribe reached the broker: not ours to take
    this.#events.count('received');
    const s = this.#settings!;
    if (s.work !== 'any' && s.work !== workType) {
      return this.#events.reject('bad-topic', `work/${workType} arrived but this worker takes ${s.work} work only`);
    }
    const msg = workCodec.decode(payload);
    if (!msg.ok) return this.#events.reject(msg.code, `work/${workType}: ${msg.reason}`);
    this.#loop.offer(workType, msg.value);
  }

  #onCancel(payload: Uint8Array): void {
    const msg = cancelCodec.decode(payload);
    if (!msg.ok) return this.#events.reject(msg.code, `cancel: ${msg.reason}`);
    this.#loop.cancel(msg.value);
    for (const entry of this.#outbox.withdraw(msg.value)) {
      this.#events.count('cancelled');
      this.#events.job('info', 'cancel', 'cancelled', entry.job, 'before its result could be published');
    }
  }

  #onClientMessage(address: string, payload: Uint8Array): void {
    if (address !== this.#settings!.address) {
      return this.#events.reject('bad-topic', `client message for another address (${address.slice(0, 16)}…)`);
    }
    const msg = clientCodec.decode(payload);
    if (!msg.ok) return this.#events.reject(msg.code, `client/${address}: ${msg.reason}`);
    this.#lastClientMessage = msg.value;
    if (msg.value.kind === 'error') {
      this.#events.add('warn', 'stats', `Server: ${msg.value.error}`);
    } else {
      // The notice goes to every tab paying this address: it is the address's credit, and this
      // worker's own only when it names a hash this worker published (the server credits the
      // first valid result for a hash once, and says which block in block_rewarded).
      const st = msg.value.stats;
      const total = st.precache + st.ondemand;
      const raised = this.#lastClientTotal === null || total > this.#lastClientTotal;
      this.#lastClientTotal = total;
      if (raised) this.#events.count('addressAccepted');
      const own = st.block_rewarded !== undefined && this.#uncredited.delete(st.block_rewarded.toLowerCase());
      if (own) this.#events.count('accepted');
      const block = st.block_rewarded ? ` for ${logHash(st.block_rewarded)}` : '';
      const whose = st.block_rewarded ? (own ? ' (this worker)' : ' (another worker for this address)') : '';
      this.#events.add('info', 'stats', `Work accepted${block}${whose}: ${st.precache} precache, ${st.ondemand} ondemand in total`);
    }
  }

  #onStatistics(payload: Uint8Array): void {
    const msg = statisticsCodec.decode(payload);
    if (!msg.ok) return this.#events.reject(msg.code, `statistics: ${msg.reason}`);
    const first = this.#lastStatistics === null;
    this.#lastStatistics = msg.value;
    if (first) {
      const w = msg.value.work;
      this.#events.add('info', 'stats', `Network statistics: ${w.precache} precache and ${w.ondemand} ondemand works so far`);
    }
    this.#feed.changed();
  }

  #remember(hash: string): void {
    this.#uncredited.add(hash.toLowerCase());
    while (this.#uncredited.size > REMEMBER_PUBLISHED) this.#uncredited.delete(this.#uncredited.values().next().value as string);
  }

  /** A checked result: into the outbox, and out at once if the connection can take it. */
  #deliver(job: Job, work: string): void {
    const payload = resultCodec.encode({ hash: job.hash, work, address: this.#settings!.address });
    this.#outbox.add(job, topics.result(job.workType), payload, this.#now());
    const link = this.#session.deliverable();
    if (link) this.#outbox.flush(link);
  }

  // ------------------------------------------------------------------ state

  #buildState(): ClientState {
    const now = this.#now();
    const lastHeartbeatAt = this.#session.lastHeartbeatAt;
    return {
      connection: this.#session.connection,
      heartbeatAgeMs: lastHeartbeatAt === null ? null : Math.max(0, now - lastHeartbeatAt),
      lastHeartbeatAt,
      queue: this.#loop.queued(),
      current: this.#loop.current(),
      hashrate: this.#loop.hashrate,
      sustained: this.#loop.sustained,
      backend: this.#loop.backend,
      backendLabel: this.#loop.backendLabel,
      counters: this.#events.counters(this.#loop.expiredCount),
      paused: this.#paused,
      lastClientMessage: this.#lastClientMessage,
      lastStatistics: this.#lastStatistics,
      events: this.#events.events(),
      error: this.#refusal ?? this.#session.error ?? this.#loop.error,
    };
  }
}
