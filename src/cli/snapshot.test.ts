import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { encodeAddress } from '../dpow/address.ts';
import { openStore } from '../server/store/open-store.ts';
import { main } from './main.ts';
import { planSnapshot } from '../server/payout/snapshot-plan.ts';

const A = encodeAddress('a1'.repeat(32), 'nano');
const B = encodeAddress('b2'.repeat(32), 'nano');

describe('dpow-web snapshot', () => {
  let dir: string;
  let stdout: string[];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'dpow-snapshot-'));
    stdout = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => (stdout.push(String(chunk)), true));
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  });
  afterEach(() => {
    vi.restoreAllMocks();
    rmSync(dir, { recursive: true, force: true });
  });
  const cli = (...args: string[]) => main(['snapshot', '--data', dir, ...args]);
  const credit = async (address: string, type: 'precache' | 'ondemand', times: number) => {
    const store = await openStore(dir);
    for (let i = 0; i < times; i++) await store.creditClient(address, type, randomBytes(32).toString('hex'));
    await store.close();
  };
  const clients = async () => {
    const store = await openStore(dir);
    const list = await store.listClients();
    await store.close();
    return Object.fromEntries(list.map((c) => [c.address, c]));
  };

  it('records the snapshot, and the next one counts only new work', async () => {
    await credit(A, 'precache', 3);
    await credit(B, 'ondemand', 1);
    expect(await cli('--json')).toBe(0);
    const first = JSON.parse(stdout.join(''));
    expect(first).toMatchObject({ recorded: true, paid: ['precache', 'ondemand'] });
    expect(first.shares).toEqual([
      { address: A, precache: 3, ondemand: 0, share: 0.75 },
      { address: B, precache: 0, ondemand: 1, share: 0.25 },
    ]);
    expect((await clients())[A]).toMatchObject({ precache: 3, snapshot_precache: 3 });

    await credit(B, 'precache', 2);
    stdout = [];
    expect(await cli()).toBe(0);
    const text = stdout.join('');
    expect(text).toContain(`100.0000%  ${B}  precache 2  ondemand 0`);
    expect(text).toContain('snapshot recorded');
    expect((await clients())[B]).toMatchObject({ precache: 2, snapshot_precache: 2, snapshot_ondemand: 1 });
  });

  it('rolls small amounts over and records nothing on a dry run', async () => {
    await credit(A, 'precache', 2);
    await credit(A, 'ondemand', 4);
    expect(await cli('--min-precache', '5', '--json')).toBe(0);
    const plan = JSON.parse(stdout.join(''));
    expect(plan.paid).toEqual(['ondemand']);
    expect((await clients())[A]).toMatchObject({ snapshot_precache: 0, snapshot_ondemand: 4 });

    await credit(A, 'precache', 3);
    stdout = [];
    expect(await cli('--min-precache', '5', '--dry-run', '--json')).toBe(0);
    expect(JSON.parse(stdout.join(''))).toMatchObject({ recorded: false, paid: ['precache'], newWork: { precache: 5 } });
    expect((await clients())[A]).toMatchObject({ snapshot_precache: 0 });
  });

  it('work credited after the shares were computed is left for the next snapshot', async () => {
    await credit(A, 'precache', 2);
    const store = await openStore(dir);
    const plan = planSnapshot(await store.listClients(), { minPrecache: 1, minOndemand: 1 });
    await store.creditClient(A, 'precache', 'ab'.repeat(32)); // the dispatcher credits meanwhile
    await store.recordSnapshot(plan.entries);
    await store.close();
    expect((await clients())[A]).toMatchObject({ precache: 3, snapshot_precache: 2 });
    expect(await cli('--json')).toBe(0);
    expect(JSON.parse(stdout.join('')).shares).toEqual([{ address: A, precache: 1, ondemand: 0, share: 1 }]);
  });

  it('--weight difficulty pays each work by its multiplier; the default stays one work, one share', async () => {
    const store = await openStore(dir);
    // A: two 1x precache works. B: one 8x ondemand work (the dispatcher passes the multiplier).
    await store.creditClient(A, 'precache', 'a1'.repeat(32), 1);
    await store.creditClient(A, 'precache', 'a2'.repeat(32), 1);
    await store.creditClient(B, 'ondemand', 'b1'.repeat(32), 8);
    await store.close();

    expect(await cli('--dry-run', '--json')).toBe(0);
    expect(JSON.parse(stdout.join('')).shares.map((s: { share: number }) => s.share)).toEqual([2 / 3, 1 / 3]);

    stdout = [];
    expect(await cli('--weight', 'difficulty', '--json')).toBe(0);
    const weighted = JSON.parse(stdout.join(''));
    expect(weighted.shares).toEqual([
      { address: B, precache: 0, ondemand: 1, weighted: 8, share: 0.8 },
      { address: A, precache: 2, ondemand: 0, weighted: 2, share: 0.2 },
    ]);
    expect((await clients())[B]).toMatchObject({ snapshot_ondemand: 1, snapshot_weighted_ondemand: 8 });

    // Paid: a later payout, by either weight, counts only the new work.
    const again = await openStore(dir);
    await again.creditClient(A, 'ondemand', 'a3'.repeat(32), 0.5);
    await again.close();
    stdout = [];
    expect(await cli('--weight', 'difficulty', '--json')).toBe(0);
    expect(JSON.parse(stdout.join('')).shares).toEqual([{ address: A, precache: 0, ondemand: 1, weighted: 0.5, share: 1 }]);
    expect(await cli('--weight', 'luck')).toBe(2);
  });

  it('says when there is nothing to pay', async () => {
    expect(await cli()).toBe(0);
    expect(stdout.join('')).toContain('nothing to pay yet: nothing recorded');
  });

  it('refuses bad options with exit code 2', async () => {
    expect(await cli('--min-precache', 'x')).toBe(2);
    expect(await cli('--prefixes', 'doge')).toBe(2);
  });
});
