/**
 * `dpow-web start` as a volunteer meets it: the real command (broker, dispatcher, work source and
 * the page on 127.0.0.1) and a page that enters an address, picks a backend and presses Start.
 *  - with the demo source, jobs are computed on WebGPU (SwiftShader here), the dispatcher accepts
 *    them, and the volunteer's client/<address> stats arrive on the page;
 *  - with `--feed qlc-sim` and no demo, the only jobs are QLC precache jobs made from the go-qlc
 *    test node's confirmed blocks, and the page computes them at the QLC threshold.
 */
import { randomBytes } from 'node:crypto';
import { expect, test, type Page } from '@playwright/test';
import { encodeAddress } from '../src/dpow/address.ts';
import { startCommand, stopCommand, type Started } from './command.ts';

async function volunteer(page: Page, url: string, backend: 'webgpu' | 'wasm') {
  await page.goto(url);
  await page.getByLabel('Payout address').fill(encodeAddress(randomBytes(32)));
  await page.getByLabel('Compute on').selectOption(backend);
  await page.getByRole('button', { name: 'Start working' }).click();
  await expect(page.getByTestId('connection-state').first()).toHaveText(/Online/, { timeout: 30_000 });
}

const count = async (page: Page, testId: string) => Number((await page.getByTestId(testId).textContent())?.replace(/\D/g, '') || 0);

test.describe('the demo source', () => {
  let started: Started | undefined;
  test.beforeAll(async () => {
    started = await startCommand([]);
  });
  test.afterAll(() => stopCommand(started));

  test('a volunteer opens the URL, enters an address, presses Start and gets credited for WebGPU work', async ({ page }) => {
    await volunteer(page, started!.url, 'webgpu');
    // The Network table fills as soon as the page is online: the latest statistics are retained
    // (the demo dispatcher's own clock would publish them again only after 30 s).
    await expect(page.getByTestId('network-precache')).toBeVisible({ timeout: 5_000 });
    // Demo jobs (one precache every 5 s, one ondemand every 15 s) are computed and accepted.
    await expect(page.getByTestId('backend')).toHaveText(/WebGPU/, { timeout: 60_000 });
    await expect(page.getByTestId('count-accepted')).not.toHaveText('0', { timeout: 60_000 });
    await expect(page.getByTestId('personal-stats')).toBeVisible();
    await expect
      .poll(async () => (await count(page, 'personal-precache')) + (await count(page, 'personal-ondemand')), { timeout: 60_000 })
      .toBeGreaterThan(0);
    expect(started!.output()).not.toMatch(/invalid-work/);
  });
});

test.describe('the go-qlc feed', () => {
  let started: Started | undefined;
  test.beforeAll(async () => {
    started = await startCommand(['--no-demo', '--feed', 'qlc-sim']);
  });
  test.afterAll(() => stopCommand(started));

  test('confirmed QLC blocks become precache jobs that the page computes and the dispatcher accepts', async ({ page }) => {
    await volunteer(page, started!.url, 'wasm');
    // The QLC threshold fffffe0000000000 is 1/64 of the Nano send threshold.
    await expect(page.getByTestId('current-job')).toContainText(/Precache/i, { timeout: 60_000 });
    await expect(page.getByTestId('current-job')).toContainText('fffffe0000000000');
    await expect.poll(() => count(page, 'personal-precache'), { timeout: 90_000 }).toBeGreaterThan(0);
    expect(await count(page, 'personal-ondemand')).toBe(0);
  });
});
