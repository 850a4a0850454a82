/**
 * `dpow-web payout` as an operator types it, against the Nano node double over real HTTP and a
 * SQLite store: the dry-run table (exact amounts, nothing written, nothing sent), a real run and
 * its lines, list and show, a stopped run and its resume, and the wallet id never printed.
 * The dry-run table and the real run's output are logged (console.info) as they were printed.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { encodeAddress } from '../dpow/address.ts';
import { RAW_PER_NANO } from '../dpow/nano-amount.ts';
import { breakChecksum } from '../testkit/address.ts';
import { NanoNodeDouble } from '../testkit/nano-node.ts';
import { openStore } from '../server/store/open-store.ts';
import { main } from './main.ts';

const NANO = RAW_PER_NANO;
/** Fixed keys, so the logged table reads the same on every run. */
const A = encodeAddress('a1'.repeat(32));
const B = encodeAddress('b2'.repeat(32));
const C = encodeAddress('c3'.repeat(32));
const FRESH = encodeAddress('d4'.repeat(32));
const TYPO = breakChecksum(encodeAddress('e5'.repeat(32)));
const SOURCE = encodeAddress('f6'.repeat(32));

let dir: string;
let node: NanoNodeDouble;
let wallet: string;
let stdout: string[];
let stderr: string[];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dpow-payout-cli-'));
  node = await NanoNodeDouble.start();
  node.openAccount(25n * NANO, SOURCE);
  wallet = node.createWallet([SOURCE]);
  for (const v of [A, B, C]) node.openAccount(0n, v);
  stdout = [];
  stderr = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => (stdout.push(String(chunk)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => (stderr.push(String(chunk)), true));
  const store = await openStore(dir);
  const credit = async (address: string, type: 'precache' | 'ondemand', n: number) => {
    for (let i = 0; i < n; i++) await store.creditClient(address, type, randomBytes(32).toString('hex'));
  };
  await credit(A, 'precache', 5);
  await credit(A, 'ondemand', 1);
  await credit(B, 'precache', 3);
  await credit(C, 'ondemand', 1);
  await credit(FRESH, 'precache', 2);
  await credit(TYPO, 'precache', 4);
  await store.close();
});

afterEach(async () => {
  vi.restoreAllMocks();
  delete process.env.DPOW_PAYOUT_WALLET;
  await node.close();
  rmSync(dir, { recursive: true, force: true });
});

const payout = (...args: string[]) => main(['payout', '--data', dir, '--node', node.url, ...args]);
const take = () => {
  const text = stdout.join('') + stderr.join('');
  stdout = [];
  stderr = [];
  return text;
};

