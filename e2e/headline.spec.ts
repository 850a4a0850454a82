/**
 * The headline tells the truth, as a new volunteer meets it: `dpow-web start` with its demo at
 * the default difficulty, a dashboard on the default backend (Auto: the CPU threads here, since
 * SwiftShader is a software GPU) and a kiosk on the GPU (SwiftShader), side by side for at least
 * 40 s. Every text the headline and the kiosk's big word showed is recorded in the page as it
 * changes: once a job was computed, none is "0 H/s" or "Idle", the word is Working or Waiting for
 * work, the device is named, the chart draws a line and the capacity is never below the
 * sustained rate. Screenshots of the moments described in the issue note go to
 * DPOW_SCREENSHOTS (default test-results/screenshots).
 */
import { randomBytes } from 'node:crypto';
import { expect, test, type BrowserContext, type Page } from '@playwright/test';
import { encodeAddress } from '../src/dpow/address.ts';
import { startCommand, stopCommand, type Started } from './command.ts';

const OUT = process.env.DPOW_SCREENSHOTS ?? 'test-results/screenshots';
/** The journey runs at least this long: a minute's worth of demo jobs, as the tester ran it. */
const JOURNEY_MS = 40_000;
const RATE = /^[1-9][\d.]* [kMG]?H\/s$/;

interface Seen {
  at: number;
  word: string;
  rate: string;
}

/** Records every (word, rate) pair the page shows, from its first render. */
async function recordHeadline(context: BrowserContext) {
  await context.addInitScript(() => {
    const seen: { at: number; word: string; rate: string }[] = [];
    (window as unknown as { headlineSeen: typeof seen }).headlineSeen = seen;
    const read = () => {
      const word = document.querySelector('[data-testid="activity"], [data-testid="kiosk-state"]')?.textContent ?? '';
      const rate = document.querySelector('[data-testid="hashrate"]')?.textContent ?? '';
      const last = seen.at(-1);
      if (word && (!last || last.word !== word || last.rate !== rate)) seen.push({ at: Date.now(), word, rate });
    };
    new MutationObserver(read).observe(document, { subtree: true, childList: true, characterData: true });
  });
}

const seenOn = (page: Page) => page.evaluate(() => (window as unknown as { headlineSeen: Seen[] }).headlineSeen);

/**
 * Once the first rate showed, every later one is a rate, and no word says the worker is idle or
 * stopped (a late heartbeat on a loaded machine may truly read Offline for a moment).
 */
function expectTruthful(seen: Seen[], where: string) {
  const first = seen.findIndex((s) => RATE.test(s.rate));
  expect(first, `${where} never showed a rate: ${JSON.stringify(seen)}`).toBeGreaterThanOrEqual(0);
  for (const s of seen.slice(first)) {
    expect(s.rate, `${where} at ${new Date(s.at).toISOString()}`).toMatch(RATE);
    expect(s.word, `${where} at ${new Date(s.at).toISOString()}`).not.toMatch(/Idle|Not started|Stopped/);
  }
  expect(seen.slice(first).filter((s) => /^(Working|Waiting for work)$/.test(s.word)).length).toBeGreaterThan(0);
  expect(seen.some((s) => /\b0 H\/s|Idle/.test(`${s.word} ${s.rate}`)), JSON.stringify(seen)).toBe(false);
}

async function expectFiguresAgree(page: Page) {
  const s = await page.evaluate(() => (window as unknown as { dpowApp: { state: { value: { sustained: { hashrate: number; capacity: number | null } } } } }).dpowApp.state.value.sustained);
  expect(s.hashrate).toBeGreaterThan(0);
  if (s.capacity !== null) expect(s.capacity).toBeGreaterThanOrEqual(s.hashrate);
}

let started: Started | undefined;
test.beforeAll(async () => {
  started = await startCommand(); // the demo at its default difficulty, as `npm start` runs it
});
test.afterAll(() => stopCommand(started));

