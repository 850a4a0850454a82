/**
 * The worker's MQTT session: connect, subscribe, reconnect with backoff, and watch the server's
 * heartbeat. It knows topics only to subscribe to them; every message goes to `onMessage`, and
 * the caller routes and decodes it.
 *
 * Reconnects are ours (exponential backoff with jitter, resubscribe on every connect, since the
 * session is clean), so mqtt.js never reconnects or queues anything behind our back. Given the
 * URLs of several nodes of one clustered broker, each retry goes to the next one, so a dead node
 * costs one backoff delay. The session
 * says when results may go out (`deliverable()`, and `onReady` each time that becomes true):
 * once the broker has acknowledged the subscriptions, and not while a server that was heard
 * from has gone quiet (nothing is retained, so a result sent then would reach no one).
 */
import type { MqttClient } from 'mqtt';
import { topics } from './codec.ts';
import { backoffDelay } from './backoff.ts';
import type { EventLog } from './event-log.ts';
import type { ConnectFn } from './mqtt-connect.ts';
import type { ConnectionState, WorkChoice } from './state.ts';
import { withTimeout } from './with-timeout.ts';

export interface ReconnectPolicy {
  /** First retry delay (before jitter). Default 1000 ms. */
  initialMs: number;
  /** Ceiling of the doubling delay. Default 120 000 ms. */
  maxMs: number;
}

export interface SessionSettings {
  /** The broker, or several nodes of one clustered broker: tried in turn, from the first. */
  urls: readonly string[];
  username: string;
  password: string;
  heartbeatTimeoutMs: number;
  subscriptions: Record<string, { qos: 0 | 1 }>;
}

export interface SessionOptions {
  connect: ConnectFn;
  events: EventLog;
  now: () => number;
  policy: ReconnectPolicy;
  /** Jitter source in [0, 1). */
  random: () => number;
  /** Heartbeat watch period; at most a quarter of the heartbeat timeout. */
  tickMs: number;
  onMessage: (topic: string, payload: Uint8Array) => void;
  /** Results may go out on this connection now (subscribed, or the server is back). */
  onReady: (link: MqttClient) => void;
  /** This connection is gone; what it had not acknowledged must be sent again. */
  onLinkLost: (link: MqttClient) => void;
  onChange: () => void;
}

/** A connection that lasted this long resets the backoff. */
const STABLE_CONNECTION_MS = 10_000;

/**
 * What a worker subscribes to: heartbeat, statistics, its work and cancel topics, its notices.
 * A paused worker (takingWork false) leaves out work and cancel: no traffic it would not use.
 */
export function subscriptionsFor(work: WorkChoice, address: string, takingWork = true): Record<string, { qos: 0 | 1 }> {
  // 'any' takes work/# and cancel/# as the official client did (the broker ACL allows them);
  // anything under them that is not precache/ondemand is rejected by parseTopic.
  const t = work === 'any' ? '#' : work;
  return {
    heartbeat: { qos: 0 },
    statistics: { qos: 0 },
    ...(takingWork ? { [`work/${t}`]: { qos: 0 as const }, [`cancel/${t}`]: { qos: 1 as const } } : {}),
    [topics.client(address)]: { qos: 1 },
  };
}

