/**
 * Installability and offline use: the manifest browsers require, real PNG icons, a service
 * worker that controls the page, and a reload with the network off that still shows the app.
 */
import { appendFileSync, cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, test, type Page } from '@playwright/test';
import { randomAddress, startStack, type Stack } from './stack.ts';

/** Width and height from a PNG's IHDR chunk, or null if it is not a PNG. */
function pngSize(bytes: Buffer): { width: number; height: number } | null {
  const signature = '89504e470d0a1a0a';
  if (bytes.subarray(0, 8).toString('hex') !== signature || bytes.subarray(12, 16).toString('ascii') !== 'IHDR') return null;
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

async function waitForControl(page: Page) {
  await page.evaluate(async () => {
    await navigator.serviceWorker.ready;
  });
  await page.reload();
  await expect.poll(() => page.evaluate(() => navigator.serviceWorker.controller !== null)).toBe(true);
}

test('the manifest has what browsers require to install, with real icons', async ({ page, request }) => {
  await page.goto('/');
  const href = await page.locator('link[rel="manifest"]').getAttribute('href');
  expect(href).toBeTruthy();
  const manifestUrl = new URL(href!, page.url()).toString();
  const manifest = await (await request.get(manifestUrl)).json();
  expect(manifest.name).toBeTruthy();
  expect(manifest.short_name).toBe('dpow-web');
  expect(manifest.start_url).toBe('/');
  expect(manifest.display).toBe('standalone');
  expect(manifest.theme_color).toMatch(/^#[0-9a-f]{6}$/i);
  expect(manifest.background_color).toMatch(/^#[0-9a-f]{6}$/i);
  const icons = manifest.icons as Array<{ src: string; sizes: string; type: string; purpose?: string }>;
  for (const [size, purpose] of [
    [192, 'any'],
    [512, 'any'],
    [512, 'maskable'],
  ] as const) {
    const icon = icons.find((i) => i.sizes === `${size}x${size}` && i.type === 'image/png' && (i.purpose ?? 'any').includes(purpose));
    expect(icon, `${size}x${size} ${purpose} icon`).toBeTruthy();
    const bytes = await (await request.get(new URL(icon!.src, manifestUrl).toString())).body();
    expect(pngSize(bytes)).toEqual({ width: size, height: size });
  }
});

test('Chromium finds nothing stopping installation', async ({ page, context }) => {
  await page.goto('/');
  await waitForControl(page);
  const cdp = await context.newCDPSession(page);
  const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
  // Playwright's contexts are incognito-like, which Chromium always reports; anything else
  // (no manifest, no icon of the right size, no service worker fetch handler, …) fails here.
  expect(installabilityErrors.filter((e) => e.errorId !== 'in-incognito')).toEqual([]);
  const manifest = await cdp.send('Page.getAppManifest');
  expect(manifest.errors).toEqual([]);
});

test('a service worker controls the page after a reload and precaches the app and its kernels', async ({ page }) => {
  await page.goto('/');
  await waitForControl(page);
  const cached = await page.evaluate(async () => {
    const urls: string[] = [];
    for (const name of await caches.keys()) {
      for (const req of await (await caches.open(name)).keys()) urls.push(new URL(req.url).pathname);
    }
    return urls;
  });
  expect(cached).toContain('/index.html');
  expect(cached).toContain('/manifest.webmanifest');
  // The engine worker and every kernel file the build produced (WASM modules, shaders).
  const built = readdirSync('dist/assets').filter((f) => /^(engine\.worker|wasm).*\.js$|\.(wasm|wgsl)$/.test(f));
  expect(built.some((f) => f.startsWith('engine.worker'))).toBe(true);
  for (const file of built) expect(cached).toContain(`/assets/${file}`);
});

test('a reload while offline shows the app and a clear offline state', async ({ page, context }) => {
  await page.goto('/');
  await waitForControl(page);
  // config.json is fetched through the worker now, so its runtime cache has it for offline.
  await context.setOffline(true);
  await page.reload();
  await expect(page.locator('.brand-name')).toBeVisible();
  await expect(page.getByTestId('offline-banner')).toContainText('You are offline');
  await expect(page.getByLabel('Payout address')).toBeVisible();
  await context.setOffline(false);
  await expect(page.getByTestId('offline-banner')).toHaveCount(0);
});

test.describe('with the broker', () => {
  let stack: Stack;
  test.beforeAll(async () => {
    stack = await startStack();
  });
  test.afterAll(async () => {
    await stack?.close();
  });

  test('working through an offline reload: it resumes when the network returns', async ({ page, context }) => {
    const address = randomAddress();
    await page.goto(stack.url);
    await waitForControl(page);
    await page.getByLabel('Payout address').fill(address);
    await page.getByRole('button', { name: 'Start working' }).click();
    await expect(page.getByTestId('connection-state').first()).toHaveText('Online');

    await context.setOffline(true);
    await page.reload();
    await expect(page.getByTestId('offline-banner')).toContainText('reconnects and resumes');
    await expect(page.getByTestId('connection-state').first()).not.toHaveText('Online');

    await context.setOffline(false);
    await expect(page.getByTestId('offline-banner')).toHaveCount(0);
    await expect(page.getByTestId('connection-state').first()).toHaveText('Online', { timeout: 60_000 });
    const answer = await stack.requestWork();
    expect(answer.work).toMatch(/^[0-9a-f]{16}$/);
    await expect(page.getByTestId('count-accepted')).toHaveText('1');
    await page.getByTestId('stop').click();
  });
});

test.describe('a new version', () => {
  // A copy of the build whose sw.js the test changes, as a deployment of a new version would.
  let dir: string;
  let stack: Stack;
  test.beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dpow-app-update-'));
    cpSync('dist', dir, { recursive: true });
    stack = await startStack({ staticDir: dir });
  });
  test.afterAll(async () => {
    await stack?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function deployNewVersion(page: Page, build: string) {
    appendFileSync(join(dir, 'sw.js'), `\n// ${build}\n`);
    await page.evaluate(async () => {
      const registration = await navigator.serviceWorker.getRegistration();
      await registration?.update();
    });
  }

  test('waits for the volunteer: "Update available" then Reload activates it', async ({ page }) => {
    await page.goto(stack.url);
    await waitForControl(page);
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 1));
    await deployNewVersion(page, 'build 2');
    const banner = page.getByTestId('update-banner');
    await expect(banner).toContainText('Update available');
    // Nothing changes until asked.
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBe(1);
    await Promise.all([page.waitForEvent('load'), banner.getByRole('button', { name: 'Reload' }).click()]);
    await expect(page.getByTestId('update-banner')).toHaveCount(0);
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBeUndefined();
    const waiting = await page.evaluate(async () => (await navigator.serviceWorker.getRegistration())?.waiting ?? null);
    expect(waiting).toBeNull();
  });

  test('kiosk mode takes the new version and reloads by itself, then keeps working', async ({ page }) => {
    const address = randomAddress();
    await page.goto(`${stack.url}?kiosk=1&autostart=1&address=${address}`);
    await waitForControl(page);
    await expect(page.getByTestId('kiosk-state')).toHaveText('Waiting for work');
    await page.evaluate(() => ((window as unknown as { marker: number }).marker = 1));
    await Promise.all([page.waitForEvent('load'), deployNewVersion(page, 'build 3')]);
    expect(await page.evaluate(() => (window as unknown as { marker?: number }).marker)).toBeUndefined();
    await expect(page.getByTestId('kiosk-state')).toHaveText('Waiting for work');
    const answer = await stack.requestWork();
    expect(answer.work).toMatch(/^[0-9a-f]{16}$/);
    await expect(page.getByTestId('count-accepted')).toHaveText('1');
  });
});
