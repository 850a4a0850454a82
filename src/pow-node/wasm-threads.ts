/**
 * The WASM backend under Node: compiles build/wasm/nano-pow-{simd,scalar}.wasm once per process
 * and runs the search threads (NodeWasmThread) as worker_threads (src/pow-node/wasm-thread.ts, see
 * startThreadWorker).
 * An idle pool is unref'd, so it never keeps a CLI process alive; a running search holds it.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../log.ts';
import { asFromThread, type FromThread, type ToThread } from '../pow/wasm-protocol.ts';
import { compileKernels, WasmPool, type WasmKernels, type WasmThread } from '../pow/wasm.ts';

const KERNEL_URLS = {
  simd: new URL('../../build/wasm/nano-pow-simd.wasm', import.meta.url),
  scalar: new URL('../../build/wasm/nano-pow-scalar.wasm', import.meta.url),
} as const;

/**
 * Run from the TypeScript sources (the CLI registers tsx; tests and scripts run under it), this
 * module is a .ts file and so is the thread entry. A worker thread does not inherit the parent's
 * loader, and tsx's `--import` hook skips worker threads, so the worker is a two-line bootstrap
 * that registers tsx's ESM API and then imports the entry. Compiled to JavaScript (a package
 * build), this module and its entry are .js files and the worker starts the entry directly.
 */
const FROM_SOURCES = new URL(import.meta.url).pathname.endsWith('.ts');
const THREAD_ENTRY = new URL(FROM_SOURCES ? './wasm-thread.ts' : './wasm-thread.js', import.meta.url);

/** The file URL of tsx's ESM register API (tsx/esm/api), from its package manifest. */
function tsxRegisterUrl(): string {
  const manifestPath = createRequire(import.meta.url).resolve('tsx/package.json');
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as {
    exports: Record<string, { import?: { default?: string } } | string>;
  };
  const api = manifest.exports['./esm/api'];
  const file = typeof api === 'object' ? api.import?.default : undefined;
  if (!file) throw new Error(`tsx (${manifestPath}) has no ./esm/api export`);
  return pathToFileURL(join(dirname(manifestPath), file)).href;
}

let bootstrap: string | undefined;

/** Starts one search thread (src/pow-node/wasm-thread.ts). */
export function startThreadWorker(name?: string): Worker {
  if (!FROM_SOURCES) return new Worker(THREAD_ENTRY, { name });
  bootstrap ??= `import(${JSON.stringify(tsxRegisterUrl())})
  .then((tsx) => { tsx.register(); return import(${JSON.stringify(THREAD_ENTRY.href)}); });`;
  return new Worker(bootstrap, { eval: true, name });
}

let kernels: Promise<WasmKernels> | undefined;

/** The compiled kernels, read and compiled once per process. */
export function loadNodeKernels(log?: Logger): Promise<WasmKernels> {
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

/**
 * A worker_threads Worker as a pool thread: an error, an unreadable message or an exit it was
 * not asked for is reported once as the thread's death; idle, it does not hold the process open.
 */
export class NodeWasmThread implements WasmThread {
  readonly #worker: Worker;
  #failed = false;
  readonly #errorCallbacks: ((error: Error) => void)[] = [];

  constructor(worker: Worker) {
    this.#worker = worker;
    worker.on('error', (error) => this.#fail(error instanceof Error ? error : new Error(String(error))));
    worker.on('messageerror', () => this.#fail(new Error('a message from the thread could not be read')));
    worker.on('exit', (code) => this.#fail(new Error(`the thread exited (code ${code})`)));
  }

  postMessage(message: ToThread): void {
    this.#worker.postMessage(message);
  }

  onMessage(callback: (message: FromThread) => void): void {
    this.#worker.on('message', (raw: unknown) => {
      const message = asFromThread(raw);
      if (message) callback(message);
      else this.#fail(new Error(`the thread sent something that is not a thread message: ${String(raw)}`));
    });
  }

  onError(callback: (error: Error) => void): void {
    this.#errorCallbacks.push(callback);
  }

  setActive(busy: boolean): void {
    if (busy) this.#worker.ref();
    else this.#worker.unref();
  }

  terminate(): void {
    this.#failed = true; // an exit we asked for is not a failure
    void this.#worker.terminate();
  }

  #fail(error: Error): void {
    if (this.#failed) return;
    this.#failed = true;
    for (const callback of this.#errorCallbacks) callback(error);
  }
}

export interface NodeWasmOptions {
  threads: number;
  /** Default true: the SIMD kernel when this Node validates it. */
  preferSimd?: boolean;
  /** Nonces per chunk of the nonce layout (see src/pow/wasm.ts); default 2^20. */
  chunk?: number;
  log?: Logger;
}

/** A WASM pool on worker_threads, with the kernels from build/wasm/. */
export async function startNodeWasmPool(options: NodeWasmOptions): Promise<WasmPool> {
  const module = await loadNodeKernels(options.log);
  return WasmPool.start({
    threads: options.threads,
    preferSimd: options.preferSimd,
    chunk: options.chunk,
    log: options.log,
    module,
    spawn: (index) => new NodeWasmThread(startThreadWorker(`pow-wasm-${index}`)),
  });
}
