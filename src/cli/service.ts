/**
 * `dpow-web service <add|list|remove|rekey>`: manages the services allowed to ask for on-demand
 * work. Keys are generated here, printed once, and stored only as a salted scrypt hash.
 *
 *   service add <user> --display "Name" [--website example.org] [--private] [--rate N] [--json]
 *   service list [--json]
 *   service remove <user>
 *   service rekey <user> [--json]       (a new key; the old one stops working at once)
 *
 * All take `--data <dir>` (default `.data`) or `--store redis://host:port/db`: the same store
 * `dpow-web start` uses.
 * Exit 2 with one line on stderr for bad input (unknown user, duplicate user, missing --display).
 */
import type { Command } from 'commander';
import { CliError, defineCommand, defineSubcommand, intOption, parseCommandAsync } from './args.ts';
import { generateApiKey, hashApiKey } from '../server/http/api-keys.ts';
import { DATA_OPTION, openCliStore, STORE_OPTION } from './store-option.ts';
import { formatTable } from './table.ts';
import type { DispatcherStore, ServiceRecord } from '../server/store/store.ts';

const USER = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

function checkUser(user: string): string {
  if (!USER.test(user)) {
    throw new CliError(`user "${user.slice(0, 70)}" must be 1-64 characters of letters, digits, "_", "." or "-"`);
  }
  return user;
}

function oneLine(value: string, name: string, max: number): string {
  const v = value.trim();
  if (/[\r\n\t]/.test(v) || v.length > max) throw new CliError(`--${name} must be one line of at most ${max} characters`);
  return v;
}

async function withStore<T>(where: { data: string; store?: string }, fn: (store: DispatcherStore) => Promise<T>): Promise<T> {
  const store = await openCliStore(where);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

function printKey(user: string, key: string, json: boolean, verb: string): void {
  if (json) {
    out(JSON.stringify({ user, api_key: key }));
    return;
  }
  out(`${verb} service "${user}".`);
  out(`API key (shown only this once; it is stored hashed and cannot be recovered): ${key}`);
}

interface AddOptions {
  data: string;
  store?: string;
  display?: string;
  website: string;
  private?: boolean;
  rate?: string;
  json?: boolean;
}

async function add(userArg: string, values: AddOptions): Promise<number> {
  const user = checkUser(userArg);
  if (values.display === undefined || values.display.trim() === '') throw new CliError('service add needs --display "Name"');
  const display = oneLine(values.display, 'display', 100);
  const website = oneLine(values.website ?? '', 'website', 200);
  const rateLimit = intOption(values.rate, 'rate', 0, 0);
  return withStore(values, async (store) => {
    if (await store.getService(user)) throw new CliError(`service "${user}" already exists (remove it first, or use rekey)`);
    const key = generateApiKey();
    const record: ServiceRecord = {
      user,
      apiKeyHash: await hashApiKey(key),
      display,
      website,
      public: !values.private,
      precache: 0,
      ondemand: 0,
      rateLimit,
      createdAt: Date.now(),
    };
    await store.addService(record);
    printKey(user, key, values.json === true, 'Added');
    return 0;
  });
}

async function list(values: { data: string; store?: string; json?: boolean }): Promise<number> {
  return withStore(values, async (store) => {
    const services = await store.listServices();
    const rows = services.map((s) => ({
      user: s.user,
      display: s.display,
      website: s.website,
      public: s.public,
      precache: s.precache,
      ondemand: s.ondemand,
      rate: s.rateLimit,
    }));
    if (values.json) {
      out(JSON.stringify(rows));
      return 0;
    }
    if (rows.length === 0) {
      out('No services. Add one with: dpow-web service add <user> --display "Name"');
      return 0;
    }
    const table = [
      ['USER', 'DISPLAY', 'WEBSITE', 'VISIBILITY', 'PRECACHE', 'ONDEMAND', 'RATE/MIN'],
      ...rows.map((r) => [
        r.user,
        r.display,
        r.website || '-',
        r.public ? 'public' : 'private',
        String(r.precache),
        String(r.ondemand),
        r.rate === 0 ? 'unlimited' : String(r.rate),
      ]),
    ];
    for (const line of formatTable(table)) out(line);
    return 0;
  });
}

async function remove(userArg: string, values: { data: string; store?: string }): Promise<number> {
  const user = checkUser(userArg);
  return withStore(values, async (store) => {
    if (!(await store.removeService(user))) throw new CliError(`no service "${user}"`);
    out(`Removed service "${user}"; its key no longer works.`);
    return 0;
  });
}

async function rekey(userArg: string, values: { data: string; store?: string; json?: boolean }): Promise<number> {
  const user = checkUser(userArg);
  return withStore(values, async (store) => {
    const existing = await store.getService(user);
    if (!existing) throw new CliError(`no service "${user}"`);
    const key = generateApiKey();
    await store.addService({ ...existing, apiKeyHash: await hashApiKey(key) });
    printKey(user, key, values.json === true, 'New key for');
    return 0;
  });
}

/** `service` and its four subcommands; each action reports its exit code through `done`. */
export function command(done: (code: number) => void = () => {}): Command {
  const service = defineCommand('service');
  defineSubcommand(service, 'add', 'register a service and print its new API key (shown once)')
    .argument('<user>', 'the service login: 1-64 letters, digits, "_", "." or "-"')
    .option('--display <name>', 'name shown in statistics (required)')
    .option('--website <site>', 'website shown in statistics', '')
    .option('--private', 'count it in the private total, not by name')
    .option('--rate <n>', 'requests per minute allowed (0 = unlimited)')
    .option('--json', 'print {user, api_key} as JSON')
    .option(...DATA_OPTION)
    .option(...STORE_OPTION)
    .action(async (user: string, options: AddOptions) => done(await add(user, options)));
  defineSubcommand(service, 'list', 'list services with their counters')
    .option('--json', 'one JSON line')
    .option(...DATA_OPTION)
    .option(...STORE_OPTION)
    .action(async (options: { data: string; store?: string; json?: boolean }) => done(await list(options)));
  defineSubcommand(service, 'remove', 'remove a service; its key stops working at once')
    .argument('<user>')
    .option(...DATA_OPTION)
    .option(...STORE_OPTION)
    .action(async (user: string, options: { data: string; store?: string }) => done(await remove(user, options)));
  defineSubcommand(service, 'rekey', 'give a service a new API key; the old one stops working at once')
    .argument('<user>')
    .option('--json', 'print {user, api_key} as JSON')
    .option(...DATA_OPTION)
    .option(...STORE_OPTION)
    .action(async (user: string, options: { data: string; store?: string; json?: boolean }) => done(await rekey(user, options)));
  return service;
}

export async function run(argv: string[]): Promise<number> {
  if (argv.length === 0) {
    command().outputHelp();
    return 2;
  }
  let code = 0;
  await parseCommandAsync(command((c) => (code = c)), argv);
  return code;
}
