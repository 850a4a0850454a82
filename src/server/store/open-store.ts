/**
 * Opens the dispatcher's store. The embedded default is SQLite at `<dataDir>/dpow.sqlite` (the
 * directory is created if needed); `--store redis://host:port/db` picks the Redis store that
 * several dispatchers share, and `--store redis+sentinel://host:port,…/<master name>/<db>` the
 * same store on a primary that Redis Sentinel replaces when it dies (redis-connection.ts).
 * Commands that share the dispatcher's state (`start`, `service`, `snapshot`) all open it through
 * here so they agree on where it is.
 */
import { join } from 'node:path';
import { parseRedisTarget, redactStoreUrl, type RedisCredentials } from './redis-connection.ts';
import type { RedisStoreOptions } from './redis-store.ts';
import { SqliteStore } from './sqlite-store.ts';
import type { DispatcherStore } from './store.ts';

export const STORE_FILE = 'dpow.sqlite';

export function storePath(dataDir: string): string {
  return join(dataDir, STORE_FILE);
}

/** Why a `--store` value cannot be used, or undefined when this build can open it. */
export function storeUrlProblem(spec: string): string | undefined {
  const parsed = parseRedisTarget(spec);
  return parsed.ok ? undefined : parsed.reason;
}

export interface StoreChoice {
  /** Directory for the SQLite default. */
  dataDir: string;
  /** redis://… or redis+sentinel://…, when given: it wins over dataDir. */
  url?: string;
  /** See DEFAULT_WORK_RETENTION_MS. */
  workRetentionMs?: number;
  /** Redis logins, from configuration (never from the URL of a Sentinel store). */
  credentials?: RedisCredentials;
  sentinelCredentials?: RedisCredentials;
  /** Told when the Redis connection drops or comes back, and when it follows a new primary. */
  onConnectionChange?: RedisStoreOptions['onConnectionChange'];
  onFailover?: RedisStoreOptions['onFailover'];
}

/** Where the state lives, in words, for banners and errors (a password in a URL is blanked). */
export function describeStore(choice: StoreChoice): string {
  return choice.url !== undefined ? redactStoreUrl(choice.url) : storePath(choice.dataDir);
}

/** A store that could not be opened: the message names it and says why, in one line. */
export class StoreOpenError extends Error {
  override readonly name = 'StoreOpenError';
}

export async function openStore(choice: string | StoreChoice): Promise<DispatcherStore> {
  const { dataDir, url, workRetentionMs, ...redis }: StoreChoice = typeof choice === 'string' ? { dataDir: choice } : choice;
  const options = workRetentionMs !== undefined ? { workRetentionMs } : {};
  if (url !== undefined) {
    const problem = storeUrlProblem(url);
    if (problem) throw new StoreOpenError(`--store ${problem}, got "${redactStoreUrl(url)}"`);
  }
  try {
    if (url === undefined) return new SqliteStore(storePath(dataDir), options);
    const { RedisStore } = await import('./redis-store.ts');
    return await RedisStore.open(url, { ...options, ...redis });
  } catch (err) {
    throw new StoreOpenError(`cannot open the store ${describeStore({ dataDir, url })}: ${(err as Error).message.split('\n')[0]}`);
  }
}
