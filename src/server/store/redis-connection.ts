/**
 * How the Redis store reaches its server: one Redis at `redis://host:port/db`, or the primary
 * of a group that Redis Sentinel watches, at
 *
 *   redis+sentinel://host:port[,host:port…]/<master name>[/<db>][?replicas=N&wait=MS]
 *
 * (every sentinel that may answer is named; at least one must). With Sentinel, node-redis asks
 * the sentinels for the primary and follows a promotion by itself (`createSentinel`); a command
 * that meets no primary waits for the new one, and the store gives it `commandTimeoutMs` before
 * it fails the call (the dispatcher then holds the result, as for any outage).
 *
 * Writes that pay or elect (an accept, a credit, a snapshot, a service, the singleton lease) are
 * `replicated`: they count as done only once `replicas` replicas (default 1 with Sentinel, 0 for
 * one server) have acknowledged them within `wait` ms (default 1000), by Redis's WAIT. WAIT
 * covers the writes of its own connection only, and node-redis re-sends a command on the new
 * primary after a failover, so all commands go over one connection (other calls' commands
 * interleave, which only makes a WAIT cover more), and the write, the WAIT and a CLIENT INFO
 * before and after are sent one by one: when the connection or the server changed in between,
 * the write is not confirmed, however many replicas WAIT counted.
 *
 * Credentials come from configuration (`DPOW_REDIS_*`, `DPOW_SENTINEL_*` in the environment of
 * the command, see store-option.ts), never from the Sentinel URL, so no log line or process list
 * shows them; a password written into a redis:// URL is blanked in every description of it.
 */
import { createClient, createSentinel } from 'redis';

export interface RedisCredentials {
  username?: string;
  password?: string;
}

interface Endpoint {
  host: string;
  port: number;
}

export type RedisTarget =
  | { kind: 'server'; url: string; replicas: number; waitMs: number }
  | { kind: 'sentinel'; sentinels: Endpoint[]; masterName: string; db: number; replicas: number; waitMs: number };

/** How long a replicated write waits for its replicas by default (WAIT's timeout). */
export const DEFAULT_WAIT_MS = 1000;
const MAX_WAIT_MS = 60_000;
const MAX_DB = 15;

