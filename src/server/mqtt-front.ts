/**
 * MQTT over WebSocket in front of a broker whose own WebSocket listener cannot be trusted with
 * the internet. Debian 12's mosquitto 2.0.11 (and every 2.0 release) applies `max_packet_size`
 * on TCP only: on its WebSocket listener a packet is buffered whole as it arrives, before any
 * login (four unfinished CONNECTs of 64 MiB took it from 11 to 267 MiB), and no option of
 * Mosquitto, libwebsockets or nginx bounds it (docs/operations.md, Hardening).
 *
 * RabbitMQ 3.10 is worse: it reads a whole packet before login on TCP too (40 MiB of an
 * unfinished CONNECT took a node from 124 to 406 MB), so there the front also takes the
 * volunteers' plain TCP (`tcpPort`) and the node's own listener stays private (deploy/rabbitmq).
 *
 * The front terminates the volunteers' WebSocket (and, given a TCP port, their plain TCP), lets
 * each connection through the gate that guards the embedded broker (mqtt-gate.ts: connections per
 * source and in total across both entries, each packet's size at its fixed header) and pipes the
 * bytes, unchanged, to the broker's TCP listener, where `max_packet_size` holds. It is a guard,
 * not a broker: it reads nothing of MQTT beyond the fixed headers, and logins, ACLs and sessions
 * stay the broker's.
 *
 *   volunteer --wss--> nginx /mqtt --ws--> front --mqtt (TCP)--> mosquitto, or a RabbitMQ node
 *   headless worker --mqtt (TCP)--------> front --mqtt (TCP)--> a RabbitMQ node
 *
 * `dpow-web mqtt-front` (src/cli/mqtt-front.ts) runs it; deploy/systemd has its unit.
 */
import http from 'node:http';
import net from 'node:net';
import { Transform, pipeline, type Duplex } from 'node:stream';
import type { ConnectionLimit, RefusalReason } from './connection-limit.ts';
import { listen } from './http/listen.ts';
import { clip, LogLimiter } from './log-limit.ts';
import { silentLogger, type Logger } from './log.ts';
import { trustedProxies } from './http/request-guard.ts';
import { MqttGate, type TcpEntry, type WebSocketEntry } from './mqtt-gate.ts';
import { DEFAULT_PACKET_LIMITS, packetLimitsFor, type PacketType } from './mqtt-packet-size.ts';

export interface MqttFrontLimits {
  /** Largest packet of every type but PUBLISH, whole. Default the embedded broker's, 1 KiB. */
  maxPacketBytes?: number;
  /** Connections one source (IPv4 address, IPv6 /64) may hold open. */
  maxConnectionsPerSource?: number;
  /** Connections all sources together may hold open. */
  maxConnections?: number;
}

export interface MqttFrontOptions {
  /** The broker's TCP listener: mqtt://host:port. */
  broker: string;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 9001; 0 picks a free port. */
  port?: number;
  /** A plain TCP entry for MQTT on this port (0 picks a free one); none where absent. */
  tcpPort?: number;
  /** Where the TCP entry listens. Default `host`. */
  tcpHost?: string;
  /**
   * Proxies, besides loopback, whose X-Forwarded-For names a WebSocket's source: nginx on another
   * host (deploy/rabbitmq). Anyone else's is ignored.
   */
  trustedProxies?: readonly string[];
  /** The WebSocket path. Default '/mqtt'. */
  path?: string;
  limits?: MqttFrontLimits;
  /** How long the broker may take to accept a connection. Default 5 s. */
  connectTimeoutMs?: number;
  log?: Logger;
  /** Interval of the refusal log lines (log-limit.ts). Default 10 s. */
  logIntervalMs?: number;
}

export interface MqttFrontCounters {
  /** Connections closed at a packet header over the size limit, by packet type. */
  oversizePackets: Partial<Record<PacketType, number>>;
  /** Connections refused before they were taken: over their source's cap, or over the total. */
  refusedConnections: Record<RefusalReason, number>;
  /** Connections let in and piped to the broker. */
  piped: number;
  /** Connections closed, or WebSocket upgrades answered 502, because the broker could not be reached. */
  brokerUnreachable: number;
}

export const DEFAULT_FRONT_PORT = 9001;

export class MqttFront {
  readonly server: http.Server;
  readonly counters: MqttFrontCounters;
  /** Connections open now (exempt ones included) and the sources they come from. */
  readonly connections: Pick<ConnectionLimit, 'open' | 'sources' | 'caps'>;

