/**
 * The engine worker's start-up watchdog (browser-engine.ts), through the engine lab: the lab's
 * ?hangingWorkers=N makes its first N engine workers real Blob workers that take every message and
 * answer none (the Firefox ESR hang), and ?answerWithinMs sets the deadline short. The deadline
 * only bounds a hang; nothing here asserts how fast anything is.
 * Needs a build first (`npx vite build`): the config's webServer serves dist/ with vite preview.
 */
import { expect, test } from '@playwright/test';
import { validateWork } from '../src/pow/work.ts';

const root = () => Array.from({ length: 64 }, () => '0123456789ABCDEF'[Math.floor(Math.random() * 16)]).join('');
const engineFailure = () => (window as unknown as { __engineFailure: () => string | null }).__engineFailure();

test('a first engine worker that never answers is replaced, and the replacement computes valid work', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  // 5 s, not the second test's 0.5 s: the real worker that follows must load its script within it,
  // also beside a busy core, or it too would be replaced.
  await page.goto('/bench.html?hangingWorkers=1&answerWithinMs=5000&backend=wasm&threads=1');
  await expect(page.getByTestId('state')).toHaveText('idle');
  await expect(page.getByTestId('worker-replacements')).toHaveAttribute('data-count', '1');
  await expect(page.getByTestId('worker-replacements')).toHaveText('1: it did not answer within 5 s');
  expect(await page.evaluate(engineFailure)).toBeNull();

  const job = root();
  const difficulty = 'fff0000000000000';
  await page.getByTestId('root').fill(job);
  await page.getByTestId('difficulty').fill(difficulty);
  await page.getByTestId('compute').click();
  await expect(page.getByTestId('state')).toHaveText('done', { timeout: 90_000 });
  const work = (await page.getByTestId('work').textContent()) ?? '';
  expect(validateWork(job, work, difficulty).valid, `work ${work} for ${job}`).toBe(true);
  await expect(page.getByTestId('result-root')).toHaveText(job);
  // Still one replacement: the worker that answered was kept.
  await expect(page.getByTestId('worker-replacements')).toHaveAttribute('data-count', '1');
  expect(errors).toEqual([]);
});

test('when every engine worker stays silent, the lab says the engine worker never answered', async ({ page }) => {
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(err.message));
  await page.goto('/bench.html?hangingWorkers=3&answerWithinMs=500');
  await expect(page.getByTestId('state')).toHaveText('error');
  const said = 'the engine worker never answered: 3 workers started, the last one did not answer within 2 s';
  await expect(page.getByTestId('error')).toHaveText(said);
  expect(await page.evaluate(engineFailure)).toBe(said);
  await expect(page.getByTestId('worker-replacements')).toHaveAttribute('data-count', '2');
  await expect(page.getByTestId('worker-replacements')).toHaveText('1: it did not answer within 0.5 s; 2: it did not answer within 1 s');
  await expect(page.getByTestId('compute')).toBeEnabled();
  expect(errors).toEqual([]);
});
