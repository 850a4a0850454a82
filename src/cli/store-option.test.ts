/** `--store redis://…` on the commands that share the dispatcher's state, against a real redis-server. */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from './main.ts';
import { openCliStore } from './store-option.ts';
import { verifyApiKey } from '../server/http/api-keys.ts';
import { openStore } from '../server/store/open-store.ts';
import { RedisServer, skipWithoutRedis } from '../testkit/redis.ts';

const ADDR = 'nano_1111111111111111111111111111111111111111111111111111hifc8npp';
let redis: RedisServer;
let db = 0;
let stdout: string[];
let stderr: string[];

beforeEach(() => {
  stdout = [];
  stderr = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => (stdout.push(String(chunk)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => (stderr.push(String(chunk)), true));
  db++; // a fresh database per test
});
afterEach(() => vi.restoreAllMocks());

describe.skipIf(skipWithoutRedis('store-option.test.ts'))('--store redis://', () => {
  beforeAll(async () => {
    redis = await RedisServer.start();
  });
  afterAll(async () => {
    await redis?.close();
  });

  it('service add, list and remove keep services (hashed keys) in Redis', async () => {
    const url = redis.url(db);
    expect(await main(['service', 'add', 'wallet', '--display', 'My Wallet', '--store', url])).toBe(0);
    const key = /API key[^:]*: (\S+)/.exec(stdout.join(''))?.[1];
    const store = await openStore({ dataDir: '.unused', url });
    const record = await store.getService('wallet');
    expect(record).toMatchObject({ user: 'wallet', display: 'My Wallet', public: true });
    expect(record!.apiKeyHash).not.toContain(key!);
    expect(await verifyApiKey(key!, record!.apiKeyHash)).toBe(true);
    await store.close();

    stdout.length = 0;
    expect(await main(['service', 'list', '--json', '--store', url])).toBe(0);
    expect(JSON.parse(stdout.join(''))).toMatchObject([{ user: 'wallet' }]);
    expect(await main(['service', 'remove', 'wallet', '--store', url])).toBe(0);
    expect(await main(['service', 'remove', 'wallet', '--store', url])).toBe(2);
  });

  it('snapshot records the shares from the credits in Redis', async () => {
    const url = redis.url(db);
    const store = await openStore({ dataDir: '.unused', url });
    for (let i = 0; i < 3; i++) await store.creditClient(ADDR, 'precache', 'AB'.repeat(32));
    expect(await main(['snapshot', '--json', '--store', url])).toBe(0);
    expect(JSON.parse(stdout.join(''))).toMatchObject({ recorded: true });
    expect(await store.getClient(ADDR)).toMatchObject({ precache: 3, snapshot_precache: 3 });
    await store.close();
  });

  it('refuses a --store it cannot use, saying why', async () => {
    expect(await main(['service', 'list', '--store', 'postgres://x/1'])).toBe(2);
    expect(stderr.join('')).toMatch(/--store must be redis:\/\/host:port\/db or redis\+sentinel:\/\/host:port,host:port\/<master name>\/<db>, got "postgres:\/\/x\/1"/);
    stderr.length = 0;
    expect(await main(['snapshot', '--store', 'redis://127.0.0.1:1/0'])).toBe(2);
    expect(stderr.join('')).toMatch(/cannot open the store redis:\/\/127\.0\.0\.1:1\/0: cannot connect to Redis/);
    stderr.length = 0;
    expect(await main(['start', '--memory', '--store', redis.url(db), '--no-build'])).toBe(2);
    expect(stderr.join('')).toMatch(/--memory and --store contradict each other/);
  });
});

describe('--work-retention', () => {
  it.each([
    ['0', 'must be an integer >= 1, got "0"'],
    ['1.5', 'must be an integer >= 1, got "1.5"'],
    ['x', 'must be an integer >= 1, got "x"'],
    ['36501', 'must be at most 36500 days, got "36501"'],
  ])('refuses %j with one clear line and exit 2', async (value, message) => {
    expect(await main(['start', '--memory', '--no-build', '--work-retention', value])).toBe(2);
    expect(stderr.join('')).toBe(`dpow-web start: --work-retention ${message}\n`);
  });

  it.each(['sqlite', 'redis'])('reaches the %s store opened for the command', async (kind) => {
    if (kind === 'redis' && skipWithoutRedis('store-option.test.ts')) return;
    const server = kind === 'redis' ? await RedisServer.start() : undefined;
    const dataDir = mkdtempSync(join(tmpdir(), 'dpow-retention-'));
    try {
      const store = await openCliStore({ data: dataDir, ...(server ? { store: server.url(1) } : {}) }, { workRetentionMs: 2 * 24 * 3600_000 });
      const day = 24 * 3600_000;
      await store.saveWork({ hash: 'AB'.repeat(32), work: '00000000000000aa', difficulty: 1n, workType: 'precache', createdAt: Date.now() - 3 * day });
      await store.saveWork({ hash: 'CD'.repeat(32), work: '00000000000000bb', difficulty: 1n, workType: 'precache', createdAt: Date.now() - day });
      expect(await store.getWork('AB'.repeat(32))).toBeUndefined();
      expect(await store.getWork('CD'.repeat(32))).toMatchObject({ work: '00000000000000bb' });
      await store.close();
    } finally {
      await server?.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
