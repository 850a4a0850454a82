// `npm run bench [-- --seconds N] [-- --only node|chromium|engines] [-- --no-kernels | --no-backends |
// --no-engines]`: hashrate of every backend this machine has, in Node (Dawn WebGPU, WASM SIMD/scalar
// with 1 and N threads; via `dpow-web bench`) and in Chromium (WebGPU on SwiftShader, WebGPU on
// llvmpipe through ANGLE/OpenGL ES, WASM with 1 and N threads, via the engine lab page bench.html
// served by `vite preview`; and the scalar and SIMD kernels alone on one page thread, for their
// ratio in the browser's V8).
// Then the WebGPU kernel family against the naive yardstick (shaders/yardstick.wgsl) on each
// adapter: Dawn in Node, Chromium SwiftShader and Chromium llvmpipe, with the tuner's choice.
// Then each browser engine volunteers use (Chromium, Firefox, WebKitGTK; e2e-engines/browsers.ts)
// through the same lab page: its WASM rate with 1 and N threads and, where it offers WebGPU, its
// WebGPU rate, each as a ratio to Chromium's in the same run.
// Prints the tables in MH/s and writes every row to bench-results.json.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Browser, BrowserType } from '@playwright/test';
import type { EngineBrowser, EngineName, EnginePage } from '../e2e-engines/browsers.ts';
import type { NodeBenchRow } from '../src/cli/bench.ts';
import type { VariantBenchReport } from '../src/cli/bench-variants.ts';
import type { BenchmarkResult } from '../src/pow/types.ts';
import { chromiumVariantRates, type VariantRun } from './chromium-variant-rates.ts';

/** One measured backend, in Node or Chromium. */
type Row = { runtime: 'node' | 'chromium'; name: string; flags?: string[]; label: string; hashrate: number; compileMs: number } & Partial<NodeBenchRow>;
/** An engine lab row of one browser engine, with its rounds and its ratio to Chromium's. */
type EngineRow = BenchmarkResult & { name: string; rounds: number[]; ratio?: number | null };
interface EngineResult {
  engine: EngineName;
  version?: string;
  webgpu?: boolean;
  error?: string;
  rows: EngineRow[];
  errors?: string[];
  browser?: EngineBrowser;
  samples?: Map<string, BenchmarkResult[]>;
}
/** A lab Benchmark press: the page's query. */
interface LabRun {
  name: string;
  query: Record<string, string>;
}

const ROOT_DIR = fileURLToPath(new URL('..', import.meta.url));
const CHROMIUM = process.env.DPOW_CHROMIUM ?? '/usr/lib/chromium/chromium';
const QUIET_FLAGS = [
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
  '--no-first-run',
];
const CHROMIUM_RUNS = (threads: number): Array<LabRun & { flags: string[] }> => [
  { name: 'webgpu-swiftshader', flags: ['--enable-unsafe-webgpu'], query: { backend: 'webgpu' } },
  {
    name: 'webgpu-llvmpipe',
    flags: ['--enable-unsafe-webgpu', '--use-angle=gl-egl', '--use-webgpu-adapter=opengles'],
    query: { backend: 'webgpu' },
  },
  { name: 'wasm-1', flags: [], query: { backend: 'wasm', threads: '1' } },
  ...(threads > 1 ? [{ name: `wasm-${threads}`, flags: [], query: { backend: 'wasm', threads: String(threads) } }] : []),
];

function usage(message: string): never {
  process.stderr.write(`bench: ${message}\nusage: npm run bench -- [--seconds N] [--only node|chromium|engines] [--threads N]\n`);
  process.exit(2);
}

function parseOptions() {
  return parseArgs({
    options: {
      seconds: { type: 'string', default: '5' },
      only: { type: 'string' },
      threads: { type: 'string' },
      out: { type: 'string', default: 'bench-results.json' },
      kernels: { type: 'boolean', default: true },
      // Kernel variants to measure besides the tuner's candidates (comma-separated names).
      variants: { type: 'string' },
      'chromium-run': { type: 'string' },
      backends: { type: 'boolean', default: true },
      engines: { type: 'boolean', default: true },
    },
    strict: true,
    allowNegative: true,
  }).values;
}
let args: ReturnType<typeof parseOptions>;
try {
  args = parseOptions();
} catch (err) {
  usage((err as Error).message.split('\n')[0]);
}
const seconds = Number(args.seconds);
if (!Number.isFinite(seconds) || seconds <= 0) usage(`--seconds must be a positive number, got "${args.seconds}"`);
if (args.only !== undefined && !['node', 'chromium', 'engines'].includes(args.only)) usage(`--only must be node, chromium or engines`);
const threads = args.threads === undefined ? availableParallelism() : Number(args.threads);
if (!Number.isInteger(threads) || threads < 1) usage(`--threads must be a positive integer`);

