/**
 * Opens the dispatcher's default store: SQLite at `<dataDir>/dpow.sqlite` (the directory is
 * created if needed). Commands that share the dispatcher's state (`start`, `service`,
 * `snapshot`) all open it through here so they agree on the file.
 */
import { join } from 'node:path';
import { SqliteStore } from './sqlite-store.ts';
import type { DispatcherStore } from './store.ts';

export const STORE_FILE = 'dpow.sqlite';

export function storePath(dataDir: string): string {
  return join(dataDir, STORE_FILE);
}

export async function openStore(dataDir: string): Promise<DispatcherStore> {
  return new SqliteStore(storePath(dataDir));
}