function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export class MqttSession {
  readonly #o: SessionOptions;
  #settings: SessionSettings | null = null;
  #running = false;
  /** Bumped on every open/close so late callbacks from an old session do nothing. */
  #generation = 0;

  #mq: MqttClient | null = null;
  #state: ConnectionState = 'idle';
  #connectedAt: number | null = null;
  #heartbeatAt: number | null = null;
  #reconnectAttempt = 0;
  /** Which of the settings' URLs the next connection goes to. */
  #urlIndex = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #watchTimer: ReturnType<typeof setInterval> | undefined;
  #lastError: string | null = null;
  /** The broker's latest complaint (connection error, refused subscription); null when fine. */
  error: string | null = null;

  constructor(options: SessionOptions) {
    this.#o = options;
  }

  get connection(): ConnectionState {
    return this.#state;
  }

  get lastHeartbeatAt(): number | null {
    return this.#heartbeatAt;
  }

  /** The connection results may be published on now, or null. */
  deliverable(): MqttClient | null {
    const client = this.#mq;
    if (!client || !client.connected || this.#connectedAt === null) return null;
    // A server that has been heard from and then went quiet would not receive a result: hold
    // results until its next heartbeat. One that never sent heartbeats is not second-guessed.
    if (this.#state === 'server-offline' && this.#heartbeatAt !== null) return null;
    return client;
  }

  /** Connects; resolves once the first attempt has an outcome (failures are retried, not thrown). */
  open(settings: SessionSettings): Promise<void> {
    this.#generation++;
    this.#settings = settings;
    this.#running = true;
    this.error = null;
    this.#lastError = null;
    this.#heartbeatAt = null;
    this.#connectedAt = null;
    this.#reconnectAttempt = 0;
    this.#urlIndex = 0;
    this.#state = 'connecting';
    this.#watchTimer = setInterval(() => this.#watchHeartbeat(), Math.min(this.#o.tickMs, settings.heartbeatTimeoutMs / 4));
    this.#o.onChange();
    return this.#connect();
  }

  /** Unsubscribes and closes the connection; no retry follows. */
  async close(): Promise<void> {
    if (!this.#running) {
      if (this.#state !== 'idle' && this.#state !== 'stopped') this.#state = 'stopped';
      this.#o.onChange();
      return;
    }
    this.#running = false;
    this.#generation++;
    clearInterval(this.#watchTimer);
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    const client = this.#mq;
    this.#mq = null;
    if (client) await this.#closeClient(client);
    this.#state = 'stopped';
    this.#connectedAt = null;
    this.#o.onChange();
  }

  /**
   * Retries at once instead of waiting out the backoff (the page calls this when the browser
   * says the network is back). Does nothing unless a retry is pending.
   */
  reconnectNow(): void {
    if (!this.#running || this.#state !== 'reconnecting' || this.#mq || this.#reconnectTimer === undefined) return;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.#reconnectAttempt = 0;
    this.#o.events.add('info', 'connection', 'Retrying now');
    void this.#connect();
  }

  /**
   * Changes the subscriptions: on the live connection now (unsubscribing what went, subscribing
   * what came), and on every reconnect after.
   */
  resubscribe(subscriptions: Record<string, { qos: 0 | 1 }>): void {
    const s = this.#settings;
    if (!s) return;
    const gone = Object.keys(s.subscriptions).filter((topic) => !(topic in subscriptions));
    const added = Object.fromEntries(Object.entries(subscriptions).filter(([topic]) => !(topic in s.subscriptions)));
    this.#settings = { ...s, subscriptions };
    const client = this.#mq;
    if (!this.#running || !client?.connected || this.#connectedAt === null) return; // the next connect subscribes
    if (gone.length > 0) client.unsubscribe(gone);
    if (Object.keys(added).length > 0) {
      client.subscribe(added, (err, granted) => {
        if (this.#mq !== client) return;
        const refused = (granted ?? []).filter((g) => g.qos === 128).map((g) => g.topic);
        if (err || refused.length) {
          this.error = err ? `Subscribe failed: ${err.message}` : `Broker refused subscriptions: ${refused.join(', ')}`;
          this.#o.events.add('error', 'connection', this.error);
          this.#o.onChange();
        }
      });
    }
  }

  /** A (well-formed) heartbeat arrived: the server is alive. */
  heartbeat(): void {
    this.#heartbeatAt = this.#o.now();
    this.#reconnectAttempt = 0;
    if (this.#state === 'server-offline') {
      this.#state = 'online';
      this.#o.events.add('info', 'heartbeat', 'Server is back online');
      const link = this.deliverable();
      if (link) this.#o.onReady(link);
    }
    this.#o.onChange();
  }

  // ---------------------------------------------------------------- connection

  get #url(): string {
    return this.#settings!.urls[this.#urlIndex];
  }

  #connect(): Promise<void> {
    const s = this.#settings!;
    const generation = this.#generation;
    const client = this.#o.connect(this.#url, {
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
    this.#mq = client;
    const current = () => this.#mq === client && generation === this.#generation;
    return new Promise((resolve) => {
      client.on('connect', () => {
        if (current()) this.#onConnect(client);
        resolve();
      });
      client.on('message', (topic, payload) => {
        if (current()) this.#o.onMessage(topic, payload);
      });
      client.on('error', (err) => {
        if (!current()) return;
        this.#lastError = err.message;
        this.error = `Broker: ${err.message}`;
        this.#o.onChange();
      });
      client.on('close', () => {
        if (current()) this.#onClose(client);
        resolve();
      });
    });
  }

  #onConnect(client: MqttClient): void {
    const s = this.#settings!;
    this.#connectedAt = this.#o.now();
    this.error = null;
    this.#lastError = null;
    // 'online' means work can arrive: only once the broker has acknowledged the subscriptions.
    client.subscribe(s.subscriptions, (err, granted) => {
      if (this.#mq !== client) return;
      this.#connectedAt = this.#o.now();
      this.#state = 'online';
      this.#o.events.add('info', 'connection', `Connected to ${this.#url}`);
      if (err) {
        this.#o.events.add('error', 'connection', `Subscribe failed: ${err.message}`);
      } else {
        const refused = (granted ?? []).filter((g) => g.qos === 128).map((g) => g.topic);
        if (refused.length) {
          this.error = `Broker refused subscriptions: ${refused.join(', ')}`;
          this.#o.events.add('error', 'connection', this.error);
        }
      }
      const link = this.deliverable();
      if (link) this.#o.onReady(link);
      this.#o.onChange();
    });
    this.#o.onChange();
  }

  #onClose(client: MqttClient): void {
    this.#mq = null;
    client.removeAllListeners('message');
    client.end(true);
    const wasConnected = this.#connectedAt !== null;
    if (wasConnected && this.#o.now() - this.#connectedAt! >= STABLE_CONNECTION_MS) this.#reconnectAttempt = 0;
    this.#connectedAt = null;
    this.#o.onLinkLost(client);
    if (!this.#running) return;
    const delay = backoffDelay(this.#reconnectAttempt++, this.#o.policy.initialMs, this.#o.policy.maxMs, this.#o.random);
    this.#state = 'reconnecting';
    const secs = (delay / 1000).toFixed(delay < 10_000 ? 1 : 0);
    const why = this.#lastError ? ` (${this.#lastError})` : '';
    // The node that failed is likely down: the next try goes to another node of the cluster.
    const several = this.#settings!.urls.length > 1;
    const node = several ? ` ${this.#url}` : '';
    this.#urlIndex = (this.#urlIndex + 1) % this.#settings!.urls.length;
    const to = several ? ` to ${this.#url}` : '';
    this.#o.events.add(
      'warn',
      'connection',
      wasConnected ? `Disconnected from the broker${node}${why}; reconnecting${to} in ${secs} s` : `Cannot reach the broker${node}${why}; retrying${to} in ${secs} s`,
    );
    const generation = this.#generation;
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      if (!this.#running || generation !== this.#generation) return;
      void this.#connect();
    }, delay);
    this.#o.onChange();
  }

  #closeClient(client: MqttClient): Promise<void> {
    client.removeAllListeners('message');
    if (!client.connected) {
      client.end(true);
      return Promise.resolve();
    }
    const subscribed = Object.keys(this.#settings!.subscriptions);
    return withTimeout(
      new Promise<void>((resolve) => {
        client.unsubscribe(subscribed, () => client.end(false, {}, () => resolve()));
      }),
      2000,
    ).then(() => {
      if (client.connected) client.end(true);
    });
  }

  /** Online but no heartbeat for longer than the timeout: say the server looks offline. */
  #watchHeartbeat(): void {
    if (!this.#running) return;
    const now = this.#o.now();
    if (this.#state === 'online' && this.#connectedAt !== null) {
      const age = now - Math.max(this.#heartbeatAt ?? -Infinity, this.#connectedAt);
      if (age > this.#settings!.heartbeatTimeoutMs) {
        this.#state = 'server-offline';
        const secs = Math.round(age / 1000);
        this.#o.events.add(
          'warn',
          'heartbeat',
          this.#heartbeatAt === null
            ? `Server appears to be offline... no heartbeat in ${secs} seconds since connecting`
            : `Server appears to be offline... ${secs} seconds since last heartbeat`,
        );
      }
    }
    // The heartbeat age in the state moves with the clock.
    this.#o.onChange();
  }
}