/** Runs a command, collecting stdout; stderr passes through so progress and warnings show. */
function exec(command: string, argv: string[], options: SpawnOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, { cwd: ROOT_DIR, stdio: ['ignore', 'pipe', 'inherit'], ...options });
    let out = '';
    child.stdout?.on('data', (chunk) => (out += chunk));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${command} ${argv.join(' ')} exited ${code}`))));
  });
}

async function nodeBench(): Promise<Row[]> {
  const out = await exec(process.execPath, [
    'bin/dpow-web.mjs',
    'bench',
    '--json',
    '--backend',
    'all',
    '--seconds',
    String(seconds),
    '--threads',
    String(threads),
  ]);
  const rows = JSON.parse(out.trim().split('\n').pop()!) as NodeBenchRow[];
  return rows.map((r) => ({
    runtime: 'node' as const,
    name: r.backend === 'webgpu' ? 'webgpu-dawn' : `wasm-${r.variant}-${r.threads}`,
    ...r,
  }));
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function waitForHttp(url: string, child: ChildProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`vite preview exited with ${child.exitCode}`);
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${url} did not come up in ${timeoutMs / 1000} s`);
}

/** The built app (built first if missing) on `vite preview` at a free loopback port. */
async function startPreview(): Promise<{ base: string; close: () => void }> {
  if (!existsSync(`${ROOT_DIR}/dist/bench.html`)) {
    process.stderr.write('bench: dist/bench.html missing; building first (npm run build)\n');
    await exec('npm', ['run', 'build'], { stdio: ['ignore', 'inherit', 'inherit'] }).catch(() => {
      throw new Error('npm run build failed');
    });
  }
  const port = await freePort();
  const preview = spawn(
    process.execPath,
    ['node_modules/vite/bin/vite.js', 'preview', '--host', '127.0.0.1', '--port', String(port), '--strictPort'],
    { cwd: ROOT_DIR, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${base}/bench.html`, preview);
  } catch (err) {
    preview.kill('SIGTERM');
    throw err;
  }
  return { base, close: () => preview.kill('SIGTERM') };
}

async function chromiumBench(): Promise<Row[]> {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (set DPOW_CHROMIUM)`);
  const { chromium } = await import('@playwright/test');
  const preview = await startPreview();
  const rows: Row[] = [];
  try {
    const base = preview.base;
    for (const run of CHROMIUM_RUNS(threads)) {
      const browser = await chromium.launch({ executablePath: CHROMIUM, args: [...QUIET_FLAGS, ...run.flags] });
      try {
        const page = await browser.newPage();
        page.on('console', (msg) => {
          if (msg.type() === 'error') process.stderr.write(`[${run.name}] ${msg.text()}\n`);
        });
        const query = new URLSearchParams({ ...run.query, seconds: String(seconds) });
        await page.goto(`${base}/bench.html?${query}`);
        await page.getByTestId('benchmark').click();
        const state = page.getByTestId('state');
        await state.filter({ hasText: /^(benchmarked|error)$/ }).waitFor({ timeout: (seconds + 90) * 1000 });
        if ((await state.textContent()) === 'error') {
          process.stderr.write(`bench: ${run.name} failed: ${await page.getByTestId('error').textContent()}\n`);
          continue;
        }
        const results = JSON.parse((await page.getByTestId('bench-json').textContent()) ?? '[]') as BenchmarkResult[];
        for (const r of results) rows.push({ runtime: 'chromium', name: run.name, flags: run.flags, ...r });
      } finally {
        await browser.close();
      }
    }
    rows.push(...(await chromiumKernels(chromium)));
  } finally {
    preview.close();
  }
  return rows;
}

/**
 * The two WASM kernels alone, one thread, in a Chromium page: the per-thread SIMD / scalar ratio
 * in the browser's own V8 (the page's engine always picks SIMD where it can, so the rows above
 * never show the scalar kernel). Same loop as the threads run: search() slices of 65536 nonces.
 */
async function chromiumKernels(chromium: BrowserType<Browser>): Promise<Row[]> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: QUIET_FLAGS });
  const rows: Row[] = [];
  try {
    const page = await browser.newPage();
    for (const kernel of ['scalar', 'simd']) {
      const bytes = [...readFileSync(`${ROOT_DIR}build/wasm/nano-pow-${kernel}.wasm`)];
      const result = await page.evaluate(
        async ({ bytes, seconds }: { bytes: number[]; seconds: number }) => {
          const started = performance.now();
          const { instance } = await WebAssembly.instantiate(new Uint8Array(bytes), {});
          const compileMs = performance.now() - started;
          const k = instance.exports as {
            setRoot(m1: bigint, m2: bigint, m3: bigint, m4: bigint): void;
            search(difficulty: bigint, start: bigint, count: number): number;
          };
          k.setRoot(0x0123456789abcdefn, 0x1111222233334444n, 0x5555666677778888n, 0x99990000aaaabbbbn);
          // The first second lets V8 tier the kernel up to its optimizing compiler; the second
          // window is the measurement. (No named function in here: tsx would wrap it in __name(),
          // which the page does not have.)
          let hashrate = 0;
          for (const ms of [1000, seconds * 1000]) {
            let nonce = 0n;
            let hashes = 0;
            const t = performance.now();
            while (performance.now() - t < ms) {
              k.search(-1n, nonce, 65536); // difficulty 2^64 - 1: never found, always a full slice
              nonce += 65536n;
              hashes += 65536;
            }
            hashrate = hashes / ((performance.now() - t) / 1000);
          }
          return { hashrate, compileMs };
        },
        { bytes, seconds },
      );
      rows.push({
        runtime: 'chromium',
        name: `wasm-kernel-${kernel}-1`,
        label: `${kernel === 'simd' ? 'SIMD' : 'scalar'} kernel alone, page thread`,
        threads: 1,
        ...result,
      });
    }
  } finally {
    await browser.close();
  }
  return rows;
}

