/**
 * The engine in a real browser, driven through the engine lab page (bench.html): WebGPU on
 * SwiftShader, the WASM fallback when the browser has no WebGPU, cancel, and a GPU device loss in
 * the middle of a job. Every work the page shows is re-checked here with the reference rule.
 * Needs a build first (`npx vite build`): the config's webServer serves dist/ with vite preview.
 */
import { chromium, expect, test, type Page } from '@playwright/test';
import { chromiumArgs, chromiumPath } from '../playwright.config.ts';
import { validateWork } from '../src/pow/work.ts';

function randomRoot(): string {
  return Array.from({ length: 64 }, () => '0123456789ABCDEF'[Math.floor(Math.random() * 16)]).join('');
}

async function openLab(page: Page, query: Record<string, string> = {}) {
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto(`/bench.html?${new URLSearchParams(query)}`);
  await expect(page.getByTestId('state')).toHaveText('idle');
  return errors;
}

/** Types a job, presses Compute and returns the root used. */
async function compute(page: Page, difficulty: string): Promise<string> {
  const root = randomRoot();
  await page.getByTestId('root').fill(root);
  await page.getByTestId('difficulty').fill(difficulty);
  await page.getByTestId('compute').click();
  return root;
}

/** Reads the result panel and checks the work with the reference rule. */
async function expectValidatedWork(page: Page, root: string, difficulty: string) {
  await expect(page.getByTestId('state')).toHaveText('done', { timeout: 90_000 });
  const work = (await page.getByTestId('work').textContent()) ?? '';
  const value = (await page.getByTestId('value').textContent()) ?? '';
  expect(work).toMatch(/^[0-9a-f]{16}$/);
  const check = validateWork(root, work, difficulty);
  expect(check.valid, `work ${work} for ${root} at ${difficulty}`).toBe(true);
  expect(value).toBe(check.value.toString(16).padStart(16, '0'));
  await expect(page.getByTestId('verified')).toHaveText('valid');
  await expect(page.getByTestId('result-root')).toHaveText(root);
  expect(Number(await page.getByTestId('hashes').getAttribute('data-count'))).toBeGreaterThan(0);
  // The rate the job achieved, in place of a live rate that is 0 once it is done.
  expect(Number(await page.getByTestId('achieved').getAttribute('data-hps'))).toBeGreaterThan(0);
  await expect(page.getByTestId('hashrate')).toHaveText(/^(\d[\d.]* [kMG]?H\/s live|\d[\d.]* [kMG]?H\/s achieved by the last job)$/);
  await expect(page.getByTestId('kernel-mismatches')).toHaveText('0');
  return { work, backend: (await page.getByTestId('result-backend').textContent()) ?? '' };
}

test('WebGPU (SwiftShader) finds work that passes the reference check', async ({ page }) => {
  const errors = await openLab(page, { backend: 'webgpu' });
  const difficulty = 'ffff000000000000';
  const root = await compute(page, difficulty);
  const { backend } = await expectValidatedWork(page, root, difficulty);
  expect(backend).toBe('webgpu');
  await expect(page.getByTestId('engine-backend')).toHaveAttribute('data-backend', 'webgpu');
  await expect(page.getByTestId('engine-backend')).toContainText(/swiftshader/i);
  // Idle again: the hashrate drops to zero.
  await expect(page.getByTestId('hashrate')).toHaveAttribute('data-hps', '0');
  expect(errors).toEqual([]);
});

test('WASM threads find validated work when the browser has no WebGPU (Auto falls back)', async () => {
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: chromiumArgs.filter((flag) => flag !== '--enable-unsafe-webgpu'),
  });
  try {
    const page = await browser.newPage({ baseURL: test.info().project.use.baseURL });
    const errors = await openLab(page, { threads: '2' });
    await expect(page.getByTestId('backend')).toHaveValue('auto');
    const difficulty = 'fff0000000000000';
    const root = await compute(page, difficulty);
    const { backend } = await expectValidatedWork(page, root, difficulty);
    expect(backend).toBe('wasm');
    await expect(page.getByTestId('engine-backend')).toContainText(/wasm/i);
    // A second job on the kept WASM pool.
    const second = await compute(page, difficulty);
    await expectValidatedWork(page, second, difficulty);
    expect(errors).toEqual([]);
  } finally {
    await browser.close();
  }
});

