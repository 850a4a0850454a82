/**
 * What the embedded broker (broker.ts) lets each connection do: the DPoW roles, as the real
 * deployment enforced them with Mosquitto's ACL file (protocol-notes §3), and the bounds on what
 * one connection may send. Written as aedes' hooks; broker.ts owns the listeners.
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
 * Every client is assumed hostile (BrokerLimits; docs/operations.md, Hardening): every publish,
 * allowed or not, counts against the rate and the payload limit; a connection refused too often
 * is closed; QoS 2 publishes awaiting PUBREL, subscriptions and topic lengths are capped; only
 * the dispatcher may keep a session across connections; and failed logins are limited per source
 * (the gate's, mqtt-gate.ts), so a password cannot be guessed at the speed of new connections.
 * What strangers send reaches the log clipped, and each kind of refusal at most once per interval
 * with a counted summary (log-limit.ts).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Aedes, AedesOptions, AedesPublishPacket, AuthenticateError, Client, ConnectPacket, PublishPacket, Subscription } from 'aedes';
import { WORK_TYPES } from '../dpow/codec.ts';
import { DEFAULT_CONNECTION_CAPS, type RefusalReason } from './connection-limit.ts';
import { clip, type LogLimiter } from './log-limit.ts';
import type { Logger } from './log.ts';
import type { MqttPeer } from './mqtt-gate.ts';
import { DEFAULT_PACKET_LIMITS, type PacketType } from './mqtt-packet-size.ts';
import { RateLimiter } from './http/rate-limit.ts';
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
  /** Logins refused for their credentials (or for taking over another role's client id). */
  refusedLogins: number;
  /** Logins refused unchecked: their source had used its allowance of failed logins. */
  refusedLoginRate: number;
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
  /**
   * Failed logins one source (IPv4 address, IPv6 /64) may make a minute, all of them at once if
   * it likes; past that, its logins are refused before any password is compared until the
   * allowance refills. The public worker login and the operator's own connections are exempt.
   */
  maxFailedLoginsPerMinute?: number;
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
  // A person who mistypes a password retries a few times; a guesser wants thousands a minute.
  maxFailedLoginsPerMinute: 10,
};

