/**
 * The nodes of one clustered broker (RabbitMQ: every node takes every login and routes every
 * topic across the cluster), for the dispatcher's connections. Each connection is aimed at one
 * node; after a lost or failed connection it is aimed at the next one in turn, skipping the node
 * the dispatcher's other connection is on while that one is up, so the two stay on different
 * nodes and one node's death leaves a connection standing. The nodes share one scheme and, over
 * WebSocket, one path, as the nodes of a cluster do: only the host and port change between them.
 */
import type { MqttClient } from 'mqtt';

/** Nodes of one clustered broker a dispatcher or worker may be given. */
export const MAX_BROKER_NODES = 16;

const DEFAULT_PORTS: Record<string, number> = { mqtt: 1883, mqtts: 8883, ws: 80, wss: 443 };

interface Node {
  url: string;
  protocol: string;
  host: string;
  port: number;
  path: string;
}

function parse(url: string): Node | string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `not a URL: "${url}"`;
  }
  const protocol = u.protocol.replace(/:$/, '');
  if (!(protocol in DEFAULT_PORTS)) return `broker URL must be mqtt://, mqtts://, ws:// or wss://, got "${url}"`;
  // The WHATWG parser keeps IPv6 hosts bracketed; sockets want them bare.
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = u.port ? Number(u.port) : DEFAULT_PORTS[protocol];
  return { url, protocol, host, port, path: protocol.startsWith('ws') ? u.pathname : '' };
}

/** Why these URLs cannot be the nodes of one broker, or undefined when they can. */
export function brokerNodesError(urls: readonly string[]): string | undefined {
  if (urls.length === 0) return 'no broker URL';
  if (urls.length > MAX_BROKER_NODES) return `at most ${MAX_BROKER_NODES} broker nodes, got ${urls.length}`;
  const twice = urls.find((url, i) => urls.indexOf(url) !== i);
  if (twice !== undefined) return `${twice} is named twice`;
  const nodes = urls.map(parse);
  const bad = nodes.find((n): n is string => typeof n === 'string');
  if (bad) return bad;
  const [first, ...rest] = nodes as Node[];
  const odd = rest.find((n) => n.protocol !== first.protocol || n.path !== first.path);
  if (odd) return `the nodes of one broker share a scheme and a path: ${odd.url} differs from ${first.url}`;
  return undefined;
}

export class BrokerNodes {
  readonly urls: readonly string[];
  readonly #nodes: Node[];

  /** Throws a TypeError with the reason when the URLs cannot be the nodes of one broker. */
  constructor(urls: readonly string[]) {
    const error = brokerNodesError(urls);
    if (error) throw new TypeError(error);
    this.urls = urls;
    this.#nodes = urls.map((u) => parse(u) as Node);
  }

  get several(): boolean {
    return this.#nodes.length > 1;
  }

  /** The node connection `index` starts on: each on a node of its own while there are enough. */
  first(index: number): string {
    return this.urls[index % this.urls.length];
  }

  /** The node after `current`, in turn, skipping `avoid` (the other connection's node) unless it is the only other one. */
  next(current: string, avoid?: string): string {
    const at = this.urls.indexOf(current);
    const after = this.urls.map((_, step) => this.urls[(at + 1 + step) % this.urls.length]).filter((url) => url !== current);
    return after.find((url) => url !== avoid) ?? after[0] ?? current;
  }

  /**
   * Aims the client's next connection at `url`: mqtt.js builds every connection from its options,
   * so between a lost connection and the next attempt ('reconnect') only host and port change.
   */
  aim(client: MqttClient, url: string): void {
    const node = this.#nodes.find((n) => n.url === url)!;
    Object.assign(client.options, { host: node.host, hostname: node.host, port: node.port });
  }
}
