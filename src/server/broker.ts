/**
 * The embedded MQTT broker (aedes, MQTT 3.1.1) with the DPoW roles enforced, as the real
 * deployment did with Mosquitto's ACL file (protocol-notes §3):
 *
 *   server    publishes heartbeat, statistics, work/<type>, cancel/<type>, client/<address>;
 *             reads result/<type>
 *   client    publishes only result/<type>; reads heartbeat, statistics, work/, cancel/, client/
 *   dashboard reads everything, publishes nothing
 *
 * As Mosquitto does with the original ACL (measured, see src/testkit/broker-acl.ts):
 * - a refused publish is counted, logged with the user and topic, acknowledged (PUBACK at QoS 1)
 *   and dropped: it never reaches a subscriber, and the publisher stays connected (a payload
 *   over MAX_PAYLOAD_BYTES still closes the connection);
 * - a subscription is granted when it can deliver at least one topic the role may read, and
 *   every message is then checked against the role's read ACL by its own topic (a worker's `#`
 *   gets work, cancels, stats and heartbeats, never results). A subscription that can deliver
 *   nothing readable (a worker's `result/#`) gets the 0x80 failure code in SUBACK, where
 *   Mosquitto grants it and delivers nothing; the connection stays up either way.
 * WebSocket clients reach it on `wsPath` of a given http.Server (one origin with the app) or on
 * its own server; an optional plain TCP listener serves mqtt:// clients. Everything binds
 * 127.0.0.1 unless told otherwise.
 */
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { Aedes, type AedesOptions, type Client } from 'aedes';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { MAX_PAYLOAD_BYTES, WORK_TYPES } from '../dpow/codec.ts';
import { type Logger, silentLogger } from './log.ts';
import { TokenBucket } from './token-bucket.ts';

export type BrokerRole = 'server' | 'client' | 'dashboard';

export interface Credentials {
  username: string;
  password: string;
}

export interface BrokerUsers {
  server: Credentials;
  client: Credentials;
  dashboard?: Credentials;
}

/** Topic filters each role may publish to / read from (MQTT wildcard syntax). */
export const ROLE_ACL: Record<BrokerRole, { publish: readonly string[]; read: readonly string[] }> = {
  server: {
    publish: [
      'heartbeat',
      'statistics',
      ...WORK_TYPES.map((t) => `work/${t}`),
      ...WORK_TYPES.map((t) => `cancel/${t}`),
      'client/+',
    ],
    read: ['result/+'],
  },
  client: {
    publish: WORK_TYPES.map((t) => `result/${t}`),
    // `#` under work/ and cancel/ because the official client subscribes `work/#` and
    // `cancel/#`; only the server can publish there, so nothing else can be read through them.
    read: ['heartbeat', 'statistics', 'work/#', 'cancel/#', 'client/#'],
  },
  dashboard: { publish: [], read: ['#'] },
};

/** The public worker login of the real DPoW broker. */
export const DEFAULT_CLIENT_CREDENTIALS: Credentials = { username: 'client', password: 'client' };

/** Users for an embedded broker: the public client login and a fresh random server password. */
export function defaultBrokerUsers(overrides: Partial<BrokerUsers> = {}): BrokerUsers {
  return {
    server: overrides.server ?? { username: 'server', password: randomBytes(18).toString('base64url') },
    client: overrides.client ?? { ...DEFAULT_CLIENT_CREDENTIALS },
    ...(overrides.dashboard ? { dashboard: overrides.dashboard } : {}),
  };
}

export interface BrokerCounters {
  connections: number;
  refusedLogins: number;
  refusedPublish: number;
  refusedSubscribe: number;
  /** Refusals by "<role>:<topic>" for the logs and tests. */
  refusedByTopic: Record<string, number>;
  /** Publishes refused (and their connections closed) for going over the per-connection rate. */
  refusedRate: number;
  /** Publishes refused for a payload over maxPayloadBytes. */
  refusedSize: number;
}

export interface BrokerOptions {
  users: BrokerUsers;
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
  /**
   * Publishes per second each worker or dashboard connection may make, sustained; `burst` more
   * may come at once. Over it the connection is closed (MQTT 3.1.1 has no way to refuse a single
   * publish). The server role is not limited. Default 20/s, burst 100.
   */
  publishRate?: { perSecond: number; burst: number };
  /** Largest payload accepted from anyone. Default MAX_PAYLOAD_BYTES (64 KiB). */
  maxPayloadBytes?: number;
  /** Clock for the publish rate (tests). */
  now?: () => number;
  log?: Logger;
}

