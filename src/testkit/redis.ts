/**
 * Test helper, never imported by the product: Debian's redis-server on a free loopback port,
 * with its own temporary directory and no persistence unless asked (an append-only file). One
 * per test file; stop() and start() again (same port) stand for an outage.
 *
 * Skipped with a message only when redis-server is not installed AND this is not CI (.ci/run
 * installs it); under CI a missing binary fails.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { freePort } from './net.ts';
import { ServerProcess } from './server-process.ts';

export const REDIS_SERVER = 'redis-server';
export const redisInstalled = spawnSync('sh', ['-c', `command -v ${REDIS_SERVER}`]).status === 0;

/** True when the Redis tests should be skipped here (not installed, not CI); says so once. */
export function skipWithoutRedis(file: string): boolean {
  if (redisInstalled || process.env.CI) return false;
  console.warn(`${file}: skipped, ${REDIS_SERVER} is not installed (apt-get install redis-server)`);
  return true;
}

export class RedisServer extends ServerProcess {
  private constructor(
    port: number,
    readonly dir: string,
    /** With an append-only file, what was written survives stop() and start(). */
    readonly persist: boolean,
    /** Starts as a replica of the server on this loopback port. */
    readonly replicaOf?: number,
    /** Clients (and replicas, of their primary) log in with this password. */
    readonly password?: string,
  ) {
    super(port);
  }

  /** redis://127.0.0.1:<port>/<db> */
  url(db = 0): string {
    return `redis://127.0.0.1:${this.port}/${db}`;
  }

  static async start(options: { persist?: boolean; replicaOf?: number; password?: string } = {}): Promise<RedisServer> {
    const server = new RedisServer(await freePort(), mkdtempSync(join(tmpdir(), 'dpow-redis-')), options.persist ?? false, options.replicaOf, options.password);
    await server.start();
    return server;
  }

  /**
   * Starts (again) on the same port; resolves once it accepts connections. `replicaOf` names the
   * primary to follow this time (after a failover, the one that was promoted).
   */
  async start(options: { replicaOf?: number } = {}): Promise<void> {
    if (this.running) return;
    const replicaOf = options.replicaOf ?? this.replicaOf;
    // A replica syncs at once: Redis 7 waits 5 s for more replicas before a diskless sync.
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', this.persist ? 'yes' : 'no', '--dir', this.dir, '--repl-diskless-sync-delay', '0'];
    if (replicaOf !== undefined) args.push('--replicaof', '127.0.0.1', String(replicaOf));
    if (this.password !== undefined) args.push('--requirepass', this.password, '--masterauth', this.password);
    await this.spawn(REDIS_SERVER, args);
  }

  /** Stops the server for good and removes its directory. */
  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A redis-server for the calling describe block: started before its tests, closed after them. */
export function redisForSuite(options: { persist?: boolean } = {}): () => RedisServer {
  let server: RedisServer | undefined;
  beforeAll(async () => {
    server = await RedisServer.start(options);
  });
  afterAll(async () => {
    await server?.close();
  });
  return () => server!;
}
