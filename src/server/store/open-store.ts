/**
 * Opens the dispatcher's store. The embedded default is SQLite at `<dataDir>/dpow.sqlite` (the
 * directory is created if needed); `--store redis://host:port/db` picks the Redis store that
 * several dispatchers share. Commands that share the dispatcher's state (`start`, `service`,
 * `snapshot`) all open it through here so they agree on where it is.
 */
import { join } from 'node:path';
import { SqliteStore } from './sqlite-store.ts';
import type { DispatcherStore } from './store.ts';

export const STORE_FILE = 'dpow.sqlite';

export function storePath(dataDir: string): string {
  return join(dataDir, STORE_FILE);
}

/** True for a `--store` value this build can open (redis:// or rediss:// with an optional /db). */
export function isStoreUrl(spec: string): boolean {
  return /^rediss?:\/\/[^/\s]+(\/\d+)?$/.test(spec);
}

export interface StoreChoice {
  /** Directory for the SQLite default. */
  dataDir: string;
  /** redis://host:port/db, when given: it wins over dataDir. */
  url?: string;
  /** See DEFAULT_WORK_RETENTION_MS. */
  workRetentionMs?: number;
}

/** Where the state lives, in words, for banners and errors. */
export function describeStore(choice: StoreChoice): string {
  return choice.url ?? storePath(choice.dataDir);
}

/** A store that could not be opened: the message names it and says why, in one line. */
export class StoreOpenError extends Error {
  override readonly name = 'StoreOpenError';
}

export async function openStore(choice: string | StoreChoice): Promise<DispatcherStore> {
  const { dataDir, url, workRetentionMs }: StoreChoice = typeof choice === 'string' ? { dataDir: choice } : choice;
  const options = workRetentionMs !== undefined ? { workRetentionMs } : {};
  if (url !== undefined && !isStoreUrl(url)) throw new StoreOpenError(`--store must be redis://host:port/db, got "${url}"`);
  try {
    if (url === undefined) return new SqliteStore(storePath(dataDir), options);
    const { RedisStore } = await import('./redis-store.ts');
    return await RedisStore.open(url, options);
  } catch (err) {
    throw new StoreOpenError(`cannot open the store ${url ?? storePath(dataDir)}: ${(err as Error).message.split('\n')[0]}`);
  }
}
