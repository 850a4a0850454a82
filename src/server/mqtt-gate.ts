/**
 * What every MQTT connection from the network passes before its bytes reach a broker: the
 * embedded broker's (broker.ts) and those the front passes on to Mosquitto (mqtt-front.ts).
 *
 * - Admission by source (connection-limit.ts), decided before the connection is taken: a
 *   WebSocket upgrade over a cap is answered 429 (its source's cap) or 503 (the total) and closed
 *   before any WebSocket exists, a TCP connection over one is closed at once. The source of a
 *   WebSocket is the caller as request-guard.ts tells it (behind the shipped nginx, the last
 *   X-Forwarded-For hop); a TCP connection's is its peer.
 * - Each packet's size, read at its fixed header as the bytes arrive (mqtt-packet-size.ts), so a
 *   connection is closed before the body of a packet over its limit is kept.
 * - Each connection let in is handed on with its source and whether it is the operator's own
 *   (MqttPeer), so the broker's login check limits failed logins by the same source.
 *
 * Every refusal is counted and logged once per kind per interval, its source clipped
 * (log-limit.ts).
 */
import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { admitUpgrade, ConnectionLimit, isOperatorHost, type Admission, type ConnectionCaps } from './connection-limit.ts';
import type { TrustedProxy } from './http/request-guard.ts';
import { clip, type LogLimiter } from './log-limit.ts';
import { OversizePacketError, PacketSizeCheck, type PacketSizeLimits, type PacketType } from './mqtt-packet-size.ts';

export interface MqttGateOptions {
  /** Who logs ('broker', 'mqtt-front'): the prefix of its log lines. */
  name: string;
  packetLimits: PacketSizeLimits;
  /** DEFAULT_CONNECTION_CAPS where absent. */
  connections?: Partial<ConnectionCaps>;
  /** Proxies whose X-Forwarded-For names a WebSocket's source. Loopback where absent. */
  trustedProxy?: TrustedProxy;
  logLimit: LogLimiter;
}

/**
 * Where a connection the gate let in comes from: the source it is counted under (for the limits
 * past the gate and the logs), and whether it is the operator's own, which none of them refuse.
 */
export interface MqttPeer {
  source: string;
  operator: boolean;
}

/** A connection the gate let in, with where it comes from. */
export type AcceptConnection = (stream: Duplex, peer: MqttPeer, req?: IncomingMessage) => void;

/** Answer to a refused upgrade: its source's cap is a wait, the total is the server being full. */
/**
 * TCP keepalive on every connection let in: a peer that vanished without a word (a client with
 * MQTT keepalive 0 never times out) is found by the kernel and its place is given back.
 */
const TCP_KEEPALIVE_MS = 60_000;

export class MqttGate {
  readonly connections: ConnectionLimit;
  /** Connections closed at a packet header over its limit, by packet type. */
  readonly oversizePackets: Partial<Record<PacketType, number>> = {};
  readonly #name: string;
  readonly #packetLimits: PacketSizeLimits;
  readonly #logLimit: LogLimiter;
  readonly #trustedProxy: TrustedProxy | undefined;

  constructor(options: MqttGateOptions) {
    this.#name = options.name;
    this.#trustedProxy = options.trustedProxy;
    this.#packetLimits = options.packetLimits;
    this.#logLimit = options.logLimit;
    this.connections = new ConnectionLimit(options.connections);
  }

