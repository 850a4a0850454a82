/**
 * The dispatcher's connection to the broker, as the broker's `server` role. It connects (the
 * first connection must succeed within `connectTimeoutMs`, or start-up fails with the reason),
 * subscribes to results (as `$share/<group>-<secret>/result/<type>` for a shared group), and leaves
 * reconnects to mqtt.js. Every topic the server owns goes out through its codec and is counted here.
 *
 *   result/<type> --> onResult(topic, payload)          (never throws out of the handler)
 *   a reconnect   --> onReconnect()                     (the dispatcher republishes what is pending)
 *   publishWork / publishCancel / publishHeartbeat / publishClient / publishStatistics --> broker
 *
 * Its client ids. On most brokers (Mosquitto among them) any logged-in client that connects
 * with a client id in use knocks the holder off, and volunteers all share a public login. So:
 *   - each connection gets a fresh random client id (128 bits) every time it connects, which is
 *     never logged, published or stored: there is nothing to learn it from, and one learned
 *     anyway is worth one disconnect, not a loop of them;
 *   - with `standby`, a second connection takes results too, so a result published while one
 *     connection is knocked off still arrives (each copy after the first is dropped here, the
 *     twins filter). Sessions are clean, so a login that takes an id over gets none of the
 *     subscriptions or queued results (the broker forgets a clean session with its connection);
 *   - a connection the broker closed without an error while the other stayed up, and that the
 *     broker then accepted again at once, was taken over: counted and logged as a takeover.
 * A shared group's name gets a suffix derived from the server password: a volunteer who
 * subscribed `$share/<group>/result/<type>` would otherwise be handed (and, lacking read access,
 * drop) its share of the results (30 published, 22 lost to three such logins, before).
 *
 * Given the nodes of a clustered broker (`failoverUrls`), the connections start on different
 * nodes and each reconnect goes to the next node, not the one the other connection is on
 * (broker-nodes.ts): when a node dies the connection there moves on while the other carries the
 * results, mqtt.js subscribes to them again on the new node (the session is clean), the pending
 * jobs are published again for the volunteers who moved with it, and the move is logged and
 * counted (`brokerFailovers`). A refused CONNACK (RabbitMQ answers "Server unavailable" while its
 * client-id Raft group elects a leader after a node died) is retried like a lost connection,
 * never the end of reconnecting. The fresh client id matters there too: RabbitMQ 3.10 keeps a
 * session's QoS 1 subscription queue, named after the client id, on the node it was made on, and
 * the same id could not subscribe on another node while that one was down.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
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
import { LogLimiter } from '../log-limit.ts';
import type { Logger } from '../log.ts';
import { BrokerNodes } from './broker-nodes.ts';
import type { DispatcherCounters } from './counters.ts';

export interface BrokerSessionOptions {
  /** mqtt://, ws:// or wss:// URL of the broker (of its first node). */
  url: string;
  /** The other nodes of a clustered broker, tried in turn after a lost or failed connection. */
  failoverUrls?: readonly string[];
  username: string;
  password: string;
  connectTimeoutMs: number;
  /** Take results as `$share/<group>-<secret>/result/+` (Mosquitto 2, EMQX). */
  sharedGroup?: string;
  /**
   * A second connection that takes results too, so none is lost while one is knocked off (a
   * broker that lets any login take over a client id). Default false.
   */
  standby?: boolean;
  /** Default mqtt.js connect. */
  connect?: ConnectFn;
  counters: Pick<DispatcherCounters, 'published' | 'jobs' | 'broker' | 'brokerFailovers'>;
  log: Logger;
  onResult(topic: string, payload: Buffer): void;
  /** The broker can be reached again after no connection could (not called for the first one). */
  onReconnect(): void;
}

/** A client id no one can guess: 'd' and 128 random bits in 22 base-62 digits (23 characters, as MQTT 3.1.1 lets every server take). */
export function newClientId(): string {
  const digits = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
  let n = BigInt(`0x${randomBytes(16).toString('hex')}`);
  let id = 'd';
  for (let i = 0; i < 22; i++, n /= 62n) id += digits[Number(n % 62n)];
  return id;
}

/**
 * How every connection of a dispatcher to its broker is made (the session's and the statistics'
 * on every node): MQTT 3.1.1, a clean session under a fresh unguessable id, and reconnecting
 * through RabbitMQ's "Server unavailable", which mqtt.js would otherwise never try again.
 */
export function serverLinkOptions(username: string, password: string): IClientOptions {
  return {
    username,
    password,
    protocolVersion: 4,
    clientId: newClientId(),
    clean: true,
    keepalive: 60,
    reconnectPeriod: 1000,
    reconnectOnConnackError: true,
    connectTimeout: 10_000,
  };
}

/**
 * The shared group's name on the broker: the configured name and a suffix only those who know
 * the server password can work out, so every dispatcher of a deployment is in one group and no
 * volunteer can join it.
 */
export function secretGroup(group: string, password: string): string {
  return `${group}-${createHmac('sha256', password).update(`dpow-web shared group ${group}`).digest('hex').slice(0, 32)}`;
}

