/**
 * Serves kernel-check.page.ts, bundled with esbuild, from 127.0.0.1 (WebGPU needs a secure
 * context), and runs one kernel variant on it in a browser.
 */
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { EnginePage } from './browsers.ts';
import type { VariantResult, VariantRun } from './kernel-check.page.ts';

const ENTRY = fileURLToPath(new URL('./kernel-check.page.ts', import.meta.url));
const HTML = '<!doctype html><meta charset="utf-8"><title>loading</title><script type="module" src="/kernel-check.js"></script>';

export interface KernelCheckServer {
  url: string;
  close(): Promise<void>;
}

export async function serveKernelCheck(): Promise<KernelCheckServer> {
  const bundle = await build({ entryPoints: [ENTRY], bundle: true, format: 'esm', platform: 'browser', target: 'es2022', write: false });
  const script = bundle.outputFiles[0].text;
  const server = createServer((req, res) => {
    const isScript = req.url === '/kernel-check.js';
    res.writeHead(200, { 'content-type': isScript ? 'text/javascript' : 'text/html', 'cache-control': 'no-store' });
    res.end(isScript ? script : HTML);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        // A browser keeps speculative connections open that never carry a request.
        server.closeAllConnections();
      }),
  };
}

/** Runs one variant in the page (which must have loaded the check page). */
export function runVariant(page: EnginePage, request: VariantRun): Promise<VariantResult> {
  return page.evaluate(
    (request) => (window as unknown as { kernelCheck: { run(r: typeof request): Promise<VariantResult> } }).kernelCheck.run(request),
    request,
  );
}
