/**
 * DispatcherStore on Redis (node-redis), for several dispatchers sharing one state:
 * `--store redis://host:port/db`, or a primary that Redis Sentinel watches and replaces,
 * `--store redis+sentinel://host:port,host:port/<master name>/<db>` (redis-connection.ts).
 *
 * Keys (all under a prefix, default `dpow:`):
 *   client:<address>   hash  precache, ondemand, weighted_<type>, snapshot_<type>, snapshot_weighted_<type>, block_rewarded
 *   clients            set   every credited address
 *   service:<user>     hash  api_key_hash (never the key), display, website, public, counters, rate_limit, created_at
 *   services           set   every service user
 *   work:<hash lower>  hash  hash (as it arrived), work, difficulty (16 hex), work_type, address, created_at,
 *                      accept_id (which acceptResult call stored it); it expires (PEXPIREAT) the work
 *                      retention after created_at
 *   pending            hash  <hash lower> -> the job as JSON (difficulty as 16 hex)
 *   tracked:<chain>    hash  account, frontier, updated_at;  tracked: set of chains
 *   totals             hash  precache, ondemand (credited work)
 *   blocks:<chain>     sorted set: the chain's newest KNOWN_BLOCKS_PER_CHAIN block hashes
 *   lease:<name>       string "<holder> <token>" with a PX expiry;  lease:<name>:token: the last token
 *   channel <prefix>accepted: acceptances, as JSON, for the other dispatchers
 *
 * Everything that must not be seen half done is one Lua script: the accept (claim, work, credits,
 * pending removed), a credit, a snapshot, the lease. Scripts run by EVALSHA with a fall-back to
 * EVAL when the server lost its script cache (a restart). Commands fail at once while the server
 * is unreachable (no offline queue), so the dispatcher knows to hold results and retry; the
 * client reconnects by itself.
 *
 * An accept whose outcome is unknown (its reply was lost, or replicas did not confirm it) is "in
 * doubt": the retry of the same result carries the same accept id, and finding its own id on the
 * stored work it is answered as won without a second credit, while a claim that was lost with a
 * dead primary is simply won again on the new one. Either way the work is credited once.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { WorkType } from '../../dpow/codec.ts';
import { toU64Hex } from '../../pow/work.ts';
import {
  assertRetention,
  assertWeight,
  assertWorkType,
  DEFAULT_WORK_RETENTION_MS,
  KNOWN_BLOCKS_PER_CHAIN,
  type Acceptance,
  type AcceptOutcome,
  type AcceptRequest,
  type ClientRecord,
  type ClusterLink,
  type DispatcherStore,
  type PendingJob,
  type ServiceRecord,
  type SnapshotEntry,
  type StoredWork,
  type TrackedAccount,
} from './store.ts';
import {
  RedisConnection,
  parseRedisTarget,
  redactStoreUrl,
  type RedisCommands,
  type RedisCredentials,
  type ReplicatedWrite,
  type ReplicationCounters,
} from './redis-connection.ts';
import { RedisPayoutLedger } from './redis-ledger.ts';

/**
 * KEYS: pending, work:<key>, totals, clients, client:<address>, service:<user>...
 * ARGV: key, hash, work, value hex, work type, address ('' = none), created_at, weight, expires at (ms), accept id
 * Returns {1, client fields} when won, {2, client fields} when this accept id had already won
 * (nothing written again), {0, stored work fields} when lost.
 */
const ACCEPT = `
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
if removed == 0 and redis.call('EXISTS', KEYS[2]) == 1 then
  if redis.call('HGET', KEYS[2], 'accept_id') ~= ARGV[10] then return {0, redis.call('HGETALL', KEYS[2])} end
  if ARGV[6] == '' then return {2, {}} end
  return {2, redis.call('HGETALL', KEYS[5])}
end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'hash', ARGV[2], 'work', ARGV[3], 'difficulty', ARGV[4], 'work_type', ARGV[5], 'created_at', ARGV[7], 'accept_id', ARGV[10])
redis.call('PEXPIREAT', KEYS[2], ARGV[9])
for i = 6, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('HINCRBY', KEYS[i], ARGV[5], 1) end
end
if ARGV[6] == '' then return {1, {}} end
redis.call('HSET', KEYS[2], 'address', ARGV[6])
redis.call('SADD', KEYS[4], ARGV[6])
redis.call('HINCRBY', KEYS[5], ARGV[5], 1)
redis.call('HINCRBYFLOAT', KEYS[5], 'weighted_' .. ARGV[5], ARGV[8])
redis.call('HSET', KEYS[5], 'block_rewarded', ARGV[2])
redis.call('HINCRBY', KEYS[3], ARGV[5], 1)
return {1, redis.call('HGETALL', KEYS[5])}
`;