describe('dpow-web payout', () => {
  it('--dry-run prints every address with its works, share, exact amount in NANO and raw, and what is carried; writes and sends nothing', async () => {
    expect(await payout('--source', SOURCE, '--amount', '1.234567', '--min', '0.11', '--dry-run')).toBe(0);
    const text = take();
    console.info(`dpow-web payout --source ${SOURCE} --amount 1.234567 --min 0.11 --dry-run\n${text}`);
    const rows = text.split('\n');
    expect(rows[0]).toBe(`payout plan (dry run): pool 1.234567 NANO (1234567000000000000000000000000 raw) by work from ${SOURCE} (balance 25 NANO), minimum 0.11 NANO`);
    expect(rows[1]).toMatch(/^ADDRESS +PRECACHE +ONDEMAND +SHARE % +AMOUNT NANO +AMOUNT RAW +CARRIED NANO +NOTE$/);
    // 6 : 3 : 1 : 2 works of 12; the unopened account's share and C's dust are carried.
    const row = (address: string) => rows.find((r) => r.startsWith(address))!.split(/ {2,}/);
    expect(row(A)).toEqual([A, '5', '1', '50.0000', '0.6172835', '617283500000000000000000000000', '0']);
    expect(row(B)).toEqual([B, '3', '0', '25.0000', '0.30864175', '308641750000000000000000000000', '0']);
    expect(row(FRESH)).toEqual([FRESH, '2', '0', '16.6666', '0', '0', '0.205761166666666666666666666667', 'carried: the account is not opened yet (it has never received a block)']);
    expect(row(C)).toEqual([C, '0', '1', '8.3333', '0', '0', '0.102880583333333333333333333333', 'carried: below the minimum']);
    expect(rows.find((r) => r.startsWith('TOTAL'))!.split(/ {2,}/)).toEqual(['TOTAL', '10', '2', '100.0000', '0.92592525', '925925250000000000000000000000', '0.30864175']);
    expect(text).toContain(`skipped  ${TYPO}: address checksum does not match: check it for a typo (its work stays counted)`);
    expect(text).toContain('dry run: nothing recorded, nothing sent');

    expect(node.blocks.size).toBe(0);
    const store = await openStore(dir);
    expect(await store.getClient(A)).toMatchObject({ snapshot_precache: 0, snapshot_ondemand: 0 });
    expect(await store.payouts.listRuns(5)).toEqual([]);
    await store.close();

    expect(await payout('--source', SOURCE, '--fraction', '0.04', '--dry-run', '--json')).toBe(0);
    const plan = JSON.parse(take());
    expect(plan).toMatchObject({ dryRun: true, pool: String(NANO), totals: { amount: '833333333333333333333333333333', carried: '166666666666666666666666666667' } });
  });

  it('pays, prints each payment with its block, and list and show read the ledger', async () => {
    process.env.DPOW_PAYOUT_WALLET = wallet;
    expect(await payout('--source', SOURCE, '--amount', '1.2')).toBe(0);
    const text = take();
    console.info(`DPOW_PAYOUT_WALLET=… dpow-web payout --source ${SOURCE} --amount 1.2\n${text}`);
    const runId = /payout run (\S+) recorded: 3 payments, 1 NANO; 0.2 NANO carried to the next run/.exec(text)?.[1];
    expect(runId).toBeDefined();
    for (const [address, amount] of [[A, '0.6'], [B, '0.3'], [C, '0.1']]) {
      const block = node.paidTo(address)[0];
      expect(text).toContain(`sent       ${address}  ${amount} NANO  block ${block.hash}`);
      expect(block.amount).toBe(BigInt(Number(amount) * 10) * NANO / 10n);
    }
    expect(text).toMatch(/done: 3 of 3 payments sent \(1 NANO\), 3 confirmed; 0.2 NANO carried to the next run\n$/);
    expect(node.balance(SOURCE)).toBe(24n * NANO);
    expect(text).not.toContain(wallet);

    expect(await main(['payout', 'list', '--data', dir])).toBe(0);
    expect(take()).toMatch(new RegExp(`^RUN .*\\n${runId} +\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d +done +3/3 +1 +0.2\\n$`));
    expect(await main(['payout', '--data', dir, 'show', runId!, '--json'])).toBe(0);
    const shown = JSON.parse(take());
    expect(shown.run).toMatchObject({ id: runId, status: 'done', pool: String(12n * NANO / 10n) });
    expect(shown.payments.map((p: { address: string; status: string }) => [p.address, p.status])).toEqual([
      [A, 'confirmed'],
      [B, 'confirmed'],
      [C, 'confirmed'],
      [FRESH, 'carried'],
    ]);
    expect(await payout('show', 'nope')).toBe(2);
    expect(take()).toBe('dpow-web payout: no payout run "nope" (dpow-web payout list shows them)\n');

    // The same snapshot again: nothing new to pay (the unopened account's carry waits).
    expect(await payout('--source', SOURCE, '--amount', '1.2', '--wallet', wallet)).toBe(0);
    expect(take()).toBe('nothing to pay: every amount due is still carried\n');
  });

  it('exits 1 when the node stops the run, never prints the wallet, and --resume finishes it', async () => {
    node.lockWallet(wallet, true);
    expect(await payout('--source', SOURCE, '--amount', '1', '--wallet', wallet)).toBe(1);
    const text = take();
    expect(text).toMatch(/stopped: the node answered "Wallet is locked" to the payment to nano_\w+\n0 of 3 payments sent and recorded \(0 NANO\); nothing is sent twice. Once fixed: dpow-web payout --resume \S+\n$/);
    expect(text).not.toContain(wallet);
    expect(await payout('--source', SOURCE, '--amount', '1', '--wallet', wallet)).toBe(2);
    expect(take()).toMatch(/^dpow-web payout: payout run \S+ is not finished: finish it first with dpow-web payout --resume \S+\n$/);
    node.lockWallet(wallet, false);
    // 1 NANO over 12 works: A 0.5, B 0.25, C 1/12 (rounded down); the unopened account's 2/12 is carried.
    expect(await payout('--resume', '--wallet', wallet, '--json')).toBe(0);
    expect(JSON.parse(take())).toMatchObject({ status: 'done', sent: 3, planned: 3, confirmed: 3, amount: '833333333333333333333333333333' });
    expect(await payout('--resume', '--wallet', wallet)).toBe(0);
    expect(take()).toBe('nothing to resume: every payout run is done\n');

    const other = '0'.repeat(64);
    expect(await payout('--source', SOURCE, '--amount', '1', '--wallet', other)).toBe(0);
    take();
    const store = await openStore(dir);
    await store.creditClient(A, 'precache', 'ab'.repeat(32));
    await store.close();
    expect(await payout('--source', SOURCE, '--amount', '1', '--wallet', other)).toBe(1);
    const refused = take();
    expect(refused).toContain('"Wallet not found"');
    expect(refused).not.toContain(other);
  });

  it('refuses bad options with one line and exit 2', async () => {
    const cases: [string[], RegExp][] = [
      [['--source', SOURCE, '--dry-run'], /one of --amount <NANO> or --fraction/],
      [['--source', SOURCE, '--amount', '1', '--fraction', '0.5', '--dry-run'], /one of --amount/],
      [['--source', SOURCE, '--amount', '1e3', '--dry-run'], /--amount: "1e3" is not an amount in NANO/],
      [['--source', SOURCE, '--fraction', '1.5', '--dry-run'], /--fraction must be a decimal in \(0, 1\]/],
      [['--source', SOURCE, '--fraction', '0', '--dry-run'], /--fraction must be/],
      [['--source', SOURCE, '--amount', '1', '--weight', 'luck', '--dry-run'], /--weight must be work or difficulty/],
      [['--source', SOURCE, '--amount', '1', '--node', 'ftp://x', '--dry-run'], /--node must be an http/],
      [['--source', SOURCE, '--amount', '1'], /needs the node wallet id/],
      [['--source', breakChecksum(SOURCE), '--amount', '1', '--dry-run'], /--source: address checksum/],
      [['--amount', '1', '--dry-run'], /--source <account> is required/],
    ];
    for (const [args, message] of cases) {
      expect(await payout(...args), args.join(' ')).toBe(2);
      const text = take();
      expect(text, args.join(' ')).toMatch(message);
      expect(text.split('\n').filter(Boolean)).toHaveLength(1);
    }
    expect(node.blocks.size).toBe(0);
  });
});
