/**
 * No text is cut off, at 1280 px and on a 390 px phone: every element that holds text is
 * measured (scrollWidth against clientWidth of its box) on the working dashboard, the settings
 * and the kiosk. The browser runs WebGPU on Mesa llvmpipe through OpenGL ES, whose adapter
 * Chromium does not name: the longest device name and kernel line the page shows, and the case
 * the issue found cut off ("WebGPU (compati…", "biased-n64-w64 · 13.…"). With the GPU blocklist
 * ignored WebGL works there, so the page also names that adapter (llvmpipe, a software rasteriser).
 */
import { chromium, expect, test, type Browser, type Page } from '@playwright/test';
import { chromiumArgs, chromiumPath } from '../playwright.config.ts';
import { randomAddress, startStack, type Stack } from './stack.ts';

const LLVMPIPE = [...chromiumArgs, '--use-angle=gl-egl', '--use-webgpu-adapter=opengles', '--ignore-gpu-blocklist'];
const OUT = process.env.DPOW_SCREENSHOTS ?? 'test-results/screenshots';

let stack: Stack;
let browser: Browser;
test.beforeAll(async () => {
  stack = await startStack();
  browser = await chromium.launch({ executablePath: chromiumPath, args: LLVMPIPE });
});
test.afterAll(async () => {
  await browser?.close();
  await stack?.close();
});

/** Every element with text of its own whose box is narrower than its content: "tag[testid] text (scroll > client)". */
function overflowing(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const found = new Set<string>();
    for (const el of Array.from(document.body.querySelectorAll<HTMLElement>('*'))) {
      if (el.closest('svg, .sr-only, select, script, style')) continue;
      const text = Array.from(el.childNodes)
        .filter((n) => n.nodeType === Node.TEXT_NODE)
        .map((n) => n.textContent ?? '')
        .join('')
        .trim();
      if (!text) continue;
      // An inline element has no box of its own (clientWidth 0): measure the box it sits in.
      let box: HTMLElement | null = el;
      while (box && getComputedStyle(box).display === 'inline') box = box.parentElement;
      // Not shown (display: none), or visually hidden for screen readers only (a 1 px clipped box).
      if (!box || box.clientWidth <= 1 || getComputedStyle(box).visibility === 'hidden') continue;
      if (box.scrollWidth > box.clientWidth + 1) {
        found.add(`${box.tagName.toLowerCase()}[${box.dataset.testid ?? box.className}] "${text.slice(0, 50)}" (${box.scrollWidth} > ${box.clientWidth})`);
      }
    }
    return [...found];
  });
}

for (const viewport of [
  { width: 1280, height: 900 },
  { width: 390, height: 844 },
]) {
  test(`at ${viewport.width} px no text overflows its box: dashboard, settings, kiosk; the hidden adapter is named`, async () => {
    test.setTimeout(180_000);
    const context = await browser.newContext({ viewport, baseURL: stack.url });
    try {
      const page = await context.newPage();
      const address = randomAddress();
      await page.goto(stack.url);
      await page.getByLabel('Payout address').fill(address);
      await page.getByLabel('Compute on').selectOption('webgpu');
      expect(await overflowing(page), 'onboarding').toEqual([]);
      await page.getByRole('button', { name: 'Start working' }).click();
      await expect(page.getByTestId('activity')).toHaveText('Waiting for work', { timeout: 30_000 });
      await stack.requestWork();
      await expect(page.getByTestId('count-accepted')).toHaveText('1');
      // A fresh profile: the tuner calibrates llvmpipe after the first job, then the kernel line is longest.
      await expect(page.getByTestId('kernel')).toHaveAttribute('data-state', 'tuned', { timeout: 90_000 });
      await stack.requestWork();
      await expect(page.getByTestId('count-accepted')).toHaveText('2');
      await stack.publishAsServer(
        'statistics',
        JSON.stringify({
          services: {
            public: [{ display: 'A service with a rather long display name', website: 'https://wallet.example', precache: 48210, ondemand: 9120 }],
            private: { count: 4, precache: 20110, ondemand: 3400 },
          },
          work: { precache: 78642, ondemand: 14730 },
        }),
      );
      await expect(page.getByTestId('network-precache')).toHaveText('78,642');

      await expect(page.getByTestId('adapter')).toHaveText(
        /^llvmpipe \(LLVM [\d.]+,? \d+ bits\) by Mesa\/X\.org, named by WebGL \(OpenGL ES [\d.]+\) · software rasteriser · compatibility mode$/,
      );
      await expect(page.getByTestId('kernel')).toHaveText(/^[a-z]+-n\d+-w\d+ · [\d.]+ [kMG]?H\/s calibrated · tuned$/);
      expect(await overflowing(page), 'dashboard').toEqual([]);
      expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
      await page.screenshot({ path: `${OUT}/layout-dashboard-${viewport.width}.png`, fullPage: true });

      await page.getByTestId('settings-toggle').click();
      await expect(page.getByLabel('Pause on battery')).toBeVisible();
      expect(await overflowing(page), 'settings').toEqual([]);
      await page.getByTestId('settings-toggle').click();
      await page.getByTestId('stop').click();

      const kiosk = await context.newPage();
      await kiosk.goto(`${stack.url}?kiosk=1&autostart=1&backend=gpu&address=${address}`);
      await expect(kiosk.getByTestId('kiosk-state')).toHaveText('Waiting for work', { timeout: 30_000 });
      await stack.requestWork();
      await expect(kiosk.getByTestId('count-accepted')).toHaveText('1');
      await expect(kiosk.getByTestId('kiosk-device')).toContainText('llvmpipe');
      await expect(kiosk.getByTestId('history-accepted-24h')).toHaveText('3');
      expect(await overflowing(kiosk), 'kiosk').toEqual([]);
      await kiosk.screenshot({ path: `${OUT}/layout-kiosk-${viewport.width}.png`, fullPage: true });
    } finally {
      await context.close();
    }
  });
}
