/**
 * `dpow-web bench [--backend auto|webgpu|wasm|all] [--seconds N] [--threads N] [--json]`:
 * hashrate per backend in this Node process. WebGPU runs on Dawn (Vulkan or llvmpipe); WASM runs
 * with 1 thread and with N threads (default: every core), with the SIMD kernel and the scalar one
 * where the runtime has SIMD. 'auto' and 'all' measure everything available.
 */
import { availableParallelism } from 'node:os';
import { CliError, defineCommand, intOption, parseCommand } from './args.ts';
import { parseBackend } from './work.ts';
import { measureBackend } from '../pow/engine.ts';
import type { BenchmarkResult, PowBackend } from '../pow/types.ts';
import { createNodeWebGpuBackend } from '../pow-node/engine.ts';
import { createNodeWasmBackend } from '../pow-node/wasm-threads.ts';

export interface NodeBenchRow extends BenchmarkResult {
  /** 'simd' | 'scalar' for WASM, the adapter for WebGPU. */
  variant: string;
}

/** Measures one backend, then releases it (threads, device) before the next one starts. */
async function measure(
  create: () => Promise<PowBackend | null>,
  seconds: number,
  variant: (b: PowBackend) => string,
): Promise<NodeBenchRow | null> {
  const backend = await create();
  if (!backend) return null;
  try {
    return { ...(await measureBackend(backend, seconds)), variant: variant(backend) };
  } finally {
    backend.dispose();
  }
}

export async function runBenchmarks(options: {
  backend: string;
  seconds: number;
  threads: number;
  log?: (line: string) => void;
  onRow?: (row: NodeBenchRow) => void;
}): Promise<NodeBenchRow[]> {
  const rows: NodeBenchRow[] = [];
  const add = (row: NodeBenchRow | null) => {
    if (!row) return;
    rows.push(row);
    options.onRow?.(row);
  };
  if (options.backend !== 'wasm') {
    const row = await measure(() => createNodeWebGpuBackend(options.log), options.seconds, (b) => b.label);
    if (!row) {
      if (options.backend === 'webgpu') throw new Error('WebGPU is not available here (no adapter)');
      options.log?.('webgpu: no adapter; skipped');
    }
    add(row);
  }
  if (options.backend === 'webgpu') return rows;
  const counts = [...new Set([1, options.threads])];
  let simdAvailable = true;
  for (const preferSimd of [true, false]) {
    if (!preferSimd && !simdAvailable) break; // the first pass already was the scalar kernel
    for (const threads of counts) {
      add(
        await measure(
          async () => {
            const backend = await createNodeWasmBackend({ threads, preferSimd });
            simdAvailable = backend.simd;
            return backend;
          },
          options.seconds,
          (b) => ((b as { simd?: boolean }).simd ? 'simd' : 'scalar'),
        ),
      );
    }
  }
  return rows;
}

export function formatRate(hashesPerSecond: number): string {
  return `${(hashesPerSecond / 1e6).toFixed(2)} MH/s`;
}

function formatRow(row: NodeBenchRow): string {
  const name = row.backend === 'webgpu' ? `webgpu (${row.label})` : `wasm ${row.variant} x${row.threads ?? 1}`;
  return `${name.padEnd(56)} ${formatRate(row.hashrate).padStart(12)}   compile ${row.compileMs.toFixed(0)} ms`;
}

export function command() {
  return defineCommand('bench')
    .option('-b, --backend <backend>', 'auto, webgpu, wasm or all (auto and all measure everything available)', 'auto')
    .option('-s, --seconds <s>', 'seconds per measurement', '5')
    .option('-t, --threads <n>', 'WASM threads besides 1 (default: every core)')
    .option('--json', 'one JSON line with every row');
}

interface BenchOptions {
  backend: string;
  seconds: string;
  threads?: string;
  json?: boolean;
}

export async function run(argv: string[]): Promise<number> {
  const { options: values } = parseCommand<BenchOptions>(command(), argv);
  const backend = parseBackend(values.backend, ['auto', 'webgpu', 'wasm', 'all']);
  const seconds = values.seconds.trim() === '' ? NaN : Number(values.seconds);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 3600) {
    throw new CliError(`--seconds must be a number in (0, 3600], got "${values.seconds}"`);
  }
  const threads = intOption(values.threads, 'threads', availableParallelism());
  const json = values.json === true;
  const rows = await runBenchmarks({
    backend,
    seconds,
    threads,
    log: (line) => process.stderr.write(`${line}\n`),
    onRow: json ? undefined : (row) => process.stdout.write(`${formatRow(row)}\n`),
  }).catch((err: Error) => {
    process.stderr.write(`dpow-web bench: ${err.message}\n`);
    return null;
  });
  if (!rows) return 1;
  if (json) process.stdout.write(`${JSON.stringify(rows)}\n`);
  return 0;
}
