/**
 * A worker that is kind to its machine, and a history that survives a reload, in a real Chromium
 * against the real broker and dispatcher:
 *   - the history (accepted per hour and day, accept rate, uptime) is read back after a reload,
 *     and kept in memory with a note where IndexedDB throws;
 *   - two tabs: only one computes, the other says so and can take over, and gets the work back
 *     by itself when the computing tab closes (Web Locks);
 *   - pause on battery (the Battery Status API emulated by an init script: headless Chromium's
 *     own always says "charging"): the search stops and resumes with the charger;
 *   - pause when hidden (opt-in) and notifications (opt-in, permission granted by the context).
 */
import { expect, test, type Page } from '@playwright/test';
import { randomAddress, randomHash, startStack, type Stack } from './stack.ts';

/** The Nano send threshold: minutes on one CPU thread, so a job is in flight when the test acts. */
const HARD = 0xfffffff800000000n;

let stack: Stack;
test.beforeAll(async () => {
  stack = await startStack();
});
test.afterAll(async () => {
  await stack?.close();
});

async function onboard(page: Page, address: string, options: { switches?: string[] } = {}) {
  await page.goto(stack.url);
  await page.getByLabel('Payout address').fill(address);
  for (const name of options.switches ?? []) await page.getByLabel(name).click();
  await page.getByRole('button', { name: 'Start working' }).click();
  await expect(page.getByTestId('activity')).toHaveText('Waiting for work', { timeout: 30_000 });
}

interface AppHandle {
  dpowApp: { state: { value: { current: unknown; hashrate: number; counters: { received: number } } } };
}
const appState = (page: Page) => page.evaluate(() => {
  const s = (window as unknown as AppHandle).dpowApp.state.value;
  return { current: s.current, hashrate: s.hashrate, received: s.counters.received };
});

test.describe('history', () => {
  test('accepted works per hour and day, the accept rate and uptime survive a reload', async ({ page }) => {
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await onboard(page, randomAddress());
    await Promise.all([stack.requestWork(), stack.requestWork()]);
    await expect(page.getByTestId('count-accepted')).toHaveText('2');
    // What the card shows is what was written to IndexedDB.
    await expect(page.getByTestId('history-accepted-24h')).toHaveText('2');
    await expect(page.getByTestId('history-accept-rate')).toHaveText('100%');
    await expect(page.getByTestId('history-uptime')).toHaveText(/^[\d.]+ s \(<1%\)$/);
    await expect(page.getByTestId('history-hours')).toHaveAttribute('data-values', /,2$/);

    await page.reload();
    // A new page: its own session counts from zero, the history does not.
    await expect(page.getByTestId('count-accepted')).toHaveText('0');
    await expect(page.getByTestId('history-accepted-24h')).toHaveText('2');
    await expect(page.getByTestId('history-accepted-30d')).toHaveText('2');
    await expect(page.getByTestId('history-days')).toHaveAttribute('data-values', /,2$/);
    await expect(page.getByTestId('history-note')).toHaveCount(0);
    await stack.requestWork();
    await expect(page.getByTestId('history-accepted-24h')).toHaveText('3');
    expect(errors).toEqual([]);
  });

  test('without IndexedDB the history is kept for the page, with a note, and nothing throws', async ({ page }) => {
    await page.addInitScript(() => {
      Object.defineProperty(window, 'indexedDB', {
        configurable: true,
        get() {
          throw new DOMException('The operation is insecure.', 'SecurityError');
        },
      });
    });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await onboard(page, randomAddress());
    await stack.requestWork();
    await expect(page.getByTestId('history-accepted-24h')).toHaveText('1');
    await expect(page.getByTestId('history-note')).toHaveText(
      'History is kept for this page only: IndexedDB is not available (SecurityError: The operation is insecure.).',
    );
    expect(errors).toEqual([]);
  });
});

