/**
 * The PoW engine in Node: Dawn WebGPU (Vulkan on a real GPU, llvmpipe through OpenGL ES
 * otherwise) plus WASM on worker_threads. Used by `dpow-web work`, `dpow-web bench` and the
 * headless worker. Dispose the engine when done so no device or thread keeps the process alive.
 */
import { availableParallelism } from 'node:os';
import type { DifficultyPolicy } from '../pow/difficulty.ts';
import { PowEngine } from '../pow/engine.ts';
import type { BackendChoice, PowBackend } from '../pow/types.ts';
import { createWebGpuBackend } from '../pow/webgpu.ts';
import { createNodeGpu, loadShaderCode } from './gpu.ts';
import { createNodeWasmBackend } from './wasm-threads.ts';

export interface NodeEngineOptions {
  /** Default backend for generate() calls that do not name one. 'wasm' never loads Dawn. */
  backend?: BackendChoice;
  /** WASM threads; default os.availableParallelism() - 1, at least 1. */
  threads?: number;
  /** The difficulty bounds; share the client queue's. Default DEFAULT_POLICY. */
  policy?: DifficultyPolicy;
  /** Prefer the SIMD WASM kernel where the runtime has SIMD (default true). */
  preferSimd?: boolean;
  log?: (message: string) => void;
}

/** WASM threads that leave one core for the event loop and the GPU driver. */
export function defaultThreadCount(): number {
  return Math.max(1, availableParallelism() - 1);
}

/** The WebGPU backend on Dawn, or null when this machine has no adapter. */
export async function createNodeWebGpuBackend(log?: (message: string) => void): Promise<PowBackend | null> {
  const gpu = await createNodeGpu({ log });
  if (!gpu) return null;
  return createWebGpuBackend({ gpu, shaderCode: loadShaderCode(), log });
}

export async function createNodeEngine(options: NodeEngineOptions = {}): Promise<PowEngine> {
  const log = options.log;
  return new PowEngine({
    webgpu: options.backend === 'wasm' ? undefined : () => createNodeWebGpuBackend(log),
    wasm: (threads) => createNodeWasmBackend({ threads, preferSimd: options.preferSimd }),
    defaultThreads: options.threads ?? defaultThreadCount(),
    defaultBackend: options.backend,
    policy: options.policy,
    log,
  });
}
