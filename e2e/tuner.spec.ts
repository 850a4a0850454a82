/**
 * The kernel tuner in a real browser, through the engine lab page (bench.html), in one persistent
 * Chromium profile opened in turn on its two software adapters:
 *   - SwiftShader (--enable-unsafe-webgpu alone);
 *   - Mesa llvmpipe through ANGLE's OpenGL ES (--use-angle=gl-egl --use-webgpu-adapter=opengles;
 *     the engine asks for a compatibility-mode adapter when the normal one is a fallback).
 * The first job on an adapter starts the calibration, and a job that arrives in the middle of it
 * is computed at once (all work re-checked here with the reference rule); the choice lands in
 * IndexedDB. A reload,
 * a new page and a new browser start reuse it without measuring again (the stored entry, its
 * time included, stays as it was), and the other adapter is another key: it calibrates, and going
 * back reuses the first entry. Needs a build first (`npx vite build`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, expect, test, type BrowserContext, type Page } from '@playwright/test';
import { chromiumArgs, chromiumPath } from '../playwright.config.ts';
import { KERNEL_VARIANTS } from '../src/pow/kernel-family.ts';
import { validateWork } from '../src/pow/work.ts';
import { parseTuningCache, readTuningCache, type StoredTuning } from './tuning-cache.ts';

const SWIFTSHADER = chromiumArgs;
const LLVMPIPE = [...chromiumArgs, '--use-angle=gl-egl', '--use-webgpu-adapter=opengles'];
/** About 4096 hashes: done in a few dispatches, long before a calibration of every candidate. */
const EASY = 'fff0000000000000';

let profile: string;
let context: BrowserContext | null = null;
/** What the first calibration on SwiftShader stored. */
let swiftshaderEntry: StoredTuning;

test.describe.configure({ mode: 'serial' });

test.beforeAll(() => {
  profile = mkdtempSync(join(tmpdir(), 'dpow-tuner-profile-'));
});

test.afterAll(async () => {
  await context?.close();
  rmSync(profile, { recursive: true, force: true });
});

/** (Re)starts Chromium on the shared profile with these flags. */
async function launch(args: string[]): Promise<BrowserContext> {
  await context?.close();
  context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    args,
    baseURL: test.info().project.use.baseURL,
  });
  return context;
}

async function openLab(ctx: BrowserContext, existing?: Page): Promise<{ page: Page; errors: string[] }> {
  const page = existing ?? (await ctx.newPage());
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto('/bench.html?backend=webgpu');
  await expect(page.getByTestId('state')).toHaveText('idle');
  return { page, errors };
}

function randomRoot(): string {
  return Array.from({ length: 64 }, () => '0123456789ABCDEF'[Math.floor(Math.random() * 16)]).join('');
}

/** One job on WebGPU; returns the tuner's state when its result came back. */
async function computeValidated(page: Page): Promise<string> {
  const root = randomRoot();
  await page.getByTestId('root').fill(root);
  await page.getByTestId('difficulty').fill(EASY);
  await page.getByTestId('compute').click();
  await expect(page.getByTestId('state')).toHaveText('done', { timeout: 60_000 });
  const work = (await page.getByTestId('work').textContent()) ?? '';
  expect(validateWork(root, work, EASY).valid, `work ${work} for ${root} at ${EASY}`).toBe(true);
  await expect(page.getByTestId('result-backend')).toHaveText('webgpu');
  await expect(page.getByTestId('kernel-mismatches')).toHaveText('0');
  return (await page.getByTestId('result-kernel-state').textContent()) ?? '';
}

/** Every entry of the page's tuning cache. */
async function storedTunings(page: Page): Promise<StoredTuning[]> {
  return parseTuningCache(await page.evaluate(readTuningCache));
}

/**
 * Waits until the browser's own GPU page (chrome://gpu) lists a WebGPU adapter matching
 * `adapter`: Chromium hides its OpenGL ES adapter's name from pages, so this is where a test can
 * see that llvmpipe is the one on offer. The adapter list fills in after the page loads.
 */
async function expectBrowserAdapter(ctx: BrowserContext, adapter: RegExp): Promise<void> {
  const page = await ctx.newPage();
  try {
    await page.goto('chrome://gpu');
    const text = () => page.evaluate(() => document.querySelector('info-view')?.shadowRoot?.textContent ?? '');
    await expect.poll(text, { timeout: 20_000 }).toMatch(adapter);
  } finally {
    await page.close();
  }
}

/** The kernel the page shows: variant, calibrated rate and the tuner's state. */
async function shownKernel(page: Page) {
  const kernel = page.getByTestId('kernel');
  return {
    variant: await kernel.getAttribute('data-variant'),
    calibrated: Number(await kernel.getAttribute('data-calibrated')),
    state: await page.getByTestId('kernel-state').textContent(),
  };
}

const CANDIDATES = KERNEL_VARIANTS.map((v) => v.name).sort();

