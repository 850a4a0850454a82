/**
 * Test helper, never imported by the product: a Redis primary with replicas watched by Redis
 * Sentinels (Debian's redis-server and redis-sentinel 7.0), each process on a free loopback port
 * in a temporary directory. Any process can be killed (SIGKILL) and started again on its port.
 * Readiness is asked of the processes themselves (replication links up, sentinels that know each
 * other and every replica, a promoted replica that says it is the primary), never slept on.
 *
 * Skipped with a message only when redis-sentinel is not installed AND this is not CI (.ci/run
 * installs it); under CI a missing binary fails.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from 'redis';
import { freePort } from './net.ts';
import { RedisServer } from './redis.ts';
import { ServerProcess } from './server-process.ts';
import { waitForAsync } from './wait.ts';

export const REDIS_SENTINEL = 'redis-sentinel';
export const sentinelInstalled = spawnSync('sh', ['-c', `command -v ${REDIS_SENTINEL} && command -v redis-server`]).status === 0;

/** True when the Sentinel tests should be skipped here (not installed, not CI); says so once. */
export function skipWithoutSentinel(file: string): boolean {
  if (sentinelInstalled || process.env.CI) return false;
  console.warn(`${file}: skipped, ${REDIS_SENTINEL} is not installed (apt-get install redis-sentinel)`);
  return true;
}

/** One command to a Redis process (server or sentinel) on a fresh connection; undefined when it does not answer. */
export async function ask(port: number, args: string[], password?: string): Promise<unknown> {
  const client = createClient({ socket: { host: '127.0.0.1', port, connectTimeout: 1000, reconnectStrategy: false }, ...(password !== undefined ? { password } : {}) });
  client.on('error', () => {});
  try {
    await client.connect();
    return await client.sendCommand(args);
  } catch {
    return undefined;
  } finally {
    client.destroy();
  }
}

/** A map reply (node-redis hands some as objects, others as flat [field, value…] lists) as a record. */
function fields(reply: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
  } else if (reply && typeof reply === 'object') {
    for (const [k, v] of Object.entries(reply)) out[k] = String(v);
  }
  return out;
}

export class SentinelProcess extends ServerProcess {
  private constructor(
    port: number,
    readonly dir: string,
  ) {
    super(port);
  }