export interface Broker {
  aedes: Aedes;
  /** ws://host:port/path of the WebSocket listener. */
  wsUrl: string;
  /** mqtt://host:port when a TCP listener was asked for. */
  tcpUrl?: string;
  counters: BrokerCounters;
  /**
   * The MQTT client id that published this result (topic and payload as delivered), for the
   * dispatcher's per-connection containment. Each publish answers once; undefined when unknown.
   */
  publisherOf(topic: string, payload: Buffer | string): string | undefined;
  /** Connections logged in now, by role (read by /metrics). */
  connectedByRole(): Record<BrokerRole, number>;
  /** Handles an upgrade for `wsPath`; false (socket untouched) for any other path. */
  handleUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean;
  close(): Promise<void>;
}

// ------------------------------------------------------------------ topic matching

/** True when a concrete topic matches an MQTT filter. */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  // `#` and `+` at the first level do not match topics starting with `$` (MQTT-4.7.2-1).
  if (topic.startsWith('$') && (f[0] === '#' || f[0] === '+')) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

/** True when some concrete topic matches both filters (a subscription could deliver it). */
export function filtersOverlap(a: string, b: string): boolean {
  const x = a.split('/');
  const y = b.split('/');
  // A wildcard first level never matches a `$` topic (MQTT-4.7.2-1).
  const dollar = (p: string[], q: string[]) => p[0].startsWith('$') && (q[0] === '#' || q[0] === '+');
  if (dollar(x, y) || dollar(y, x)) return false;
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if (x[i] === '#' || y[i] === '#') return true;
    if (i >= x.length || i >= y.length) {
      // `p/#` also matches `p`: the longer one may end in `#` right after the shorter one.
      const longer = x.length > y.length ? x : y;
      return longer.length === i + 1 && longer[i] === '#';
    }
    if (x[i] !== '+' && y[i] !== '+' && x[i] !== y[i]) return false;
  }
  return true;
}

// ------------------------------------------------------------------ credentials

function digest(text: string | Buffer): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Constant-time comparison; hashing first makes the lengths equal. */
function sameSecret(given: Buffer | undefined, expected: string): boolean {
  if (!given) return false;
  return timingSafeEqual(digest(given), digest(expected));
}

/**
 * Where a refused publish goes: a `$` topic, which no wildcard matches and no role may read, so
 * the message is acknowledged as Mosquitto does and reaches nobody.
 */
const REFUSED_TOPIC = '$dpow/refused';

const ROLE = Symbol('dpow-role');
const USER = Symbol('dpow-user');
const BUCKET = Symbol('dpow-publish-bucket');
type TaggedClient = Client & { [ROLE]?: BrokerRole; [USER]?: string; [BUCKET]?: TokenBucket };

/** Result publishes remembered for publisherOf; the dispatcher asks within milliseconds. */
const PUBLISHERS_KEPT = 10_000;

const publishKey = (topic: string, payload: Buffer | string) =>
  `${topic}\n${typeof payload === 'string' ? payload : payload.toString('latin1')}`;

// ------------------------------------------------------------------ broker