test('two tabs: only one computes, the other takes over on request, and by itself when the first closes', async ({ context }) => {
  const first = await context.newPage();
  await onboard(first, randomAddress());
  // The second tab shares the saved settings, and picks up the work the browser was doing.
  const second = await context.newPage();
  await second.goto(stack.url);
  await expect(second.getByTestId('activity')).toHaveText('Paused (another tab)', { timeout: 30_000 });
  await expect(second.getByTestId('pause-note')).toContainText('Another tab of this browser is computing');
  await expect(first.getByTestId('activity')).toHaveText('Waiting for work');

  await stack.requestWork();
  await expect(first.getByTestId('count-published')).toHaveText('1');
  await expect(second.getByTestId('count-received')).toHaveText('0');

  await second.getByTestId('take-over').click();
  await expect(second.getByTestId('activity')).toHaveText('Waiting for work');
  await expect(first.getByTestId('activity')).toHaveText('Paused (another tab)');
  await stack.requestWork();
  await expect(second.getByTestId('count-published')).toHaveText('1');
  await expect(first.getByTestId('count-published')).toHaveText('1');

  // The computing tab closes: the waiting one gets the lock and works again.
  await second.close();
  await expect(first.getByTestId('activity')).toHaveText('Waiting for work');
  await stack.requestWork();
  await expect(first.getByTestId('count-published')).toHaveText('2');
});

test('on battery the search stops and the worker says so; on the charger it works again', async ({ page }) => {
  await page.addInitScript(() => {
    let charging = true;
    const battery = new EventTarget();
    Object.defineProperties(battery, { charging: { get: () => charging }, level: { get: () => 0.8 } });
    (window as unknown as { setCharging: (on: boolean) => void }).setCharging = (on) => {
      charging = on;
      battery.dispatchEvent(new Event('chargingchange'));
    };
    Object.defineProperty(Navigator.prototype, 'getBattery', { configurable: true, value: () => Promise.resolve(battery) });
  });
  await onboard(page, randomAddress(), {});
  await stack.app.dispatcher!.precache(randomHash(), HARD);
  await expect(page.getByTestId('activity')).toHaveText('Working');
  await expect.poll(async () => (await appState(page)).hashrate).toBeGreaterThan(0);

  await page.evaluate(() => (window as unknown as { setCharging: (on: boolean) => void }).setCharging(false));
  await expect(page.getByTestId('activity')).toHaveText('Paused (on battery)');
  await expect(page.getByTestId('pause-note')).toContainText('runs on battery');
  // The engine stopped: no job, and its last status says it is idle.
  await expect.poll(() => appState(page)).toMatchObject({ current: null, hashrate: 0 });
  await expect(page.getByTestId('event-log')).toContainText('Paused (on battery): taking no work, 1 jobs dropped');

  await page.evaluate(() => (window as unknown as { setCharging: (on: boolean) => void }).setCharging(true));
  await expect(page.getByTestId('activity')).toHaveText('Waiting for work');
  const answer = await stack.requestWork();
  expect(answer.work).toMatch(/^[0-9a-f]{16}$/);
  await expect(page.getByTestId('count-published')).toHaveText('1');
});

test('pause when hidden is opt-in: the page pauses while hidden and works when shown', async ({ page }) => {
  await onboard(page, randomAddress(), { switches: ['Pause when this page is hidden'] });
  const setHidden = (hidden: boolean) =>
    page.evaluate((h) => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (h ? 'hidden' : 'visible') });
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => h });
      document.dispatchEvent(new Event('visibilitychange'));
    }, hidden);
  await setHidden(true);
  await expect(page.getByTestId('activity')).toHaveText('Paused (page hidden)');
  await setHidden(false);
  await expect(page.getByTestId('activity')).toHaveText('Waiting for work');
  await stack.requestWork();
  await expect(page.getByTestId('count-published')).toHaveText('1');
});

test('notifications, when asked for, tell that the server refuses this address\'s results', async ({ page, context }) => {
  await context.grantPermissions(['notifications']);
  await page.addInitScript(() => {
    const shown: { title: string; body?: string }[] = [];
    (window as unknown as { shown: typeof shown }).shown = shown;
    const Real = window.Notification;
    class Recorded extends Real {
      constructor(title: string, options?: NotificationOptions) {
        super(title, options);
        shown.push({ title, body: options?.body });
      }
    }
    window.Notification = Recorded;
  });
  const address = randomAddress();
  await onboard(page, address, { switches: ['Notify me'] });
  await stack.publishAsServer(`client/${address}`, JSON.stringify({ error: 'Too many invalid results from this address: ignored for 600 s' }));
  await expect
    .poll(() => page.evaluate(() => (window as unknown as { shown: { title: string; body?: string }[] }).shown))
    .toEqual([{ title: 'dpow-web: results refused', body: 'The server says: Too many invalid results from this address: ignored for 600 s' }]);
});
