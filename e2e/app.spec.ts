/**
 * The volunteer's app in a real Chromium: onboarding, start/stop against the real broker and
 * dispatcher, statistics from real MQTT messages, work in a hidden tab.
 */
import { expect, test, type Page } from '@playwright/test';
import { encodeAddress } from '../src/dpow/address.ts';
import { EXPLORER, randomAddress, randomHash, startStack, type Stack } from './stack.ts';
import { breakChecksum } from '../src/testkit/address.ts';
import { KERNEL_VARIANTS } from '../src/pow/kernel-family.ts';

const GOOD = encodeAddress('3'.repeat(64));
/** One character changed in the checksum part: right length and alphabet, wrong checksum. */
const BAD_CHECKSUM = breakChecksum(GOOD);

async function onboard(page: Page, address: string) {
  await page.getByLabel('Payout address').fill(address);
  await expect(page.getByText('Valid address, checksum verified.')).toBeVisible();
  await page.getByRole('button', { name: 'Start working' }).click();
  await expect(page.getByTestId('connection-state').first()).toHaveText(/Online/, { timeout: 30_000 });
}

test.describe('without the broker', () => {
  test('onboarding refuses a bad checksum with the reason and accepts a good address', async ({ page }) => {
    await page.goto('/');
    const input = page.getByLabel('Payout address');
    const start = page.getByRole('button', { name: 'Start working' });
    await expect(start).toBeDisabled();

    await input.fill(BAD_CHECKSUM);
    await expect(input).toHaveAttribute('aria-invalid', 'true');
    await expect(input).toHaveAttribute('aria-describedby', 'address-help');
    await expect(page.locator('#address-help')).toHaveText(/checksum does not match/i);
    await expect(start).toBeDisabled();

    await input.fill('nano_1abc');
    await expect(page.locator('#address-help')).toHaveText(/60 characters/);

    await input.fill(GOOD);
    await expect(input).toHaveAttribute('aria-invalid', 'false');
    await expect(page.locator('#address-help')).toHaveText('Valid address, checksum verified.');
    await expect(start).toBeEnabled();
  });

  test('every control has a label and the form works from the keyboard', async ({ page }) => {
    await page.goto('/');
    for (const label of ['Payout address', 'Compute on', 'CPU threads', 'Intensity (GPU and CPU)', 'GPU kernel', 'Pause on battery', 'One tab computes', 'Pause when this page is hidden', 'Notify me']) {
      await expect(page.getByLabel(label, { exact: false }).first()).toBeVisible();
    }
    await page.getByLabel('Payout address').focus();
    await page.keyboard.type(GOOD);
    await page.keyboard.press('Tab'); // to the first work-type radio
    await page.keyboard.press('ArrowRight');
    await expect(page.getByRole('radio', { name: 'On demand' })).toBeChecked();
  });

  test('a stored kernel this version does not have is named in a notice and falls back to Automatic', async ({ page }) => {
    await page.goto('/');
    await page.evaluate(() =>
      localStorage.setItem('dpow-web.settings.v1', JSON.stringify({ address: '', work: 'ondemand', kernel: 'plain-n4096-w1' })),
    );
    await page.reload();
    await expect(page.getByTestId('settings-notice')).toContainText(
      'Kernel setting "plain-n4096-w1" is not a kernel this version has',
    );
    await expect(page.getByTestId('settings-notice')).toContainText('using Automatic (tuned) instead');
    await expect(page.getByLabel('GPU kernel')).toHaveValue('auto');
    // The rest of the stored settings still apply.
    await expect(page.getByRole('radio', { name: 'On demand' })).toBeChecked();
  });

  test('the share link carries the settings but never the password', async ({ page, context }) => {
    await context.grantPermissions(['clipboard-read', 'clipboard-write']);
    await page.goto('/');
    await page.getByLabel('Payout address').fill(GOOD);
    await page.getByRole('radio', { name: 'Precache' }).check();
    await page.getByText('Connection', { exact: true }).click();
    await page.getByLabel('Username').fill('alice');
    await page.getByLabel('Password').fill('hunter2-very-secret');
    await page.getByRole('button', { name: 'Copy share link' }).click();
    const link = await page.getByTestId('share-link').getAttribute('href');
    expect(link).toBeTruthy();
    expect(link).not.toContain('hunter2');
    expect(link).not.toMatch(/pass/i);
    const url = new URL(link!);
    expect(url.searchParams.get('address')).toBe(GOOD);
    expect(url.searchParams.get('work')).toBe('precache');
    expect(url.searchParams.get('user')).toBe('alice');

    // Opening the link in a fresh browser fills the form from it; the password is the default.
    const fresh = await context.browser()!.newContext();
    const other = await fresh.newPage();
    await other.goto(link!);
    await expect(other.getByLabel('Payout address')).toHaveValue(GOOD);
    await expect(other.getByRole('radio', { name: 'Precache' })).toBeChecked();
    await other.getByText('Connection', { exact: true }).click();
    await expect(other.getByLabel('Username')).toHaveValue('alice');
    await expect(other.getByLabel('Password')).not.toHaveValue('hunter2-very-secret');
    await fresh.close();
  });

  test('the built page has no inline script and a strict CSP', async ({ page, request }) => {
    const html = await (await request.get('/')).text();
    expect(html).toContain('Content-Security-Policy');
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/i);
    const violations: string[] = [];
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
    });
    await page.goto('/');
    await expect(page.getByLabel('Payout address')).toBeVisible();
    expect(violations).toEqual([]);
  });

  test('the theme toggle switches between light and dark', async ({ page }) => {
    await page.emulateMedia({ colorScheme: 'light' });
    await page.goto('/');
    const toggle = page.getByRole('button', { name: /Switch to dark theme/ });
    await toggle.click();
    await expect(page.locator('html')).toHaveAttribute('data-theme', 'dark');
    await page.reload();
    await expect(page.locator('html')).toHaveAttribute('data-theme', 'dark');
    // The palette follows the choice (each colour is one light-dark() pair in styles.css).
    await expect(page.locator('body')).toHaveCSS('background-color', 'rgb(13, 17, 23)');
    await page.getByRole('button', { name: /Switch to light theme/ }).click();
    await expect(page.locator('html')).toHaveAttribute('data-theme', 'light');
    await expect(page.locator('body')).toHaveCSS('background-color', 'rgb(244, 246, 249)');
  });
});

