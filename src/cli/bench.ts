/**
 * `dpow-web bench [--backend auto|webgpu|wasm|all] [--seconds N] [--threads N] [--intensity F] [--kernel NAME] [--json]`:
 * hashrate per backend in this Node process, with the CPU time each measurement used (so
 * `--intensity 0.5` shows the WASM threads' duty cycle halving it). `--tune` (re-)calibrates the WebGPU kernel tuner and
 * prints every variant against the naive yardstick (bench-variants.ts); `--kernels all|a,b,...`
 * measures other variants than the family's candidates. WebGPU runs on Dawn (Vulkan or llvmpipe); WASM runs
 * with 1 thread and with N threads (default: every core), with the SIMD kernel and the scalar one
 * where the runtime has SIMD. 'auto' and 'all' measure everything available.
 */
import { availableParallelism } from 'node:os';
import { CliError, defineCommand, intOption, parseCommand } from './args.ts';
import { parseBackend, stderrLines } from './work.ts';
import type { Logger } from '../log.ts';
import { formatMegahashes } from '../format.ts';
import { measureBackend } from '../pow/engine.ts';
import type { BenchmarkResult, PowBackend } from '../pow/types.ts';
import { createNodeWebGpuBackend } from '../pow-node/engine.ts';
import { startNodeWasmPool } from '../pow-node/wasm-threads.ts';
import { findVariant, requireVariant } from '../pow/kernel-family.ts';
import type { KernelStatus } from '../pow/tuner.ts';
import { formatVariantBench, fullGrid, runVariantBench } from './bench-variants.ts';

export interface NodeBenchRow extends BenchmarkResult {
  /** 'simd' | 'scalar' for WASM, the adapter for WebGPU. */
  variant: string;
  /** The share of time the backend was asked to compute (1 = flat out). */
  intensity: number;
  /** CPU seconds this process used per second of measuring (every thread; 1 = one core busy). */
  cpuCores: number;
  /** WebGPU: the kernel variant and its calibrated rate (hashes/s; null while untuned or forced). */
  kernel?: string;
  calibratedRate?: number | null;
}

const cpuMs = () => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
};

/** Measures one backend, then releases it (threads, device) before the next one starts. */
async function measure(
  create: () => Promise<PowBackend | null>,
  seconds: number,
  intensity: number,
  variant: (b: PowBackend) => string,
): Promise<NodeBenchRow | null> {
  const backend = await create();
  if (!backend) return null;
  try {
    backend.setIntensity?.(intensity);
    const before = cpuMs();
    const result = await measureBackend(backend, seconds);
    const cpuCores = result.ms > 0 ? (cpuMs() - before) / result.ms : 0;
    return { ...result, variant: variant(backend), intensity, cpuCores };
  } finally {
    backend.dispose();
  }
}

export async function runBenchmarks(options: {
  backend: string;
  seconds: number;
  threads: number;
  /** Share of time to compute, in (0, 1]; default 1. */
  intensity?: number;
  kernel?: string;
  log?: Logger;
  onRow?: (row: NodeBenchRow) => void;
}): Promise<NodeBenchRow[]> {
  const intensity = options.intensity ?? 1;
  const rows: NodeBenchRow[] = [];
  const add = (row: NodeBenchRow | null) => {
    if (!row) return;
    rows.push(row);
    options.onRow?.(row);
  };
  if (options.backend !== 'wasm') {
    let kernel: KernelStatus | undefined;
    const row = await measure(
      async () => {
        const backend = await createNodeWebGpuBackend({ log: options.log, kernel: options.kernel });
        await backend?.calibrated; // a first run tunes before it is measured
        kernel = backend?.kernel;
        return backend;
      },
      options.seconds,
      intensity,
      (b) => b.label,
    );
    if (row && kernel) Object.assign(row, { kernel: kernel.variant, calibratedRate: kernel.calibratedRate });
    if (!row) {
      if (options.backend === 'webgpu') throw new Error('WebGPU is not available here (no adapter)');
      options.log?.info('webgpu: no adapter; skipped');
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
            const backend = await startNodeWasmPool({ threads, preferSimd });
            simdAvailable = backend.simd;
            return backend;
          },
          options.seconds,
          intensity,
          (b) => (b.simd ? 'simd' : 'scalar'),
        ),
      );
    }
  }
  return rows;
}

