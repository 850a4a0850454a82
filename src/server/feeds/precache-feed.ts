/**
 * A precache feed as `dpow-web start --feed` runs it: one node's WebSocket (go-qlc's JSON-RPC
 * pub/sub, or a Nano node's confirmations) with a PrecachePolicy on it. Which node it follows,
 * a real one or a simulated one, is chosen where the server is assembled (create-server.ts);
 * here it is a URL.
 */
import { silentLogger } from '../log.ts';
import type { NanoFeed } from './nano-feed.ts';
import { PrecachePolicy, type PrecachePolicyOptions } from './precache.ts';
import type { QlcFeed } from './qlc-feed.ts';

/** The node a feed follows. */
export interface NodeSource {
  coin: 'qlc' | 'nano';
  /** Its WebSocket. */
  url: string;
  /** What runs, for the start banner and /metrics: e.g. "qlc ws://127.0.0.1:9736". */
  description: string;
  /** A simulated node started for this feed: it closes with the feed. */
  simulated?: { close(): Promise<void> };
}

export interface PrecacheFeedOptions extends PrecachePolicyOptions {
  source: NodeSource;
}

/** The node's feed as the policy follows it. */
type NodeFeed = { coin: 'qlc'; feed: QlcFeed } | { coin: 'nano'; feed: NanoFeed };

export class PrecacheFeed {
  readonly policy: PrecachePolicy;
  /** What runs, for the start banner: e.g. "qlc ws://127.0.0.1:9736". */
  readonly description: string;
  /** The simulated node's URL, when the feed follows one. */
  readonly simUrl: string | undefined;

  readonly #node: NodeFeed;
  readonly #simulated: NodeSource['simulated'];
  #closing: Promise<void> | undefined;

  /**
   * Starts the policy and the node's feed under it. A node that is down at start is retried in the
   * background; this never throws for an unreachable node.
   */
  static async start(options: PrecacheFeedOptions): Promise<PrecacheFeed> {
    const { coin, url } = options.source;
    const log = options.log ?? silentLogger;
    const policy = new PrecachePolicy(options);
    try {
      await policy.start();
    } catch (err) {
      await options.source.simulated?.close().catch(() => {});
      throw err;
    }
    let node: NodeFeed;
    if (coin === 'qlc') {
      const { QlcFeed } = await import('./qlc-feed.ts');
      node = { coin, feed: new QlcFeed(url, { log }) };
      policy.attachQlc(node.feed);
    } else {
      const { NanoFeed } = await import('./nano-feed.ts');
      node = { coin, feed: new NanoFeed(url, { log }) };
      policy.attachNano(node.feed);
    }
    // Retried in the background until it connects; it fails only when the feed is closed first,
    // which is no error (a stop before the node was ever up must not crash the process).
    node.feed.connect().catch(() => {});
    log.info(`precache: ${coin} feed on ${url}, tracking ${policy.accounts.length} account(s)`);
    return new PrecacheFeed({ source: options.source, policy, node });
  }

  private constructor(parts: { source: NodeSource; policy: PrecachePolicy; node: NodeFeed }) {
    this.policy = parts.policy;
    this.description = parts.source.description;
    this.simUrl = parts.source.simulated ? parts.source.url : undefined;
    this.#node = parts.node;
    this.#simulated = parts.source.simulated;
  }

  /** True while the node's WebSocket is connected (read by /metrics). */
  get connected(): boolean {
    return this.#node.coin === 'qlc' ? this.#node.feed.client.connected : this.#node.feed.connected;
  }

  /** Frames from the node dropped, by reason (read by /metrics; the log has one line per reason per interval). */
  get dropped(): Readonly<Record<string, number>> {
    if (this.#node.coin === 'nano') return { ...this.#node.feed.stats.rejected };
    // The JSON-RPC layer's refusals and the notifications' (not-an-object may come from both).
    const feed = this.#node.feed;
    const sum: Record<string, number> = { ...feed.client.stats.malformed };
    for (const [reason, n] of Object.entries(feed.stats.rejected)) sum[reason] = (sum[reason] ?? 0) + (n ?? 0);
    return sum;
  }

  /** Stops the policy, then the node's feed, then the simulated node it follows. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.policy.stop();
      await this.#node.feed.close().catch(() => {});
      await this.#simulated?.close().catch(() => {});
    })();
    return this.#closing;
  }
}
