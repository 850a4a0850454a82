/**
 * The WebGPU kernel family against the naive yardstick in Node on one Dawn device
 * (src/pow/variant-rates.ts), with the tuner's choice and each source's ops per nonce. Used by
 * `dpow-web bench --tune` / `--kernels`, which `npm run bench` and `npm run bench:device` run.
 */
import type { Logger } from '../log.ts';
import { measureVariantRates, type VariantRate } from '../pow/variant-rates.ts';
import { requireVariant } from '../pow/kernel-family.ts';
import { createTunedBackend, type TuningResult } from '../pow/tuner.ts';
import { createWebGpuBackend, type WebGpuAdapterInfo } from '../pow/webgpu.ts';
import { createNodeGpu, loadBenchSources, type NodeGpuBackend } from '../pow-node/gpu.ts';
import { dawnRuntime, fileTuningStore } from '../pow-node/tuning-store.ts';

export interface VariantBenchRow extends VariantRate {
  /** u32 ALU ops per nonce of the variant's kernel source (kernels/kernel-ops.mjs), if counted. */
  opsPerNonce: number | null;
}

export interface VariantBenchReport {
  runtime: string;
  adapter: WebGpuAdapterInfo;
  label: string;
  secondsPerVariant: number;
  tuning: TuningResult | null;
  tunedVariant: string;
  rows: VariantBenchRow[];
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

export async function runVariantBench(options: {
  seconds: number;
  /** Variant names to measure; default the family. The yardstick is always measured. */
  variants?: string[];
  /** Re-run the tuner's calibration (and store it) instead of using a cached choice. */
  retune?: boolean;
  backend?: NodeGpuBackend;
  rounds?: number;
  log?: Logger;
}): Promise<VariantBenchReport> {
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
    const rates = await measureVariantRates(inner, {
      secondsPerVariant: options.seconds,
      variants: options.variants,
      tunedVariant,
      rounds: options.rounds,
      log: options.log,
    });
    const ops = await opsPerSource();
    const rows = rates.map((rate) => ({ ...rate, opsPerNonce: ops.get(requireVariant(rate.variant).source) ?? null }));
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

export function formatVariantBench(report: VariantBenchReport): string {
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
