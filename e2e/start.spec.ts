/**
 * `dpow-web start` as a volunteer meets it: the real command (broker, dispatcher, demo work
 * source and the page on 127.0.0.1), a page that enters an address, picks the GPU and presses
 * Start. The demo jobs are computed on WebGPU (SwiftShader here), the dispatcher accepts them,
 * and the volunteer's client/<address> stats arrive on the page.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { expect, test } from '@playwright/test';
import { encodeAddress } from '../src/dpow/address.ts';

let child: ChildProcess;
let url: string;
let output = '';

test.beforeAll(async () => {
  child = spawn(process.execPath, ['bin/dpow-web.mjs', 'start', '--port', '0', '--no-build', '--memory'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`dpow-web start printed no URL:\n${output}`)), 60_000);
    const check = () => {
      const m = /dpow-web is running at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => reject(new Error(`dpow-web start exited with ${code}:\n${output}`)));
  });
});

test.afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGINT');
    await exited;
  }
});

test('a volunteer opens the URL, enters an address, presses Start and gets credited for WebGPU work', async ({ page }) => {
  const address = encodeAddress(randomBytes(32));
  await page.goto(url);
  await page.getByLabel('Payout address').fill(address);
  await page.getByLabel('Compute on').selectOption('webgpu');
  await page.getByRole('button', { name: 'Start working' }).click();
  await expect(page.getByTestId('connection-state').first()).toHaveText(/Online/, { timeout: 30_000 });

  // Demo jobs (one precache every 5 s, one ondemand every 15 s) are computed and accepted.
  await expect(page.getByTestId('backend')).toHaveText(/WebGPU/, { timeout: 60_000 });
  await expect(page.getByTestId('count-accepted')).not.toHaveText('0', { timeout: 60_000 });
  const personal = page.getByTestId('personal-stats');
  await expect(personal).toBeVisible();
  const credited = async () =>
    Number((await page.getByTestId('personal-precache').textContent())?.replace(/\D/g, '') || 0) +
    Number((await page.getByTestId('personal-ondemand').textContent())?.replace(/\D/g, '') || 0);
  await expect.poll(credited, { timeout: 60_000 }).toBeGreaterThan(0);
  expect(output).not.toMatch(/invalid-work/);
});