test.describe('with the broker and dispatcher', () => {
  let stack: Stack;
  test.beforeAll(async () => {
    stack = await startStack();
  });
  test.afterAll(async () => {
    await stack?.close();
  });

  test('a good address starts work, results are accepted, Stop stops', async ({ page }) => {
    // Every CSP violation on the working dashboard (chart, workers, WebSocket) is collected.
    await page.addInitScript(() => {
      const seen: string[] = [];
      (window as unknown as { cspViolations: string[] }).cspViolations = seen;
      document.addEventListener('securitypolicyviolation', (e) => seen.push(`${e.violatedDirective} ${e.blockedURI}`));
    });
    const address = randomAddress();
    await page.goto(stack.url);
    await onboard(page, address);
    await expect(page.getByTestId('heartbeat')).not.toHaveText('—');

    const hash = randomHash();
    const answer = await stack.requestWork(hash);
    expect(answer.hash).toBe(hash);
    expect(answer.work).toMatch(/^[0-9a-f]{16}$/);
    await expect(page.getByTestId('count-published')).toHaveText('1');
    await expect(page.getByTestId('count-accepted')).toHaveText('1');
    await expect(page.getByTestId('count-address-accepted')).toHaveText('1');
    await expect(page.getByTestId('backend')).not.toHaveText('—');
    // The dispatcher credits the address and says so on client/<address>.
    await expect(page.getByTestId('personal-ondemand')).toHaveText('1');
    expect(await page.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations)).toEqual([]);

    await page.getByTestId('stop').click();
    await expect(page.getByTestId('connection-state').first()).toHaveText('Stopped');
    await expect(page.getByTestId('start')).toBeEnabled();

    // Settings were saved: a reload goes to the dashboard, not onboarding.
    await page.reload();
    await expect(page.getByTestId('start')).toBeVisible();
    await page.getByTestId('start').click();
    await expect(page.getByTestId('connection-state').first()).toHaveText('Online');
    await page.getByTestId('stop').click();
  });

  test('changing settings while working restarts with them', async ({ page }) => {
    await page.goto(stack.url);
    await onboard(page, randomAddress());
    await page.getByTestId('settings-toggle').click();
    await page.getByRole('radio', { name: 'Precache' }).check();
    await page.getByRole('button', { name: 'Apply and restart' }).click();
    await expect(page.getByTestId('connection-state').first()).toHaveText('Online');
    await expect(page.getByTestId('event-log')).toContainText('for precache work');
    // Precache work reaches it; on-demand work would not.
    const hash = randomHash();
    await stack.requestWork(hash, 'precache');
    await expect(page.getByTestId('count-published')).toHaveText('1');
    await page.getByTestId('stop').click();
  });

  test('a kernel forced in Settings is what the backend card shows, with state forced; Automatic hands back to the tuner', async ({ page }) => {
    await page.goto(stack.url);
    await page.getByLabel('Compute on').selectOption('webgpu'); // SwiftShader here
    const choices = await page.getByLabel('GPU kernel').locator('option').allTextContents();
    expect(choices).toEqual(['Automatic (tuned)', ...KERNEL_VARIANTS.map((v) => v.name)]);
    await page.getByLabel('GPU kernel').selectOption('plain-n8-w256');
    await onboard(page, randomAddress());
    await stack.requestWork();
    await expect(page.getByTestId('count-published')).toHaveText('1');
    const kernel = page.getByTestId('kernel');
    await expect(kernel).toHaveAttribute('data-state', 'forced');
    await expect(kernel).toHaveAttribute('data-variant', 'plain-n8-w256');
    await expect(kernel).toHaveText('plain-n8-w256 · forced');
    await expect(page.getByTestId('backend')).toHaveText('GPU (WebGPU)');

    await page.getByTestId('settings-toggle').click();
    await expect(page.getByLabel('GPU kernel')).toHaveValue('plain-n8-w256'); // persisted with the rest
    await page.getByLabel('GPU kernel').selectOption('auto');
    await page.getByRole('button', { name: 'Apply and restart' }).click();
    // The new client session (its own counters start from zero; the page's carry on) is online:
    // the old one's Online does not count.
    await expect
      .poll(() => page.evaluate(() => {
        const s = (window as unknown as { dpowApp: { state: { value: { connection: string; counters: { published: number } } } } }).dpowApp.state.value;
        return `${s.connection} ${s.counters.published}`;
      }))
      .toBe('online 0');
    await stack.requestWork();
    await expect(page.getByTestId('count-published')).toHaveText('2');
    // A fresh browser profile: the tuner calibrates (work went on meanwhile), then says tuned.
    await expect(kernel).toHaveAttribute('data-state', /^(calibrating|tuned)$/);
    await expect(kernel).toHaveText(/ · (calibrating…|[\d.]+ [kMG]?H\/s calibrated · tuned)$/);
    await page.getByTestId('stop').click();
  });

  test('personal and network statistics update from messages on the broker', async ({ page }) => {
    const address = randomAddress();
    await page.goto(stack.url);
    await onboard(page, address);

    const block = randomHash().toLowerCase();
    await stack.publishAsServer(
      `client/${address}`,
      JSON.stringify({ precache: 12, ondemand: 7, snapshot_precache: 2, snapshot_ondemand: 1, block_rewarded: block }),
    );
    await expect(page.getByTestId('personal-precache')).toHaveText('12');
    await expect(page.getByTestId('personal-ondemand')).toHaveText('7');
    const link = page.getByTestId('rewarded-block');
    await expect(link).toHaveAttribute('href', EXPLORER.replace('{hash}', block));

    await stack.publishAsServer(
      'statistics',
      JSON.stringify({
        services: {
          public: [{ display: 'Example Wallet', website: 'https://wallet.example', precache: 320, ondemand: 45 }],
          private: { count: 3, precache: 1000, ondemand: 200 },
        },
        work: { precache: 1320, ondemand: 245 },
      }),
    );
    const network = page.getByTestId('network-stats');
    await expect(network.getByRole('link', { name: 'Example Wallet' })).toHaveAttribute('href', 'https://wallet.example/');
    await expect(network.getByText('3 private services')).toBeVisible();
    await expect(page.getByTestId('network-precache')).toHaveText('1,320');
    await expect(page.getByTestId('network-ondemand')).toHaveText('245');

    // The error form is shown as a warning, not as stats.
    await stack.publishAsServer(`client/${address}`, JSON.stringify({ error: `Work accepted but account ${address} is invalid` }));
    await expect(page.getByTestId('personal-error')).toContainText('is invalid');

    // Each of these shows up in the event log, which filters by text.
    await page.getByLabel('Search the log').fill('zzz-no-such-event');
    await expect(page.getByText('No events match the filter.')).toBeVisible();
    await page.getByLabel('Search the log').fill('');
    await expect(page.getByTestId('event-log')).toBeVisible();
    await page.getByTestId('stop').click();
  });

  test('work continues while the tab is hidden', async ({ page, context }) => {
    const address = randomAddress();
    await page.goto(stack.url);
    await onboard(page, address);

    // Headless Chromium reports every page as visible whatever is in front (checked: a second
    // page brought to front, a popup, a minimized window). So the page is told it is hidden the
    // way a background tab is: visibilityState 'hidden', the visibilitychange event, and
    // requestAnimationFrame never firing. A second page is also put in front and the page loses
    // focus emulation. Nothing in the app may gate work on any of these.
    const cdp = await context.newCDPSession(page);
    await cdp.send('Emulation.setFocusEmulationEnabled', { enabled: false });
    const front = await context.newPage();
    await front.goto('about:blank');
    await front.bringToFront();
    await page.evaluate(() => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
      window.requestAnimationFrame = () => 0;
      document.dispatchEvent(new Event('visibilitychange'));
    });

    const answers = await Promise.all([stack.requestWork(), stack.requestWork(undefined, 'ondemand')]);
    expect(answers.every((a) => /^[0-9a-f]{16}$/.test(a.work))).toBe(true);
    expect(await page.evaluate(() => document.visibilityState)).toBe('hidden');
    await expect(page.getByTestId('count-accepted')).toHaveText('2');
    await front.close();
    await page.getByTestId('stop').click();
  });
});