/** The given limits, each absent one the default. */
export function brokerLimits(given: BrokerLimits = {}): Required<BrokerLimits> {
  const defaults = DEFAULT_BROKER_LIMITS;
  return {
    publishRate: given.publishRate ?? defaults.publishRate,
    maxPayloadBytes: given.maxPayloadBytes ?? defaults.maxPayloadBytes,
    maxPacketBytes: given.maxPacketBytes ?? defaults.maxPacketBytes,
    maxTopicBytes: given.maxTopicBytes ?? defaults.maxTopicBytes,
    maxSubscriptions: given.maxSubscriptions ?? defaults.maxSubscriptions,
    maxInflight: given.maxInflight ?? defaults.maxInflight,
    maxRefusals: given.maxRefusals ?? defaults.maxRefusals,
    maxConnectionsPerSource: given.maxConnectionsPerSource ?? defaults.maxConnectionsPerSource,
    maxConnections: given.maxConnections ?? defaults.maxConnections,
    maxFailedLoginsPerMinute: given.maxFailedLoginsPerMinute ?? defaults.maxFailedLoginsPerMinute,
  };
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

// ------------------------------------------------------------------ the rules

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
const PEER = Symbol('dpow-peer');
type TaggedClient = Client & {
  /** Where the connection comes from, as the gate admitted it (comesFrom). */
  [PEER]?: MqttPeer;
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
  refusedRate: 'the rate of publishes and subscriptions',
  refusedSize: 'the payload size',
  refusedInflight: 'the QoS 2 window',
  closedForRefusals: 'refusals',
} as const;
/** What a refused publish carries on to nobody, so a parked QoS 2 one keeps no payload. */
const NO_PAYLOAD = Buffer.alloc(0);

export interface BrokerRulesOptions {
  users: BrokerUsers;
  limits: Required<BrokerLimits>;
  /** The gate's counts of oversize packets and refused connections, so they are counted once. */
  gateCounters: Pick<BrokerCounters, 'oversizePackets' | 'refusedConnections'>;
  /** Clock for the publish rate. */
  now: () => number;
  log: Logger;
  logLimit: LogLimiter;
}

/**
 * The roles and the per-connection bounds as aedes' hooks (`hooks`) and listeners (`watch`),
 * with the counts of what they refused.
 */
export class BrokerRules {
  readonly counters: BrokerCounters;
  /** The options for Aedes.createBroker; its hooks are this object's. */
  readonly hooks: AedesOptions;

  readonly #users: BrokerUsers;
  readonly #limits: Required<BrokerLimits>;
  readonly #logins: Array<{ role: BrokerRole; creds: Credentials }> = [];
  readonly #publishers = new ResultPublishers(PUBLISHERS_KEPT);
  readonly #now: () => number;
  readonly #log: Logger;
  readonly #logLimit: LogLimiter;
  /** Each source's failed logins, a minute's allowance per source (the service keys' rule). */
  readonly #loginFailures: RateLimiter;
  /** aedes' connections by client id, once watch() is given the broker. */
  #clients: Record<string, TaggedClient | undefined> = {};
  /** The server's latest statistics, given to every subscriber at once as a retained message. */
  #lastStatistics: Buffer | undefined;

  constructor(options: BrokerRulesOptions) {
    this.#users = options.users;
    this.#limits = options.limits;
    this.#now = options.now;
    this.#log = options.log;
    this.#logLimit = options.logLimit;
    this.#loginFailures = new RateLimiter({ now: options.now });
    for (const role of ['server', 'client', 'dashboard'] as const) {
      const creds = options.users[role];
      if (creds) this.#logins.push({ role, creds });
    }
    const usernames = new Set(this.#logins.map((l) => l.creds.username));
    if (usernames.size !== this.#logins.length) throw new Error('broker users must have distinct usernames');
    this.counters = {
      connections: 0,
      refusedLogins: 0,
      refusedLoginRate: 0,
      refusedPublish: 0,
      refusedSubscribe: 0,
      refusedByTopic: {},
      refusedRate: 0,
      refusedSize: 0,
      refusedTopicLength: 0,
      refusedSubscriptionLimit: 0,
      refusedInflight: 0,
      closedForRefusals: 0,
      oversizePackets: options.gateCounters.oversizePackets,
      refusedConnections: options.gateCounters.refusedConnections,
      cleanSessionsForced: 0,
    };
    this.hooks = {
      maxInflightInbound: this.#limits.maxInflight,
      preConnect: (client, packet, done) => this.#preConnect(client, packet, done),
      authenticate: (client, username, password, done) => this.#authenticate(client, username, password, done),
      authorizePublish: (client, packet, done) => this.#authorizePublish(client, packet, done),
      authorizeSubscribe: (client, sub, done) => this.#authorizeSubscribe(client, sub, done),
      authorizeForward: (client, packet) => this.#authorizeForward(client, packet),
    };
  }

  /** Follows the broker's subscriptions, connections and errors, and reads its connections. */
  watch(aedes: Aedes): void {
    this.#clients = (aedes as unknown as { clients: Record<string, TaggedClient | undefined> }).clients;
    // MQTT retain for one topic, done here rather than by aedes' retained store: a retained
    // publish followed closely by another packet on the same connection was not delivered to
    // live subscribers (aedes 1.2), and heartbeats follow statistics every second.
    aedes.on('subscribe', (subs, client) => {
      const statistics = this.#lastStatistics;
      if (!statistics || !client) return;
      if (!subs.some((s) => (s.qos as number) !== 128 && topicMatches(s.topic, 'statistics'))) return;
      client.publish({ cmd: 'publish', topic: 'statistics', payload: statistics, qos: 0, retain: true, dup: false }, () => {});
    });
    aedes.on('unsubscribe', (filters, client) => {
      const granted = (client as TaggedClient | null)?.[SUBSCRIPTIONS];
      for (const filter of filters) granted?.delete(filter);
    });
    aedes.on('client', () => this.counters.connections++);
    aedes.on('clientError', (client, err) => {
      // aedes closes a connection over its QoS 2 window (maxInflightInbound) with this error.
      if (err.message.startsWith('maxInflightInbound exceeded')) {
        this.#closing('refusedInflight', client as TaggedClient, `more than ${this.#limits.maxInflight} QoS 2 publishes awaiting PUBREL`);
      }
      this.#log.debug?.(`broker: client ${clip(client?.id ?? '?')}: ${clip(err.message)}`);
    });
    aedes.on('connectionError', (client, err) => this.#log.debug?.(`broker: connection ${clip(client?.id ?? '?')}: ${clip(err.message)}`));
  }

  /** Tells the rules where a connection the gate let in comes from, before aedes reads its CONNECT. */
  comesFrom(client: Client, peer: MqttPeer): void {
    (client as TaggedClient)[PEER] = peer;
  }

  /** The client id that published this result (topic and payload as delivered); each publish answers once. */
  publisherOf(topic: string, payload: Buffer | string): string | undefined {
    return this.#publishers.take(topic, payload);
  }

  /** Connections logged in now, by role. */
  connectedByRole(): Record<BrokerRole, number> {
    const n: Record<BrokerRole, number> = { server: 0, client: 0, dashboard: 0 };
    for (const c of Object.values(this.#clients)) {
      const role = c?.[ROLE];
      if (role) n[role]++;
    }
    return n;
  }

  // No DPoW worker or dashboard needs a session that outlives its connection (all connect
  // clean), while a persistent one would keep its subscriptions and a queue of every cancel
  // for as long as the broker runs. So every login but the dispatcher's gets a clean session,
  // decided by user name here, before the session is looked up.
  #preConnect(client: Client, packet: ConnectPacket, done: (error: Error | null, success: boolean) => void): void {
    if (!packet.clean && packet.username !== this.#users.server.username) {
      packet.clean = true;
      (client as TaggedClient)[FORCED_CLEAN] = true;
    }
    done(null, true);
  }

  #authenticate(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
    done: (error: AuthenticateError | null, success: boolean | null) => void,
  ): void {
    const tagged = client as TaggedClient;
    // Every connection is tagged by the gate; one that somehow was not is a stranger.
    const peer = tagged[PEER] ?? { source: '(unknown)', operator: false };
    const match = this.#logins.find((l) => l.creds.username === username);
    // The worker login's password is served to every page (/config.json), so checking it tells a
    // guesser nothing, and a volunteer sharing an address with one must still get in: it is
    // checked whatever the source's allowance. Any other login from a source that has used its
    // allowance is refused before a password is compared, the right one too.
    if (match?.role !== 'client' && !peer.operator) {
      const allowance = this.#loginFailures.peek(peer.source, this.#limits.maxFailedLoginsPerMinute);
      if (!allowance.ok) {
        this.counters.refusedLoginRate++;
        this.#logLimit.warn(
          'broker: refused login (failed logins)',
          `broker: refused login for user ${clip(username ?? '')} from ${clip(peer.source)} unchecked: ` +
            `${this.#limits.maxFailedLoginsPerMinute} failed logins from it within a minute; the next may be tried in ${Math.ceil(allowance.retryAfterMs / 1000)} s`,
        );
        const err = Object.assign(new Error('Not authorized'), { returnCode: 5 as const });
        return done(err, false);
      }
    }
    // Compare against something even for unknown users so timing says nothing about names.
    const ok = sameSecret(password, match?.creds.password ?? '\u0000no-such-user') && match !== undefined;
    if (!ok || !match) {
      this.#failedLogin(peer);
      this.#logLimit.warn('broker: refused login', `broker: refused login for user ${clip(username ?? '')} from ${clip(peer.source)}, client id ${clip(client.id)}`);
      const err = Object.assign(new Error('Bad username or password'), { returnCode: 4 as const });
      return done(err, false);
    }
    // aedes drops an older connection when a new one reuses its client id: never let one role
    // take over another role's session (a worker knocking the dispatcher off the broker).
    const holder = this.#clients[client.id];
    if (holder && holder[ROLE] !== undefined && holder[ROLE] !== match.role) {
      this.#failedLogin(peer);
      this.#logLimit.warn(
        'broker: refused login',
        `broker: refused ${clip(match.creds.username)} (${match.role}) from ${clip(peer.source)} reusing the client id of a ${holder[ROLE]} session`,
      );
      const err = Object.assign(new Error('Identifier rejected'), { returnCode: 2 as const });
      return done(err, false);
    }
    tagged[ROLE] = match.role;
    tagged[USER] = match.creds.username;
    if (tagged[FORCED_CLEAN]) this.counters.cleanSessionsForced++;
    done(null, true);
  }

  /** Counts a refused login, and takes it from its source's allowance (never the operator's). */
  #failedLogin(peer: MqttPeer): void {
    this.counters.refusedLogins++;
    if (!peer.operator) this.#loginFailures.take(peer.source, this.#limits.maxFailedLoginsPerMinute);
  }

  #authorizePublish(client: Client | null, packet: PublishPacket, done: (error?: Error | null) => void): void {
    const tagged = client as TaggedClient | null;
    const role = tagged?.[ROLE];
    const { publishRate: rate, maxPayloadBytes: maxPayload } = this.#limits;
    // Size and rate first: every publish counts, allowed or not.
    const size = packet.payload?.length ?? 0;
    if (size > maxPayload) {
      this.#closing('refusedSize', tagged, `payload of ${size} bytes on ${clip(packet.topic)}, over ${maxPayload}`);
      return done(new Error(`payload of ${size} bytes is too large`));
    }
    if (role !== 'server' && !this.#withinRate(tagged!)) {
      this.#closing('refusedRate', tagged, `more than ${rate.perSecond} publishes per second`);
      return done(new Error(`more than ${rate.perSecond} publishes per second`));
    }
    const long = this.#tooLong(packet.topic);
    const allowed = !long && role !== undefined && ROLE_ACL[role].publish.some((f) => topicMatches(f, packet.topic));
    if (!allowed) {
      const refused = long
        ? this.#refuse('publish', 'refusedTopicLength', tagged, packet.topic, 'topic too long')
        : this.#refuse('publish', 'refusedPublish', tagged, packet.topic, 'not allowed for the role');
      if (refused) return done(new Error('too many refused publishes and subscriptions'));
      packet.topic = REFUSED_TOPIC;
      packet.retain = false;
      packet.payload = NO_PAYLOAD;
      return done(null);
    }
    // aedes keeps nothing: a retained job or result would replay stale work. The latest
    // statistics are kept here instead and handed to each new subscriber (see watch()).
    packet.retain = false;
    if (role === 'server' && packet.topic === 'statistics') this.#lastStatistics = Buffer.from(packet.payload);
    if (role !== 'server' && packet.topic.startsWith('result/')) this.#publishers.remember(packet.topic, packet.payload, tagged!.id);
    done(null);
  }

  #authorizeSubscribe(client: Client, sub: Subscription, done: (error: Error | null, subscription?: Subscription | null) => void): void {
    const tagged = client as TaggedClient;
    const role = tagged[ROLE];
    // A subscription costs a token too: each one to statistics is answered with the whole
    // retained payload, so a stream of tiny SUBSCRIBEs would otherwise be amplified unbounded.
    if (role !== 'server' && !this.#withinRate(tagged)) {
      this.#closing('refusedRate', tagged, `more than ${this.#limits.publishRate.perSecond} publishes and subscriptions per second`);
      return done(new Error('too many subscriptions per second'), null);
    }
    const max = this.#limits.maxSubscriptions;
    const granted = (tagged[SUBSCRIPTIONS] ??= new Set());
    const refusal = this.#tooLong(sub.topic)
      ? (['refusedTopicLength', 'filter too long'] as const)
      : !(role !== undefined && ROLE_ACL[role].read.some((a) => filtersOverlap(a, sub.topic)))
        ? (['refusedSubscribe', 'nothing readable for the role'] as const)
        : role !== 'server' && granted.size >= max && !granted.has(sub.topic)
          ? (['refusedSubscriptionLimit', `over ${max} subscriptions`] as const)
          : undefined;
    if (refusal) {
      if (this.#refuse('subscribe', refusal[0], tagged, sub.topic, refusal[1])) return done(new Error('too many refused publishes and subscriptions'), null);
      return done(null, null);
    }
    granted.add(sub.topic);
    done(null, sub);
  }

  // Per message: a granted wildcard delivers only the topics the subscriber's role may read.
  #authorizeForward(client: Client, packet: AedesPublishPacket): AedesPublishPacket | null {
    const role = (client as TaggedClient)[ROLE];
    if (role === undefined || !ROLE_ACL[role].read.some((a) => topicMatches(a, packet.topic))) return null;
    return packet;
  }

  /** True when the connection may publish once more (a token bucket per connection). */
  #withinRate(client: TaggedClient): boolean {
    const t = this.#now();
    const rate = this.#limits.publishRate;
    return (client[BUCKET] ??= new TokenBucket(rate.burst, rate.perSecond, t)).take(t);
  }

  #tooLong(topic: string): boolean {
    return Buffer.byteLength(topic) > this.#limits.maxTopicBytes;
  }

  #who(client: TaggedClient | null): string {
    return `${clip(client?.[USER] ?? '?')} (${client?.[ROLE] ?? 'anonymous'}, client id ${clip(client?.id ?? '?')})`;
  }

  /**
   * Counts and logs a refused publish or subscription under `counter`. True when the connection
   * has now been refused more than maxRefusals times and must be closed (never the server role's).
   */
  #refuse(
    kind: 'publish' | 'subscribe',
    counter: 'refusedPublish' | 'refusedSubscribe' | 'refusedTopicLength' | 'refusedSubscriptionLimit',
    client: TaggedClient | null,
    topic: string,
    why: string,
  ): boolean {
    const role = client?.[ROLE] ?? 'anonymous';
    const counters = this.counters;
    counters[counter]++;
    const named = `${role}:${counter === 'refusedTopicLength' ? '(too long)' : topic}`;
    const key = named in counters.refusedByTopic || Object.keys(counters.refusedByTopic).length < REFUSED_TOPICS_KEPT ? named : `${role}:(other)`;
    counters.refusedByTopic[key] = (counters.refusedByTopic[key] ?? 0) + 1;
    this.#logLimit.warn(`broker: refused ${kind}`, `broker: refused ${kind} by ${this.#who(client)} on ${clip(topic)}: ${why}`);
    if (!client || role === 'server') return false;
    client[REFUSALS] = (client[REFUSALS] ?? 0) + 1;
    const max = this.#limits.maxRefusals;
    if (client[REFUSALS] <= max) return false;
    this.#closing('closedForRefusals', client, `more than ${max} refused publishes and subscriptions`);
    return true;
  }

  /**
   * Counts and logs a connection about to be closed for breaking a limit, once per connection:
   * packets it sent before the close may still come through and break it again.
   */
  #closing(counter: keyof typeof CLOSED_FOR, client: TaggedClient | null, why: string): void {
    if (client?.[CLOSING]) return;
    if (client) client[CLOSING] = true;
    this.counters[counter]++;
    this.#logLimit.warn(`broker: closed for ${CLOSED_FOR[counter]}`, `broker: closed ${this.#who(client)}: ${why}`);
  }
}
