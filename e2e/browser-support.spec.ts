/**
 * A browser that lacks the page's optional parts (Firefox and Safari have no install prompt; a
 * private window may have no service worker or IndexedDB; some browsers no wake lock): the page
 * says so in a short note and works as before, with no error. Chromium has every part, so each is
 * taken away before the page's scripts run. The same notes are checked in Firefox and WebKit by
 * the engine specs (e2e-engines/), where the parts are really missing.
 */
import { expect, test, type Page } from '@playwright/test';
import { randomAddress, startStack, type Stack } from './stack.ts';

/** Removes the service worker, the install prompt, the wake lock and IndexedDB from the page. */
async function withoutOptionalParts(page: Page): Promise<string[]> {
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.addInitScript(() => {
    delete (Navigator.prototype as { serviceWorker?: unknown }).serviceWorker;
    delete (Navigator.prototype as { wakeLock?: unknown }).wakeLock;
    delete (window as { onbeforeinstallprompt?: unknown }).onbeforeinstallprompt;
    delete (window as { indexedDB?: unknown }).indexedDB;
  });
  return errors;
}

const notes = (page: Page) => page.getByTestId('browser-notes').locator('[data-note]');

let stack: Stack;
test.beforeAll(async () => {
  stack = await startStack();
});
test.afterAll(async () => {
  await stack?.close();
});

test('a browser with every part gets no note', async ({ page }) => {
  await page.goto(stack.url);
  await expect(page.getByLabel('Payout address')).toBeVisible();
  await expect(page.getByTestId('browser-notes')).toHaveCount(0);
});

test('without a service worker, install prompt and IndexedDB the page notes each and still works', async ({ page }) => {
  const errors = await withoutOptionalParts(page);
  await page.goto(stack.url);
  await expect(notes(page)).toHaveText([/No service worker/, /No install prompt/, /No IndexedDB/]);
  expect(await notes(page).evaluateAll((list) => list.map((n) => (n as HTMLElement).dataset.note))).toEqual([
    'service-worker',
    'install-prompt',
    'indexed-db',
  ]);

  await page.getByLabel('Payout address').fill(randomAddress());
  await page.getByRole('button', { name: 'Start working' }).click();
  await expect(page.getByTestId('connection-state').first()).toHaveText('Online');
  await stack.requestWork();
  await expect(page.getByTestId('count-accepted')).toHaveText('1');
  await page.getByTestId('stop').click();
  expect(errors).toEqual([]);
});

test('a kiosk without a wake lock notes it and still works', async ({ page }) => {
  const errors = await withoutOptionalParts(page);
  await page.goto(`${stack.url}?kiosk=1&autostart=1&work=ondemand&address=${randomAddress()}`);
  const kiosk = page.getByTestId('kiosk');
  // Connected, the kiosk's big word says it waits for work (or works).
  await expect(kiosk.getByTestId('kiosk-state')).toHaveText(/^(Waiting for work|Working)$/);
  // The install prompt does not matter to a kiosk; the screen staying on does.
  await expect(notes(page)).toHaveText([/No service worker/, /No screen wake lock/, /No IndexedDB/]);
  await stack.requestWork();
  await expect(kiosk.getByTestId('count-accepted')).toHaveText('1');
  await expect(kiosk.getByText('Screen kept on')).toHaveCount(0);
  expect(errors).toEqual([]);
});
