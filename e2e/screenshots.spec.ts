/**
 * Screenshots of the working dashboard at desktop and phone width, light and dark, plus the
 * kiosk, saved under test-results/screenshots/ for people to look at.
 */
import { expect, test, type Page } from '@playwright/test';
import { randomAddress, randomHash, startStack, type Stack } from './stack.ts';
import { breakChecksum } from '../src/testkit/address.ts';

const OUT = process.env.DPOW_SCREENSHOTS ?? 'test-results/screenshots';
let stack: Stack;
test.beforeAll(async () => {
  stack = await startStack();
});
test.afterAll(async () => {
  await stack?.close();
});

async function feed(page: Page, address: string) {
  await Promise.all([stack.requestWork(), stack.requestWork(), stack.requestWork()]);
  // Accepted counts client/<address> updates that raise the total: wait for the real ones first.
  await expect(page.getByTestId('count-accepted')).toHaveText('3');
  await stack.publishAsServer(
    `client/${address}`,
    JSON.stringify({ precache: 1840, ondemand: 312, snapshot_precache: 1500, snapshot_ondemand: 290, block_rewarded: randomHash() }),
  );
  await stack.publishAsServer(
    'statistics',
    JSON.stringify({
      services: {
        public: [
          { display: 'Example Wallet', website: 'https://wallet.example', precache: 48210, ondemand: 9120 },
          { display: 'Tip Bot', website: 'https://tipbot.example', precache: 10322, ondemand: 2210 },
        ],
        private: { count: 4, precache: 20110, ondemand: 3400 },
      },
      work: { precache: 78642, ondemand: 14730 },
    }),
  );
  // A job that stays in flight for the "current job" card: precache at the Nano send threshold
  // (2^29 hashes expected) takes minutes on a software GPU. Stop cancels it.
  await stack.app.dispatcher!.precache(randomHash(), 0xfffffff800000000n);
  await expect(page.getByTestId('current-job')).toBeVisible();
}

for (const [name, viewport, scheme] of [
  ['desktop', { width: 1280, height: 800 }, 'light'],
  ['phone', { width: 390, height: 844 }, 'light'],
  ['desktop-dark', { width: 1280, height: 800 }, 'dark'],
  ['phone-dark', { width: 390, height: 844 }, 'dark'],
] as const) {
  test(`dashboard ${name}`, async ({ page }) => {
    await page.setViewportSize(viewport);
    await page.emulateMedia({ colorScheme: scheme });
    const address = randomAddress();
    await page.goto(stack.url);
    await page.getByLabel('Payout address').fill(address);
    await page.getByRole('button', { name: 'Start working' }).click();
    await expect(page.getByTestId('connection-state').first()).toHaveText('Online');
    await feed(page, address);
    await expect(page.getByTestId('personal-precache')).toHaveText('1,840');
    await expect(page.getByTestId('network-precache')).toHaveText('78,642');
    // A few seconds of chart.
    await page.waitForTimeout(4000);
    // No horizontal scrolling at any width.
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: `${OUT}/dashboard-${name}.png`, fullPage: true });
    await page.getByTestId('stop').click();
  });
}

test('onboarding phone', async ({ page }) => {
  await page.setViewportSize({ width: 360, height: 740 });
  await page.goto(stack.url);
  const address = randomAddress();
  await page.getByLabel('Payout address').fill(breakChecksum(address));
  await expect(page.locator('#address-help')).toHaveText(/checksum/);
  expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
  await page.screenshot({ path: `${OUT}/onboarding-phone.png`, fullPage: true });
});

test('kiosk desktop', async ({ page }) => {
  await page.setViewportSize({ width: 1280, height: 800 });
  const address = randomAddress();
  await page.goto(`${stack.url}?kiosk=1&autostart=1&address=${address}`);
  await expect(page.getByTestId('kiosk-state')).toHaveText('Waiting for work');
  await Promise.all([stack.requestWork(), stack.requestWork()]);
  await expect(page.getByTestId('count-accepted')).toHaveText('2');
  await page.waitForTimeout(3000);
  await page.screenshot({ path: `${OUT}/kiosk-desktop.png`, fullPage: true });
});