test('asking for WebGPU without it fails with a clear reason', async () => {
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    args: chromiumArgs.filter((flag) => flag !== '--enable-unsafe-webgpu'),
  });
  try {
    const page = await browser.newPage({ baseURL: test.info().project.use.baseURL });
    await openLab(page, { backend: 'webgpu' });
    await compute(page, 'fff0000000000000');
    await expect(page.getByTestId('state')).toHaveText('error');
    await expect(page.getByTestId('error')).toContainText(/WebGPU is not available/);
  } finally {
    await browser.close();
  }
});

test('refuses an absurd difficulty with the reason', async ({ page }) => {
  await openLab(page, { backend: 'wasm' });
  await compute(page, 'ffffffffffffffff');
  await expect(page.getByTestId('state')).toHaveText('error');
  await expect(page.getByTestId('error')).toContainText(/above the maximum/);
});

test('Cancel stops a long search and the live hashrate returns to 0', async ({ page }) => {
  await openLab(page, { backend: 'wasm', threads: '1' });
  // 2^32 hashes expected: it will not finish by itself during the test.
  await compute(page, 'ffffffff00000000');
  await expect(page.getByTestId('state')).toHaveText('running');
  await expect
    .poll(async () => Number(await page.getByTestId('hashrate').getAttribute('data-hps')), { timeout: 30_000 })
    .toBeGreaterThan(0);
  await page.getByTestId('cancel').click();
  await expect(page.getByTestId('state')).toHaveText('cancelled');
  await expect(page.getByTestId('hashrate')).toHaveAttribute('data-hps', '0');
  // No job finished: no achieved rate to show, and no false "0 H/s" either.
  await expect(page.getByTestId('hashrate')).toHaveText('—');
  // The engine stopped hashing: the total stays put.
  const total = await page.getByTestId('total-hashes').getAttribute('data-count');
  await page.waitForTimeout(1000);
  await expect(page.getByTestId('total-hashes')).toHaveAttribute('data-count', total ?? '');
  // And it takes the next job.
  const difficulty = 'ff00000000000000';
  const root = await compute(page, difficulty);
  await expectValidatedWork(page, root, difficulty);
});

test('a GPU device lost in the middle of a job still ends in validated work', async ({ page }) => {
  await openLab(page, { backend: 'webgpu', threads: '2' });
  // ~2M hashes on SwiftShader (~1.5 MH/s): the loss lands mid-job. Retried if the GPU was faster.
  const difficulty = 'fffff80000000000';
  let lostMidJob = false;
  for (let attempt = 0; attempt < 3 && !lostMidJob; attempt++) {
    const root = await compute(page, difficulty);
    await expect(page.getByTestId('engine-backend')).toHaveAttribute('data-backend', 'webgpu');
    await expect.poll(async () => Number(await page.getByTestId('total-hashes').getAttribute('data-count'))).toBeGreaterThan(0);
    lostMidJob = await page.evaluate(async (jobRoot) => {
      const engine = (window as unknown as {
        __engine: { status(): Promise<{ root: string | null }>; simulateDeviceLoss(): Promise<boolean> };
      }).__engine;
      if ((await engine.status()).root?.toUpperCase() !== jobRoot) return false;
      return engine.simulateDeviceLoss();
    }, root);
    // Whether the backend re-created the device or the engine fell back to WASM, the job ends in
    // work that passes the reference check.
    const { backend } = await expectValidatedWork(page, root, difficulty);
    expect(['webgpu', 'wasm']).toContain(backend);
  }
  expect(lostMidJob).toBe(true);
});

test('Benchmark measures the chosen backend and lists hashrate and compile time', async ({ page }) => {
  await openLab(page, { backend: 'wasm', threads: '1', seconds: '1' });
  await page.getByTestId('benchmark').click();
  await expect(page.getByTestId('state')).toHaveText('benchmarking');
  await expect(page.getByTestId('state')).toHaveText('benchmarked', { timeout: 60_000 });
  const rows = JSON.parse((await page.getByTestId('bench-json').textContent()) ?? '[]');
  expect(rows).toHaveLength(1);
  expect(rows[0]).toMatchObject({ backend: 'wasm', threads: 1 });
  expect(rows[0].hashes).toBeGreaterThan(0);
  expect(rows[0].hashrate).toBeGreaterThan(0);
  await expect(page.getByTestId('bench-results').locator('tbody tr')).toHaveCount(1);
  await expect(page.getByTestId('hashrate')).toHaveAttribute('data-hps', '0');
});