test.describe('when the server goes quiet', () => {
  let stack: Stack;
  test.beforeAll(async () => {
    stack = await startStack();
  });
  test.afterAll(async () => {
    await stack?.close();
  });

  test('no heartbeat shows "Server offline"; heartbeats again clear it', async ({ page }) => {
    await page.goto(stack.url);
    await onboard(page, randomAddress());
    await expect(page.getByTestId('server-offline-banner')).toHaveCount(0);
    await expect(page.getByTestId('heartbeat')).not.toHaveText('—');
    // The dispatcher stops: the broker stays up, but nothing sends heartbeats any more.
    await stack.app.dispatcher!.stop();
    const banner = page.getByTestId('server-offline-banner');
    await expect(banner).toContainText('Server offline', { timeout: 20_000 });
    await expect(banner).toContainText(/No heartbeat for \d+ s/);
    await expect(page.getByTestId('connection-state').first()).toHaveText('Server offline');

    // A server (here the test, with the dispatcher's login) beats again.
    const beat = setInterval(() => void stack.publishAsServer('heartbeat', '').catch(() => undefined), 500);
    try {
      await expect(banner).toHaveCount(0, { timeout: 20_000 });
      await expect(page.getByTestId('connection-state').first()).toHaveText('Online');
    } finally {
      clearInterval(beat);
    }
  });
});