/**
 * One line per measurement: what ran (the adapter's name for WebGPU), the rate, the CPU time it
 * took, the compile time and the kernel. For example
 *   webgpu: llvmpipe (Mesa 22.3.6, OpenGL ES 3.2) · software rasteriser · compatibility mode
 *     33.68 MH/s   CPU 1.92 cores   compile 46 ms   kernel biased-n64-w64 (calibrated 24.59 MH/s)
 *   wasm simd x1 at 50%   7.86 MH/s   CPU 0.50 cores   compile 173 ms
 */
export function formatRow(row: NodeBenchRow): string {
  const at = row.intensity < 1 ? ` at ${Math.round(row.intensity * 100)}%` : '';
  const kernel = row.kernel
    ? `   kernel ${row.kernel}${row.calibratedRate ? ` (calibrated ${formatMegahashes(row.calibratedRate)})` : ''}`
    : '';
  const figures = `${formatMegahashes(row.hashrate).padStart(12)}   CPU ${row.cpuCores.toFixed(2)} cores   compile ${row.compileMs.toFixed(0)} ms${kernel}`;
  // The adapter's name can be long: it gets a line of its own.
  if (row.backend === 'webgpu') return `webgpu${at}: ${row.label}\n${''.padEnd(24)} ${figures}`;
  return `${`wasm ${row.variant} x${row.threads ?? 1}${at}`.padEnd(24)} ${figures}`;
}

export function command() {
  return defineCommand('bench')
    .option('-b, --backend <backend>', 'auto, webgpu, wasm or all (auto and all measure everything available)', 'auto')
    .option('-s, --seconds <s>', 'seconds per measurement', '5')
    .option('-t, --threads <n>', `WASM threads besides 1 (default: every core, ${availableParallelism()} here)`)
    .option('--intensity <f>', 'share of time to compute, in (0, 1]: the GPU idles between dispatches, the WASM threads between kernel calls', '1')
    .option('-k, --kernel <name>', 'the WebGPU kernel variant to use instead of the tuner\'s choice')
    .option('--tune', 're-run the kernel tuner, then print every variant against the naive yardstick')
    .option('--kernels <list>', 'measure these variants (comma-separated, or all) against the yardstick')
    .option('--json', 'one JSON line with every row');
}

interface BenchOptions {
  backend: string;
  seconds: string;
  threads?: string;
  intensity: string;
  kernel?: string;
  tune?: boolean;
  kernels?: string;
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
  const intensity = values.intensity.trim() === '' ? NaN : Number(values.intensity);
  if (!(Number.isFinite(intensity) && intensity > 0 && intensity <= 1)) {
    throw new CliError(`--intensity must be a number in (0, 1], got "${values.intensity}"`);
  }
  const json = values.json === true;
  if (values.kernel !== undefined) {
    try {
      requireVariant(values.kernel);
    } catch (err) {
      throw new CliError(`--kernel: ${(err as Error).message}`);
    }
  }
  if (values.tune || values.kernels !== undefined) {
    const variants =
      values.kernels === undefined ? undefined : values.kernels === 'all' ? fullGrid() : values.kernels.split(',').filter(Boolean);
    for (const name of variants ?? []) {
      if (!findVariant(name)) throw new CliError(`--kernels: unknown kernel "${name}"`);
    }
    const report = await runVariantBench({
      seconds,
      variants,
      retune: values.tune === true,
      log: stderrLines,
    }).catch((err: Error) => {
      process.stderr.write(`dpow-web bench: ${err.message}\n`);
      return null;
    });
    if (!report) return 1;
    process.stdout.write(json ? `${JSON.stringify(report)}\n` : formatVariantBench(report));
    return 0;
  }
  const rows = await runBenchmarks({
    kernel: values.kernel,
    backend,
    seconds,
    threads,
    intensity,
    log: stderrLines,
    onRow: json ? undefined : (row) => process.stdout.write(`${formatRow(row)}\n`),
  }).catch((err: Error) => {
    process.stderr.write(`dpow-web bench: ${err.message}\n`);
    return null;
  });
  if (!rows) return 1;
  if (json) process.stdout.write(`${JSON.stringify(rows)}\n`);
  return 0;
}