// ---- each browser engine, through the engine lab, as ratios to Chromium -----------------------

const ENGINE_NAMES: readonly EngineName[] = ['chromium', 'firefox', 'webkit'];
/**
 * Rounds over the engines, so a change of load on the machine meets every engine alike; the best
 * round counts (the one least slowed by anything else running).
 */
const ENGINE_ROUNDS = 3;

/**
 * Each engine's raw rates from the lab's Benchmark button, measured the same way in each: WASM
 * with 1 and N threads and, where the engine offers a WebGPU adapter, WebGPU. The three browsers
 * stay open and take turns, row by row and round by round; a rate is the best of the rounds,
 * also given as a ratio to Chromium's for the same row (same driver layer, same run).
 */
async function enginesBench(): Promise<EngineResult[]> {
  const { launchEngine, waitForValue } = await import('../e2e-engines/browsers.ts');
  const state = '[data-testid="state"]';
  const preview = await startPreview();
  const open: EngineBrowser[] = [];
  const results: EngineResult[] = [];
  /** One Benchmark press; resolves with the lab's result rows, or rejects with the lab's error. */
  const benchmark = async (page: EnginePage, run: LabRun): Promise<BenchmarkResult[]> => {
    await page.goto(`${preview.base}/bench.html?${new URLSearchParams({ ...run.query, seconds: String(seconds) })}`);
    await waitForValue(page, state, /^idle$/);
    await page.click('[data-testid="benchmark"]');
    const outcome = await waitForValue(page, state, /^(benchmarked|error)$/, { timeoutMs: (seconds + 120) * 1000 });
    const text = (id: string) => page.evaluate((selector: string) => document.querySelector(selector)?.textContent ?? '', `[data-testid="${id}"]`);
    if (outcome === 'error') throw new Error(await text('error'));
    return JSON.parse(await text('bench-json')) as BenchmarkResult[];
  };
  try {
    for (const engine of ENGINE_NAMES) {
      try {
        const browser = await launchEngine(engine);
        open.push(browser);
        await browser.page.goto(`${preview.base}/bench.html`);
        const webgpu = await browser.page.evaluate(async () => Boolean(await navigator.gpu?.requestAdapter()));
        results.push({ engine, version: browser.version, webgpu, browser, samples: new Map(), rows: [], errors: [] });
      } catch (err) {
        results.push({ engine, error: (err as Error).message.split('\n')[0], rows: [] });
      }
    }
    const runs: LabRun[] = [
      { name: 'wasm-1', query: { backend: 'wasm', threads: '1' } },
      ...(threads > 1 ? [{ name: `wasm-${threads}`, query: { backend: 'wasm', threads: String(threads) } }] : []),
      { name: 'webgpu', query: { backend: 'webgpu' } },
    ];
    for (const run of runs) {
      for (let round = 0; round < ENGINE_ROUNDS; round++) {
        for (const result of results) {
          if (result.error || (run.name === 'webgpu' && !result.webgpu)) continue;
          const rows = await benchmark(result.browser!.page, run).catch((err: Error) => {
            result.errors!.push(`${run.name} round ${round + 1}: ${err.message.split('\n')[0]}`);
            return null;
          });
          for (const r of rows ?? []) {
            const samples = result.samples!.get(run.name) ?? [];
            samples.push(r);
            result.samples!.set(run.name, samples);
          }
        }
      }
    }
  } finally {
    for (const browser of open) await browser.close().catch(() => undefined);
    preview.close();
  }
  for (const result of results) {
    for (const [name, samples] of result.samples ?? []) {
      const hashrate = Math.max(...samples.map((r) => r.hashrate));
      result.rows.push({ ...samples[0], name, hashrate, rounds: samples.map((r) => r.hashrate) });
    }
    delete result.browser;
    delete result.samples;
  }
  const chromium = results.find((e) => e.engine === 'chromium');
  for (const result of results) {
    for (const row of result.rows) {
      const yardstick = chromium?.rows.find((c) => c.name === row.name);
      row.ratio = yardstick ? row.hashrate / yardstick.hashrate : null;
    }
  }
  return results;
}