  static async start(masterName: string, primaryPort: number, quorum: number, downAfterMs: number, failoverTimeoutMs: number, password?: string): Promise<SentinelProcess> {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'dpow-sentinel-'));
    const config = [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${masterName} 127.0.0.1 ${primaryPort} ${quorum}`,
      `sentinel down-after-milliseconds ${masterName} ${downAfterMs}`,
      // A failed election (each sentinel voted for itself, so none has a majority) is tried again
      // only after twice this: at 10 s one kill in 22 at load 10 took 22.5 s to promote, the
      // heartbeat gone for as long; at 3 s one in 25 took 9.4 s. 2.5 s still leaves a loaded machine
      // time to promote and announce before a sentinel that voted may start a second failover
      // (docs/scaling.md, "Sentinel's settings").
      `sentinel failover-timeout ${masterName} ${failoverTimeoutMs}`,
      `sentinel parallel-syncs ${masterName} 2`,
      ...(password !== undefined ? [`sentinel auth-pass ${masterName} ${password}`] : []),
    ].join('\n');
    // Sentinel rewrites its file as it learns the group: a restart keeps what it knew.
    writeFileSync(join(dir, 'sentinel.conf'), `${config}\n`);
    const sentinel = new SentinelProcess(port, dir);
    await sentinel.start();
    return sentinel;
  }

  async start(): Promise<void> {
    if (!this.running) await this.spawn(REDIS_SENTINEL, [join(this.dir, 'sentinel.conf')]);
  }

  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The port of the primary this sentinel names now. */
  async primaryPort(masterName: string): Promise<number | undefined> {
    const reply = await ask(this.port, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName]);
    return Array.isArray(reply) && reply.length === 2 ? Number(reply[1]) : undefined;
  }

  /** What this sentinel knows of the group: `num-slaves`, `num-other-sentinels`, `flags`… */
  async master(masterName: string): Promise<Record<string, string>> {
    return fields(await ask(this.port, ['SENTINEL', 'MASTER', masterName]));
  }
}

export interface SentinelGroupOptions {
  /** Default 2. */
  replicas?: number;
  /** Default 3 (quorum 2). */
  sentinels?: number;
  /** Default "dpow". */
  masterName?: string;
  /** How long a primary must be silent before the sentinels call it down. Default 1000 ms. */
  downAfterMs?: number;
  /**
   * Sentinel's `failover-timeout`: a failed election is tried again after twice this. Default
   * 2500 ms.
   */
  failoverTimeoutMs?: number;
  /** The data servers ask clients (and each other) for this password; the sentinels know it. */
  password?: string;
}

/** The test kit's `failover-timeout` (see SentinelProcess.start). */
export const DEFAULT_FAILOVER_TIMEOUT_MS = 2500;

export class RedisSentinelGroup {
  readonly #password: string | undefined;

  private constructor(
    readonly masterName: string,
    /** Every data server; the first one started as the primary. */
    readonly servers: RedisServer[],
    readonly sentinels: SentinelProcess[],
    password?: string,
  ) {
    this.#password = password;
  }

  static async start(options: SentinelGroupOptions = {}): Promise<RedisSentinelGroup> {
    const masterName = options.masterName ?? 'dpow';
    const count = options.sentinels ?? 3;
    const password = options.password;
    const primary = await RedisServer.start({ password });
    const replicas = await Promise.all(Array.from({ length: options.replicas ?? 2 }, () => RedisServer.start({ replicaOf: primary.port, password })));
    const sentinels = await Promise.all(
      Array.from({ length: count }, () =>
        SentinelProcess.start(masterName, primary.port, Math.floor(count / 2) + 1, options.downAfterMs ?? 1000, options.failoverTimeoutMs ?? DEFAULT_FAILOVER_TIMEOUT_MS, password),
      ),
    );
    const group = new RedisSentinelGroup(masterName, [primary, ...replicas], sentinels, password);
    await group.ready();
    return group;
  }

  /**
   * `redis+sentinel://127.0.0.1:<s1>,127.0.0.1:<s2>,…/<master name>/<db>`, every sentinel named,
   * with `query` (e.g. `?replicas=1&wait=500`) appended.
   */
  url(db = 0, query = ''): string {
    return `redis+sentinel://${this.sentinels.map((s) => `127.0.0.1:${s.port}`).join(',')}/${this.masterName}/${db}${query}`;
  }

  /** The data server the running sentinels agree is the primary, once it says so itself. */
  async primary(timeoutMs = 30_000): Promise<RedisServer> {
    return waitForAsync('the sentinels to agree on a primary', () => this.#agreedPrimary(), timeoutMs);
  }

  /** The primary now, if the running sentinels agree on one and it says it is; one look. */
  async #agreedPrimary(): Promise<RedisServer | undefined> {
    const ports = new Set(await Promise.all(this.sentinels.filter((s) => s.running).map((s) => s.primaryPort(this.masterName))));
    if (ports.size !== 1) return undefined;
    const server = this.servers.find((s) => s.port === [...ports][0]);
    return server?.running && (await this.role(server)) === 'master' ? server : undefined;
  }

  /**
   * The group settled: one primary the running sentinels agree on, every running replica linked
   * to it, and every running sentinel seeing it as the primary with those replicas and the other
   * sentinels. Each look starts from the primary again: on a loaded machine the sentinels may
   * fail over once more while a restarted server syncs (a primary slow to answer for
   * `down-after-milliseconds` is down to them), and the group is ready once that settles too.
   */
  async ready(timeoutMs = 60_000): Promise<void> {
    let unsettled = '';
    await waitForAsync(
      'the Redis group to settle',
      async () => {
        const primary = await this.#agreedPrimary();
        if (!primary) return !(unsettled = 'the running sentinels do not agree on a primary that says it is one');
        const replicas = this.servers.filter((s) => s !== primary && s.running);
        const linked = await Promise.all(replicas.map((r) => this.linkUp(r, primary)));
        if (!linked.every(Boolean)) return !(unsettled = `not every replica is linked to the primary ${primary.port}`);
        const running = this.sentinels.filter((s) => s.running);
        const seen = (await Promise.all(running.map((s) => s.master(this.masterName)))).every(
          (m) => m.flags === 'master' && Number(m.port) === primary.port && Number(m['num-slaves']) >= replicas.length && Number(m['num-other-sentinels']) >= running.length - 1,
        );
        if (!seen) return !(unsettled = 'not every sentinel sees the whole group');
        return true;
      },
      timeoutMs,
    ).catch(async (err: Error) => {
      // Say what each process thought, so a slow link on a loaded machine can be told from a wrong one.
      throw new Error(`${err.message}: ${unsettled}\n${await this.describe()}`);
    });
  }

  /** Waits for the sentinels to promote another server after `old` died; resolves with the new primary. */
  async promotion(old: RedisServer, timeoutMs = 60_000): Promise<RedisServer> {
    return waitForAsync(
      `a replica to be promoted in place of ${old.port}`,
      async () => {
        const primary = await this.primary(timeoutMs).catch(() => undefined);
        return primary && primary !== old ? primary : undefined;
      },
      timeoutMs,
    );
  }

  /** Starts a stopped data server again, as a replica of the primary now (so the sentinels need not convert it). */
  async restart(server: RedisServer): Promise<void> {
    if (server.running) return;
    await server.start({ replicaOf: (await this.primary()).port });
  }

  async role(server: RedisServer): Promise<string | undefined> {
    const reply = await ask(server.port, ['ROLE'], this.#password);
    return Array.isArray(reply) ? String(reply[0]) : undefined;
  }

  /** The replication offset a server has reached (its own as a primary, the processed one as a replica). */
  async offset(server: RedisServer): Promise<number> {
    const info = String((await ask(server.port, ['INFO', 'replication'], this.#password)) ?? '');
    const m = /(?:slave_repl_offset|master_repl_offset):(\d+)/.exec(info);
    return m ? Number(m[1]) : -1;
  }

  /** True when `replica` replicates `primary` and its link is up. */
  async linkUp(replica: RedisServer, primary: RedisServer): Promise<boolean> {
    const info = String((await ask(replica.port, ['INFO', 'replication'], this.#password)) ?? '');
    return /^role:slave\r?$/m.test(info) && new RegExp(`^master_port:${primary.port}\\r?$`, 'm').test(info) && /^master_link_status:up\r?$/m.test(info);
  }

  /** A replica's role, primary and link as it reports them (for error messages). */
  async linkState(replica: RedisServer): Promise<string> {
    const info = String((await ask(replica.port, ['INFO', 'replication'], this.#password).catch((e: Error) => e.message)) ?? '');
    const field = (name: string) => new RegExp(`^${name}:(.*?)\\r?$`, 'm').exec(info)?.[1] ?? '?';
    return `role ${field('role')}, master_port ${field('master_port')}, link ${field('master_link_status')}, sync ${field('master_sync_in_progress')}`;
  }

  /**
   * What each process says of the group now, one line each: every data server's role and link,
   * every sentinel's primary, flags and the replicas it lists. For a failure message, so a test that
   * finds the group broken says how.
   */
  async describe(): Promise<string> {
    const servers = await Promise.all(
      this.servers.map(async (s) => `redis ${s.port}: ${s.running ? await this.linkState(s) : 'not running'}`),
    );
    const sentinels = await Promise.all(
      this.sentinels.map(async (s) => {
        if (!s.running) return `sentinel ${s.port}: not running`;
        const m = await s.master(this.masterName);
        const replicas = await ask(s.port, ['SENTINEL', 'REPLICAS', this.masterName]);
        const listed = Array.isArray(replicas) ? replicas.map((r) => fields(r)).map((r) => `${r.port} ${r.flags}`).join(', ') : '?';
        return `sentinel ${s.port}: primary ${m.port ?? '?'} (${m.flags ?? '?'}, epoch ${m['config-epoch'] ?? '?'}), replicas [${listed}]`;
      }),
    );
    return [...servers, ...sentinels].join('\n');
  }

  async close(): Promise<void> {
    await Promise.all(this.sentinels.map((s) => s.close()));
    await Promise.all(this.servers.map((s) => s.close()));
  }
}
