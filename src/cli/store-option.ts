/**
 * `--data <dir>` (SQLite, the default) and `--store redis://host:port/db` for every command that
 * shares the dispatcher's state (`start`, `service`, `snapshot`): one definition, one error.
 */
import { CliError } from './args.ts';
import { openStore, StoreOpenError } from '../server/store/open-store.ts';
import type { DispatcherStore } from '../server/store/store.ts';

/** The commander options, spread into `.option(...)`. */
export const DATA_OPTION = ['--data <dir>', 'the state directory dpow-web start uses', '.data'] as const;
export const STORE_OPTION = ['--store <url>', 'shared state in Redis instead of SQLite under --data: redis://host:port/db'] as const;

export async function openCliStore(values: { data?: string; store?: string }, options: { workRetentionMs?: number } = {}): Promise<DispatcherStore> {
  try {
    return await openStore({ dataDir: values.data ?? '.data', url: values.store, workRetentionMs: options.workRetentionMs });
  } catch (err) {
    throw err instanceof StoreOpenError ? new CliError(err.message) : err;
  }
}