function enginesTable(results: EngineResult[]): string {
  const names = [...new Set(results.flatMap((e) => e.rows.map((r) => r.name)))];
  const lines = [`${'engine'.padEnd(9)} ${'version'.padEnd(28)} ${names.map((n) => n.padStart(18)).join(' ')}`];
  for (const e of results) {
    if (e.error) {
      lines.push(`${e.engine.padEnd(9)} FAILED ${e.error}`);
      continue;
    }
    const cells = names.map((n) => {
      const r = e.rows.find((row) => row.name === n);
      const ratio = r?.ratio == null ? '' : ` (${r.ratio.toFixed(2)}x)`;
      return (r ? `${(r.hashrate / 1e6).toFixed(2)}${ratio}` : 'none').padStart(18);
    });
    lines.push(`${e.engine.padEnd(9)} ${String(e.version).slice(0, 28).padEnd(28)} ${cells.join(' ')}`);
  }
  const labels = results.flatMap((e) => e.rows.filter((r) => r.backend === 'webgpu').map((r) => `${e.engine}: ${r.label}`));
  if (labels.length > 0) lines.push(`WebGPU adapters: ${labels.join('; ')}`);
  return `${lines.join('\n')}\n`;
}

// ---- the WebGPU kernel family against the naive yardstick, per adapter -----------------------

const CHROMIUM_KERNEL_RUNS = [
  { name: 'chromium-swiftshader', flags: ['--enable-unsafe-webgpu'] },
  { name: 'chromium-llvmpipe', flags: ['--enable-unsafe-webgpu', '--use-angle=gl-egl', '--use-webgpu-adapter=opengles'] },
];

/** Node (Dawn): `dpow-web bench --tune --json`, so the tuner calibrates and every variant is measured. */
async function nodeKernels(): Promise<VariantRun> {
  const out = await exec(process.execPath, [
    'bin/dpow-web.mjs',
    'bench',
    '--tune',
    '--json',
    '--seconds',
    String(seconds),
    ...(args.variants ? ['--kernels', args.variants] : []),
  ]);
  const report = JSON.parse(out.trim().split('\n').pop()!) as VariantBenchReport;
  return { name: 'node-dawn', label: report.label, tuning: report.tuning, rows: report.rows };
}

const sourceOf = (variant: string) => (variant === 'yardstick' ? 'yardstick' : variant.split('-')[0]);

