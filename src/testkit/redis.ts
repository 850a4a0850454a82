/**
 * Test helper, never imported by the product: Debian's redis-server on a free loopback port,
 * with its own temporary directory and no persistence unless asked (an append-only file). One
 * per test file; stop() and start() again (same port) stand for an outage.
 *
 * Skipped with a message only when redis-server is not installed AND this is not CI (.ci/run
 * installs it); under CI a missing binary fails.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { killOnExit } from './exit-kill.ts';
import { canConnect, freePort } from './net.ts';

export const REDIS_SERVER = 'redis-server';
export const redisInstalled = spawnSync('sh', ['-c', `command -v ${REDIS_SERVER}`]).status === 0;

/** True when the Redis tests should be skipped here (not installed, not CI); says so once. */
export function skipWithoutRedis(file: string): boolean {
  if (redisInstalled || process.env.CI) return false;
  console.warn(`${file}: skipped, ${REDIS_SERVER} is not installed (apt-get install redis-server)`);
  return true;
}

export class RedisServer {
  #process?: ChildProcess;
  #log = '';

  /** What the server printed, for a failure message. */
  get log(): string {
    return this.#log;
  }
  private constructor(
    readonly port: number,
    readonly dir: string,
    /** With an append-only file, what was written survives stop() and start(). */
    readonly persist: boolean,
    /** Starts as a replica of the server on this loopback port. */
    readonly replicaOf?: number,
    /** Clients (and replicas, of their primary) log in with this password. */
    readonly password?: string,
  ) {}

  /** redis://127.0.0.1:<port>/<db> */
  url(db = 0): string {
    return `redis://127.0.0.1:${this.port}/${db}`;
  }

  static async start(options: { persist?: boolean; replicaOf?: number; password?: string } = {}): Promise<RedisServer> {
    const server = new RedisServer(await freePort(), mkdtempSync(join(tmpdir(), 'dpow-redis-')), options.persist ?? false, options.replicaOf, options.password);
    await server.start();
    return server;
  }

  get running(): boolean {
    return this.#process !== undefined && this.#process.exitCode === null && this.#process.signalCode === null;
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
    const child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#process = child;
    killOnExit(child);
    child.stdout!.on('data', (d) => (this.#log += d));
    child.stderr!.on('data', (d) => (this.#log += d));
    const deadline = Date.now() + 10_000;
    while (!(await canConnect('127.0.0.1', this.port))) {
      if (!this.running || Date.now() > deadline) throw new Error(`redis-server did not start on ${this.port}:\n${this.#log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Stops the server (SIGTERM, or SIGKILL for a crash); without `persist` the data is gone. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.#process;
    if (!child || !this.running) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  }

  /** Freezes the process (SIGSTOP): it holds its connections and answers nothing, as a hung host. */
  pause(): void {
    if (this.running) this.#process!.kill('SIGSTOP');
  }

  /** Lets a paused process run on (SIGCONT). */
  resume(): void {
    if (this.running) this.#process!.kill('SIGCONT');
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
