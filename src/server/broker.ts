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
 *   and dropped: it never reaches a subscriber, and the publisher stays connected;
 * - a subscription is granted when it can deliver at least one topic the role may read, and
 *   every message is then checked against the role's read ACL by its own topic (a worker's `#`
 *   gets work, cancels, stats and heartbeats, never results). A subscription that can deliver
 *   nothing readable (a worker's `result/#`) gets the 0x80 failure code in SUBACK, where
 *   Mosquitto grants it and delivers nothing; the connection stays up either way.
 *
 * Every client is assumed hostile, so each connection is bounded by shape and volume
 * (BrokerLimits; docs/operations.md, Hardening): connections are capped per source and in total
 * before they are taken, and packet sizes are checked as the bytes arrive, on their way into
 * aedes' parser (both in mqtt-gate.ts); every publish, allowed or not, counts
 * against the rate and the payload limit; a connection refused too often is closed; QoS 2
 * publishes awaiting PUBREL, subscriptions and topic lengths are capped; and only the dispatcher
 * may keep a session across connections. What strangers send reaches the log clipped, and each
 * kind of refusal at most once per interval with a counted summary (log-limit.ts).
 *
 * WebSocket clients reach it on `wsPath` of a given http.Server (one origin with the app) or on
 * its own server; an optional plain TCP listener serves mqtt:// clients. Everything binds
 * 127.0.0.1 unless told otherwise.
 */
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { Aedes, type AedesOptions, type Client } from 'aedes';
import { WORK_TYPES } from '../dpow/codec.ts';
import { DEFAULT_CONNECTION_CAPS, type ConnectionLimit, type RefusalReason } from './connection-limit.ts';
import { type Logger, silentLogger } from './log.ts';
import { clip, LogLimiter } from './log-limit.ts';
import { MqttGate, type TcpEntry } from './mqtt-gate.ts';
import { DEFAULT_PACKET_LIMITS, packetLimitsFor, type PacketType } from './mqtt-packet-size.ts';
import { ResultPublishers } from './result-publishers.ts';
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
  /** Publishes the ACL refused (acknowledged and dropped). */
  refusedPublish: number;
  /** Subscriptions the ACL refused (0x80 in SUBACK). */
  refusedSubscribe: number;
  /**
   * Refusals by "<role>:<topic>" for the logs and tests; the first REFUSED_TOPICS_KEPT topics by
   * name, any later one under "<role>:(other)" and one too long under "<role>:(too long)", so a
   * flood of made-up topics cannot grow it.
   */
  refusedByTopic: Record<string, number>;
  /** Connections closed for publishing faster than the per-connection rate. */
  refusedRate: number;
  /** Connections closed for a payload over maxPayloadBytes. */
  refusedSize: number;
  /** Publishes (dropped) and subscriptions (0x80) refused for a topic over maxTopicBytes. */
  refusedTopicLength: number;
  /** Subscriptions refused (0x80) for going over maxSubscriptions. */
  refusedSubscriptionLimit: number;
  /** Connections closed for one QoS 2 publish more than maxInflight awaiting PUBREL. */
  refusedInflight: number;
  /** Connections closed for more than maxRefusals refused publishes and subscriptions. */
  closedForRefusals: number;
  /** Connections closed for a packet over its size limit, by packet type, before its body was read. */
  oversizePackets: Partial<Record<PacketType, number>>;
  /** Connections refused before they were taken: over their source's cap, or over the total. */
  refusedConnections: Record<RefusalReason, number>;
  /** Logins that asked for a persistent session (clean=false) and were given a clean one. */
  cleanSessionsForced: number;
}

/**
 * What one connection may send, each with a `dpow-web start` flag where an operator may want to
 * change it (docs/operations.md, Hardening). The server role (the dispatcher) is held to the
 * packet, payload and topic limits only.
 */
