/**
 * `--data <dir>` (SQLite, the default) and `--store redis://host:port/db` or
 * `--store redis+sentinel://host:port,host:port/<master name>/<db>` for every command that shares
 * the dispatcher's state (`start`, `service`, `snapshot`): one definition, one error.
 *
 * Redis logins come from the environment, so no command line or log shows them:
 * DPOW_REDIS_USERNAME / DPOW_REDIS_PASSWORD for the data nodes, DPOW_SENTINEL_USERNAME /
 * DPOW_SENTINEL_PASSWORD for the sentinels (each only when that side asks for one).
 */
import { CliError } from './args.ts';
import { describeStore, openStore, StoreOpenError, storeUrlProblem, type StoreChoice } from '../server/store/open-store.ts';
import type { RedisCredentials } from '../server/store/redis-connection.ts';
import type { DispatcherStore } from '../server/store/store.ts';

/** The commander options, spread into `.option(...)`. */
export const DATA_OPTION = ['--data <dir>', 'the state directory dpow-web start uses', '.data'] as const;
export const STORE_OPTION = [
  '--store <url>',
  'shared state in Redis instead of SQLite under --data: redis://host:port/db, or redis+sentinel://host:port,host:port/<master name>/<db>[?replicas=N&wait=MS] (logins from $DPOW_REDIS_PASSWORD, $DPOW_SENTINEL_PASSWORD)',
] as const;

function credentials(env: NodeJS.ProcessEnv, prefix: string): RedisCredentials | undefined {
  const username = env[`${prefix}_USERNAME`] || undefined;
  const password = env[`${prefix}_PASSWORD`] || undefined;
  return username || password ? { ...(username ? { username } : {}), ...(password ? { password } : {}) } : undefined;
}

/** Where `--data` and `--store` point, with the Redis logins from `env`; a --store this build cannot use is refused here. */
export function storeChoice(
  values: { data?: string; store?: string },
  options: Pick<StoreChoice, 'workRetentionMs' | 'onConnectionChange' | 'onFailover'> = {},
  env: NodeJS.ProcessEnv = process.env,
): StoreChoice {
  const redis = credentials(env, 'DPOW_REDIS');
  const sentinel = credentials(env, 'DPOW_SENTINEL');
  const choice: StoreChoice = {
    dataDir: values.data ?? '.data',
    ...(values.store !== undefined ? { url: values.store } : {}),
    ...(redis ? { credentials: redis } : {}),
    ...(sentinel ? { sentinelCredentials: sentinel } : {}),
    ...options,
  };
  const problem = choice.url !== undefined ? storeUrlProblem(choice.url) : undefined;
  if (problem) throw new CliError(`--store ${problem}, got "${describeStore(choice)}"`);
  return choice;
}

export async function openCliStore(values: { data?: string; store?: string }, options: Pick<StoreChoice, 'workRetentionMs'> = {}, env: NodeJS.ProcessEnv = process.env): Promise<DispatcherStore> {
  const choice = storeChoice(values, options, env);
  try {
    return await openStore(choice);
  } catch (err) {
    throw err instanceof StoreOpenError ? new CliError(err.message) : err;
  }
}
