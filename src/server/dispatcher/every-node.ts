/**
 * The retained statistics on every node of a clustered broker. RabbitMQ keeps a retained message
 * on the node that took the publish, and only there: a volunteer who connects to another node
 * would see no statistics (or a node's stale copy from its disk) until the next change, up to
 * five minutes later. So the leader publishes them through a connection of its own to each node,
 * and a connection that comes back (its node restarted) publishes the latest again at once.
 *
 * The connections open with the first statistics, so only a leader holds them, and close when it
 * stops leading (`forget`), so a former leader never puts its old figures back on a node.
 * Nothing is queued for a node that is away; it gets the latest when it is back.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { topics } from '../../dpow/codec.ts';
import type { ConnectFn } from '../../dpow/mqtt-connect.ts';
import { LogLimiter } from '../log-limit.ts';
import type { Logger } from '../log.ts';
import { newClientId, serverLinkOptions } from './broker-session.ts';
import type { DispatcherCounters } from './counters.ts';

export interface StatisticsOnEveryNodeOptions {
  /** Every node of the broker. */
  urls: readonly string[];
  username: string;
  password: string;
  connect?: ConnectFn;
  counters: Pick<DispatcherCounters, 'published'>;
  log: Logger;
}

export class StatisticsOnEveryNode {
  readonly #opts: StatisticsOnEveryNodeOptions;
  /** Nodes that come and go must not flood the log. */
  readonly #log: LogLimiter;
  #links: MqttClient[] = [];
  #latest?: string;

  constructor(options: StatisticsOnEveryNodeOptions) {
    this.#opts = options;
    this.#log = new LogLimiter(options.log);
  }

  /** Retained on every node that is up now; each other one gets it when its connection comes back. */
  publishStatistics(payload: string): void {
    this.#latest = payload;
    if (!this.#links.length) this.#links = this.#opts.urls.map((url) => this.#open(url));
    for (const link of this.#links) if (link.connected) this.#publish(link);
    this.#opts.counters.published.statistics++;
  }

  /** This dispatcher no longer leads: its connections close, and nothing it published is sent again. */
  forget(): Promise<void> {
    this.#latest = undefined;
    const links = this.#links.splice(0);
    return Promise.all(links.map((l) => l.endAsync(true))).then(() => {});
  }

  async close(): Promise<void> {
    await this.forget();
    this.#log.close();
  }

  #open(url: string): MqttClient {
    const link = (this.#opts.connect ?? mqtt.connect)(url, {
      ...serverLinkOptions(this.#opts.username, this.#opts.password),
      // Never queued while away: the latest goes out on connecting instead, and only it.
      queueQoSZero: false,
    });
    // A new id for every connection, as the session's links take (broker-session.ts).
    link.on('reconnect', () => (link.options.clientId = newClientId()));
    link.on('connect', () => this.#publish(link));
    link.on('offline', () => this.#log.warn(`statistics ${url}`, `dispatcher: statistics connection to ${url} lost; it gets the latest when it is back`));
    link.on('error', (err) => this.#log.warn(`statistics ${url} error`, `dispatcher: statistics connection to ${url}: ${err.message}`));
    return link;
  }

  #publish(link: MqttClient): void {
    if (this.#latest === undefined) return;
    // QoS 1: acknowledged once the node has stored it as its retained copy.
    link.publish(topics.statistics, this.#latest, { qos: 1, retain: true }, (err) => {
      if (err && this.#links.includes(link)) this.#log.warn('statistics publish', `dispatcher: statistics on ${link.options.host}:${link.options.port} failed: ${err.message}`);
    });
  }
}