const SERVER_URL = /^rediss?:\/\/[^/\s?#]+(\/\d+)?(\?[^#\s]*)?$/;
const SENTINEL_URL = /^redis\+sentinel:\/\/([^/?#\s]+)\/([^/?#\s]+)(?:\/([^/?#\s]+))?(?:\?([^#\s]*))?$/;
const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;
const MASTER_NAME = /^[A-Za-z0-9._-]{1,64}$/;

export const STORE_URL_FORMS = 'redis://host:port/db or redis+sentinel://host:port,host:port/<master name>/<db>';

/** `replicas` and `wait` from a store URL's query; anything else is refused by name. */
function parseQuery(query: string | undefined, defaultReplicas: number): { replicas: number; waitMs: number } | string {
  const out = { replicas: defaultReplicas, waitMs: DEFAULT_WAIT_MS };
  for (const part of (query ?? '').split('&').filter(Boolean)) {
    const [name, value = ''] = part.split('=');
    const n = /^\d{1,6}$/.test(value) ? Number(value) : NaN;
    if (name === 'replicas') {
      if (!(n >= 0 && n <= 16)) return `replicas must be a whole number from 0 to 16, got "${value}"`;
      out.replicas = n;
    } else if (name === 'wait') {
      if (!(n >= 1 && n <= MAX_WAIT_MS)) return `wait must be a whole number of ms from 1 to ${MAX_WAIT_MS}, got "${value}"`;
      out.waitMs = n;
    } else {
      return `unknown store URL parameter "${name}" (replicas and wait are known)`;
    }
  }
  return out;
}

/** Reads a `--store` URL; the reason says what is wrong with it. */
export function parseRedisTarget(spec: string): { ok: true; target: RedisTarget } | { ok: false; reason: string } {
  const fail = (reason: string) => ({ ok: false as const, reason });
  if (SERVER_URL.test(spec)) {
    const [url, query] = spec.split('?', 2) as [string, string | undefined];
    const q = parseQuery(query, 0);
    return typeof q === 'string' ? fail(q) : { ok: true, target: { kind: 'server', url, ...q } };
  }
  const m = SENTINEL_URL.exec(spec);
  if (!m) return fail(`must be ${STORE_URL_FORMS}`);
  const [, hosts, masterName, db = '0', query] = m;
  if (hosts.includes('@')) return fail('put Redis credentials in DPOW_REDIS_PASSWORD and DPOW_SENTINEL_PASSWORD, not in the URL');
  const sentinels: Endpoint[] = [];
  for (const item of hosts.split(',')) {
    const hp = HOST_PORT.exec(item);
    const port = hp ? Number(hp[2]) : 0;
    if (!hp || port < 1 || port > 65535) return fail(`sentinel "${item}" is not host:port`);
    sentinels.push({ host: hp[1].replace(/^\[|\]$/g, ''), port });
  }
  if (sentinels.length > 16) return fail('name at most 16 sentinels');
  if (!MASTER_NAME.test(masterName)) return fail(`master name "${masterName}" may hold only letters, digits, ".", "_" and "-"`);
  if (!/^\d{1,2}$/.test(db) || Number(db) > MAX_DB) return fail(`database must be a number from 0 to ${MAX_DB}, got "${db}"`);
  const q = parseQuery(query, 1);
  return typeof q === 'string' ? fail(q) : { ok: true, target: { kind: 'sentinel', sentinels, masterName, db: Number(db), ...q } };
}

/** A store URL fit for a log line: a password in it is blanked. */
export function redactStoreUrl(spec: string): string {
  return spec.replace(/^([a-z+]+:\/\/)([^@/]*)@/i, (_, scheme: string, userinfo: string) => `${scheme}${userinfo.includes(':') ? `${userinfo.split(':')[0]}:***` : '***'}@`);
}

/** The commands the store sends; a plain client and a Sentinel connection answer them alike. */
export type RedisCommands = Pick<
  ReturnType<typeof createClient>,
  'evalSha' | 'eval' | 'hGetAll' | 'hGet' | 'hSet' | 'hDel' | 'sMembers' | 'publish' | 'multi' | 'get' | 'wait' | 'clientInfo'
>;

/** A replicated write that no replica confirmed in time: nothing may be answered or credited on it yet. */
export class ReplicationShortfall extends Error {
  constructor(what: string, wanted: number, got: number, waitMs: number, moved: boolean) {
    super(
      moved
        ? `${what}: the Redis connection or primary changed before replicas confirmed it`
        : `${what}: ${got} of ${wanted} Redis replicas confirmed it within ${waitMs} ms`,
    );
    this.name = 'ReplicationShortfall';
  }
}

export interface RedisConnectionOptions {
  credentials?: RedisCredentials;
  sentinelCredentials?: RedisCredentials;
  /** How long open() waits for the first connection. Default 5000 ms. */
  connectTimeoutMs?: number;
  /** How long a call may wait for a primary (during a failover) before it fails. Default 2000 ms. */
  commandTimeoutMs?: number;
  /** Loaded after every (re)connection, so a new primary knows them before the first EVALSHA. */
  scripts?: readonly string[];
  /** Reported when the connection drops or comes back. */
  onConnectionChange?: (up: boolean, reason?: string) => void;
  /** Reported when Sentinel names a new primary and the store follows it ("host:port"). */
  onFailover?: (primary: string) => void;
}

/** Replicated writes by outcome, for the operator's metrics. */
export interface ReplicationCounters {
  /** Writes the wanted number of replicas acknowledged. */
  confirmed: number;
  /** Writes they did not acknowledge in time (or whose connection changed meanwhile): held, not answered. */
  shortfall: number;
}

export interface ReplicatedWrite<T> {
  /** False for an outcome that wrote nothing (a lost claim, a refused lease): no WAIT. Default: always. */
  needsReplicas?: (value: T) => boolean;
  /**
   * The write may run twice with the same effect (a lease renewal, an accept carrying its id):
   * when a failover moved the connection under it, it is run once more on the new primary
   * instead of failing, so the first write after a promotion need not wait for a retry.
   */
  idempotent?: boolean;
}

/**
 * One connection to the primary, for everything: node-redis then sends every command of the
 * store, in order, on it (with more, two commands one after the other may go to different
 * connections, and a WAIT on one would not cover a write on the other). Pipelined, one connection
 * carries far more than a dispatcher asks of it.
 */
const SENTINEL_POOL = 1;
const reconnectStrategy = (retries: number) => Math.min(50 * 2 ** retries, 1000);

function withDeadline<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
    }),
  ]);
}