export async function startBroker(options: BrokerOptions): Promise<Broker> {
  const log = options.log ?? silentLogger;
  const host = options.host ?? '127.0.0.1';
  const wsPath = options.wsPath ?? '/mqtt';
  const counters: BrokerCounters = {
    connections: 0,
    refusedLogins: 0,
    refusedPublish: 0,
    refusedSubscribe: 0,
    refusedByTopic: {},
    refusedRate: 0,
    refusedSize: 0,
  };
  const now = options.now ?? Date.now;
  const rate = options.publishRate ?? { perSecond: 20, burst: 100 };
  const maxPayload = options.maxPayloadBytes ?? MAX_PAYLOAD_BYTES;
  /** True when the connection may publish once more (a token bucket per connection). */
  const withinRate = (client: TaggedClient): boolean => {
    const t = now();
    return (client[BUCKET] ??= new TokenBucket(rate.burst, rate.perSecond, t)).take(t);
  };
  // Who published each recent result, oldest first; a key may hold several ids in order.
  const publishers = new Map<string, string[]>();
  let publishersHeld = 0;
  const rememberPublisher = (topic: string, payload: Buffer | string, id: string) => {
    const key = publishKey(topic, payload);
    const ids = publishers.get(key);
    if (ids) ids.push(id);
    else publishers.set(key, [id]);
    if (++publishersHeld > PUBLISHERS_KEPT) {
      const [oldest, list] = publishers.entries().next().value!;
      publishersHeld -= list.length;
      publishers.delete(oldest);
    }
  };
  const publisherOf = (topic: string, payload: Buffer | string): string | undefined => {
    const key = publishKey(topic, payload);
    const ids = publishers.get(key);
    if (!ids) return undefined;
    const id = ids.shift();
    publishersHeld--;
    if (ids.length === 0) publishers.delete(key);
    return id;
  };
  const logins: Array<{ role: BrokerRole; creds: Credentials }> = [];
  for (const role of ['server', 'client', 'dashboard'] as const) {
    const creds = options.users[role];
    if (creds) logins.push({ role, creds });
  }
  const usernames = new Set(logins.map((l) => l.creds.username));
  if (usernames.size !== logins.length) throw new Error('broker users must have distinct usernames');

  const refuse = (kind: 'publish' | 'subscribe', client: TaggedClient | null, topic: string) => {
    const role = client?.[ROLE] ?? 'anonymous';
    if (kind === 'publish') counters.refusedPublish++;
    else counters.refusedSubscribe++;
    const key = `${role}:${topic}`;
    counters.refusedByTopic[key] = (counters.refusedByTopic[key] ?? 0) + 1;
    log.warn(`broker: refused ${kind} by ${client?.[USER] ?? '?'} (${role}) on "${topic}" (client id ${client?.id ?? '?'})`);
  };

  const aedesOptions: AedesOptions = {
    authenticate(client, username, password, done) {
      const match = logins.find((l) => l.creds.username === username);
      // Compare against something even for unknown users so timing says nothing about names.
      const ok = sameSecret(password, match?.creds.password ?? '\u0000no-such-user') && match !== undefined;
      if (!ok || !match) {
        counters.refusedLogins++;
        log.warn(`broker: refused login for user "${String(username ?? '')}" from client id ${client.id}`);
        const err = Object.assign(new Error('Bad username or password'), { returnCode: 4 as const });
        return done(err, false);
      }
      // aedes drops an older connection when a new one reuses its client id: never let one role
      // take over another role's session (a worker knocking the dispatcher off the broker).
      const holder = (aedes as unknown as { clients: Record<string, TaggedClient | undefined> }).clients[client.id];
      if (holder && holder[ROLE] !== undefined && holder[ROLE] !== match.role) {
        counters.refusedLogins++;
        log.warn(`broker: refused ${match.creds.username} (${match.role}) reusing the client id of a ${holder[ROLE]} session`);
        const err = Object.assign(new Error('Identifier rejected'), { returnCode: 2 as const });
        return done(err, false);
      }
      const tagged = client as TaggedClient;
      tagged[ROLE] = match.role;
      tagged[USER] = match.creds.username;
      done(null, true);
    },
    authorizePublish(client, packet, done) {
      const tagged = client as TaggedClient | null;
      const role = tagged?.[ROLE];
      const allowed = role !== undefined && ROLE_ACL[role].publish.some((f) => topicMatches(f, packet.topic));
      if (!allowed) {
        refuse('publish', tagged, packet.topic);
        packet.topic = REFUSED_TOPIC;
        packet.retain = false;
        return done(null);
      }
      const size = packet.payload?.length ?? 0;
      if (size > maxPayload) {
        counters.refusedSize++;
        refuse('publish', tagged, packet.topic);
        return done(new Error(`payload of ${size} bytes is too large`));
      }
      if (role !== 'server' && !withinRate(tagged!)) {
        counters.refusedRate++;
        refuse('publish', tagged, packet.topic);
        return done(new Error(`more than ${rate.perSecond} publishes per second`));
      }
      // aedes keeps nothing: a retained job or result would replay stale work. The latest
      // statistics are kept here instead and handed to each new subscriber (see 'subscribe').
      packet.retain = false;
      if (role === 'server' && packet.topic === 'statistics') lastStatistics = Buffer.from(packet.payload);
      if (role !== 'server' && packet.topic.startsWith('result/')) rememberPublisher(packet.topic, packet.payload, tagged!.id);
      done(null);
    },
    authorizeSubscribe(client, sub, done) {
      const role = (client as TaggedClient)[ROLE];
      const allowed = role !== undefined && ROLE_ACL[role].read.some((a) => filtersOverlap(a, sub.topic));
      if (!allowed) {
        refuse('subscribe', client as TaggedClient, sub.topic);
        return done(null, null);
      }
      done(null, sub);
    },
    // Per message: a granted wildcard delivers only the topics the subscriber's role may read.
    authorizeForward(client, packet) {
      const role = (client as TaggedClient)[ROLE];
      if (role === undefined || !ROLE_ACL[role].read.some((a) => topicMatches(a, packet.topic))) return null;
      return packet;
    },
  };
  /** The server's latest statistics, given to every subscriber at once as a retained message. */
  let lastStatistics: Buffer | undefined;
  const aedes = await Aedes.createBroker(aedesOptions);
  // MQTT retain for one topic, done here rather than by aedes' retained store: a retained
  // publish followed closely by another packet on the same connection was not delivered to
  // live subscribers (aedes 1.2), and heartbeats follow statistics every second.
  aedes.on('subscribe', (subs, client) => {
    if (!lastStatistics || !client) return;
    if (!subs.some((s) => (s.qos as number) !== 128 && topicMatches(s.topic, 'statistics'))) return;
    client.publish({ cmd: 'publish', topic: 'statistics', payload: lastStatistics, qos: 0, retain: true, dup: false }, () => {});
  });
  aedes.on('client', () => counters.connections++);
  aedes.on('clientError', (client, err) => log.debug?.(`broker: client ${client?.id ?? '?'}: ${err.message}`));
  aedes.on('connectionError', (client, err) => log.debug?.(`broker: connection ${client?.id ?? '?'}: ${err.message}`));

  // WebSocket: one WebSocketServer without its own port; upgrades are handed to it.
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_PAYLOAD_BYTES + 1024 });
  wss.on('connection', (socket, req) => {
    const stream = createWebSocketStream(socket);
    stream.on('error', () => stream.destroy());
    aedes.handle(stream, req);
  });
  const handleUpgrade = (req: http.IncomingMessage, socket: Duplex, head: Buffer): boolean => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== wsPath && path !== `${wsPath}/`) return false;
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
    return true;
  };

  let ownServer: http.Server | undefined;
  let wsServer: http.Server;
  if (options.server) {
    wsServer = options.server;
    // Other paths (the service API's WebSocket) are left to the server's other listeners; when
    // there are none, an unknown path is closed rather than left hanging.
    wsServer.on('upgrade', (req, socket, head) => {
      if (!handleUpgrade(req, socket, head) && wsServer.listenerCount('upgrade') === 1) socket.destroy();
    });
  } else {
    ownServer = http.createServer((_req, res) => {
      res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket only\n');
    });
    ownServer.on('upgrade', (req, socket, head) => {
      if (!handleUpgrade(req, socket, head)) socket.destroy();
    });
    await listen(ownServer, options.wsPort ?? 0, host);
    wsServer = ownServer;
  }
  if (!wsServer.listening) await new Promise<void>((resolve) => wsServer.once('listening', () => resolve()));
  const wsAddress = wsServer.address() as net.AddressInfo;
  const wsUrl = `ws://${urlHost(wsAddress.address)}:${wsAddress.port}${wsPath}`;

  let tcpServer: net.Server | undefined;
  let tcpUrl: string | undefined;
  if (options.tcpPort !== undefined) {
    tcpServer = net.createServer((socket) => aedes.handle(socket));
    await listen(tcpServer, options.tcpPort, host);
    const a = tcpServer.address() as net.AddressInfo;
    tcpUrl = `mqtt://${urlHost(a.address)}:${a.port}`;
  }
  log.info(`broker: listening on ${wsUrl}${tcpUrl ? ` and ${tcpUrl}` : ''}`);

  let closed = false;
  return {
    aedes,
    wsUrl,
    tcpUrl,
    counters,
    publisherOf,
    connectedByRole() {
      const n: Record<BrokerRole, number> = { server: 0, client: 0, dashboard: 0 };
      for (const c of Object.values((aedes as unknown as { clients: Record<string, TaggedClient> }).clients)) {
        const role = c[ROLE];
        if (role) n[role]++;
      }
      return n;
    },
    handleUpgrade,
    async close() {
      if (closed) return;
      closed = true;
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      if (tcpServer) await closeServer(tcpServer);
      if (ownServer) {
        ownServer.closeAllConnections();
        await closeServer(ownServer);
      }
    },
  };
}

function urlHost(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}

function listen(server: net.Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
