/**
 * A precache feed as `dpow-web start --feed` runs it: one node's WebSocket (go-qlc's JSON-RPC
 * pub/sub, or a Nano node's confirmations) with a PrecachePolicy on it. Which node it follows,
 * a real one or a simulated one, is chosen where the server is assembled (create-server.ts);
 * here it is a URL.
 */
import type { Logger } from '../log.ts';
import { PrecachePolicy, type PrecachePolicyOptions } from './precache.ts';

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

export interface PrecacheFeed {
  policy: PrecachePolicy;
  /** What runs, for the start banner: e.g. "qlc ws://127.0.0.1:9736". */
  description: string;
  /** The simulated node's URL, when the feed follows one. */
  simUrl?: string;
  /** True while the node's WebSocket is connected (read by /metrics). */
  readonly connected: boolean;
  /** Frames from the node dropped, by reason (read by /metrics; the log has one line per reason per interval). */
  readonly dropped: Readonly<Record<string, number>>;
  close(): Promise<void>;
}

/**
 * Starts the policy and the node's feed under it. A node that is down at start is retried in the
 * background; this never throws for an unreachable node.
 */
export async function startPrecacheFeed(source: NodeSource, options: PrecachePolicyOptions & { log: Logger }): Promise<PrecacheFeed> {
  const { coin, url } = source;
  const log = options.log;
  const closers: (() => Promise<unknown>)[] = [];
  if (source.simulated) closers.push(() => source.simulated!.close());
  const policy = new PrecachePolicy(options);
  try {
    await policy.start();
  } catch (err) {
    for (const close of closers) await close().catch(() => {});
    throw err;
  }
  let node: { readonly connected: boolean };
  let dropped: () => Record<string, number>;
  let connecting: Promise<void>;
  if (coin === 'qlc') {
    const { QlcFeed } = await import('./qlc-feed.ts');
    const feed = new QlcFeed(url, { log });
    closers.unshift(() => feed.close());
    policy.attachQlc(feed);
    node = feed.client;
    // The JSON-RPC layer's refusals and the notifications' (not-an-object may come from both).
    dropped = () => {
      const sum: Record<string, number> = { ...feed.client.stats.malformed };
      for (const [reason, n] of Object.entries(feed.stats.rejected)) sum[reason] = (sum[reason] ?? 0) + (n ?? 0);
      return sum;
    };
    connecting = feed.connect();
  } else {
    const { NanoFeed } = await import('./nano-feed.ts');
    const feed = new NanoFeed(url, { log });
    closers.unshift(() => feed.close());
    policy.attachNano(feed);
    node = feed;
    dropped = () => ({ ...feed.stats.rejected });
    connecting = feed.connect();
  }
  // Retried in the background until it connects; it fails only when the feed is closed first,
  // which is no error (a stop before the node was ever up must not crash the process).
  connecting.catch(() => {});
  log.info(`precache: ${coin} feed on ${url}, tracking ${policy.accounts.length} account(s)`);
  return {
    policy,
    description: source.description,
    simUrl: source.simulated ? url : undefined,
    get connected() {
      return node.connected;
    },
    get dropped() {
      return dropped();
    },
    close: async () => {
      await policy.stop();
      for (const close of closers) await close().catch(() => {});
    },
  };
}