const noPrimary = (what: string, ms: number) => `${what}: no Redis primary answered within ${ms} ms`;

const sameLink = (a: { id: number; laddr?: string }, b: { id: number; laddr?: string }) => a.id === b.id && a.laddr === b.laddr;

/** A connection to a Redis server or a Sentinel group's primary, with deadlines and the replication check. */
export class RedisConnection {
  readonly target: RedisTarget;
  readonly counters: ReplicationCounters = { confirmed: 0, shortfall: 0 };

  readonly #link: Link;
  readonly #commandTimeoutMs: number;

  /** Connects to `target`; fails with the reason if it cannot within the connect timeout. */
  static async open(target: RedisTarget, options: RedisConnectionOptions = {}): Promise<RedisConnection> {
    const credentials = { ...(options.credentials?.username ? { username: options.credentials.username } : {}), ...(options.credentials?.password ? { password: options.credentials.password } : {}) };
    const report = new LinkReport(options.onConnectionChange);
    const link = target.kind === 'server' ? await ServerLink.open(target, options, credentials, report) : await SentinelLink.open(target, options, credentials, report);
    link.onReady(() => {
      for (const script of options.scripts ?? []) link.shared.scriptLoad(script).catch(() => {});
    });
    return new RedisConnection(target, link, options.commandTimeoutMs ?? 2000);
  }

  private constructor(target: RedisTarget, link: Link, commandTimeoutMs: number) {
    this.target = target;
    this.#link = link;
    this.#commandTimeoutMs = commandTimeoutMs;
  }

