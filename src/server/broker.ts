/**
 * The embedded MQTT broker (aedes, MQTT 3.1.1) with the DPoW roles enforced and each connection
 * bounded (broker-rules.ts: the ACL, the publish rate, payload, topic, subscription, QoS 2 and
 * refusal limits, clean sessions).
 *
 * Every client is assumed hostile, so connections are capped per source and in total before
 * they are taken, and packet sizes are checked as the bytes arrive, on their way into aedes'
 * parser (both in mqtt-gate.ts; docs/operations.md, Hardening).
 *
 * WebSocket clients reach it on `wsPath` of a given http.Server (one origin with the app) or on
 * its own server; an optional plain TCP listener serves mqtt:// clients. Everything binds
 * 127.0.0.1 unless told otherwise.
 */
import http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { Aedes, type Client } from 'aedes';
import { BrokerRules, brokerLimits, type BrokerCounters, type BrokerLimits, type BrokerRole, type BrokerUsers } from './broker-rules.ts';
import type { ConnectionLimit } from './connection-limit.ts';
import { listen, urlHost } from './http/listen.ts';
import { LogLimiter } from './log-limit.ts';
import { type Logger, silentLogger } from './log.ts';
import { MqttGate, type MqttPeer, type TcpEntry, type WebSocketEntry } from './mqtt-gate.ts';
import { packetLimitsFor } from './mqtt-packet-size.ts';

export interface BrokerOptions {
  users: BrokerUsers;
  /** What each connection may send; DEFAULT_BROKER_LIMITS where absent. */
  limits?: BrokerLimits;
  /** Interface for the listeners this module opens itself. Default 127.0.0.1. */
  host?: string;
  /** Open a plain MQTT TCP listener on this port (0 = ephemeral). Off when undefined. */
  tcpPort?: number;
  /** Attach the WebSocket listener to this server (upgrade on `wsPath`). */
  server?: http.Server;
  /** Default '/mqtt'. */
  wsPath?: string;
  /** Without `server`: own WebSocket server on this port (0 = ephemeral, the default). */
  wsPort?: number;
  /** Clock for the publish rate (tests). */
  now?: () => number;
  log?: Logger;
  /** Interval of the refusal log lines (log-limit.ts). Default 10 s. */
  logIntervalMs?: number;
}

/** What Broker.start has listening when it hands over. */
interface ListeningBroker {
  aedes: Aedes;
  rules: BrokerRules;
  gate: MqttGate;
  logLimit: LogLimiter;
  webSocket: WebSocketEntry;
  wsUrl: string;
  /** The WebSocket server opened here when none was given. */
  ownServer?: http.Server;
  tcp?: { entry: TcpEntry; url: string };
}

export class Broker {
  readonly aedes: Aedes;
  /** ws://host:port/path of the WebSocket listener. */
  readonly wsUrl: string;
  /** mqtt://host:port when a TCP listener was asked for. */
  readonly tcpUrl?: string;
  readonly counters: BrokerCounters;
  /** Connections open now (logged in or not) and the sources they come from (read by /metrics). */
  readonly connections: Pick<ConnectionLimit, 'open' | 'sources' | 'caps'>;

  readonly #rules: BrokerRules;
  readonly #logLimit: LogLimiter;
  readonly #webSocket: WebSocketEntry;
  readonly #ownServer: http.Server | undefined;
  readonly #tcp: TcpEntry | undefined;
  #closed = false;