export interface BrokerLimits {
  /**
   * Publishes per second each worker or dashboard connection may make, sustained; `burst` more
   * may come at once. Every publish counts, allowed or refused. Over it the connection is closed
   * (MQTT 3.1.1 has no way to refuse a single publish).
   */
  publishRate?: { perSecond: number; burst: number };
  /** Largest PUBLISH payload; a bigger one closes the connection. */
  maxPayloadBytes?: number;
  /** Largest packet of every type but PUBLISH (CONNECT, SUBSCRIBE, …), whole; checked as it arrives. */
  maxPacketBytes?: number;
  /** Longest topic of a publish, or filter of a subscription, in bytes. */
  maxTopicBytes?: number;
  /** Subscriptions one worker or dashboard connection may hold; more are refused (0x80). */
  maxSubscriptions?: number;
  /** QoS 2 publishes one connection may have awaiting PUBREL; one more closes it. */
  maxInflight?: number;
  /** Refused publishes and subscriptions one worker or dashboard connection may make; one more closes it. */
  maxRefusals?: number;
  /**
   * Connections one source (IPv4 address, IPv6 /64) may hold open, and all sources together; one
   * more is refused before it is taken. The operator's own (loopback, not proxied) are exempt.
   */
  maxConnectionsPerSource?: number;
  maxConnections?: number;
}

export const DEFAULT_BROKER_LIMITS: Required<BrokerLimits> = {
  publishRate: { perSecond: 20, burst: 100 },
  ...DEFAULT_PACKET_LIMITS,
  // A worker subscribes at most 7 topics (heartbeat, statistics, work/ and cancel/ of each type, client/<address>).
  maxSubscriptions: 32,
  // DPoW publishes at QoS 0 and 1; QoS 2 is allowed but never needs a wide window.
  maxInflight: 16,
  maxRefusals: 10,
  maxConnectionsPerSource: DEFAULT_CONNECTION_CAPS.perSource,
  maxConnections: DEFAULT_CONNECTION_CAPS.total,
};

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