test('under the demo the headline and the kiosk show a rate and Working or Waiting for work, never 0 H/s or Idle', async ({ browser }) => {
  test.setTimeout(180_000);
  const dashboardContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const kioskContext = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  try {
    await recordHeadline(dashboardContext);
    await recordHeadline(kioskContext);
    const dashboard = await dashboardContext.newPage();
    const kiosk = await kioskContext.newPage();
    const errors: string[] = [];
    for (const page of [dashboard, kiosk]) page.on('pageerror', (e) => errors.push(e.message));

    // Precache for the dashboard and on-demand for the kiosk, so they do not race for the same jobs.
    await dashboard.goto(started!.url);
    await dashboard.getByLabel('Payout address').fill(encodeAddress(randomBytes(32)));
    await dashboard.getByRole('radio', { name: 'Precache' }).check();
    await dashboard.getByRole('button', { name: 'Start working' }).click();
    await kiosk.goto(`${started!.url}?kiosk=1&autostart=1&backend=gpu&work=ondemand&address=${encodeAddress(randomBytes(32))}`);
    const began = Date.now();

    await expect(dashboard.getByTestId('activity')).toHaveText('Waiting for work', { timeout: 30_000 });
    await expect(kiosk.getByTestId('kiosk-state')).toHaveText('Waiting for work', { timeout: 30_000 });
    // Before the first job: no rate, rather than a false zero.
    await expect(kiosk.getByTestId('hashrate')).toHaveText(/^(—|[1-9][\d.]* [kMG]?H\/s)$/);
    await kiosk.screenshot({ path: `${OUT}/headline-kiosk-start.png` });

    // A job on SwiftShader takes about a second: the kiosk is seen Working, with the live rate.
    await expect(kiosk.getByTestId('kiosk-state')).toHaveText('Working', { timeout: 60_000 });
    await kiosk.screenshot({ path: `${OUT}/headline-kiosk-working.png` });

    await expect.poll(async () => Number(await dashboard.getByTestId('count-accepted').textContent()), { timeout: 60_000 }).toBeGreaterThanOrEqual(3);
    await expect.poll(async () => Number(await kiosk.getByTestId('count-accepted').textContent()), { timeout: 90_000 }).toBeGreaterThanOrEqual(1);
    // The journey's minimum length (the checks above are each a state that has been reached).
    await expect.poll(() => Date.now() - began, { timeout: JOURNEY_MS + 30_000, intervals: [1_000] }).toBeGreaterThanOrEqual(JOURNEY_MS);

    // Now, and at every moment since the first rate showed.
    await expect(dashboard.getByTestId('activity')).toHaveText(/^(Working|Waiting for work)$/);
    await expect(dashboard.getByTestId('hashrate')).toHaveText(RATE);
    await expect(kiosk.getByTestId('kiosk-state')).toHaveText(/^(Working|Waiting for work)$/);
    await expect(kiosk.getByTestId('hashrate')).toHaveText(RATE);
    expectTruthful(await seenOn(dashboard), 'dashboard');
    expectTruthful(await seenOn(kiosk), 'kiosk');

    // The device, named.
    await expect(dashboard.getByTestId('adapter')).toHaveText(/^CPU · \d+ threads? · WebAssembly (SIMD|without SIMD)$/);
    await expect(kiosk.getByTestId('kiosk-device')).toHaveText('GPU (WebGPU) · SwiftShader (Google) · software rasteriser');
    // The chart draws the rate while computing: a line, not an empty box.
    expect(Number(await dashboard.getByTestId('rate-chart').getAttribute('data-points'))).toBeGreaterThanOrEqual(2);
    await expect(dashboard.getByTestId('rate-detail')).toHaveText(/^(sustained while computing|live, this job) · /);
    await expectFiguresAgree(dashboard);
    await expectFiguresAgree(kiosk);

    await dashboard.screenshot({ path: `${OUT}/headline-dashboard-40s.png`, fullPage: true });
    await kiosk.screenshot({ path: `${OUT}/headline-kiosk-40s.png` });
    expect(errors).toEqual([]);
  } finally {
    await dashboardContext.close();
    await kioskContext.close();
  }
});
