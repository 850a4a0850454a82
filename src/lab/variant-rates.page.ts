/**
 * The variant rates in a Chromium page (scripts/chromium-variant-rates.ts bundles this file and
 * serves it for `npm run bench` and `npm run bench:device`): the
 * tuner's calibration on the page's own adapter, then every variant against the naive yardstick
 * (src/pow/variant-rates.ts). The script hands in the shader texts and the timing as
 * window.__variantRates and reads the JSON result from <pre id="result">.
 */
import { consoleLogger } from '../log.ts';
import { measureVariantRates } from '../pow/variant-rates.ts';
import type { KernelSources } from '../pow/kernel-family.ts';
import { createTunedBackend, type TuningResult } from '../pow/tuner.ts';
import { createWebGpuBackend } from '../pow/webgpu.ts';

interface BenchInput {
  shaders: KernelSources;
  secondsPerVariant: number;
  rounds: number;
  /** Variants to measure; default the tuner's candidates. */
  variants?: string[];
  calibrationMs?: number;
}

async function main(input: BenchInput): Promise<unknown> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) throw new Error('navigator.gpu is missing (start Chromium with --enable-unsafe-webgpu)');
  const log = consoleLogger('');
  const inner = await createWebGpuBackend({ gpu, shaders: input.shaders, log });
  try {
    let tuning: TuningResult | null = null;
    const tuned = await createTunedBackend(inner, {
      runtime: navigator.userAgent,
      store: { load: async () => null, save: async (_key, result) => void (tuning = result) },
      windowMs: input.calibrationMs,
      log,
    });
    await tuned.calibrated;
    const rows = await measureVariantRates(inner, {
      secondsPerVariant: input.secondsPerVariant,
      tunedVariant: tuned.kernel.variant,
      variants: input.variants,
      rounds: input.rounds,
      log,
    });
    return { adapter: inner.adapterInfo, label: inner.label, runtime: navigator.userAgent, tuning, rows };
  } finally {
    inner.dispose();
  }
}

const input = (window as unknown as { __variantRates: BenchInput }).__variantRates;
const out = document.createElement('pre');
out.id = 'result';
main(input).then(
  (result) => {
    out.textContent = JSON.stringify(result);
    document.body.append(out);
    document.title = 'done';
  },
  (err: unknown) => {
    out.textContent = JSON.stringify({ error: err instanceof Error ? err.message : String(err) });
    document.body.append(out);
    document.title = 'error';
  },
);
