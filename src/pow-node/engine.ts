/**
 * The PoW engine in Node: Dawn WebGPU (Vulkan on a real GPU, llvmpipe through OpenGL ES
 * otherwise) plus WASM on worker_threads. Used by `dpow-web work`, `dpow-web bench` and the
 * headless worker. Dispose the engine when done so no device or thread keeps the process alive.
 */
import { availableParallelism } from 'node:os';
import type { Logger } from '../log.ts';
import type { DifficultyPolicy } from '../pow/difficulty.ts';
import { PowEngine } from '../pow/engine.ts';
import { createTunedBackend, type TunedWebGpuBackend, type TuningStore } from '../pow/tuner.ts';
import type { BackendChoice } from '../pow/types.ts';
import { createWebGpuBackend } from '../pow/webgpu.ts';
import { createNodeGpu, loadKernelSources } from './gpu.ts';
import { dawnRuntime, fileTuningStore } from './tuning-store.ts';
import { startNodeWasmPool } from './wasm-threads.ts';

export interface NodeEngineOptions {
  /** Default backend for generate() calls that do not name one. 'wasm' never loads Dawn. */
  backend?: BackendChoice;
  /** WASM threads; default os.availableParallelism() - 1, at least 1. */
  threads?: number;
  /** The difficulty bounds; share the client queue's. Default DEFAULT_POLICY. */
  policy?: DifficultyPolicy;
  /** Prefer the SIMD WASM kernel where the runtime has SIMD (default true). */
  preferSimd?: boolean;
  /** A WebGPU kernel variant to use without tuning (--kernel). */
  kernel?: string;
  log?: Logger;
}

/** WASM threads that leave one core for the event loop and the GPU driver. */
export function defaultThreadCount(): number {
  return Math.max(1, availableParallelism() - 1);
}

export interface NodeWebGpuOptions {
  log?: Logger;
  /** A kernel variant to use without tuning (--kernel). */
  kernel?: string;
  /** Where tuning results are cached; default a file under the user's cache directory. */
  tuningStore?: TuningStore;
}

/**
 * The WebGPU backend on Dawn with the kernel tuner (a cached choice, or a calibration in the
 * background), or null when this machine has no adapter.
 */
export async function createNodeWebGpuBackend(options: NodeWebGpuOptions = {}): Promise<TunedWebGpuBackend | null> {
  const { log } = options;
  const gpu = await createNodeGpu({ log });
  if (!gpu) return null;
  const inner = await createWebGpuBackend({ gpu, shaders: loadKernelSources(), variant: options.kernel, log });
  return createTunedBackend(inner, {
    runtime: dawnRuntime(),
    store: options.tuningStore ?? fileTuningStore(),
    forced: options.kernel,
    log,
  });
}

export async function createNodeEngine(options: NodeEngineOptions = {}): Promise<PowEngine> {
  const log = options.log;
  return new PowEngine({
    webgpu: options.backend === 'wasm' ? undefined : () => createNodeWebGpuBackend({ log, kernel: options.kernel }),
    wasm: (threads) => startNodeWasmPool({ threads, preferSimd: options.preferSimd }),
    defaultThreads: options.threads ?? defaultThreadCount(),
    defaultBackend: options.backend,
    policy: options.policy,
    log,
  });
}
