import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from './main.ts';
import { verifyApiKey } from '../server/http/api-keys.ts';
import { openStore } from '../server/store/open-store.ts';

let dir: string;
let stdout: string[];
let stderr: string[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'dpow-service-'));
  stdout = [];
  stderr = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => (stdout.push(String(chunk)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => (stderr.push(String(chunk)), true));
});

afterEach(() => {
  vi.restoreAllMocks();
  rmSync(dir, { recursive: true, force: true });
});

const cli = (...args: string[]) => main(['service', ...args, '--data', dir]);

describe('dpow-web service', () => {
  it('adds a service, printing a key that verifies against what was stored', async () => {
    expect(await cli('add', 'wallet', '--display', 'My Wallet', '--website', 'wallet.example', '--rate', '120')).toBe(0);
    const printed = stdout.join('');
    const key = /API key[^:]*: (\S+)/.exec(printed)?.[1];
    expect(key).toMatch(/^[A-Za-z0-9_-]{43}$/);

    const store = await openStore(dir);
    const record = await store.getService('wallet');
    await store.close();
    expect(record).toMatchObject({ user: 'wallet', display: 'My Wallet', website: 'wallet.example', public: true, rateLimit: 120 });
    expect(record!.apiKeyHash).not.toContain(key!);
    expect(await verifyApiKey(key!, record!.apiKeyHash)).toBe(true);
  });

  it('lists services without their keys', async () => {
    await cli('add', 'wallet', '--display', 'My Wallet', '--json');
    const { api_key } = JSON.parse(stdout.join(''));
    await cli('add', 'exchange', '--display', 'Exchange', '--private');
    stdout = [];
    expect(await cli('list')).toBe(0);
    const table = stdout.join('');
    expect(table).toMatch(/USER\s+DISPLAY\s+WEBSITE\s+VISIBILITY\s+PRECACHE\s+ONDEMAND\s+RATE\/MIN/);
    expect(table).toMatch(/exchange\s+Exchange\s+-\s+private\s+0\s+0\s+unlimited/);
    expect(table).toMatch(/wallet\s+My Wallet\s+-\s+public/);
    expect(table).not.toContain(api_key);
    stdout = [];
    expect(await cli('list', '--json')).toBe(0);
    const rows = JSON.parse(stdout.join(''));
    expect(rows.map((r: { user: string }) => r.user)).toEqual(['exchange', 'wallet']);
    expect(JSON.stringify(rows)).not.toMatch(/api_?key/i);
  });

  it('removes a service and rekeys one, invalidating the old key', async () => {
    await cli('add', 'wallet', '--display', 'W', '--json');
    const first = JSON.parse(stdout.join('')).api_key;
    stdout = [];
    expect(await cli('rekey', 'wallet', '--json')).toBe(0);
    const second = JSON.parse(stdout.join('')).api_key;
    expect(second).not.toBe(first);
    const store = await openStore(dir);
    const record = (await store.getService('wallet'))!;
    await store.close();
    expect(await verifyApiKey(first, record.apiKeyHash)).toBe(false);
    expect(await verifyApiKey(second, record.apiKeyHash)).toBe(true);

    expect(await cli('remove', 'wallet')).toBe(0);
    stdout = [];
    await cli('list', '--json');
    expect(JSON.parse(stdout.join(''))).toEqual([]);
  });

  it('exits 2 with one line for bad input', async () => {
    await cli('add', 'wallet', '--display', 'W');
    const cases: Array<[string[], RegExp]> = [
      [['add', 'wallet', '--display', 'Again'], /already exists/],
      [['add', 'other'], /needs --display/],
      [['add', 'bad user!', '--display', 'X'], /must be 1-64 characters/],
      [['add', 'other', '--display', 'X', '--rate=-1'], /--rate must be an integer >= 0/],
      [['add', 'other', '--display', 'X', '--rate', 'fast'], /--rate must be an integer >= 0/],
      [['add', 'other', '--display', 'X', '--bogus'], /Unknown option/],
      [['remove', 'ghost'], /no service "ghost"/],
      [['rekey', 'ghost'], /no service "ghost"/],
      [['frob'], /unknown subcommand/],
    ];
    for (const [args, reason] of cases) {
      stderr = [];
      expect(await cli(...args)).toBe(2);
      const text = stderr.join('');
      expect(text).toMatch(reason);
      expect(text.trimEnd().split('\n')).toHaveLength(1);
    }
  });
});
