/**
 * The engine's dedicated module worker: a PowEngine on navigator.gpu (when the browser has WebGPU)
 * and WASM threads (nested module workers), exposed with one Comlink.expose.
 */
import * as Comlink from 'comlink';
import biased from '../../shaders/nano-pow-biased.wgsl?raw';
import plain from '../../shaders/nano-pow-plain.wgsl?raw';
import { consoleLogger } from '../log.ts';
import { installEngineErrorTransfer } from '../pow/engine-errors.ts';
import { PowEngine } from '../pow/engine.ts';
import { createTunedBackend } from '../pow/tuner.ts';
import { defaultThreads } from '../pow/threads.ts';
import { createWebGpuBackend } from '../pow/webgpu.ts';
import { indexedDbTuningStore } from './tuning-store.ts';
import { compileKernels, WasmPool, type WebWorkerLike } from '../pow/wasm.ts';
import { kernelUrl } from './wasm-urls.ts';

/** Progress (adapter, compile time) as console.info, fallbacks and failures as console.warn. */
const log = consoleLogger('[pow-engine]');

/** A kernel fetch that has not finished by then fails the job, and the next job fetches again. */
const KERNEL_FETCH_TIMEOUT_MS = 30_000;

async function fetchKernel(name: 'simd' | 'scalar'): Promise<ArrayBuffer> {
  const url = kernelUrl(name);
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(KERNEL_FETCH_TIMEOUT_MS) });
    if (!response.ok) throw new Error(`fetching the ${name} WASM kernel (${url}) failed: HTTP ${response.status}`);
    return await response.arrayBuffer();
  } catch (err) {
    if ((err as Error)?.name !== 'TimeoutError') throw err;
    throw new Error(`fetching the ${name} WASM kernel (${url}) took over ${KERNEL_FETCH_TIMEOUT_MS / 1000} s`);
  }
}

/** Compiled once per worker; every thread-count change reuses the modules. */
let kernels: ReturnType<typeof compileKernels> | undefined;

const gpu = (self.navigator as Navigator & { gpu?: GPU }).gpu;

const engine = new PowEngine({
  webgpu: gpu
    ? async () => {
        const inner = await createWebGpuBackend({ gpu, shaders: { plain, biased }, log });
        return createTunedBackend(inner, {
          runtime: self.navigator.userAgent,
          store: indexedDbTuningStore(),
          // Auto skips a software adapter for WASM: measuring it then would only slow the threads.
          calibrateWhen: 'first-search',
          log,
        });
      }
    : undefined,
  wasm: async (threads) => {
    // A failed compile is not cached: the next job tries again (e.g. after a network blip).
    kernels ??= compileKernels(fetchKernel, log).catch((err: unknown) => {
      kernels = undefined;
      throw err;
    });
    return WasmPool.start({
      threads,
      module: await kernels,
      spawn: (index) =>
        // A DOM Worker is a WebWorkerLike; the cast only bridges the DOM's overloaded listener types.
        new Worker(new URL('./wasm-thread.worker.ts', import.meta.url), {
          type: 'module',
          name: `pow-wasm-${index}`,
        }) as unknown as WebWorkerLike,
      log,
    });
  },
  // The page always names a count; this is for a caller that does not.
  defaultThreads: defaultThreads(self.navigator.hardwareConcurrency),
  log,
});

installEngineErrorTransfer();
Comlink.expose(engine);