export interface Broker {
  aedes: Aedes;
  /** ws://host:port/path of the WebSocket listener. */
  wsUrl: string;
  /** mqtt://host:port when a TCP listener was asked for. */
  tcpUrl?: string;
  counters: BrokerCounters;
  /** Connections open now (logged in or not) and the sources they come from (read by /metrics). */
  connections: Pick<ConnectionLimit, 'open' | 'sources' | 'caps'>;
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
const REFUSALS = Symbol('dpow-refusals');
const SUBSCRIPTIONS = Symbol('dpow-subscriptions');
const FORCED_CLEAN = Symbol('dpow-forced-clean');
const CLOSING = Symbol('dpow-closing');
type TaggedClient = Client & {
  [ROLE]?: BrokerRole;
  [USER]?: string;
  [BUCKET]?: TokenBucket;
  /** Publishes and subscriptions refused on this connection so far. */
  [REFUSALS]?: number;
  /** Filters granted to this connection and not unsubscribed (at most maxSubscriptions). */
  [SUBSCRIPTIONS]?: Set<string>;
  /** It asked for a persistent session and was given a clean one. */
  [FORCED_CLEAN]?: boolean;
  /** It broke a limit and is being closed (packets already read may still arrive). */
  [CLOSING]?: boolean;
};

/** Result publishes remembered for publisherOf; the dispatcher asks within milliseconds. */
const PUBLISHERS_KEPT = 10_000;
/** Distinct topics refusedByTopic names; later ones are counted together. */
const REFUSED_TOPICS_KEPT = 100;
/** The counters of connections closed for breaking a limit, and the limit as the log names it. */
const CLOSED_FOR = {
  refusedRate: 'the publish rate',
  refusedSize: 'the payload size',
  refusedInflight: 'the QoS 2 window',
  closedForRefusals: 'refusals',
} as const;
/** What a refused publish carries on to nobody, so a parked QoS 2 one keeps no payload. */
const NO_PAYLOAD = Buffer.alloc(0);

// ------------------------------------------------------------------ broker

export async function startBroker(options: BrokerOptions): Promise<Broker> {
  const log = options.log ?? silentLogger;
  const logLimit = new LogLimiter(log, { intervalMs: options.logIntervalMs });
  const host = options.host ?? '127.0.0.1';
  const wsPath = options.wsPath ?? '/mqtt';
  const given = options.limits ?? {};
  const defaults = DEFAULT_BROKER_LIMITS;
  const limits: Required<BrokerLimits> = {
    publishRate: given.publishRate ?? defaults.publishRate,
    maxPayloadBytes: given.maxPayloadBytes ?? defaults.maxPayloadBytes,
    maxPacketBytes: given.maxPacketBytes ?? defaults.maxPacketBytes,
    maxTopicBytes: given.maxTopicBytes ?? defaults.maxTopicBytes,
    maxSubscriptions: given.maxSubscriptions ?? defaults.maxSubscriptions,
    maxInflight: given.maxInflight ?? defaults.maxInflight,
    maxRefusals: given.maxRefusals ?? defaults.maxRefusals,
    maxConnectionsPerSource: given.maxConnectionsPerSource ?? defaults.maxConnectionsPerSource,
    maxConnections: given.maxConnections ?? defaults.maxConnections,
  };
  const gate = new MqttGate({
    name: 'broker',
    packetLimits: packetLimitsFor(limits),
    connections: { perSource: limits.maxConnectionsPerSource, total: limits.maxConnections },
    logLimit,
  });
  const counters: BrokerCounters = {
    connections: 0,
    refusedLogins: 0,
    refusedPublish: 0,
    refusedSubscribe: 0,
    refusedByTopic: {},
    refusedRate: 0,
    refusedSize: 0,
    refusedTopicLength: 0,
    refusedSubscriptionLimit: 0,
    refusedInflight: 0,
    closedForRefusals: 0,
    // The gate's own, so they are counted once.
    oversizePackets: gate.oversizePackets,
    refusedConnections: gate.connections.counters.refused,
    cleanSessionsForced: 0,
  };
  const now = options.now ?? Date.now;
  const rate = limits.publishRate;
  const maxPayload = limits.maxPayloadBytes;
  /** True when the connection may publish once more (a token bucket per connection). */
  const withinRate = (client: TaggedClient): boolean => {
    const t = now();
    return (client[BUCKET] ??= new TokenBucket(rate.burst, rate.perSecond, t)).take(t);
  };
  const publishers = new ResultPublishers(PUBLISHERS_KEPT);
  const logins: Array<{ role: BrokerRole; creds: Credentials }> = [];
  for (const role of ['server', 'client', 'dashboard'] as const) {
    const creds = options.users[role];
    if (creds) logins.push({ role, creds });
  }
  const usernames = new Set(logins.map((l) => l.creds.username));
  if (usernames.size !== logins.length) throw new Error('broker users must have distinct usernames');

  const who = (client: TaggedClient | null) =>
    `${clip(client?.[USER] ?? '?')} (${client?.[ROLE] ?? 'anonymous'}, client id ${clip(client?.id ?? '?')})`;

  /**
   * Counts and logs a refused publish or subscription under `counter`. True when the connection
   * has now been refused more than maxRefusals times and must be closed (never the server role's).
   */
  const refuse = (
    kind: 'publish' | 'subscribe',
    counter: 'refusedPublish' | 'refusedSubscribe' | 'refusedTopicLength' | 'refusedSubscriptionLimit',
    client: TaggedClient | null,
    topic: string,
    why: string,
  ): boolean => {
    const role = client?.[ROLE] ?? 'anonymous';
    counters[counter]++;
    const named = `${role}:${counter === 'refusedTopicLength' ? '(too long)' : topic}`;
    const key = named in counters.refusedByTopic || Object.keys(counters.refusedByTopic).length < REFUSED_TOPICS_KEPT ? named : `${role}:(other)`;
    counters.refusedByTopic[key] = (counters.refusedByTopic[key] ?? 0) + 1;
    logLimit.warn(`broker: refused ${kind}`, `broker: refused ${kind} by ${who(client)} on ${clip(topic)}: ${why}`);
    if (!client || role === 'server') return false;
    client[REFUSALS] = (client[REFUSALS] ?? 0) + 1;
    if (client[REFUSALS] <= limits.maxRefusals) return false;
    closing('closedForRefusals', client, `more than ${limits.maxRefusals} refused publishes and subscriptions`);
    return true;
  };
  /**
   * Counts and logs a connection about to be closed for breaking a limit, once per connection:
   * packets it sent before the close may still come through and break it again.
   */
  const closing = (counter: keyof typeof CLOSED_FOR, client: TaggedClient | null, why: string) => {
    if (client?.[CLOSING]) return;
    if (client) client[CLOSING] = true;
    counters[counter]++;
    logLimit.warn(`broker: closed for ${CLOSED_FOR[counter]}`, `broker: closed ${who(client)}: ${why}`);
  };
  const tooLong = (topic: string) => Buffer.byteLength(topic) > limits.maxTopicBytes;

  const aedesOptions: AedesOptions = {
    maxInflightInbound: limits.maxInflight,
    // No DPoW worker or dashboard needs a session that outlives its connection (all connect
    // clean), while a persistent one would keep its subscriptions and a queue of every cancel
    // for as long as the broker runs. So every login but the dispatcher's gets a clean session,
    // decided by user name here, before the session is looked up.
    preConnect(client, packet, done) {
      if (!packet.clean && packet.username !== options.users.server.username) {
        packet.clean = true;
        (client as TaggedClient)[FORCED_CLEAN] = true;
      }
      done(null, true);
    },
    authenticate(client, username, password, done) {
      const match = logins.find((l) => l.creds.username === username);
      // Compare against something even for unknown users so timing says nothing about names.
      const ok = sameSecret(password, match?.creds.password ?? '\u0000no-such-user') && match !== undefined;
      if (!ok || !match) {
        counters.refusedLogins++;
        logLimit.warn('broker: refused login', `broker: refused login for user ${clip(username ?? '')} from client id ${clip(client.id)}`);
        const err = Object.assign(new Error('Bad username or password'), { returnCode: 4 as const });
        return done(err, false);
      }
      // aedes drops an older connection when a new one reuses its client id: never let one role
      // take over another role's session (a worker knocking the dispatcher off the broker).
      const holder = (aedes as unknown as { clients: Record<string, TaggedClient | undefined> }).clients[client.id];
      if (holder && holder[ROLE] !== undefined && holder[ROLE] !== match.role) {
        counters.refusedLogins++;
        logLimit.warn(
          'broker: refused login',
          `broker: refused ${clip(match.creds.username)} (${match.role}) reusing the client id of a ${holder[ROLE]} session`,
        );
        const err = Object.assign(new Error('Identifier rejected'), { returnCode: 2 as const });
        return done(err, false);
      }
      const tagged = client as TaggedClient;
      tagged[ROLE] = match.role;
      tagged[USER] = match.creds.username;
      if (tagged[FORCED_CLEAN]) counters.cleanSessionsForced++;
      done(null, true);
    },
    authorizePublish(client, packet, done) {
      const tagged = client as TaggedClient | null;
      const role = tagged?.[ROLE];
      // Size and rate first: every publish counts, allowed or not.
      const size = packet.payload?.length ?? 0;
      if (size > maxPayload) {
        closing('refusedSize', tagged, `payload of ${size} bytes on ${clip(packet.topic)}, over ${maxPayload}`);
        return done(new Error(`payload of ${size} bytes is too large`));
      }
      if (role !== 'server' && !withinRate(tagged!)) {
        closing('refusedRate', tagged, `more than ${rate.perSecond} publishes per second`);
        return done(new Error(`more than ${rate.perSecond} publishes per second`));
      }
      const long = tooLong(packet.topic);
      const allowed = !long && role !== undefined && ROLE_ACL[role].publish.some((f) => topicMatches(f, packet.topic));
      if (!allowed) {
        const refused = long
          ? refuse('publish', 'refusedTopicLength', tagged, packet.topic, 'topic too long')
          : refuse('publish', 'refusedPublish', tagged, packet.topic, 'not allowed for the role');
        if (refused) return done(new Error('too many refused publishes and subscriptions'));
        packet.topic = REFUSED_TOPIC;
        packet.retain = false;
        packet.payload = NO_PAYLOAD;
        return done(null);
      }
      // aedes keeps nothing: a retained job or result would replay stale work. The latest
      // statistics are kept here instead and handed to each new subscriber (see 'subscribe').
      packet.retain = false;
      if (role === 'server' && packet.topic === 'statistics') lastStatistics = Buffer.from(packet.payload);
      if (role !== 'server' && packet.topic.startsWith('result/')) publishers.remember(packet.topic, packet.payload, tagged!.id);
      done(null);
    },
    authorizeSubscribe(client, sub, done) {
      const tagged = client as TaggedClient;
      const role = tagged[ROLE];
      const granted = (tagged[SUBSCRIPTIONS] ??= new Set());
      const refusal = tooLong(sub.topic)
        ? (['refusedTopicLength', 'filter too long'] as const)
        : !(role !== undefined && ROLE_ACL[role].read.some((a) => filtersOverlap(a, sub.topic)))
          ? (['refusedSubscribe', 'nothing readable for the role'] as const)
          : role !== 'server' && granted.size >= limits.maxSubscriptions && !granted.has(sub.topic)
            ? (['refusedSubscriptionLimit', `over ${limits.maxSubscriptions} subscriptions`] as const)
            : undefined;
      if (refusal) {
        if (refuse('subscribe', refusal[0], tagged, sub.topic, refusal[1])) return done(new Error('too many refused publishes and subscriptions'), null);
        return done(null, null);
      }
      granted.add(sub.topic);
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
  aedes.on('unsubscribe', (filters, client) => {
    const granted = (client as TaggedClient | null)?.[SUBSCRIPTIONS];
    for (const filter of filters) granted?.delete(filter);
  });
  aedes.on('client', () => counters.connections++);
  aedes.on('clientError', (client, err) => {
    // aedes closes a connection over its QoS 2 window (maxInflightInbound) with this error.
    if (err.message.startsWith('maxInflightInbound exceeded')) {
      closing('refusedInflight', client as TaggedClient, `more than ${limits.maxInflight} QoS 2 publishes awaiting PUBREL`);
    }
    log.debug?.(`broker: client ${clip(client?.id ?? '?')}: ${clip(err.message)}`);
  });
  aedes.on('connectionError', (client, err) => log.debug?.(`broker: connection ${clip(client?.id ?? '?')}: ${clip(err.message)}`));

  /**
   * Hands a connection the gate let in to aedes, with its packet sizes checked (mqtt-gate.ts) on
   * the way into aedes' parser: every chunk the client reads goes to `_parser.parse` (aedes 1.2,
   * private), so the check sees exactly the bytes the parser would keep, and the reads and writes
   * of the connection stay aedes' own. A header over its limit destroys the connection instead.
   */
  const handle = (connection: Duplex, source: string, req?: http.IncomingMessage) => {
    const client = aedes.handle(connection, req) as Client & { _parser?: { parse(chunk: Buffer): number } };
    const parser = client._parser;
    // An aedes without it would take packets unchecked: every connection is refused instead, loudly.
    if (typeof parser?.parse !== 'function') {
      logLimit.error('broker: no parser', 'broker: refused a connection: this aedes has no client._parser.parse to check packet sizes at');
      connection.destroy();
      return;
    }
    const check = gate.packetCheck(source);
    const parse = parser.parse.bind(parser);
    parser.parse = (chunk) => {
      const err = check(chunk);
      if (!err) return parse(chunk);
      connection.destroy(err);
      return 0;
    };
  };

  // WebSocket: upgrades on wsPath are handed to the gate, which admits them.
  const webSocket = gate.webSocket(wsPath, handle);
  const handleUpgrade = webSocket.handleUpgrade;

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

  let tcp: TcpEntry | undefined;
  let tcpUrl: string | undefined;
  if (options.tcpPort !== undefined) {
    tcp = gate.tcpServer(handle);
    await listen(tcp.server, options.tcpPort, host);
    const a = tcp.server.address() as net.AddressInfo;
    tcpUrl = `mqtt://${urlHost(a.address)}:${a.port}`;
  }
  log.info(`broker: listening on ${wsUrl}${tcpUrl ? ` and ${tcpUrl}` : ''}`);

  let closed = false;
  return {
    aedes,
    wsUrl,
    tcpUrl,
    counters,
    connections: gate.connections,
    publisherOf: (topic, payload) => publishers.take(topic, payload),
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
      logLimit.close();
      await webSocket.close();
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      await tcp?.close();
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