/** One connection and what is known about it. */
interface Link {
  client: MqttClient;
  /** Connected now (mqtt.js's own flag is cleared before the close event reaches us). */
  up: boolean;
  /** Times it went down, for telling a takeover (only this one dropped) from an outage. */
  downs: number;
  /** It went down without an error; the other link's `downs` then, to judge it on reconnect. */
  cleanClose?: { otherDowns: number };
  /** An error was seen since it connected (a clean close after one is no takeover). */
  troubled: boolean;
  /** The node it is aimed at (connected to while `up`). */
  node: string;
  /** The node it was last up on. */
  lastUp?: string;
}

export class BrokerSession {
  readonly #opts: BrokerSessionOptions;
  readonly #nodes: BrokerNodes;
  #links: Link[] = [];
  #closed = false;
  #opened = false;
  /** With two links on one subscription each result comes twice; the second copy is dropped. */
  #twins?: TwinFilter;
  /** Connection losses and takeovers: a broker that flaps must not flood the log. */
  readonly #log: LogLimiter;

  constructor(options: BrokerSessionOptions) {
    this.#opts = options;
    this.#nodes = new BrokerNodes([options.url, ...(options.failoverUrls ?? [])]);
    this.#log = new LogLimiter(options.log);
    if (options.standby && !options.sharedGroup) this.#twins = new TwinFilter();
  }

  get connected(): boolean {
    return this.#links.some((l) => l.client.connected);
  }

