/**
 * `npm run bench:dpow [-- --workers K --jobs N --latency-jobs M --difficulty HEX --no-page]`
 *
 * The DPoW loop's own numbers, on the stack `dpow-web start` runs (createServer: embedded
 * broker, dispatcher), at a trivial difficulty so the kernels are not what is measured:
 *  - throughput: N precache jobs published at once to K headless workers (DpowClient + WASM
 *    engine, 1 thread each); results checked per second by the dispatcher (accepted and
 *    duplicates, each one validated with the reference rule);
 *  - latency: M jobs one after another, from the dispatcher publishing work/<type> to it
 *    accepting the result: median and p99, for a Node worker and for the page (Chromium in
 *    kiosk mode with autostart, WebGPU on SwiftShader).
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { chromium } from '@playwright/test';
import { encodeAddress } from '../src/dpow/address.ts';
import { DpowClient } from '../src/dpow/client.ts';
import { createNodeEngine } from '../src/pow-node/engine.ts';
import type { PowEngine } from '../src/pow/engine.ts';
import { parseDifficulty, rootToHex } from '../src/pow/work.ts';
import { createServer, type AppServer } from '../src/server/create-server.ts';
import type { AcceptedResult } from '../src/server/dispatcher/dispatcher.ts';

const { values: args } = parseArgs({
  options: {
    workers: { type: 'string', default: '4' },
    jobs: { type: 'string', default: '400' },
    'latency-jobs': { type: 'string', default: '100' },
    difficulty: { type: 'string', default: 'ff00000000000000' },
    'no-page': { type: 'boolean', default: false },
  },
});
const K = Number(args.workers);
const N = Number(args.jobs);
const M = Number(args['latency-jobs']);
const difficulty = parseDifficulty(args.difficulty);
const CHROMIUM = process.env.DPOW_CHROMIUM ?? '/usr/lib/chromium/chromium';

const newRoot = () => rootToHex(randomBytes(32));
const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];

/** Publishes jobs one at a time and times each from publish to acceptance. */
async function latency(app: AppServer, count: number): Promise<{ median: number; p99: number; n: number }> {
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const hash = newRoot();
    const accepted = waitAccepted(app, hash);
    const t0 = performance.now();
    await app.dispatcher!.precache(hash, difficulty);
    await accepted;
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { median: quantile(times, 0.5), p99: quantile(times, 0.99), n: times.length };
}

function waitAccepted(app: AppServer, hash: string): Promise<AcceptedResult> {
  return new Promise((resolve) => {
    const on = (r: AcceptedResult) => {
      if (r.hash.toLowerCase() !== hash.toLowerCase()) return;
      app.dispatcher!.off('accepted', on);
      resolve(r);
    };
    app.dispatcher!.on('accepted', on);
  });
}

async function main() {
  // The broker's per-connection publish cap (20/s, burst 100) is for strangers; here every
  // worker is the bench's own, and the throughput phase sends far more than 100 results at once.
  const app = await createServer({
    kind: 'app',
    http: { port: 0, staticDir: 'dist' },
    broker: { kind: 'embedded', limits: { publishRate: { perSecond: 1e6, burst: 1e6 } } },
    dispatcher: { statisticsMs: 3_600_000 },
  });
  const engines: PowEngine[] = [];
  const clients: DpowClient[] = [];
  const startWorkers = async (k: number) => {
    for (let i = 0; i < k; i++) {
      const engine = await createNodeEngine({ backend: 'wasm', threads: 1 });
      const client = new DpowClient({ engine });
      await client.start({
        brokerUrl: app.brokerWsUrl,
        username: app.deployment.username,
        password: app.deployment.password,
        address: encodeAddress(randomBytes(32)),
        work: 'any',
        backend: 'wasm',
        threads: 1,
        queueLimit: N + 10,
      });
      engines.push(engine);
      clients.push(client);
    }
    while (!clients.every((c) => c.getState().connection === 'online')) await new Promise((r) => setTimeout(r, 20));
  };
  const stopWorkers = async () => {
    for (const c of clients.splice(0)) await c.stop();
    for (const e of engines.splice(0)) e.dispose();
  };
  const lines: string[] = [];
  try {
    // Latency with one Node worker.
    await startWorkers(1);
    const node = await latency(app, M);
    lines.push(`latency, Node worker (WASM, 1 thread): median ${node.median.toFixed(1)} ms, p99 ${node.p99.toFixed(1)} ms over ${node.n} jobs`);
    await stopWorkers();

    // Throughput with K workers: every worker computes every job; the first valid result wins
    // and the rest arrive as duplicates, so the dispatcher checks up to K results per job.
    await startWorkers(K);
    const c0 = resultsChecked(app);
    const hashes = Array.from({ length: N }, newRoot);
    const done = Promise.all(hashes.map((h) => waitAccepted(app, h)));
    const t0 = performance.now();
    for (const h of hashes) await app.dispatcher!.precache(h, difficulty);
    await done;
    // Let the losing workers' results (duplicates or cancelled) drain.
    await new Promise((r) => setTimeout(r, 500));
    const seconds = (performance.now() - t0) / 1000;
    const checked = resultsChecked(app) - c0;
    lines.push(
      `throughput, ${K} Node workers: ${N} jobs accepted in ${seconds.toFixed(2)} s = ${(N / seconds).toFixed(0)} jobs/s; ` +
        `${checked} results checked = ${(checked / seconds).toFixed(0)} results/s`,
    );
    await stopWorkers();

    // Latency for the page.
    if (!args['no-page']) {
      if (!existsSync('dist/index.html')) throw new Error('dist/ is missing: run npm run build first');
      const browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--enable-unsafe-webgpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
      });
      try {
        const page = await browser.newPage();
        const address = encodeAddress(randomBytes(32));
        await page.goto(`${app.url}?kiosk=1&autostart=1&work=any&backend=gpu&address=${address}`);
        // Warm up: the first job pays for the worker start and the shader compile. Work messages
        // are not retained, so one published before the page subscribed is never seen: retry
        // (withdrawing each miss) until the page has taken one.
        for (let accepted = false; !accepted; ) {
          const warm = newRoot();
          const warmed = waitAccepted(app, warm).then(() => true);
          await app.dispatcher!.precache(warm, difficulty);
          accepted = await Promise.race([warmed, new Promise<boolean>((r) => setTimeout(() => r(false), 5_000))]);
          if (!accepted) await app.dispatcher!.withdraw(warm);
        }
        const pageLatency = await latency(app, M);
        lines.push(`latency, page (Chromium, WebGPU SwiftShader): median ${pageLatency.median.toFixed(1)} ms, p99 ${pageLatency.p99.toFixed(1)} ms over ${pageLatency.n} jobs`);
      } finally {
        await browser.close();
      }
    }
  } finally {
    await stopWorkers();
    await app.close();
  }
  process.stdout.write(`dpow bench (difficulty ${args.difficulty}):\n${lines.map((l) => `  ${l}`).join('\n')}\n`);
}

/** Every result the dispatcher decoded and checked: accepted, duplicate, invalid, unknown. */
function resultsChecked(app: AppServer): number {
  return Object.values(app.dispatcher!.counters.results).reduce((a, b) => a + b, 0);
}

await main();
process.exit(0);
