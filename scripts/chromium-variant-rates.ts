/**
 * The WebGPU kernel family against the naive yardstick in headless Chromium, for scripts/bench.ts
 * and scripts/bench-device.ts: src/lab/variant-rates.page.ts bundled with esbuild and served from
 * 127.0.0.1 (a secure context) with the shader texts, once per Chromium WebGPU configuration.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

const ROOT_DIR = fileURLToPath(new URL('..', import.meta.url));

/** One Chromium configuration: its name in the report and the flags that pick its adapter. */
export interface ChromiumRun {
  name: string;
  flags: string[];
}

/** One adapter's variants against the yardstick (a row per variant), or why there are none. */
export type VariantRun =
  | { name: string; error: string }
  | {
      name: string;
      error?: undefined;
      label: string;
      tuning: { variant: string } | null;
      rows: Array<{ variant: string; hashrate: number; ratio: number; tuned: boolean; opsPerNonce?: number | null }>;
    };

/** A configuration's report: what the page wrote (adapter, tuning, rows), or why it failed. */
export type ChromiumVariantReport = VariantRun & { flags: string[] };

export async function chromiumVariantRates(options: {
  chromiumPath: string;
  runs: ChromiumRun[];
  seconds: number;
  /** Flags every run gets. */
  flags?: string[];
  /** Variants besides the tuner's candidates. */
  variants?: string[];
}): Promise<ChromiumVariantReport[]> {
  const { chromiumPath, runs, seconds, flags = [], variants } = options;
  if (!existsSync(chromiumPath)) throw new Error(`no Chromium at ${chromiumPath} (set DPOW_CHROMIUM)`);
  const { build } = await import('esbuild');
  const bundle = await build({
    entryPoints: [`${ROOT_DIR}src/lab/variant-rates.page.ts`],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    write: false,
  });
  const shader = (file: string) => readFileSync(`${ROOT_DIR}shaders/${file}`, 'utf8');
  const input = {
    shaders: { plain: shader('nano-pow-plain.wgsl'), biased: shader('nano-pow-biased.wgsl'), yardstick: shader('yardstick.wgsl') },
    secondsPerVariant: seconds,
    variants,
    rounds: 3,
  };
  const html = `<!doctype html><meta charset="utf-8"><title>variant rates</title><script>window.__variantRates = ${JSON.stringify(input).replace(/</g, '\\u003c')};</script><script type="module" src="/variant-rates.js"></script>`;
  const server = createServer((req, res) => {
    if (req.url === '/variant-rates.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(bundle.outputFiles[0].text);
    } else {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(html);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const { chromium } = await import('@playwright/test');
  const results: ChromiumVariantReport[] = [];
  try {
    for (const run of runs) {
      const browser = await chromium.launch({ executablePath: chromiumPath, args: [...flags, ...run.flags] });
      try {
        const page = await browser.newPage();
        page.on('console', (msg) => {
          if (/^bench:|kernel/.test(msg.text())) process.stderr.write(`[${run.name}] ${msg.text()}\n`);
        });
        await page.goto(`http://127.0.0.1:${port}/`);
        await page.waitForFunction(() => document.title === 'done' || document.title === 'error', null, {
          timeout: (seconds * 12 + 180) * 1000,
        });
        const result = JSON.parse((await page.locator('#result').textContent()) ?? '{}') as Omit<ChromiumVariantReport, 'name' | 'flags'>;
        results.push({ name: run.name, flags: run.flags, ...result } as ChromiumVariantReport);
      } catch (err) {
        // One configuration failing (no adapter, a timeout) leaves the others' rows standing.
        results.push({ name: run.name, flags: run.flags, error: (err as Error).message.split('\n')[0] });
      } finally {
        await browser.close();
      }
    }
  } finally {
    server.close();
  }
  return results;
}