  readonly #brokerUrl: string;
  readonly #broker: { host: string; port: number };
  readonly #connectTimeoutMs: number;
  readonly #logLimit: LogLimiter;
  readonly #gate: MqttGate;
  readonly #webSocket: WebSocketEntry;
  #tcp: TcpEntry | undefined;
  /** The broker's side of every piped connection, to end them all on close. */
  readonly #upstreams = new Set<net.Socket>();
  /** Of those, the ones the broker has accepted: while there are some, it is reachable. */
  #accepted = 0;
  #url = '';
  #tcpUrl: string | undefined;
  /** A probe of the broker under way, shared by the upgrades that wait on it. */
  #probe: Promise<string | undefined> | undefined;
  #closing: Promise<void> | undefined;

  /** Starts the front; resolves once it listens. A broker URL that is not mqtt://host:port throws. */
  static async start(options: MqttFrontOptions): Promise<MqttFront> {
    const front = new MqttFront(options);
    const path = options.path ?? '/mqtt';
    const host = options.host ?? '127.0.0.1';
    let origin: string;
    try {
      origin = await listen(front.server, options.port ?? DEFAULT_FRONT_PORT, host);
      if (options.tcpPort !== undefined) {
        front.#tcp = front.#gate.tcpServer((client, peer) => front.#pipe(client, peer.source));
        front.#tcpUrl = (await listen(front.#tcp.server, options.tcpPort, options.tcpHost ?? host)).replace(/^http/, 'mqtt');
      }
    } catch (err) {
      await front.close();
      throw err;
    }
    front.#url = `${origin.replace(/^http/, 'ws')}${path}`;
    const caps = front.connections.caps;
    const entries = front.#tcpUrl ? `${front.#url} and ${front.#tcpUrl}` : front.#url;
    (options.log ?? silentLogger).info(`mqtt-front: ${entries} to ${options.broker}, at most ${caps.perSource} connections a source and ${caps.total} in all`);
    return front;
  }

