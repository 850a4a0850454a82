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
import { CliError, intOption, parseOptions } from './args.ts';
import { generateApiKey, hashApiKey } from '../server/http/api-keys.ts';
import { openCliStore, STORE_OPTIONS } from './store-option.ts';
import type { DispatcherStore, ServiceRecord } from '../server/store/store.ts';

const USER = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

const USAGE = `usage:
  dpow-web service add <user> --display "Name" [--website example.org] [--private] [--rate N] [--json]
  dpow-web service list [--json]
  dpow-web service remove <user>
  dpow-web service rekey <user> [--json]
options: --data <dir> (SQLite, default .data) or --store redis://host:port/db`;

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

function oneUser(positionals: string[], verb: string): string {
  if (positionals.length !== 1) throw new CliError(`service ${verb} needs exactly one <user>`);
  const user = positionals[0];
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

async function withStore<T>(where: { data?: string; store?: string }, fn: (store: DispatcherStore) => Promise<T>): Promise<T> {
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

async function add(argv: string[]): Promise<number> {
  const { values, positionals } = parseOptions(argv, {
    ...STORE_OPTIONS,
    display: { type: 'string' },
    website: { type: 'string', default: '' },
    private: { type: 'boolean', default: false },
    rate: { type: 'string' },
    json: { type: 'boolean', default: false },
  });
  const user = oneUser(positionals, 'add');
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
    printKey(user, key, values.json!, 'Added');
    return 0;
  });
}

async function list(argv: string[]): Promise<number> {
  const { values, positionals } = parseOptions(argv, {
    ...STORE_OPTIONS,
    json: { type: 'boolean', default: false },
  });
  if (positionals.length !== 0) throw new CliError('service list takes no arguments');
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
    const widths = table[0].map((_, i) => Math.max(...table.map((row) => row[i].length)));
    for (const row of table) out(row.map((cell, i) => cell.padEnd(widths[i])).join('  ').trimEnd());
    return 0;
  });
}

async function remove(argv: string[]): Promise<number> {
  const { values, positionals } = parseOptions(argv, { ...STORE_OPTIONS });
  const user = oneUser(positionals, 'remove');
  return withStore(values, async (store) => {
    if (!(await store.removeService(user))) throw new CliError(`no service "${user}"`);
    out(`Removed service "${user}"; its key no longer works.`);
    return 0;
  });
}

async function rekey(argv: string[]): Promise<number> {
  const { values, positionals } = parseOptions(argv, {
    ...STORE_OPTIONS,
    json: { type: 'boolean', default: false },
  });
  const user = oneUser(positionals, 'rekey');
  return withStore(values, async (store) => {
    const existing = await store.getService(user);
    if (!existing) throw new CliError(`no service "${user}"`);
    const key = generateApiKey();
    await store.addService({ ...existing, apiKeyHash: await hashApiKey(key) });
    printKey(user, key, values.json!, 'New key for');
    return 0;
  });
}

export async function run(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  switch (verb) {
    case 'add':
      return add(rest);
    case 'list':
      return list(rest);
    case 'remove':
      return remove(rest);
    case 'rekey':
      return rekey(rest);
    case undefined:
    case '--help':
    case '-h':
      out(USAGE);
      return verb === undefined ? 2 : 0;
    default:
      throw new CliError(`unknown subcommand "${verb}" (add, list, remove, rekey)`);
  }
}