test('first start on SwiftShader: a job during calibration is computed at once, then the choice is stored', async () => {
  test.setTimeout(120_000);
  const { page, errors } = await openLab(await launch(SWIFTSHADER));
  expect(await storedTunings(page)).toEqual([]);

  // The first job on the WebGPU backend starts the calibration, which waits for it.
  expect(await computeValidated(page)).toBe('calibrating');
  await expect(page.getByTestId('engine-backend')).toContainText(/swiftshader/i);
  await expect(page.getByTestId('kernel-state')).toHaveText('calibrating');
  // A job arriving in the middle of the measurements is computed at once, not after them.
  expect(await computeValidated(page)).toBe('calibrating');
  // Calibration ends between jobs; the engine pushes the new state without another job.
  await expect(page.getByTestId('kernel-state')).toHaveText('tuned', { timeout: 90_000 });

  const stored = await storedTunings(page);
  expect(stored).toHaveLength(1);
  const [entry] = stored;
  expect(entry.key.architecture).toBe('swiftshader');
  expect(entry.table.map((r) => r.variant).sort()).toEqual(CANDIDATES);
  expect(entry.table.every((r) => r.rate > 0)).toBe(true);
  expect(await shownKernel(page)).toEqual({ variant: entry.variant, calibrated: entry.rate, state: 'tuned' });
  // A second job runs on the choice.
  expect(await computeValidated(page)).toBe('tuned');
  swiftshaderEntry = entry;
  expect(errors).toEqual([]);
});

test('a reload, a new page and a new browser start reuse the stored choice without re-tuning', async () => {
  test.setTimeout(90_000);
  const ctx = context!;
  const first = ctx.pages().find((p) => p.url().includes('bench.html'))!;
  const reloaded = await openLab(ctx, first); // goto again: a fresh engine worker
  expect(await computeValidated(reloaded.page)).toBe('cached');
  expect(await shownKernel(reloaded.page)).toEqual({ variant: swiftshaderEntry.variant, calibrated: swiftshaderEntry.rate, state: 'cached' });

  const second = await openLab(ctx);
  expect(await computeValidated(second.page)).toBe('cached');
  expect(await shownKernel(second.page)).toEqual({ variant: swiftshaderEntry.variant, calibrated: swiftshaderEntry.rate, state: 'cached' });

  const restarted = await openLab(await launch(SWIFTSHADER));
  expect(await computeValidated(restarted.page)).toBe('cached');
  // Still cached a while later: no calibration started behind the job.
  await restarted.page.waitForTimeout(1_500);
  expect(await shownKernel(restarted.page)).toEqual({ variant: swiftshaderEntry.variant, calibrated: swiftshaderEntry.rate, state: 'cached' });
  // Nothing was measured and stored again: the one entry is as the first calibration left it.
  expect(await storedTunings(restarted.page)).toEqual([swiftshaderEntry]);
  expect([...reloaded.errors, ...second.errors, ...restarted.errors]).toEqual([]);
});

test('the same profile on llvmpipe is a new key: it calibrates and stores a second entry', async () => {
  test.setTimeout(120_000);
  const ctx = await launch(LLVMPIPE);
  await expectBrowserAdapter(ctx, /OpenGLES backend - ANGLE \([^)]*llvmpipe[^)]*\)[^\n]*\(Compatibility Mode\)/);
  const { page, errors } = await openLab(ctx);
  expect(await computeValidated(page)).toBe('calibrating');
  await expect(page.getByTestId('engine-backend')).toContainText('compatibility mode');
  await expect(page.getByTestId('kernel-state')).toHaveText('tuned', { timeout: 90_000 });

  const stored = await storedTunings(page);
  expect(stored).toHaveLength(2);
  const llvmpipe = stored.find((e) => e.key.architecture !== 'swiftshader')!;
  expect(llvmpipe.key.featureLevel).toBe('compatibility');
  expect(llvmpipe.table.map((r) => r.variant).sort()).toEqual(CANDIDATES);
  expect(await shownKernel(page)).toEqual({ variant: llvmpipe.variant, calibrated: llvmpipe.rate, state: 'tuned' });
  // The SwiftShader entry is untouched.
  expect(stored.find((e) => e.key.architecture === 'swiftshader')).toEqual(swiftshaderEntry);
  expect(errors).toEqual([]);
});

test('back on SwiftShader the first entry is reused, not re-tuned', async () => {
  test.setTimeout(60_000);
  const { page, errors } = await openLab(await launch(SWIFTSHADER));
  const before = await storedTunings(page);
  expect(await computeValidated(page)).toBe('cached');
  await expect(page.getByTestId('engine-backend')).toContainText(/swiftshader/i);
  await page.waitForTimeout(1_500);
  expect(await shownKernel(page)).toEqual({ variant: swiftshaderEntry.variant, calibrated: swiftshaderEntry.rate, state: 'cached' });
  expect(await storedTunings(page)).toEqual(before);
  expect(errors).toEqual([]);
});
