/**
 * The dispatcher's one MQTT connection, as the broker's `server` role. It connects (the first
 * connection must succeed within `connectTimeoutMs`, or start-up fails with the reason),
 * subscribes to results (as `$share/<group>/result/+` for a shared group), and leaves reconnects
 * to mqtt.js. Every topic the server owns goes out through its codec and is counted here.
 *
 *   result/<type> --> onResult(topic, payload)          (never throws out of the handler)
 *   a reconnect   --> onReconnect()                     (the dispatcher republishes what is pending)
 *   publishWork / publishCancel / publishHeartbeat / publishClient / publishStatistics --> broker
 */
import mqtt, { type MqttClient } from 'mqtt';
import {
  cancelCodec,
  clientCodec,
  heartbeatCodec,
  topics,
  workCodec,
  WORK_TYPES,
  type ClientMessage,
  type WorkType,
} from '../../dpow/codec.ts';
import type { ConnectFn } from '../../dpow/mqtt-connect.ts';
import type { Logger } from '../log.ts';
import type { DispatcherCounters } from './counters.ts';

export interface BrokerSessionOptions {
  /** mqtt://, ws:// or wss:// URL of the broker. */
  url: string;
  username: string;
  password: string;
  clientId: string;
  connectTimeoutMs: number;
  /** Take results as `$share/<group>/result/+` (Mosquitto 2, EMQX). */
  sharedGroup?: string;
  /** Default mqtt.js connect. */
  connect?: ConnectFn;
  counters: Pick<DispatcherCounters, 'published' | 'jobs'>;
  log: Logger;
  onResult(topic: string, payload: Buffer): void;
  /** The connection came back after a loss (not called for the first connection). */
  onReconnect(): void;
}

export class BrokerSession {
  readonly #opts: BrokerSessionOptions;
  #client?: MqttClient;
  #closed = false;
  #connectedOnce = false;

  constructor(options: BrokerSessionOptions) {
    this.#opts = options;
  }

  get connected(): boolean {
    return this.#client?.connected ?? false;
  }

  /**
   * Connects and subscribes to results. False when close() came first; throws with the reason
   * when the first connection fails (a wrong password, a refused port, a WebSocket path that
   * answers 404).
   */
  async open(): Promise<boolean> {
    const { url, log } = this.#opts;
    const client = (this.#opts.connect ?? mqtt.connect)(url, {
      username: this.#opts.username,
      password: this.#opts.password,
      protocolVersion: 4,
      clientId: this.#opts.clientId,
      clean: true,
      keepalive: 60,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
    });
    try {
      await firstConnection(client, url, this.#opts.connectTimeoutMs);
    } catch (err) {
      client.end(true);
      throw err;
    }
    this.#client = client;
    if (this.#closed) {
      await client.endAsync(true);
      return false;
    }
    client.on('message', (topic, payload) => {
      try {
        this.#opts.onResult(topic, payload);
      } catch (err) {
        // Nothing on the result path should throw; if it does, the connection must survive it.
        log.error(`dispatcher: result on ${topic} failed: ${(err as Error).stack ?? err}`);
      }
    });
    client.on('connect', () => {
      if (!this.#connectedOnce) return;
      log.info('dispatcher: reconnected to the broker; republishing pending jobs');
      this.#opts.onReconnect();
    });
    client.on('offline', () => log.warn('dispatcher: broker connection lost, retrying'));
    client.on('error', (err) => log.warn(`dispatcher: broker: ${err.message}`));

    const resultTopics = WORK_TYPES.map((t) => topics.result(t));
    const group = this.#opts.sharedGroup;
    await client.subscribeAsync(group ? resultTopics.map((t) => `$share/${group}/${t}`) : resultTopics, { qos: 1 });
    this.#connectedOnce = true;
    return !this.#closed;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#client) await this.#client.endAsync();
  }

  publishWork(hash: string, difficulty: bigint, workType: WorkType): void {
    this.#publish(topics.work(workType), workCodec.encode({ hash, difficulty }), 0);
    this.#opts.counters.published.work++;
    this.#opts.counters.jobs[workType].published++;
  }

  publishCancel(workType: WorkType, hash: string): void {
    // QoS 1: a missed cancel costs a volunteer a whole job's worth of hashing.
    this.#publish(topics.cancel(workType), cancelCodec.encode(hash), 1);
    this.#opts.counters.published.cancel++;
  }

  publishHeartbeat(): void {
    if (!this.connected) return;
    this.#publish(topics.heartbeat, heartbeatCodec.encode(), 0);
    this.#opts.counters.published.heartbeat++;
  }

  publishClient(address: string, message: ClientMessage): void {
    this.#publish(topics.client(address), clientCodec.encode(message), 0);
    this.#opts.counters.published.client++;
  }

  /** Retained, so a worker that connects later gets the latest at once. */
  publishStatistics(payload: string): void {
    this.#publish(topics.statistics, payload, 0, true);
    this.#opts.counters.published.statistics++;
  }

  #publish(topic: string, payload: string, qos: 0 | 1, retain = false): void {
    const client = this.#client;
    if (!client) return;
    client.publish(topic, payload, { qos, retain }, (err) => {
      if (err) this.#opts.log.warn(`dispatcher: publish on ${topic} failed: ${err.message}`);
    });
  }
}

/** Resolves on the first connection; rejects on an error, a third close, or no answer in time. */
function firstConnection(client: MqttClient, url: string, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (err?: Error) => {
      clearTimeout(timer);
      client.off('connect', onConnect);
      client.off('error', onError);
      client.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onConnect = () => done();
    const onError = (err: Error) => done(new Error(`cannot connect to ${url}: ${err.message}`));
    let closes = 0;
    const onClose = () => {
      // Retried a few times without ever connecting: not a broker we can use.
      if (++closes >= 3) done(new Error(`cannot connect to ${url}: connection closed ${closes} times`));
    };
    const timer = setTimeout(() => done(new Error(`cannot connect to ${url}: no answer within ${timeoutMs} ms`)), timeoutMs);
    client.on('connect', onConnect);
    client.on('error', onError);
    client.on('close', onClose);
  });
}
