/**
 * Kiosk mode: opened from a URL, it starts with no clicks and no dialogs and gets work accepted
 * on its own; it shows the large layout.
 */
import { expect, test } from '@playwright/test';
import { randomAddress, randomHash, startStack, type Stack } from './stack.ts';
import { breakChecksum } from '../src/testkit/address.ts';

let stack: Stack;
test.beforeAll(async () => {
  stack = await startStack();
});
test.afterAll(async () => {
  await stack?.close();
});

test('kiosk autostart gets work accepted with no interaction', async ({ page }) => {
  const address = randomAddress();
  const dialogs: string[] = [];
  page.on('dialog', (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  await page.goto(`${stack.url}?kiosk=1&address=${address}&work=ondemand&backend=auto&autostart=1`);
  const kiosk = page.getByTestId('kiosk');
  await expect(kiosk).toBeVisible();
  await expect(kiosk.getByTestId('connection-state')).toHaveText(/Online/, { timeout: 30_000 });
  // No onboarding form, no settings button: nothing to click.
  await expect(page.getByLabel('Payout address')).toHaveCount(0);
  await expect(page.getByRole('button')).toHaveCount(0);

  const answers = await Promise.all([stack.requestWork(), stack.requestWork()]);
  expect(answers.every((a) => /^[0-9a-f]{16}$/.test(a.work))).toBe(true);
  await expect(kiosk.getByTestId('count-accepted')).toHaveText('2');
  await expect(kiosk.getByTestId('count-published')).toHaveText('2');
  // Large readable numbers.
  const size = await kiosk.getByTestId('hashrate').evaluate((el) => parseFloat(getComputedStyle(el).fontSize));
  expect(size).toBeGreaterThanOrEqual(48);
  expect(dialogs).toEqual([]);
  // The screen stays on while it works (Screen Wake Lock; headless Chromium grants it).
  await expect(kiosk.getByText('Screen kept on')).toBeVisible();
});

test('kiosk on the CPU backend (backend=cpu) computes with WebAssembly', async ({ page }) => {
  await page.goto(`${stack.url}?kiosk=1&autostart=1&backend=cpu&threads=1&address=${randomAddress()}`);
  const kiosk = page.getByTestId('kiosk');
  await expect(kiosk.getByTestId('connection-state')).toHaveText('Online');
  const answer = await stack.requestWork();
  expect(answer.work).toMatch(/^[0-9a-f]{16}$/);
  await expect(kiosk.getByTestId('count-accepted')).toHaveText('1');
  await expect(kiosk).toContainText('CPU (WebAssembly)');
});

test('between jobs the kiosk shows the rate while working, not a bare 0 H/s', async ({ page }) => {
  await page.goto(`${stack.url}?kiosk=1&autostart=1&backend=cpu&threads=1&work=precache&address=${randomAddress()}`);
  const kiosk = page.getByTestId('kiosk');
  await expect(kiosk.getByTestId('connection-state')).toHaveText('Online');
  await expect(kiosk.getByTestId('kiosk-sustained')).toHaveText('No work computed in the last minute');
  // A job at the Nano send threshold runs for minutes on one thread: long enough to be sampled.
  const hash = randomHash();
  await stack.app.dispatcher!.precache(hash, 0xfffffff800000000n);
  await expect(kiosk.getByTestId('kiosk-job')).toContainText('Working on', { timeout: 30_000 });
  await expect(kiosk.getByTestId('hashrate')).not.toHaveText('0 H/s');
  await page.waitForTimeout(2_500); // a few hashrate samples
  // The dispatcher withdraws it (cancel/precache): the rig is idle.
  await stack.app.dispatcher!.withdraw(hash);
  await expect(kiosk.getByTestId('kiosk-job')).toHaveText('Waiting for work from the server');
  await expect(kiosk).toContainText('average while working');
  await expect(kiosk.getByTestId('hashrate')).toHaveText(/^[1-9][\d.]* [kM]?H\/s$/);
  // The rate over computing time and the share of the last minute spent computing stay up too.
  await expect(kiosk.getByTestId('kiosk-sustained')).toHaveText(
    /^[1-9][\d.]* [kM]?H\/s sustained while computing · busy ([1-9]\d?|100)% of the last minute$/,
  );
});

test('kiosk with a bad address in the URL says so instead of starting', async ({ page }) => {
  const address = randomAddress();
  const bad = breakChecksum(address);
  await page.goto(`${stack.url}?kiosk=1&address=${bad}&autostart=1`);
  await expect(page.getByRole('alert')).toContainText('checksum');
  await expect(page.getByTestId('connection-state')).toHaveText(/Not started/);
});
