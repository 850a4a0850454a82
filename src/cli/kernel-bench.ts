/**
 * The WebGPU kernel family against the naive yardstick, in one Node process on one Dawn device:
 * every variant's raw rate (impossible difficulty) as a ratio to the yardstick's, measured in
 * interleaved rounds so that load changing on a shared machine hits every row alike, plus the
 * tuner's choice. Used by `dpow-web bench --tune` / `--kernels` and scripts/bench*.mjs.
 */
import { findVariant, KERNEL_VARIANTS, requireVariant, YARDSTICK_VARIANT } from '../pow/kernel-family.ts';
import { createTunedBackend, type TuningResult } from '../pow/tuner.ts';
import { createWebGpuBackend, type WebGpuAdapterInfo } from '../pow/webgpu.ts';
import { createNodeGpu, loadBenchSources, type NodeGpuBackend } from '../pow-node/gpu.ts';
import { dawnRuntime, fileTuningStore } from '../pow-node/tuning-store.ts';

export interface KernelBenchRow {
  variant: string;
  /** Raw hashes/s over the measured rounds. */
  hashrate: number;
  /** hashrate / the yardstick's. */
  ratio: number;
  /** u32 ALU ops per nonce of the variant's kernel source (kernels/kernel-ops.mjs), if counted. */
  opsPerNonce: number | null;
  /** The tuner's choice. */
  tuned: boolean;
}

export interface KernelBenchReport {
  runtime: string;
  adapter: WebGpuAdapterInfo;
  label: string;
  secondsPerVariant: number;
  tuning: TuningResult | null;
  tunedVariant: string;
  rows: KernelBenchRow[];
}

/** Every parameter combination the family was pruned from. */
export function fullGrid(): string[] {
  const names: string[] = [];
  for (const carry of ['plain', 'biased']) {
    for (const npi of [1, 8, 32, 64, 128]) for (const wg of [64, 128, 256]) names.push(`${carry}-n${npi}-w${wg}`);
  }
  return names;
}

async function opsPerSource(): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  try {
    const { countKernelOps, kernelFiles } = await import('../../kernels/kernel-ops.mjs');
    for (const { kind, text } of kernelFiles()) counts.set(kind, countKernelOps(text, { samples: 1 }).perNonce);
  } catch {
    // The op counter ships with the sources only; a build without it prints no counts.
  }
  return counts;
}

export async function runKernelBench(options: {
  seconds: number;
  /** Variant names to measure; default the family. The yardstick is always measured. */
  variants?: string[];
  /** Re-run the tuner's calibration (and store it) instead of using a cached choice. */
  retune?: boolean;
  backend?: NodeGpuBackend;
  rounds?: number;
  log?: (line: string) => void;
}): Promise<KernelBenchReport> {
  const gpu = await createNodeGpu({ backend: options.backend, log: options.log });
  if (!gpu) throw new Error('WebGPU is not available here (no adapter)');
  const inner = await createWebGpuBackend({ gpu, shaders: loadBenchSources(), log: options.log });
  try {
    const runtime = dawnRuntime();
    const store = fileTuningStore();
    let tuning: TuningResult | null = null;
    const tuned = await createTunedBackend(inner, {
      runtime,
      // --tune calibrates whatever the cache holds.
      store: {
        load: (key) => (options.retune ? Promise.resolve(null) : store.load(key)),
        save: (key, result) => {
          tuning = result;
          return store.save(key, result);
        },
      },
      log: options.log,
    });
    await tuned.calibrated;
    const tunedVariant = tuned.kernel.variant;
    const names = [...new Set([...(options.variants ?? KERNEL_VARIANTS.map((v) => v.name)), tunedVariant])];
    for (const name of names) requireVariant(name);
    const measured = [...names, YARDSTICK_VARIANT.name];
    const rounds = options.rounds ?? 3;
    const totals = new Map(measured.map((name) => [name, 0]));
    for (let round = 0; round < rounds; round++) {
      for (const name of measured) {
        const rate = await inner.measure(name, (options.seconds * 1000) / rounds);
        options.log?.(`bench: ${name} round ${round + 1}/${rounds}: ${((rate ?? 0) / 1e6).toFixed(2)} MH/s`);
        totals.set(name, totals.get(name)! + (rate ?? 0) / rounds);
      }
    }
    const ops = await opsPerSource();
    const yardstick = totals.get(YARDSTICK_VARIANT.name)!;
    const rows = measured.map((name) => ({
      variant: name,
      hashrate: totals.get(name)!,
      ratio: totals.get(name)! / yardstick,
      opsPerNonce: ops.get(findVariant(name)!.source) ?? null,
      tuned: name === tunedVariant,
    }));
    return {
      runtime,
      adapter: inner.adapterInfo,
      label: inner.label,
      secondsPerVariant: options.seconds,
      tuning,
      tunedVariant,
      rows,
    };
  } finally {
    inner.dispose();
  }
}

export function formatKernelBench(report: KernelBenchReport): string {
  const lines = [
    `WebGPU kernels on ${report.label} (${report.runtime}), ${report.secondsPerVariant} s each, raw hashes:`,
    `${'variant'.padEnd(22)} ${'MH/s'.padStart(9)} ${'vs yardstick'.padStart(13)} ${'ops/nonce'.padStart(10)}`,
  ];
  for (const row of report.rows) {
    const name = row.tuned ? `${row.variant} (tuned)` : row.variant;
    lines.push(
      `${name.padEnd(22)} ${(row.hashrate / 1e6).toFixed(2).padStart(9)} ${`${row.ratio.toFixed(2)}x`.padStart(13)} ${String(row.opsPerNonce ?? '-').padStart(10)}`,
    );
  }
  if (report.tuning) {
    lines.push(
      `tuner calibration: ${report.tuning.table.map((r) => `${r.variant} ${(r.rate / 1e6).toFixed(2)}`).join(', ')} MH/s -> ${report.tuning.variant}`,
    );
  }
  return `${lines.join('\n')}\n`;
}
