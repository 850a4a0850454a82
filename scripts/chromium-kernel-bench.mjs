// The WebGPU kernel family against the naive yardstick in headless Chromium, for scripts/bench.mjs
// and scripts/bench-device.mjs.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT_DIR = fileURLToPath(new URL('..', import.meta.url));

/**
 * Chromium: src/lab/kernel-bench.ts bundled with esbuild and served from 127.0.0.1 (a secure
 * context) with the shader texts, in each Chromium WebGPU configuration.
 */
export async function chromiumKernelBench({ chromiumPath, runs, seconds, flags = [], variants }) {
  if (!existsSync(chromiumPath)) throw new Error(`no Chromium at ${chromiumPath} (set DPOW_CHROMIUM)`);
  const { build } = await import('esbuild');
  const bundle = await build({
    entryPoints: [`${ROOT_DIR}src/lab/kernel-bench.ts`],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    write: false,
  });
  const shader = (file) => readFileSync(`${ROOT_DIR}shaders/${file}`, 'utf8');
  const input = {
    shaders: { plain: shader('nano-pow-plain.wgsl'), biased: shader('nano-pow-biased.wgsl'), yardstick: shader('yardstick.wgsl') },
    secondsPerVariant: seconds,
    variants,
    rounds: 3,
  };
  const html = `<!doctype html><meta charset="utf-8"><title>kernel bench</title><script>window.__kernelBench = ${JSON.stringify(input).replace(/</g, '\\u003c')};</script><script type="module" src="/kernel-bench.js"></script>`;
  const { createServer: createHttpServer } = await import('node:http');
  const server = createHttpServer((req, res) => {
    if (req.url === '/kernel-bench.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(bundle.outputFiles[0].text);
    } else {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(html);
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { chromium } = await import('@playwright/test');
  const results = [];
  try {
    for (const run of runs) {
      const browser = await chromium.launch({ executablePath: chromiumPath, args: [...flags, ...run.flags] });
      try {
        const page = await browser.newPage();
        page.on('console', (msg) => {
          if (/^bench:|kernel/.test(msg.text())) process.stderr.write(`[${run.name}] ${msg.text()}\n`);
        });
        await page.goto(`http://127.0.0.1:${server.address().port}/`);
        await page.waitForFunction(() => document.title === 'done' || document.title === 'error', null, {
          timeout: (seconds * 12 + 180) * 1000,
        });
        const result = JSON.parse(await page.locator('#result').textContent());
        results.push({ name: run.name, flags: run.flags, ...result });
      } catch (err) {
        // One configuration failing (no adapter, a timeout) leaves the others' rows standing.
        results.push({ name: run.name, flags: run.flags, error: err.message.split('\n')[0] });
      } finally {
        await browser.close();
      }
    }
  } finally {
    server.close();
  }
  return results;
}

