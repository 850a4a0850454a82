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
  await expect(kiosk.getByTestId('kiosk-state')).toHaveText('Waiting for work', { timeout: 30_000 });
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
  await expect(kiosk.getByTestId('kiosk-state')).toHaveText('Waiting for work');
  const answer = await stack.requestWork();
  expect(answer.work).toMatch(/^[0-9a-f]{16}$/);
  await expect(kiosk.getByTestId('count-accepted')).toHaveText('1');
  await expect(kiosk).toContainText('CPU (WebAssembly)');
});

test('between jobs the kiosk shows the rate sustained while computing and Waiting for work, not 0 H/s or Idle', async ({ page }) => {
  await page.goto(`${stack.url}?kiosk=1&autostart=1&backend=cpu&threads=1&work=precache&address=${randomAddress()}`);
  const kiosk = page.getByTestId('kiosk');
  await expect(kiosk.getByTestId('kiosk-state')).toHaveText('Waiting for work');
  // Nothing computed yet: no rate rather than a false zero.
  await expect(kiosk.getByTestId('hashrate')).toHaveText('—');
  await expect(kiosk.getByTestId('kiosk-sustained')).toHaveText('No work computed yet: the rate shows with the first job');
  // A job at the Nano send threshold runs for minutes on one thread: its live rate shows.
  const hash = randomHash();
  await stack.app.dispatcher!.precache(hash, 0xfffffff800000000n);
  await expect(kiosk.getByTestId('kiosk-state')).toHaveText('Working', { timeout: 30_000 });
  await expect(kiosk.getByTestId('kiosk-job')).toContainText('Working on');
  await expect(kiosk.getByTestId('hashrate')).toHaveAttribute('data-live', 'true');
  await expect(kiosk.getByTestId('hashrate')).toHaveText(/^[1-9][\d.]* [kM]?H\/s$/);
  // The dispatcher withdraws it (cancel/precache): the rig waits, and says what it does when it works.
  await stack.app.dispatcher!.withdraw(hash);
  await expect(kiosk.getByTestId('kiosk-state')).toHaveText('Waiting for work');
  await expect(kiosk.getByTestId('kiosk-job')).toHaveText('Waiting for work from the server');
  await expect(kiosk.getByTestId('hashrate')).toHaveAttribute('data-live', 'false');
  await expect(kiosk.getByTestId('hashrate')).toHaveText(/^[1-9][\d.]* [kM]?H\/s$/);
  await expect(kiosk.getByTestId('kiosk-sustained')).toHaveText(
    /^sustained while computing · busy ([1-9]\d?|100)% since the first job( · capacity [1-9][\d.]* [kM]?H\/s)?$/,
  );
  await expect(kiosk.getByTestId('kiosk-device')).toHaveText(/^CPU \(WebAssembly\) · CPU · 1 thread · WebAssembly (SIMD|without SIMD)$/);
});

test('kiosk with a bad address in the URL says so instead of starting', async ({ page }) => {
  const address = randomAddress();
  const bad = breakChecksum(address);
  await page.goto(`${stack.url}?kiosk=1&address=${bad}&autostart=1`);
  await expect(page.getByRole('alert')).toContainText('checksum');
  await expect(page.getByTestId('kiosk-state')).toHaveText('Not started');
});