  private constructor(options: MqttFrontOptions) {
    this.#brokerUrl = options.broker;
    this.#broker = brokerAddress(options.broker);
    this.#connectTimeoutMs = options.connectTimeoutMs ?? 5000;
    this.#logLimit = new LogLimiter(options.log ?? silentLogger, { intervalMs: options.logIntervalMs });
    const limits = options.limits ?? {};
    this.#gate = new MqttGate({
      name: 'mqtt-front',
      // The embedded broker's: PUBLISH as large as the codecs' payload and a topic allow.
      packetLimits: packetLimitsFor({ ...DEFAULT_PACKET_LIMITS, maxPacketBytes: limits.maxPacketBytes ?? DEFAULT_PACKET_LIMITS.maxPacketBytes }),
      connections: { perSource: limits.maxConnectionsPerSource, total: limits.maxConnections },
      trustedProxy: options.trustedProxies?.length ? trustedProxies(options.trustedProxies) : undefined,
      logLimit: this.#logLimit,
    });
    this.connections = this.#gate.connections;
    this.counters = {
      oversizePackets: this.#gate.oversizePackets,
      refusedConnections: this.#gate.connections.counters.refused,
      piped: 0,
      brokerUnreachable: 0,
    };
    const path = options.path ?? '/mqtt';
    const webSocket = this.#gate.webSocket(path, (client, peer, req) => this.#pipe(client, peer.source, req));
    this.#webSocket = webSocket;
    // Plain HTTP: the path wants an upgrade, anything else is not here (a headless worker asking
    // the broker's origin for /api/payouts/ learns there is no such endpoint, as from Mosquitto).
    const server = http.createServer((req, res) => {
      const mqtt = (req.url ?? '').split('?')[0].replace(/\/$/, '') === path;
      res.writeHead(mqtt ? 426 : 404, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close' }).end(mqtt ? 'MQTT over WebSocket only\n' : 'Not found\n');
    });
    server.on('upgrade', (req, socket, head) => void this.#upgrade(req, socket, head));
    server.on('clientError', (_err, socket) => socket.destroy());
    // An upgrade request is a few hundred bytes: one that takes longer than this is not a volunteer's
    // (and is not counted by the gate until its headers are in).
    server.headersTimeout = server.requestTimeout = 10_000;
    this.server = server;
  }

  /** ws://host:port/path */
  get url(): string {
    return this.#url;
  }

  /** mqtt://host:port of the TCP entry, when there is one. */
  get tcpUrl(): string | undefined {
    return this.#tcpUrl;
  }

  /** Why the front cannot serve (the broker does not accept connections), or undefined. */
  async notReady(): Promise<string | undefined> {
    // A probe only when no volunteer's connection says so already: Mosquitto 2.0.11 counts a
    // connection closed before its CONNECT off max_connections twice.
    if (this.#accepted > 0) return undefined;
    this.#probe ??= reachable(this.#broker, this.#connectTimeoutMs).finally(() => (this.#probe = undefined));
    return this.#probe;
  }

  /**
   * A WebSocket upgrade, answered 502 while the broker takes no connection: a proxy spreading
   * /mqtt over several fronts (deploy/rabbitmq/nginx-mqtt-upstream.conf) then tries the next, as
   * it would for a front that is down, instead of handing the page a WebSocket that closes at once.
   */
  async #upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    const down = await this.notReady();
    if (socket.destroyed) return;
    if (down !== undefined) {
      this.#unreachable(`answered a WebSocket upgrade 502 (broker ${this.#brokerUrl})`, down);
      const text = `${down}\n`;
      socket.end(`HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`);
      return;
    }
    if (!this.#webSocket.handleUpgrade(req, socket, head)) socket.destroy();
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#logLimit.close();
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      await this.#webSocket.close();
      await this.#tcp?.close();
      for (const upstream of this.#upstreams) upstream.destroy();
      this.server.closeAllConnections();
      await closed;
    })();
    return this.#closing;
  }

  /** Counts and logs (once per interval) a volunteer turned away because the broker does not answer. */
  #unreachable(what: string, why: string): void {
    this.counters.brokerUnreachable++;
    this.#logLimit.error('mqtt-front: broker unreachable', `mqtt-front: ${what}: ${why}`);
  }

  /** One volunteer's connection, checked packet by packet on its way to the broker. */
  #pipe(client: Duplex, source: string, req?: http.IncomingMessage): void {
    this.counters.piped++;
    const timeoutMs = this.#connectTimeoutMs;
    const upstream = net.connect({ ...this.#broker, noDelay: true });
    this.#upstreams.add(upstream);
    let connected = false;
    // Errors of the connection itself carry the system call that failed (connect, getaddrinfo);
    // the others are the pipe ending it (an oversize packet, a volunteer gone before the broker answered).
    upstream.setTimeout(timeoutMs, () => upstream.destroy(Object.assign(new Error(`no connection within ${timeoutMs} ms`), { syscall: 'connect' })));
    upstream.once('connect', () => {
      connected = true;
      this.#accepted++;
      upstream.setTimeout(0);
    });
    upstream.once('error', (err: NodeJS.ErrnoException) => {
      if (connected || err.syscall === undefined) return;
      this.#unreachable(`closed a connection from ${clip(source)}`, `the broker at ${this.#brokerUrl} does not answer (${clip(err.message)})`);
    });
    const check = this.#gate.packetCheck(source);
    const sizes = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        const err = check(chunk);
        done(err ?? null, err ? undefined : chunk);
      },
    });
    const end = (err?: Error | null) => {
      if (!err) return;
      client.destroy();
      upstream.destroy();
    };
    // Each way ends the other when it fails; a clean end travels on (the broker closes a
    // connection whose client ended, and a closed broker connection ends the WebSocket).
    pipeline(client, sizes, upstream, end);
    pipeline(upstream, client, end);
    // The volunteer's socket closing (under a WebSocket, its own) is the end of it, whatever the broker is doing.
    (req?.socket ?? client).once('close', () => upstream.destroy());
    upstream.once('close', () => {
      this.#upstreams.delete(upstream);
      if (connected) this.#accepted--;
    });
  }
}

/** host and port of an mqtt:// URL; anything else is a configuration error. */
function brokerAddress(url: string): { host: string; port: number } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`the broker must be an mqtt://host:port URL, got "${url}"`);
  }
  if (parsed.protocol !== 'mqtt:' || parsed.hostname === '') throw new Error(`the broker must be an mqtt://host:port URL (its TCP listener), got "${url}"`);
  return { host: parsed.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(parsed.port || 1883) };
}

/** Undefined when the broker accepts a TCP connection (closed at once, before any MQTT), else why not. */
function reachable(broker: { host: string; port: number }, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect(broker);
    const done = (reason?: string) => {
      socket.destroy();
      resolve(reason);
    };
    socket.setTimeout(timeoutMs, () => done(`the broker does not accept connections within ${timeoutMs} ms`));
    socket.once('connect', () => done());
    socket.once('error', (err) => done(`the broker does not accept connections: ${err.message}`));
  });
}
