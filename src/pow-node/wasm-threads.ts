/**
 * The WASM backend under Node: compiles build/wasm/nano-pow-{simd,scalar}.wasm once per process
 * and runs the search threads as worker_threads (src/pow-node/wasm-thread.mjs, plain JS, no loader).
 * An idle pool is unref'd, so it never keeps a CLI process alive; a running search holds it.
 */
import { readFile } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { compileKernels, createWasmBackend, type WasmBackend, type WasmKernels, type WasmThread } from '../pow/wasm.ts';

const KERNEL_URLS = {
  simd: new URL('../../build/wasm/nano-pow-simd.wasm', import.meta.url),
  scalar: new URL('../../build/wasm/nano-pow-scalar.wasm', import.meta.url),
} as const;

const THREAD_ENTRY = new URL('./wasm-thread.mjs', import.meta.url);

let kernels: Promise<WasmKernels> | undefined;

/** The compiled kernels, read and compiled once per process. */
export function loadNodeKernels(log?: (message: string) => void): Promise<WasmKernels> {
  kernels ??= compileKernels(async (name) => {
    try {
      return await readFile(KERNEL_URLS[name]);
    } catch (error) {
      throw new Error(
        `cannot read the ${name} WASM kernel (${KERNEL_URLS[name].pathname}); run \`npm run build:wasm\`: ${(error as Error).message}`,
      );
    }
  }, log).catch((error: unknown) => {
    kernels = undefined; // let a later call retry (e.g. after the build ran)
    throw error;
  });
  return kernels;
}

/** A worker_threads Worker as a pool thread. */
export function nodeThread(worker: Worker): WasmThread {
  let failed = false;
  const errorCallbacks: ((error: Error) => void)[] = [];
  const fail = (error: Error) => {
    if (failed) return;
    failed = true;
    for (const callback of errorCallbacks) callback(error);
  };
  worker.on('error', (error) => fail(error instanceof Error ? error : new Error(String(error))));
  worker.on('messageerror', () => fail(new Error('a message from the thread could not be read')));
  worker.on('exit', (code) => fail(new Error(`the thread exited (code ${code})`)));
  return {
    postMessage: (message) => worker.postMessage(message),
    onMessage: (callback) => worker.on('message', callback),
    onError: (callback) => errorCallbacks.push(callback),
    setActive: (busy) => (busy ? worker.ref() : worker.unref()),
    terminate: () => {
      failed = true; // an exit we asked for is not a failure
      void worker.terminate();
    },
  };
}

export interface NodeWasmOptions {
  threads: number;
  /** Default true: the SIMD kernel when this Node validates it. */
  preferSimd?: boolean;
  /** Nonces per chunk of the nonce layout (see src/pow/wasm.ts); default 2^20. */
  chunk?: number;
  log?: (message: string) => void;
}

export async function createNodeWasmBackend(options: NodeWasmOptions): Promise<WasmBackend> {
  const module = await loadNodeKernels(options.log);
  return createWasmBackend({
    threads: options.threads,
    preferSimd: options.preferSimd,
    chunk: options.chunk,
    log: options.log,
    module,
    spawn: (index) => nodeThread(new Worker(THREAD_ENTRY, { name: `pow-wasm-${index}` })),
  });
}
