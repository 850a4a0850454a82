/**
 * Test helper, never imported by the product: what the attack suites send to a broker (raw MQTT
 * bytes over TCP or WebSocket, packets no well-behaved client library would write) and how they
 * weigh what the broker kept (the process's own memory after a full GC, or another process's RSS).
 */
import type { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import v8 from 'node:v8';
import vm from 'node:vm';
import mqttPacket from 'mqtt-packet';
import WebSocket, { createWebSocketStream } from 'ws';

/** The largest remaining length MQTT can declare (four 7-bit groups): 256 MB less one byte. */
export const MAX_REMAINING_LENGTH = 128 ** 4 - 1;

/** A fixed header (MQTT 3.1.1 §2.2): the first byte, then `length` in 7-bit groups. */
export function fixedHeader(first: number, length: number): Buffer {
  const bytes = [first];
  do {
    let b = length % 128;
    length = Math.floor(length / 128);
    if (length > 0) b |= 0x80;
    bytes.push(b);
  } while (length > 0);
  return Buffer.from(bytes);
}

/**
 * The first byte of a packet of type number `type` (0-15) as a client would send it: PUBREL,
 * SUBSCRIBE and UNSUBSCRIBE carry the flags 0010 (MQTT 3.1.1 §2.2.2), the others none.
 */
export const firstByte = (type: number): number => (type << 4) | ([6, 8, 10].includes(type) ? 0b0010 : 0);

export const encode = (packet: object): Buffer => mqttPacket.generate(packet as mqttPacket.Packet);

export function connectPacket(login: { username: string; password: string }, options: { clientId?: string; clean?: boolean } = {}): Buffer {
  return encode({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: options.clean ?? true,
    clientId: options.clientId ?? `attacker-${Math.random().toString(36).slice(2)}`,
    keepalive: 0,
    username: login.username,
    password: Buffer.from(login.password),
  });
}

/** A WebSocket upgrade the server answered with an HTTP status instead. */
export class UpgradeRefused extends Error {
  constructor(readonly status: number) {
    super(`upgrade refused with HTTP ${status}`);
  }
}

/** Largest write: one WebSocket frame well under every broker's frame limit here (64 KiB and more). */
const FRAME_BYTES = 32 * 1024;

/**
 * One raw connection to a broker at mqtt://host:port or ws://host:port/path. It parses what the
 * broker sends back and knows when the broker closed it. Its end goes on `cleanups`.
 */
export class RawMqtt {
  readonly received: mqttPacket.Packet[] = [];
  readonly closed: Promise<void>;
  isClosed = false;
  /** `transport` emits 'close' when the connection is gone: the socket, or the WebSocket under the stream. */
  private constructor(
    readonly stream: Duplex,
    transport: EventEmitter,
  ) {
    const parser = mqttPacket.parser();
    parser.on('packet', (p) => this.received.push(p));
    parser.on('error', () => stream.destroy());
    stream.on('data', (d: Buffer) => parser.parse(d));
    stream.on('error', () => {});
    this.closed = new Promise((resolve) =>
      transport.once('close', () => {
        this.isClosed = true;
        resolve();
      }),
    );
  }

  /**
   * Opens the connection: over WebSocket with `headers` (X-Forwarded-For, as a proxy sends it)
   * and, for wss://, trusting `ca`; from `localAddress` (a stranger, or a proxy, on loopback). A refused WebSocket upgrade
   * rejects with an UpgradeRefused.
   */
  static async open(url: string, cleanups: (() => unknown)[], options: { headers?: Record<string, string>; localAddress?: string; ca?: string } = {}): Promise<RawMqtt> {
    const u = new URL(url);
    let raw: RawMqtt;
    if (u.protocol === 'mqtt:') {
      const socket = net.connect({ port: Number(u.port), host: u.hostname, localAddress: options.localAddress, noDelay: true });
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
      raw = new RawMqtt(socket, socket);
    } else {
      const ws = new WebSocket(url, 'mqtt', { headers: options.headers, ca: options.ca, localAddress: options.localAddress });
      await new Promise<void>((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
        ws.once('unexpected-response', (req, res) => {
          req.destroy();
          reject(new UpgradeRefused(res.statusCode ?? 0));
        });
      });
      // The stream only ends when the WebSocket closes; the WebSocket says it is closed.
      raw = new RawMqtt(createWebSocketStream(ws), ws);
    }
    // Off the list once closed, so a test weighing memory does not count its own closed connections.
    const end = () => raw.stream.destroy();
    cleanups.push(end);
    void raw.closed.then(() => {
      const i = cleanups.indexOf(end);
      if (i >= 0) cleanups.splice(i, 1);
    });
    return raw;
  }

  /** Logs in and waits for the CONNACK; returns its return code. */
  async login(login: { username: string; password: string }, options: { clientId?: string; clean?: boolean } = {}): Promise<mqttPacket.IConnackPacket> {
    await this.send(connectPacket(login, options));
    return (await this.next('connack')) as mqttPacket.IConnackPacket;
  }

  /**
   * Writes bytes, in writes of at most FRAME_BYTES (over WebSocket one frame each, so the frame
   * limit never closes the connection before the MQTT limits are reached); false when the broker
   * has closed the connection (nothing more can go).
   */
  async send(bytes: Buffer): Promise<boolean> {
    for (let at = 0; at < bytes.length; at += FRAME_BYTES) {
      if (this.isClosed) return false;
      const piece = bytes.subarray(at, at + FRAME_BYTES);
      const flushed = new Promise<boolean>((resolve) => this.stream.write(piece, (err) => resolve(!err)));
      if (!(await Promise.race([flushed, this.closed.then(() => false)]))) return false;
    }
    return !this.isClosed;
  }

  /** Sends `total` filler bytes, stopping when the broker closes the connection. Returns how many went. */
  async sendFiller(total: number): Promise<number> {
    const filler = Buffer.alloc(FRAME_BYTES, 0x61);
    let sent = 0;
    while (sent < total) {
      const n = Math.min(FRAME_BYTES, total - sent);
      if (!(await this.send(filler.subarray(0, n)))) break;
      sent += n;
    }
    return sent;
  }

  /** The next packet of `cmd` the broker sends (consumed), or a rejection when the connection closes first. */
  async next(cmd: string): Promise<mqttPacket.Packet> {
    for (;;) {
      const i = this.received.findIndex((p) => p.cmd === cmd);
      if (i >= 0) return this.received.splice(i, 1)[0];
      if (this.isClosed) throw new Error(`connection closed before a ${cmd}`);
      await Promise.race([new Promise((r) => this.stream.once('data', r)), this.closed]);
    }
  }

  close(): void {
    this.stream.destroy();
  }
}

/**
 * `count` connections, each sending the header of a CONNECT that declares 256 MB and then up to
 * `filler` bytes of its body, one after the other and all left open (fewer bytes go when the
 * broker closes one first): the attack that held Mosquitto's WebSocket listener at 256 MiB.
 */
export async function unfinishedConnects(open: () => Promise<RawMqtt>, count: number, filler: number): Promise<{ raws: RawMqtt[]; sent: number }> {
  const raws: RawMqtt[] = [];
  let sent = 0;
  for (let c = 0; c < count; c++) {
    const raw = await open();
    raws.push(raw);
    await raw.send(fixedHeader(firstByte(1), MAX_REMAINING_LENGTH));
    sent += await raw.sendFiller(filler);
  }
  return { raws, sent };
}

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/**
 * Bytes this process holds after a full garbage collection: the JS heap plus Buffers and other
 * memory outside it. What an attack leaves behind in an in-process broker shows here exactly.
 */
export function retainedBytes(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.external;
}

/** Resident memory of a process in bytes (Linux /proc), e.g. of a mosquitto or dpow-web child. */
export function rssOf(pid: number): number {
  const kib = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!kib) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kib[1]) * 1024;
}

export const MiB = 1024 * 1024;
export const mib = (bytes: number) => `${(bytes / MiB).toFixed(1)} MiB`;