  /** MQTT over WebSocket on `path`: each upgrade admitted, then handed on as a byte stream. */
  webSocket(path: string, accept: AcceptConnection): WebSocketEntry {
    // A frame never needs to be bigger than the largest packet.
    const maxPayload = Math.max(this.#packetLimits.publish, this.#packetLimits.other);
    return new WebSocketEntry({ path, accept, maxPayload, trustedProxy: this.#trustedProxy, admit: (address, exempt) => this.#admit(address, exempt) });
  }

  /** A TCP server for MQTT whose connections pass the gate (127.0.0.1 and ::1 are the operator's own). */
  tcpServer(accept: AcceptConnection): TcpEntry {
    return new TcpEntry({ accept, admit: (address, exempt) => this.#admit(address, exempt) });
  }

  /**
   * The size check of one connection's bytes, fed in order: undefined while they may pass on,
   * an error when the connection must be closed (an oversize packet is counted and logged).
   */
  packetCheck(source: string): (chunk: Uint8Array) => Error | undefined {
    const check = new PacketSizeCheck(this.#packetLimits);
    return (chunk) => {
      const err = check.feed(chunk);
      if (err instanceof OversizePacketError) {
        this.oversizePackets[err.type] = (this.oversizePackets[err.type] ?? 0) + 1;
        this.#logLimit.warn(`${this.#name}: oversize packet`, `${this.#name}: closed a connection from ${clip(source)}: ${err.message}`);
      }
      return err;
    };
  }

  #admit(address: string, exempt: boolean): Admission {
    const admission = this.connections.admit(address, exempt);
    if (!admission.ok) {
      this.#logLimit.warn(
        `${this.#name}: refused connection (${admission.reason})`,
        `${this.#name}: refused a connection from ${clip(admission.source)}: ${admission.why}`,
      );
    }
    return admission;
  }
}

/** Admits a connection from `address` (never refused when `exempt`), counting and logging a refusal. */
type Admit = (address: string, exempt: boolean) => Admission;

/** MQTT over WebSocket on one path, each upgrade admitted by the gate first. */
export class WebSocketEntry {
  readonly #path: string;
  readonly #accept: AcceptConnection;
  readonly #admit: Admit;
  readonly #trustedProxy: TrustedProxy | undefined;
  readonly #wss: WebSocketServer;
  #closing: Promise<void> | undefined;

  constructor(options: { path: string; accept: AcceptConnection; admit: Admit; maxPayload: number; trustedProxy?: TrustedProxy }) {
    this.#path = options.path;
    this.#trustedProxy = options.trustedProxy;
    this.#accept = options.accept;
    this.#admit = options.admit;
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: options.maxPayload });
  }

  /** Handles an upgrade for its path; false (socket untouched) for any other path. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const requested = (req.url ?? '').split('?')[0];
    if (requested !== this.#path && requested !== `${this.#path}/`) return false;
    // Released when the socket closes: with its WebSocket, or at a handshake ws refuses.
    const admission = admitUpgrade(this.#admit, req, socket, this.#trustedProxy);
    if (!admission.ok) return true;
    (socket as net.Socket).setKeepAlive?.(true, TCP_KEEPALIVE_MS);
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      const stream = createWebSocketStream(ws);
      stream.on('error', () => stream.destroy());
      this.#accept(stream, { source: admission.source, operator: admission.operator }, req);
    });
    return true;
  }

  /** Ends every WebSocket it accepted. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const ws of this.#wss.clients) ws.terminate();
      await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
    })();
    return this.#closing;
  }
}

/** A TCP server for MQTT whose connections pass the gate. */
export class TcpEntry {
  readonly server: net.Server;

  readonly #sockets = new Set<net.Socket>();
  #closing: Promise<void> | undefined;

  constructor(options: { accept: AcceptConnection; admit: Admit }) {
    this.server = net.createServer((socket) => {
      const admission = options.admit(socket.remoteAddress ?? '?', isOperatorHost(socket.remoteAddress));
      if (!admission.ok) {
        socket.destroy();
        return;
      }
      this.#sockets.add(socket);
      socket.setKeepAlive(true, TCP_KEEPALIVE_MS);
      socket.once('close', () => {
        this.#sockets.delete(socket);
        admission.release();
      });
      options.accept(socket, { source: admission.source, operator: admission.operator });
    });
  }

  /** Stops listening and ends every connection it accepted, logged in or not. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      // One that never logged in would otherwise hold the close until the broker's connect timeout.
      for (const socket of this.#sockets) socket.destroy();
      await closed;
    })();
    return this.#closing;
  }
}