  /** The nodes its connections are on now (or last were). */
  get nodes(): string[] {
    return [...new Set(this.#links.map((l) => (l.up ? l.node : (l.lastUp ?? l.node))))];
  }

  /**
   * Connects and subscribes to results. False when close() came first; throws with the reason
   * when the first connection fails (a wrong password, a refused port, a WebSocket path that
   * answers 404).
   */
  async open(): Promise<boolean> {
    const nodes = this.#nodes;
    const links: Link[] = (this.#links = []);
    // One after the other: the first proves the login, so a refused one is tried once.
    for (let i = 0; i < (this.#opts.standby ? 2 : 1) && !this.#closed; i++) {
      const node = nodes.first(i);
      const client = (this.#opts.connect ?? mqtt.connect)(node, serverLinkOptions(this.#opts.username, this.#opts.password));
      const link: Link = { client, up: false, downs: 0, troubled: false, node };
      links.push(link);
      this.#watch(link, i);
      try {
        await firstConnection(client, nodes, () => link.node, this.#opts.connectTimeoutMs);
      } catch (err) {
        for (const l of links) l.client.end(true);
        this.#links = [];
        throw err;
      }
    }
    const clients = links.map((l) => l.client);
    if (this.#closed) {
      await Promise.all(clients.map((c) => c.endAsync(true)));
      return false;
    }
    const resultTopics = WORK_TYPES.map((t) => topics.result(t));
    const group = this.#opts.sharedGroup && secretGroup(this.#opts.sharedGroup, this.#opts.password);
    await Promise.all(clients.map((c) => c.subscribeAsync(group ? resultTopics.map((t) => `$share/${group}/${t}`) : resultTopics, { qos: 1 })));
    this.#opened = true;
    if (!this.#closed) return true;
    await Promise.all(clients.map((c) => c.endAsync(true)));
    return false;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#log.close();
    // While open() runs, a connection still coming up is left to it: it ends them once it sees this.
    await Promise.all(this.#links.filter((l) => this.#opened || l.up).map((l) => l.client.endAsync()));
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

  /** On a link that is up; with none, mqtt.js queues it on the first until it reconnects. */
  #publish(topic: string, payload: string, qos: 0 | 1, retain = false): void {
    const link = this.#links.find((l) => l.up) ?? this.#links[0];
    if (!link) return;
    link.client.publish(topic, payload, { qos, retain }, (err) => {
      if (err) this.#log.warn('dispatcher: publish failed', `dispatcher: publish on ${topic} failed: ${err.message}`);
    });
  }

  /** Results in, and the link's life: a new client id for each connection, losses, takeovers. */
  #watch(link: Link, index: number): void {
    const { client } = link;
    const { counters } = this.#opts;
    const other = () => this.#links[1 - index];
    const name = this.#opts.standby ? `broker connection ${index + 1} of 2` : 'broker connection';
    client.on('message', (topic, payload) => {
      if (this.#twins && !this.#twins.first(index, topic, payload, other()?.up ?? false)) return;
      try {
        this.#opts.onResult(topic, payload);
      } catch (err) {
        // Nothing on the result path should throw; if it does, the connection must survive it.
        this.#opts.log.error(`dispatcher: result on ${topic} failed: ${(err as Error).stack ?? err}`);
      }
    });
    // Every connection under a new id: a known one is worth one disconnect, never a loop.
    client.on('reconnect', () => {
      client.options.clientId = newClientId();
      // The node it could not reach, or lost, is likely down: the next one, not the other link's.
      if (!this.#nodes.several) return;
      const peer = other();
      link.node = this.#nodes.next(link.node, peer?.up ? peer.node : undefined);
      this.#nodes.aim(client, link.node);
    });
    client.on('error', (err) => {
      link.troubled = true;
      // Before open() returns, the error is its rejection.
      if (this.#opened) this.#log.warn('dispatcher: broker error', `dispatcher: ${name}: ${err.message}`);
    });
    client.on('close', () => {
      if (!link.up) return; // a reconnect attempt that failed
      link.up = false;
      if (this.#closed) return; // our own goodbye
      link.downs++;
      counters.broker.disconnects++;
      this.#twins?.forget(index);
      const peer = other();
      link.cleanClose = !link.troubled && peer?.up ? { otherDowns: peer.downs } : undefined;
      const where = this.#nodes.several ? ` (node ${link.node}), retrying on the next node` : ', retrying';
      this.#log.warn('dispatcher: broker connection lost', `dispatcher: ${name} lost${where}`);
    });
    client.on('connect', () => {
      const outage = !this.#links.some((l) => l !== link && l.up);
      link.up = true;
      link.troubled = false;
      const peer = other();
      // Closed without an error while the other stayed up throughout, and let straight back in:
      // the broker is fine and dropped only this connection, for another login with its id.
      if (link.cleanClose && peer?.up && peer.downs === link.cleanClose.otherDowns) {
        counters.broker.takeovers++;
        this.#log.warn(
          'dispatcher: takeover',
          `dispatcher: ${name} was taken over (another login used its client id); reconnected under a new client id, and results kept coming on the other`,
        );
      }
      link.cleanClose = undefined;
      const moved = link.lastUp !== undefined && link.lastUp !== link.node;
      const left = link.lastUp;
      link.lastUp = link.node;
      if (!this.#opened || this.#closed) return;
      if (moved) {
        counters.brokerFailovers++;
        // Volunteers who were on the dead node are on others now and have not seen the pending jobs.
        this.#opts.log.warn(`dispatcher: ${name}: broker node ${left} is gone; connected to ${link.node}, subscribed to results again; republishing pending jobs`);
        this.#opts.onReconnect();
      } else if (outage) {
        this.#opts.log.info('dispatcher: reconnected to the broker; republishing pending jobs');
        this.#opts.onReconnect();
      }
    });
  }
}

/**
 * With two links subscribed alike, each result reaches both. The first copy is taken and the
 * other link is expected to deliver its twin, which is dropped. Copies are told apart by a digest
 * of topic and payload (a payload may be 64 KiB of junk). A link that is down will deliver
 * nothing, so nothing is expected of it, and what it owed is forgotten when it drops. Bounded:
 * past MAX_OWED the oldest expectation goes (its twin, if it ever comes, is taken twice, and the
 * result pipeline counts it a duplicate).
 */
class TwinFilter {
  static readonly MAX_OWED = 10_000;
  readonly #owed: [Map<string, number>, Map<string, number>] = [new Map(), new Map()];

  /** Whether this copy is the first (take it); false for a twin. */
  first(link: number, topic: string, payload: Buffer, otherUp: boolean): boolean {
    const key = createHash('sha256').update(topic).update('\0').update(payload).digest('base64');
    const mine = this.#owed[link];
    const owed = mine.get(key);
    if (owed !== undefined) {
      if (owed > 1) mine.set(key, owed - 1);
      else mine.delete(key);
      return false;
    }
    if (otherUp) {
      const theirs = this.#owed[1 - link];
      theirs.set(key, (theirs.get(key) ?? 0) + 1);
      if (theirs.size > TwinFilter.MAX_OWED) theirs.delete(theirs.keys().next().value!);
    }
    return true;
  }

  forget(link: number): void {
    this.#owed[link].clear();
  }
}

/**
 * Resolves on the first connection; rejects on an error, a third close, or no answer in time.
 * With several nodes an unreachable one is no reason to give up: only a refused login is, or
 * three failed tries of every node. `node` names the node being tried.
 */
function firstConnection(client: MqttClient, nodes: BrokerNodes, node: () => string, timeoutMs: number): Promise<void> {
  const url = nodes.several ? nodes.urls.join(', ') : nodes.urls[0];
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
    let lastError = '';
    const onError = (err: Error & { code?: unknown }) => {
      lastError = `: ${node()}: ${err.message}`;
      // A CONNACK's code is a number; 3 is "Server unavailable", which another node may not say.
      const refused = typeof err.code === 'number' && err.code !== 3;
      if (!nodes.several || refused) done(new Error(`cannot connect to ${url}: ${err.message}`));
    };
    let closes = 0;
    const onClose = () => {
      // Retried a few times without ever connecting: not a broker we can use.
      if (++closes >= 3 * nodes.urls.length) done(new Error(`cannot connect to ${url}: connection closed ${closes} times${lastError}`));
    };
    const timer = setTimeout(() => done(new Error(`cannot connect to ${url}: no answer within ${timeoutMs} ms`)), timeoutMs);
    client.on('connect', onConnect);
    client.on('error', onError);
    client.on('close', onClose);
  });
}