/** KEYS: totals, clients, client:<address>. ARGV: address, work type, hash, weight. */
const CREDIT = `
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
redis.call('HINCRBYFLOAT', KEYS[3], 'weighted_' .. ARGV[2], ARGV[4])
redis.call('HSET', KEYS[3], 'block_rewarded', ARGV[3])
redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
return redis.call('HGETALL', KEYS[3])
`;

/** KEYS: service:<user>. ARGV: work type. Only an existing service is credited. */
const CREDIT_SERVICE = `
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HINCRBY', KEYS[1], ARGV[1], 1) end
return 0
`;

/** KEYS: client:<address>. ARGV: pairs of field and value (or, with ARGV[1] = 'copy', counter names). */
const SNAPSHOT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] == 'copy' then
  for i = 2, #ARGV do
    redis.call('HSET', KEYS[1], 'snapshot_' .. ARGV[i], redis.call('HGET', KEYS[1], ARGV[i]) or '0')
    redis.call('HSET', KEYS[1], 'snapshot_weighted_' .. ARGV[i], redis.call('HGET', KEYS[1], 'weighted_' .. ARGV[i]) or '0')
  end
else
  for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return 1
`;

/**
 * KEYS: lease:<name>, lease:<name>:token. ARGV: holder, ttl ms.
 * Extends the lease for its holder, or takes a free one with a new (larger) token; 0 = held by another.
 */
const HOLD_LEASE = `
local current = redis.call('GET', KEYS[1])
if current then
  local holder, token = string.match(current, '^(%S+) (%d+)$')
  if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(token)
  end
  return 0
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. token, 'PX', ARGV[2])
return token
`;

/** KEYS: lease:<name>. ARGV: holder. */
const RELEASE_LEASE = `
local current = redis.call('GET', KEYS[1])
if current and string.match(current, '^(%S+) ') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
`;

/**
 * KEYS: blocks:<chain> (sorted set, score = arrival), blocks:<chain>:seq. ARGV: hash, how many to keep.
 * 1 when the block is new to the chain, 0 when already known; the oldest beyond the limit go.
 */
const REMEMBER_BLOCK = `
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], redis.call('INCR', KEYS[2]), ARGV[1])
local keep = tonumber(ARGV[2])
if redis.call('ZCARD', KEYS[1]) > keep then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(keep + 1)) end
return 1
`;

const sha1 = (script: string) => createHash('sha1').update(script).digest('hex');

const SCRIPTS = [ACCEPT, CREDIT, CREDIT_SERVICE, SNAPSHOT, HOLD_LEASE, RELEASE_LEASE, REMEMBER_BLOCK];

/** HGETALL inside a script answers a flat list of field, value, field, value… */
function pairs(list: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  const items = list as string[];
  for (let i = 0; i + 1 < items.length; i += 2) out[items[i]] = items[i + 1];
  return out;
}

const num = (v: string | undefined) => (v === undefined ? 0 : Number(v));


function toClient(address: string, h: Record<string, string>): ClientRecord {
  const record: ClientRecord = {
    address,
    precache: num(h.precache),
    ondemand: num(h.ondemand),
    snapshot_precache: num(h.snapshot_precache),
    snapshot_ondemand: num(h.snapshot_ondemand),
    weighted_precache: num(h.weighted_precache),
    weighted_ondemand: num(h.weighted_ondemand),
    snapshot_weighted_precache: num(h.snapshot_weighted_precache),
    snapshot_weighted_ondemand: num(h.snapshot_weighted_ondemand),
  };
  if (h.block_rewarded) record.block_rewarded = h.block_rewarded;
  return record;
}

function toService(user: string, h: Record<string, string>): ServiceRecord {
  return {
    user,
    apiKeyHash: h.api_key_hash,
    display: h.display,
    website: h.website,
    public: h.public === '1',
    precache: num(h.precache),
    ondemand: num(h.ondemand),
    rateLimit: num(h.rate_limit),
    createdAt: num(h.created_at),
  };
}

function toWork(h: Record<string, string>): StoredWork {
  const work: StoredWork = {
    hash: h.hash,
    work: h.work,
    difficulty: BigInt(`0x${h.difficulty}`),
    workType: h.work_type as WorkType,
    createdAt: num(h.created_at),
  };
  if (h.address) work.address = h.address;
  return work;
}

interface PendingJson {
  hash: string;
  difficulty: string;
  workType: WorkType;
  expiresAt: number;
  createdAt: number;
  account?: string;
}

function toPending(json: string): PendingJob {
  const p = JSON.parse(json) as PendingJson;
  const job: PendingJob = { hash: p.hash, difficulty: BigInt(`0x${p.difficulty}`), workType: p.workType, expiresAt: p.expiresAt, createdAt: p.createdAt };
  if (p.account) job.account = p.account;
  return job;
}

export interface RedisStoreOptions {
  /** Key prefix, so several deployments (or tests) can share one database. Default `dpow:`. */
  prefix?: string;
  /** How long open() waits for the first connection. Default 5000 ms. */
  connectTimeoutMs?: number;
  /** How long a call may wait for a primary (a Sentinel failover) before it fails. Default 2000 ms. */
  commandTimeoutMs?: number;
  /** Reported when the connection drops or comes back (the store reconnects by itself). */
  onConnectionChange?: (up: boolean, reason?: string) => void;
  /** Reported when Sentinel promotes a new primary and the store follows it ("host:port"). */
  onFailover?: (primary: string) => void;
  /** See DEFAULT_WORK_RETENTION_MS: each stored work's key expires this long after it was made. */
  workRetentionMs?: number;
  /** The data nodes' login (Redis ACL user, or only a password). */
  credentials?: RedisCredentials;
  /** The sentinels' login, when they ask for one. */
  sentinelCredentials?: RedisCredentials;
}

/** Accepts in doubt remembered at most: past it the oldest is forgotten (its retry then counts as a duplicate, still credited once). */
const MAX_IN_DOUBT = 10_000;

export class RedisStore implements DispatcherStore {
  readonly cluster: ClusterLink;
  readonly payouts: RedisPayoutLedger;
  readonly replication?: ReplicationCounters;
  readonly #redis: RedisConnection;
  readonly #prefix: string;
  readonly #retentionMs: number;
  /** Accepts whose outcome is unknown, by hash key: the id their retry must carry. */
  readonly #inDoubt = new Map<string, { id: string; work: string; address: string }>();
  #closed = false;

  private constructor(
    redis: RedisConnection,
    readonly url: string,
    options: RedisStoreOptions,
  ) {
    this.#redis = redis;
    this.#prefix = options.prefix ?? 'dpow:';
    this.#retentionMs = options.workRetentionMs ?? DEFAULT_WORK_RETENTION_MS;
    if (redis.target.replicas > 0) this.replication = redis.counters;
    this.cluster = {
      publishAcceptance: (a) => this.#publishAcceptance(a),
      onAcceptance: (listener) => this.#onAcceptance(listener),
      holdLease: (name, holder, ttlMs) => this.#holdLease(name, holder, ttlMs),
      releaseLease: (name, holder) => this.#releaseLease(name, holder),
    };
    this.payouts = new RedisPayoutLedger({
      key: (...parts) => this.#key(...parts),
      // Every ledger script writes (a run, a payment's new state, a carry): a payment recorded
      // as sent must survive the primary, or a resume after a failover would not know of it.
      script: (script, keys, args) => this.#replicated('payout', (c) => this.#script(c, script, keys, args)),
      command: (args) => (this.#closed ? Promise.reject(new Error('store is closed')) : this.#redis.command(args)),
    });
  }

  /**
   * Connects to `url` (redis://host:port/db or redis+sentinel://…, see redis-connection.ts);
   * fails with the reason if it cannot within the timeout.
   */
  static async open(url: string, options: RedisStoreOptions = {}): Promise<RedisStore> {
    // Checked before connecting, so a bad value leaves no connection behind.
    assertRetention(options.workRetentionMs ?? DEFAULT_WORK_RETENTION_MS);
    const parsed = parseRedisTarget(url);
    if (!parsed.ok) throw new Error(`--store ${parsed.reason}`);
    let redis: RedisConnection;
    try {
      redis = await RedisConnection.open(parsed.target, { ...options, scripts: SCRIPTS });
    } catch (err) {
      throw new Error(`cannot connect to Redis at ${redactStoreUrl(url)}: ${(err as Error).message}`);
    }
    return new RedisStore(redis, url, options);
  }

  #key(...parts: string[]): string {
    return this.#prefix + parts.join(':');
  }

  /** Runs commands on the primary, once the store is known to be open. */
  #call<T>(fn: (c: RedisCommands) => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new Error('store is closed'));
    return this.#redis.run(fn);
  }

  /** A write that pays or elects: done only once the replicas have it (redis-connection.ts). */
  #replicated<T>(what: string, write: (c: RedisCommands) => Promise<T>, how?: ReplicatedWrite<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new Error('store is closed'));
    return this.#redis.replicated(what, write, how);
  }

  /** EVALSHA, and EVAL once when the server does not know the script (it restarted, or was promoted). */
  async #script(c: RedisCommands, script: string, keys: string[], args: string[]): Promise<unknown> {
    try {
      return await c.evalSha(sha1(script), { keys, arguments: args });
    } catch (err) {
      if (!/NOSCRIPT/.test((err as Error).message)) throw err;
      return await c.eval(script, { keys, arguments: args });
    }
  }

  // ------------------------------------------------------------------ accept

  async acceptResult({ hash, work, value, workType, address, services, weight = 1 }: AcceptRequest): Promise<AcceptOutcome> {
    assertWorkType(workType);
    assertWeight(weight);
    const key = hash.toLowerCase();
    const createdAt = Date.now();
    const keys = [
      this.#key('pending'),
      this.#key('work', key),
      this.#key('totals'),
      this.#key('clients'),
      this.#key('client', address ?? ''),
      ...[...new Set(services)].map((s) => this.#key('service', s)),
    ];
    // The same result retried after an unknown outcome carries the id it was first sent with.
    const doubt = this.#inDoubt.get(key);
    const id = doubt && doubt.work === work && doubt.address === (address ?? '') ? doubt.id : randomBytes(8).toString('hex');
    const args = [key, hash, work, toU64Hex(value), workType, address ?? '', String(createdAt), String(weight), String(createdAt + this.#retentionMs), id];
    let reply: [number, unknown];
    try {
      // A lost claim wrote nothing, so only a won one waits for the replicas; run again with its
      // id, a won one answers "won" without writing twice.
      reply = await this.#replicated(`accept ${key.slice(0, 8)}`, (c) => this.#script(c, ACCEPT, keys, args) as Promise<[number, unknown]>, {
        needsReplicas: (r) => r[0] !== 0,
        idempotent: true,
      });
    } catch (err) {
      this.#inDoubt.delete(key);
      this.#inDoubt.set(key, { id, work, address: address ?? '' });
      if (this.#inDoubt.size > MAX_IN_DOUBT) this.#inDoubt.delete(this.#inDoubt.keys().next().value!);
      throw err;
    }
    this.#inDoubt.delete(key);
    if (reply[0] === 0) return { won: false, work: toWork(pairs(reply[1])) };
    const record: StoredWork = { hash, work, difficulty: value, workType, createdAt, ...(address ? { address } : {}) };
    return address ? { won: true, work: record, client: toClient(address, pairs(reply[1])) } : { won: true, work: record };
  }

  // ------------------------------------------------------------------ clients

  async getClient(address: string): Promise<ClientRecord | undefined> {
    const h = await this.#call((c) => c.hGetAll(this.#key('client', address)));
    return Object.keys(h).length ? toClient(address, h) : undefined;
  }

  async creditClient(address: string, workType: WorkType, hash: string, weight = 1): Promise<ClientRecord> {
    assertWorkType(workType);
    assertWeight(weight);
    const keys = [this.#key('totals'), this.#key('clients'), this.#key('client', address)];
    const reply = await this.#replicated('credit', (c) => this.#script(c, CREDIT, keys, [address, workType, hash, String(weight)]));
    return toClient(address, pairs(reply));
  }

  async listClients(): Promise<ClientRecord[]> {
    return this.#call(async (c) => {
      const addresses = (await c.sMembers(this.#key('clients'))).sort();
      const records = await Promise.all(addresses.map((a) => c.hGetAll(this.#key('client', a))));
      return addresses.map((a, i) => toClient(a, records[i]));
    });
  }

  async snapshotClients(addresses: string[], workTypes: WorkType[]): Promise<void> {
    workTypes.forEach(assertWorkType);
    const types = [...new Set(workTypes)];
    if (!types.length) return;
    await this.#replicated('snapshot', (c) => Promise.all(addresses.map((a) => this.#script(c, SNAPSHOT, [this.#key('client', a)], ['copy', ...types]))));
  }

  async recordSnapshot(entries: SnapshotEntry[]): Promise<void> {
    await this.#replicated('snapshot', (c) =>
      Promise.all(
        entries.map((e) => {
          const fields: string[] = [];
          if (e.precache !== undefined) fields.push('snapshot_precache', String(e.precache));
          if (e.ondemand !== undefined) fields.push('snapshot_ondemand', String(e.ondemand));
          if (e.weighted_precache !== undefined) fields.push('snapshot_weighted_precache', String(e.weighted_precache));
          if (e.weighted_ondemand !== undefined) fields.push('snapshot_weighted_ondemand', String(e.weighted_ondemand));
          return fields.length ? this.#script(c, SNAPSHOT, [this.#key('client', e.address)], fields) : undefined;
        }),
      ),
    );
  }

  // ------------------------------------------------------------------ services

  async addService(service: ServiceRecord): Promise<void> {
    const key = this.#key('service', service.user);
    await this.#replicated('service add', (c) =>
      c
        .multi()
        .del(key)
        .hSet(key, {
          api_key_hash: service.apiKeyHash,
          display: service.display,
          website: service.website,
          public: service.public ? '1' : '0',
          precache: String(service.precache),
          ondemand: String(service.ondemand),
          rate_limit: String(service.rateLimit),
          created_at: String(service.createdAt),
        })
        .sAdd(this.#key('services'), service.user)
        .exec(),
    );
  }

  async getService(user: string): Promise<ServiceRecord | undefined> {
    const h = await this.#call((c) => c.hGetAll(this.#key('service', user)));
    return Object.keys(h).length ? toService(user, h) : undefined;
  }

  async listServices(): Promise<ServiceRecord[]> {
    return this.#call(async (c) => {
      const users = (await c.sMembers(this.#key('services'))).sort();
      const records = await Promise.all(users.map((u) => c.hGetAll(this.#key('service', u))));
      return users.flatMap((u, i) => (Object.keys(records[i]).length ? [toService(u, records[i])] : []));
    });
  }

  async removeService(user: string): Promise<boolean> {
    const [removed] = await this.#replicated('service remove', (c) => c.multi().del(this.#key('service', user)).sRem(this.#key('services'), user).exec());
    return Number(removed) > 0;
  }

  async creditService(user: string, workType: WorkType): Promise<void> {
    assertWorkType(workType);
    await this.#replicated('service credit', (c) => this.#script(c, CREDIT_SERVICE, [this.#key('service', user)], [workType]));
  }

  // ------------------------------------------------------------------ work and jobs

  async saveWork(work: StoredWork): Promise<void> {
    assertWorkType(work.workType);
    const key = this.#key('work', work.hash.toLowerCase());
    await this.#call((c) =>
      c
        .multi()
        .del(key)
        .hSet(key, {
          hash: work.hash,
          work: work.work,
          difficulty: toU64Hex(work.difficulty),
          work_type: work.workType,
          created_at: String(work.createdAt),
          ...(work.address ? { address: work.address } : {}),
        })
        .pExpireAt(key, work.createdAt + this.#retentionMs)
        .exec(),
    );
  }

  /** Nothing to do: each work's key expires by itself. */
  async pruneWork(): Promise<number> {
    return this.#call(async () => 0);
  }

  async getWork(hash: string): Promise<StoredWork | undefined> {
    const h = await this.#call((c) => c.hGetAll(this.#key('work', hash.toLowerCase())));
    return Object.keys(h).length ? toWork(h) : undefined;
  }

  async savePending(job: PendingJob): Promise<void> {
    assertWorkType(job.workType);
    const json: PendingJson = {
      hash: job.hash,
      difficulty: toU64Hex(job.difficulty),
      workType: job.workType,
      expiresAt: job.expiresAt,
      createdAt: job.createdAt,
      ...(job.account ? { account: job.account } : {}),
    };
    await this.#call((c) => c.hSet(this.#key('pending'), job.hash.toLowerCase(), JSON.stringify(json)));
  }

  async getPending(hash: string): Promise<PendingJob | undefined> {
    const json = await this.#call((c) => c.hGet(this.#key('pending'), hash.toLowerCase()));
    return json ? toPending(json) : undefined;
  }

  async removePending(hash: string): Promise<void> {
    await this.#call((c) => c.hDel(this.#key('pending'), hash.toLowerCase()));
  }

  async listPending(): Promise<PendingJob[]> {
    const all = await this.#call((c) => c.hGetAll(this.#key('pending')));
    return Object.values(all)
      .map(toPending)
      .sort((a, b) => a.createdAt - b.createdAt || (a.hash.toLowerCase() < b.hash.toLowerCase() ? -1 : 1));
  }

  // ------------------------------------------------------------------ precache tracking

  async trackAccount(account: TrackedAccount): Promise<void> {
    // Fields left out keep their value: a missing frontier never erases a known one.
    await this.#call((c) =>
      c
        .multi()
        .hSet(this.#key('tracked', account.chain), {
          account: account.account,
          updated_at: String(account.updatedAt),
          ...(account.frontier !== undefined ? { frontier: account.frontier } : {}),
        })
        .sAdd(this.#key('tracked'), account.chain)
        .exec(),
    );
  }

  async getTracked(chain: string): Promise<TrackedAccount | undefined> {
    const h = await this.#call((c) => c.hGetAll(this.#key('tracked', chain)));
    return Object.keys(h).length ? this.#toTracked(chain, h) : undefined;
  }

  async listTracked(): Promise<TrackedAccount[]> {
    return this.#call(async (c) => {
      const chains = (await c.sMembers(this.#key('tracked'))).sort();
      const records = await Promise.all(chains.map((ch) => c.hGetAll(this.#key('tracked', ch))));
      return chains.map((ch, i) => this.#toTracked(ch, records[i]));
    });
  }

  async rememberBlock(chain: string, hash: string): Promise<boolean> {
    const keys = [this.#key('blocks', chain), this.#key('blocks', chain, 'seq')];
    const added = await this.#call((c) => this.#script(c, REMEMBER_BLOCK, keys, [hash, String(KNOWN_BLOCKS_PER_CHAIN)]));
    return Number(added) === 1;
  }

  #toTracked(chain: string, h: Record<string, string>): TrackedAccount {
    const tracked: TrackedAccount = { account: h.account, chain, updatedAt: num(h.updated_at) };
    if (h.frontier) tracked.frontier = h.frontier;
    return tracked;
  }

  // ------------------------------------------------------------------ totals

  async getTotals(): Promise<{ precache: number; ondemand: number }> {
    const h = await this.#call((c) => c.hGetAll(this.#key('totals')));
    return { precache: num(h.precache), ondemand: num(h.ondemand) };
  }

  // ------------------------------------------------------------------ cluster

  async #publishAcceptance(acceptance: Acceptance): Promise<void> {
    await this.#call((c) => c.publish(this.#key('accepted'), JSON.stringify(acceptance)));
  }

  async #onAcceptance(listener: (acceptance: Acceptance) => void): Promise<() => Promise<void>> {
    if (this.#closed) throw new Error('store is closed');
    const channel = this.#key('accepted');
    const onMessage = (message: string) => {
      try {
        listener(JSON.parse(message) as Acceptance);
      } catch {
        // A message that is not ours: ignored, the channel is shared by nothing else.
      }
    };
    await this.#redis.subscribe(channel, onMessage);
    return () => this.#redis.unsubscribe(channel, onMessage);
  }

  /**
   * Takes or renews the lease. With replicas, a lease counts only once a replica has it: a
   * primary that dies before replicating it cannot leave a holder whose token the promoted
   * replica would hand out again (docs/scaling.md, "The lease across a promotion").
   */
  async #holdLease(name: string, holder: string, ttlMs: number): Promise<number | undefined> {
    if (/\s/.test(holder)) throw new TypeError('a lease holder has no spaces');
    const keys = [this.#key('lease', name), this.#key('lease', name, 'token')];
    const hold = (c: RedisCommands) => this.#script(c, HOLD_LEASE, keys, [holder, String(Math.ceil(ttlMs))]);
    // Taking or renewing for the same holder twice holds it once.
    const token = Number(await this.#replicated('lease', hold, { needsReplicas: (t) => Number(t) > 0, idempotent: true }));
    return token > 0 ? token : undefined;
  }

  async #releaseLease(name: string, holder: string): Promise<void> {
    await this.#call((c) => this.#script(c, RELEASE_LEASE, [this.#key('lease', name)], [holder]));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#redis.close();
  }
}
