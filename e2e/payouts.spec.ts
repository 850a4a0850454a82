/**
 * A volunteer gets paid, in a real Chromium: the page computes work the dispatcher credits, the
 * operator runs `dpow-web payout` (a real child process, on the stack's own SQLite file, against
 * the Nano node double), and the rewards card shows the payment: its exact amount in NANO, its
 * block linked to the explorer, and the total paid.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test } from '@playwright/test';
import { RAW_PER_NANO } from '../src/dpow/nano-amount.ts';
import { SqliteStore } from '../src/server/store/sqlite-store.ts';
import { storePath } from '../src/server/store/open-store.ts';
import { NanoNodeDouble } from '../src/testkit/nano-node.ts';
import { EXPLORER, startStack, type Stack } from './stack.ts';

let dir: string;
let store: SqliteStore;
let stack: Stack;
let node: NanoNodeDouble;

test.beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dpow-e2e-payouts-'));
  store = new SqliteStore(storePath(dir));
  stack = await startStack({ store });
  node = await NanoNodeDouble.start();
});

test.afterAll(async () => {
  await stack?.close();
  await store?.close();
  await node?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** `dpow-web payout …` as the operator types it; resolves with its exit code and output. */
function payout(args: string[], wallet: string): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, ['bin/dpow-web.mjs', 'payout', '--data', dir, '--node', node.url, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, DPOW_PAYOUT_WALLET: wallet },
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, output })));
}

test('a volunteer is credited, the operator pays, and the card shows the payment with its amount', async ({ page }) => {
  const source = node.openAccount(10n * RAW_PER_NANO);
  const wallet = node.createWallet([source]);
  const volunteer = node.openAccount(0n);

  await page.goto(stack.url);
  await page.getByLabel('Payout address').fill(volunteer);
  await page.getByLabel('Compute on').selectOption('wasm');
  await page.getByRole('button', { name: 'Start working' }).click();
  await expect(page.getByTestId('connection-state').first()).toHaveText(/Online/, { timeout: 30_000 });
  await expect(page.getByTestId('payouts-none')).toHaveText('This server has not paid yet.');

  await stack.requestWork();
  await expect(page.getByTestId('personal-ondemand')).toHaveText('1');

  const paid = await payout(['--source', source, '--amount', '0.012345'], wallet);
  expect(paid.code, paid.output).toBe(0);
  expect(paid.output).toContain(`sent       ${volunteer}  0.012345 NANO  block `);
  const [block] = node.paidTo(volunteer);
  expect(block.amount).toBe(12_345n * 10n ** 24n);

  // The volunteer works on; the next client/<address> notice carries the moved snapshot, and
  // the card asks the server again.
  await stack.requestWork();
  await expect(page.getByTestId('personal-ondemand')).toHaveText('2');
  await expect(page.getByTestId('payout-amount')).toHaveText('0.012345 NANO');
  await expect(page.getByTestId('payouts-total')).toHaveText('0.012345 NANO');
  const link = page.getByTestId('payout-block');
  await expect(link).toHaveAttribute('href', EXPLORER.replace('{hash}', block.hash));
  await expect(link).toHaveAttribute('title', block.hash);
  await expect(page.getByTestId('payouts-none')).toHaveCount(0);
  await page.getByTestId('stop').click();
});

test('the kiosk shows the total paid to its address in short, the exact amount on hover', async ({ page }) => {
  const source = node.openAccount(10n * RAW_PER_NANO);
  const wallet = node.createWallet([source]);
  // Pay out whatever others earned first, so this run's whole pool goes to the kiosk's address.
  await payout(['--source', source, '--amount', '1'], wallet);
  const volunteer = node.openAccount(0n);

  await page.goto(`${stack.url}?kiosk=1&autostart=1&backend=cpu&threads=1&work=ondemand&address=${volunteer}`);
  const kiosk = page.getByTestId('kiosk');
  await expect(kiosk.getByTestId('kiosk-state')).toHaveText('Waiting for work', { timeout: 30_000 });
  // Nothing paid to this address yet: "Not yet" from a server without payouts, 0 from one with.
  await expect(kiosk.getByTestId('kiosk-paid')).toHaveText(/^(Not yet|0 NANO)$/);

  await stack.requestWork();
  await expect(kiosk.getByTestId('count-accepted')).toHaveText('1');
  const paid = await payout(['--source', source, '--amount', '0.1234567'], wallet);
  expect(paid.code, paid.output).toBe(0);
  expect(node.paidTo(volunteer).map((b) => b.amount)).toEqual([1_234_567n * 10n ** 23n]);

  // The next notice on client/<address> carries the moved snapshot: the kiosk asks again.
  await stack.requestWork();
  await expect(kiosk.getByTestId('count-accepted')).toHaveText('2');
  await expect(kiosk.getByTestId('kiosk-paid')).toHaveText('0.123456… NANO');
  await expect(kiosk.getByTestId('kiosk-paid')).toHaveAttribute('title', '0.1234567 NANO');
});
