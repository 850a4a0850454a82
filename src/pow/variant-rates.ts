/**
 * The kernel family against the naive yardstick on one device: every variant's raw rate
 * (impossible difficulty) as a ratio to the yardstick's, measured in interleaved rounds so that
 * load changing on a shared machine hits every row alike. Pure: the Node CLI
 * (src/cli/bench-variants.ts) and the Chromium page (src/lab/variant-rates.page.ts) both run it.
 */
import type { Logger } from '../log.ts';
import { formatMegahashes } from '../format.ts';
import { KERNEL_VARIANTS, requireVariant, YARDSTICK_VARIANT } from './kernel-family.ts';
import type { WebGpuBackend } from './webgpu.ts';

export interface VariantRate {
  variant: string;
  /** Raw hashes/s, averaged over the rounds. */
  hashrate: number;
  /** hashrate / the yardstick's (same run). */
  ratio: number;
  /** The tuner's choice. */
  tuned: boolean;
}

export async function measureVariantRates(
  backend: WebGpuBackend,
  options: {
    secondsPerVariant: number;
    /** Default the family's candidates. The tuned variant and the yardstick are always measured. */
    variants?: readonly string[];
    tunedVariant: string;
    rounds?: number;
    log?: Logger;
  },
): Promise<VariantRate[]> {
  const names = [...new Set([...(options.variants ?? KERNEL_VARIANTS.map((v) => v.name)), options.tunedVariant])];
  for (const name of names) requireVariant(name);
  const measured = [...names, YARDSTICK_VARIANT.name];
  const rounds = options.rounds ?? 3;
  const totals = new Map(measured.map((name) => [name, 0]));
  const previous = backend.variant.name;
  try {
    for (let round = 0; round < rounds; round++) {
      for (const name of measured) {
        const rate = (await backend.measure(name, (options.secondsPerVariant * 1000) / rounds)) ?? 0;
        options.log?.info(`bench: ${name} round ${round + 1}/${rounds}: ${formatMegahashes(rate)}`);
        totals.set(name, totals.get(name)! + rate / rounds);
      }
    }
  } finally {
    backend.setVariant(previous);
  }
  const yardstick = totals.get(YARDSTICK_VARIANT.name)!;
  return measured.map((name) => ({
    variant: name,
    hashrate: totals.get(name)!,
    ratio: totals.get(name)! / yardstick,
    tuned: name === options.tunedVariant,
  }));
}
