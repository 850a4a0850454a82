/**
 * The engine's dedicated module worker: a PowEngine on navigator.gpu (when the browser has WebGPU)
 * and WASM threads (nested module workers), exposed with one Comlink.expose.
 */
import * as Comlink from 'comlink';
import shaderCode from '../../shaders/nano-pow.wgsl?raw';
import { installEngineErrorTransfer } from './browser-engine.ts';
import { PowEngine } from './engine.ts';
import { createWebGpuBackend } from './webgpu.ts';
import { compileKernels, createWasmBackend } from './wasm.ts';
import { scalarUrl, simdUrl } from './wasm-urls.ts';

const log = (message: string) => console.warn(`[pow-engine] ${message}`);

async function fetchBytes(url: string): Promise<ArrayBuffer> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`fetching ${url} failed: HTTP ${response.status}`);
  return response.arrayBuffer();
}

/** Compiled once per worker; every thread-count change reuses the modules. */
let kernels: ReturnType<typeof compileKernels> | undefined;

const gpu = (self.navigator as Navigator & { gpu?: GPU }).gpu;

const engine = new PowEngine({
  webgpu: gpu ? () => createWebGpuBackend({ gpu, shaderCode, log }) : undefined,
  wasm: async (threads) => {
    kernels ??= compileKernels(fetchBytes);
    return createWasmBackend({
      threads,
      module: await kernels,
      spawn: () => new Worker(new URL('./wasm-thread.worker.ts', import.meta.url), { type: 'module', name: 'pow-wasm' }),
      log,
    });
  },
  defaultThreads: Math.max(1, (self.navigator.hardwareConcurrency || 2) - 1),
  log,
});

installEngineErrorTransfer();
Comlink.expose(engine);