function kernelTable(run: VariantRun, opsBySource: Map<string, number>): string {
  if (run.error !== undefined) return `${run.name}: FAILED ${run.error}\n`;
  const lines = [`${run.name}: ${run.label}${run.tuning ? `  (tuned: ${run.tuning.variant})` : ''}`];
  for (const r of run.rows) {
    const count = r.opsPerNonce ?? opsBySource.get(sourceOf(r.variant));
    const ops = count ? `${count} ops/nonce` : '';
    lines.push(
      `  ${`${r.variant}${r.tuned ? ' (tuned)' : ''}`.padEnd(24)} ${(r.hashrate / 1e6).toFixed(2).padStart(8)} MH/s ${`${r.ratio.toFixed(2)}x`.padStart(7)}  ${ops}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

function table(rows: Row[]): string {
  const lines = [
    `${'runtime'.padEnd(9)} ${'backend'.padEnd(22)} ${'adapter / kernel'.padEnd(44)} ${'threads'.padStart(7)} ${'MH/s'.padStart(8)} ${'compile'.padStart(9)}`,
  ];
  for (const r of rows) {
    lines.push(
      `${r.runtime.padEnd(9)} ${r.name.slice(0, 22).padEnd(22)} ${String(r.label).slice(0, 44).padEnd(44)} ${String(r.threads ?? '-').padStart(7)} ${(r.hashrate / 1e6).toFixed(2).padStart(8)} ${`${r.compileMs.toFixed(0)} ms`.padStart(9)}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

const rows: Row[] = [];
const failures: string[] = [];
if (args.only !== 'engines' && args.only !== 'chromium' && args.backends) {
  process.stderr.write(`bench: Node backends, ${seconds} s each\n`);
  await nodeBench().then((r) => rows.push(...r), (err) => failures.push(`node: ${err.message}`));
}
if (args.only !== 'engines' && args.only !== 'node' && args.backends) {
  process.stderr.write(`bench: Chromium backends, ${seconds} s each\n`);
  await chromiumBench().then((r) => rows.push(...r), (err) => failures.push(`chromium: ${err.message}`));
}
const kernels: VariantRun[] = [];
if (args.only !== 'engines' && args.only !== 'chromium' && args.kernels !== false) {
  process.stderr.write(`bench: WebGPU kernels vs the yardstick in Node, ${seconds} s each\n`);
  await nodeKernels().then((r) => kernels.push(r), (err) => failures.push(`node kernels: ${err.message}`));
}
if (args.only !== 'engines' && args.only !== 'node' && args.kernels !== false) {
  process.stderr.write(`bench: WebGPU kernels vs the yardstick in Chromium, ${seconds} s each\n`);
  await chromiumVariantRates({
    chromiumPath: CHROMIUM,
    runs: CHROMIUM_KERNEL_RUNS.filter((run) => !args['chromium-run'] || run.name === args['chromium-run']),
    seconds,
    flags: QUIET_FLAGS,
    variants: args.variants?.split(','),
  }).then((r) => kernels.push(...r), (err) => failures.push(`chromium kernels: ${err.message}`));
}
let engines: EngineResult[] = [];
if ((args.only === undefined || args.only === 'engines') && args.engines) {
  process.stderr.write(`bench: each browser engine through the lab, ${seconds} s each\n`);
  await enginesBench().then(
    (r) => {
      engines = r;
      for (const e of r) {
        if (e.error) failures.push(`${e.engine}: ${e.error}`);
        for (const message of e.errors ?? []) failures.push(`${e.engine} ${message}`);
      }
    },
    (err) => failures.push(`engines: ${err.message}`),
  );
}
if (rows.length > 0) process.stdout.write(table(rows));
if (kernels.length > 0) {
  process.stdout.write('\nWebGPU kernels, raw MH/s and ratio to the naive yardstick (same run, same adapter):\n');
  // The op counts are per kernel source; the Node run counted them (kernels/kernel-ops.mjs).
  const ops = new Map(kernels.flatMap((run) => (run.error === undefined ? run.rows : [])).flatMap((r) => (r.opsPerNonce ? [[sourceOf(r.variant), r.opsPerNonce] as const] : [])));
  for (const run of kernels) process.stdout.write(kernelTable(run, ops));
}
if (engines.length > 0) {
  process.stdout.write('\nBrowser engines through the engine lab, raw MH/s (ratio to Chromium, same run):\n');
  process.stdout.write(enginesTable(engines));
}
writeFileSync(
  resolve(ROOT_DIR, args.out),
  `${JSON.stringify({ at: new Date().toISOString(), seconds, threads, cores: availableParallelism(), rows, kernels, engines, failures }, null, 2)}\n`,
);
process.stderr.write(`bench: wrote ${args.out}\n`);
for (const f of failures) process.stderr.write(`bench: FAILED ${f}\n`);
process.exit(failures.length > 0 || (rows.length === 0 && kernels.length === 0 && engines.length === 0) ? 1 : 0);
