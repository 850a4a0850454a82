/**
 * The kernel-family check's page (kernel-check.ts bundles it with esbuild and serves it from
 * 127.0.0.1, a secure context): one variant of the family on this browser's own WebGPU, compiled
 * by its own shader compiler (Tint in Chromium, naga in Firefox). It hands back work values and
 * found work as hex; the test judges them with the reference rule in Node.
 */
import type { KernelSources } from '../src/pow/kernel-family.ts';
import { createWebGpuBackend } from '../src/pow/webgpu.ts';
import { parseRoot, toU64Hex } from '../src/pow/work.ts';

export interface VariantRun {
  variant: string;
  shaders: KernelSources;
  /** Work values of nonces start .. start + count - 1 (start as 16 hex digits). */
  values: { root: string; start: string; count: number }[];
  /** Searches from nonce `start` until work reaches `difficulty` (both 16 hex digits). */
  searches: { root: string; difficulty: string; start: string }[];
}

export interface VariantResult {
  /** The adapter as the backend names it. */
  label: string;
  values: string[][];
  works: (string | null)[];
}

const never = new AbortController().signal;

async function run(request: VariantRun): Promise<VariantResult> {
  const gpu = (navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpu) throw new Error('navigator.gpu is missing: this browser offers no WebGPU here');
  // A backend per variant, created on it: a compile error rejects here, in this variant's test.
  const backend = await createWebGpuBackend({ gpu, shaders: request.shaders, variant: request.variant });
  try {
    const values: string[][] = [];
    for (const job of request.values) {
      const out = await backend.computeValues(parseRoot(job.root), BigInt(`0x${job.start}`), job.count);
      values.push(Array.from(out, (v) => toU64Hex(v)));
    }
    const works: (string | null)[] = [];
    for (const job of request.searches) {
      const hit = await backend.search({
        root: parseRoot(job.root),
        difficulty: BigInt(`0x${job.difficulty}`),
        startNonce: BigInt(`0x${job.start}`),
        signal: never,
      });
      works.push(hit ? toU64Hex(hit.work) : null);
    }
    return { label: backend.label, values, works };
  } finally {
    backend.dispose();
  }
}

(window as unknown as { kernelCheck: { run: typeof run } }).kernelCheck = { run };
document.title = 'ready';