  /** Runs store commands on the primary; fails after the command timeout when there is none. */
  run<T>(fn: (c: RedisCommands) => Promise<T>): Promise<T> {
    return withDeadline(fn(this.#link.shared), this.#commandTimeoutMs, noPrimary('Redis call', this.#commandTimeoutMs));
  }

  /** One command given as its words (for callers that speak raw Redis), under the same deadline. */
  command(args: string[]): Promise<unknown> {
    return withDeadline(this.#link.command(args), this.#commandTimeoutMs, noPrimary('Redis call', this.#commandTimeoutMs));
  }

  /**
   * Runs `write` on the primary, then, when it `needsReplicas`, WAITs for the target's replicas.
   * Throws ReplicationShortfall when they do not confirm it in time (the write may still have
   * happened, and may later be lost with the primary).
   */
  replicated<T>(what: string, write: (c: RedisCommands) => Promise<T>, how: ReplicatedWrite<T> = {}): Promise<T> {
    const ms = this.#commandTimeoutMs + this.target.waitMs;
    return withDeadline(replicatedOn(this.#link.shared, this.target, this.counters, what, write, how), ms, noPrimary(what, ms));
  }

  subscribe(channel: string, listener: (message: string) => void): Promise<void> {
    return this.#link.subscribe(channel, listener);
  }

  unsubscribe(channel: string, listener: (message: string) => void): Promise<void> {
    return this.#link.unsubscribe(channel, listener);
  }

  close(): Promise<void> {
    return this.#link.close();
  }
}

/** What each kind of target provides; RedisConnection adds the deadlines and the replication check. */
interface Link {
  /** Every command, pipelined on one connection to the primary. */
  readonly shared: RedisCommands & Pick<ReturnType<typeof createClient>, 'scriptLoad'>;
  /** One command given as its words. */
  command(args: string[]): Promise<unknown>;
  /** Called on every (re)connection to a primary. */
  onReady(listener: () => void): void;
  subscribe(channel: string, listener: (message: string) => void): Promise<void>;
  unsubscribe(channel: string, listener: (message: string) => void): Promise<void>;
  close(): Promise<void>;
}

/** How a link tells of its connection: up or down (with why), or a complaint that changes neither. */
class LinkReport {
  readonly #onConnectionChange: RedisConnectionOptions['onConnectionChange'];
  #up = false;
  /** The latest complaint, so a first connection that times out can say why (WRONGPASS, refused…). */
  #lastError: string | undefined;

  constructor(onConnectionChange: RedisConnectionOptions['onConnectionChange']) {
    this.#onConnectionChange = onConnectionChange;
  }

  changed(up: boolean, reason?: string): void {
    if (reason) this.#lastError = reason;
    if (up !== this.#up) this.#onConnectionChange?.(up, reason);
    this.#up = up;
  }

  complain(reason: string): void {
    this.#lastError = reason;
  }

  why(): string | undefined {
    return this.#lastError;
  }
}

function serverClient(target: Extract<RedisTarget, { kind: 'server' }>, credentials: RedisCredentials) {
  return createClient({
    url: target.url,
    ...credentials,
    // Fail at once while disconnected instead of queueing: a held result must be known as held.
    disableOfflineQueue: true,
    socket: { connectTimeout: 2000, reconnectStrategy },
  });
}
type ServerClient = ReturnType<typeof serverClient>;

function sentinelClient(target: Extract<RedisTarget, { kind: 'sentinel' }>, options: RedisConnectionOptions, credentials: RedisCredentials) {
  const sentinelLogin = options.sentinelCredentials?.password
    ? { sentinelClientOptions: { ...(options.sentinelCredentials.username ? { username: options.sentinelCredentials.username } : {}), password: options.sentinelCredentials.password } }
    : {};
  return createSentinel({
    name: target.masterName,
    sentinelRootNodes: target.sentinels,
    RESP: 2,
    masterPoolSize: SENTINEL_POOL,
    nodeClientOptions: { database: target.db, ...credentials, disableOfflineQueue: true, socket: { connectTimeout: 2000, reconnectStrategy } },
    ...sentinelLogin,
  });
}
type SentinelClient = ReturnType<typeof sentinelClient>;

class ServerLink implements Link {
  readonly shared: Link['shared'];

  readonly #client: ServerClient;
  #subscriber: ReturnType<ServerClient['duplicate']> | undefined;
  #closing: Promise<void> | undefined;

  static async open(target: Extract<RedisTarget, { kind: 'server' }>, options: RedisConnectionOptions, credentials: RedisCredentials, report: LinkReport): Promise<ServerLink> {
    const client = serverClient(target, credentials);
    client.on('ready', () => report.changed(true));
    client.on('error', (err: Error) => report.changed(false, err.message));
    await firstConnect(() => client.connect(), () => client.destroy(), () => report.why(), options.connectTimeoutMs);
    return new ServerLink(client);
  }

  private constructor(client: ServerClient) {
    this.#client = client;
    this.shared = client as unknown as Link['shared'];
  }

  command(args: string[]): Promise<unknown> {
    return this.#client.sendCommand(args);
  }

  onReady(listener: () => void): void {
    this.#client.on('ready', listener);
    listener();
  }

  async subscribe(channel: string, listener: (message: string) => void): Promise<void> {
    // A connection in subscriber mode can do nothing else: one more, resubscribed on reconnect.
    this.#subscriber ??= this.#client.duplicate();
    const subscriber = this.#subscriber;
    if (!subscriber.isOpen) {
      subscriber.on('error', () => {}); // the command connection reports outages
      await subscriber.connect();
    }
    await subscriber.subscribe(channel, listener);
  }

  async unsubscribe(channel: string, listener: (message: string) => void): Promise<void> {
    if (this.#subscriber?.isOpen) await this.#subscriber.unsubscribe(channel, listener);
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const each of [this.#subscriber, this.#client]) {
        if (!each) continue;
        if (each.isReady) await each.close().catch(() => each.destroy());
        else each.destroy();
      }
    })();
    return this.#closing;
  }
}

class SentinelLink implements Link {
  readonly shared: Link['shared'];

  readonly #sentinel: SentinelClient;
  #closing: Promise<void> | undefined;

  static async open(target: Extract<RedisTarget, { kind: 'sentinel' }>, options: RedisConnectionOptions, credentials: RedisCredentials, report: LinkReport): Promise<SentinelLink> {
    const sentinel = sentinelClient(target, options, credentials);
    sentinel.on('ready', () => report.changed(true));
    sentinel.on('reconnecting', () => report.changed(false, 'following a new primary'));
    sentinel.on('client-error', (event: { type: string; error: Error }) => {
      if (event.type === 'MASTER') report.changed(false, event.error.message);
    });
    // Sentinel and replica troubles are the group's to mend; the calls say when the primary is gone.
    sentinel.on('error', (err: unknown) => report.complain(err instanceof Error ? err.message : String(err)));
    // The first primary named is the one connected to, no failover.
    let first = true;
    sentinel.on('topology-change', (event: { type: string; node?: { host: string; port: number } }) => {
      if (event.type !== 'MASTER_CHANGE' || !event.node) return;
      if (!first) options.onFailover?.(`${event.node.host}:${event.node.port}`);
      first = false;
    });
    await firstConnect(() => sentinel.connect(), () => void sentinel.destroy().catch(() => {}), () => report.why(), options.connectTimeoutMs);
    return new SentinelLink(sentinel);
  }

  private constructor(sentinel: SentinelClient) {
    this.#sentinel = sentinel;
    this.shared = sentinel as unknown as Link['shared'];
  }

  command(args: string[]): Promise<unknown> {
    // The Sentinel client's sendCommand takes "is it read-only" first; undefined sends it to the primary.
    return this.#sentinel.sendCommand(undefined, args);
  }

  onReady(listener: () => void): void {
    this.#sentinel.on('ready', listener);
    listener();
  }

  async subscribe(channel: string, listener: (message: string) => void): Promise<void> {
    await this.#sentinel.subscribe(channel, listener);
  }

  async unsubscribe(channel: string, listener: (message: string) => void): Promise<void> {
    // node-redis types an unsubscribe listener as taking buffers too; this one was subscribed for strings.
    await this.#sentinel.unsubscribe(channel, listener as (message: string | Buffer) => void);
  }

  close(): Promise<void> {
    this.#closing ??= this.#sentinel.close().catch(() => this.#sentinel.destroy());
    return this.#closing;
  }
}

async function replicatedOn<T>(
  c: RedisCommands,
  target: RedisTarget,
  counters: ReplicationCounters,
  what: string,
  write: (c: RedisCommands) => Promise<T>,
  how: ReplicatedWrite<T>,
): Promise<T> {
  if (!target.replicas) return write(c);
  for (let attempt = 0; ; attempt++) {
    // One by one: node-redis re-sends a failed command on the new primary, where a WAIT would
    // count replicas of writes that were never made on that connection.
    const before = await c.clientInfo();
    const value = await write(c);
    if (how.needsReplicas && !how.needsReplicas(value)) return value;
    const got = await c.wait(target.replicas, target.waitMs);
    const after = await c.clientInfo();
    const moved = !sameLink(before, after);
    if (moved && how.idempotent && attempt === 0) continue;
    if (moved || got < target.replicas) {
      counters.shortfall++;
      throw new ReplicationShortfall(what, target.replicas, got, target.waitMs, moved);
    }
    counters.confirmed++;
    return value;
  }
}

async function firstConnect(connect: () => Promise<unknown>, destroy: () => void, why: () => string | undefined, timeoutMs = 5000): Promise<void> {
  try {
    await withDeadline(connect(), timeoutMs, `no answer within ${timeoutMs} ms`);
  } catch (err) {
    destroy();
    const reason = why();
    throw reason && !(err as Error).message.includes(reason) ? new Error(`${(err as Error).message} (${reason})`) : err;
  }
}