  /** Starts aedes and its listeners; resolves once they listen. */
  static async start(options: BrokerOptions): Promise<Broker> {
    const log = options.log ?? silentLogger;
    const logLimit = new LogLimiter(log, { intervalMs: options.logIntervalMs });
    const host = options.host ?? '127.0.0.1';
    const wsPath = options.wsPath ?? '/mqtt';
    const limits = brokerLimits(options.limits);
    const gate = new MqttGate({
      name: 'broker',
      packetLimits: packetLimitsFor(limits),
      connections: { perSource: limits.maxConnectionsPerSource, total: limits.maxConnections },
      logLimit,
    });
    const rules = new BrokerRules({
      users: options.users,
      limits,
      gateCounters: { oversizePackets: gate.oversizePackets, refusedConnections: gate.connections.counters.refused },
      now: options.now ?? Date.now,
      log,
      logLimit,
    });
    const aedes = await Aedes.createBroker(rules.hooks);
    rules.watch(aedes);
    const accept = (connection: Duplex, peer: MqttPeer, req?: http.IncomingMessage) => handToAedes(aedes, rules, gate, logLimit, connection, peer, req);

    // WebSocket: upgrades on wsPath are handed to the gate, which admits them.
    const webSocket = gate.webSocket(wsPath, accept);
    let ownServer: http.Server | undefined;
    let wsServer: http.Server;
    if (options.server) {
      wsServer = options.server;
      // Other paths (the service API's WebSocket) are left to the server's other listeners; when
      // there are none, an unknown path is closed rather than left hanging.
      wsServer.on('upgrade', (req, socket, head) => {
        if (!webSocket.handleUpgrade(req, socket, head) && wsServer.listenerCount('upgrade') === 1) socket.destroy();
      });
    } else {
      ownServer = http.createServer((_req, res) => {
        res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket only\n');
      });
      ownServer.on('upgrade', (req, socket, head) => {
        if (!webSocket.handleUpgrade(req, socket, head)) socket.destroy();
      });
      await listen(ownServer, options.wsPort ?? 0, host);
      wsServer = ownServer;
    }
    if (!wsServer.listening) await new Promise<void>((resolve) => wsServer.once('listening', () => resolve()));
    const wsAddress = wsServer.address() as net.AddressInfo;
    const wsUrl = `ws://${urlHost(wsAddress.address)}:${wsAddress.port}${wsPath}`;

    let tcp: ListeningBroker['tcp'];
    if (options.tcpPort !== undefined) {
      const entry = gate.tcpServer(accept);
      await listen(entry.server, options.tcpPort, host);
      const a = entry.server.address() as net.AddressInfo;
      tcp = { entry, url: `mqtt://${urlHost(a.address)}:${a.port}` };
    }
    log.info(`broker: listening on ${wsUrl}${tcp ? ` and ${tcp.url}` : ''}`);
    return new Broker({ aedes, rules, gate, logLimit, webSocket, wsUrl, ownServer, tcp });
  }

  private constructor(parts: ListeningBroker) {
    this.aedes = parts.aedes;
    this.wsUrl = parts.wsUrl;
    this.tcpUrl = parts.tcp?.url;
    this.counters = parts.rules.counters;
    this.connections = parts.gate.connections;
    this.#rules = parts.rules;
    this.#logLimit = parts.logLimit;
    this.#webSocket = parts.webSocket;
    this.#ownServer = parts.ownServer;
    this.#tcp = parts.tcp?.entry;
  }

  /**
   * The MQTT client id that published this result (topic and payload as delivered), for the
   * dispatcher's per-connection containment. Each publish answers once; undefined when unknown.
   * A bound function: the dispatcher is handed it on its own.
   */
  readonly publisherOf = (topic: string, payload: Buffer | string): string | undefined => this.#rules.publisherOf(topic, payload);

  /** Connections logged in now, by role (read by /metrics). */
  connectedByRole(): Record<BrokerRole, number> {
    return this.#rules.connectedByRole();
  }

  /** Handles an upgrade for `wsPath`; false (socket untouched) for any other path. */
  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean {
    return this.#webSocket.handleUpgrade(req, socket, head);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#logLimit.close();
    await this.#webSocket.close();
    await new Promise<void>((resolve) => this.aedes.close(() => resolve()));
    await this.#tcp?.close();
    if (this.#ownServer) {
      this.#ownServer.closeAllConnections();
      await new Promise<void>((resolve) => this.#ownServer!.close(() => resolve()));
    }
  }
}

/**
 * Hands a connection the gate let in to aedes, tagged with where it comes from for the login
 * check (broker-rules.ts), with its packet sizes checked (mqtt-gate.ts) on the way into aedes'
 * parser: every chunk the client reads goes to `_parser.parse` (aedes 1.2, private), so the
 * check sees exactly the bytes the parser would keep, and the reads and writes of the connection
 * stay aedes' own. A header over its limit destroys the connection instead.
 */
function handToAedes(aedes: Aedes, rules: BrokerRules, gate: MqttGate, logLimit: LogLimiter, connection: Duplex, peer: MqttPeer, req?: http.IncomingMessage): void {
  const client = aedes.handle(connection, req) as Client & { _parser?: { parse(chunk: Buffer): number } };
  rules.comesFrom(client, peer);
  const parser = client._parser;
  // An aedes without it would take packets unchecked: every connection is refused instead, loudly.
  if (typeof parser?.parse !== 'function') {
    logLimit.error('broker: no parser', 'broker: refused a connection: this aedes has no client._parser.parse to check packet sizes at');
    connection.destroy();
    return;
  }
  const check = gate.packetCheck(peer.source);
  const parse = parser.parse.bind(parser);
  parser.parse = (chunk) => {
    const err = check(chunk);
    if (!err) return parse(chunk);
    connection.destroy(err);
    return 0;
  };
}
