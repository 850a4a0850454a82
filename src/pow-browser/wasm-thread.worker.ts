/**
 * A WASM search thread in the browser: a module worker the engine worker spawns once per thread
 * (`new Worker(new URL('./wasm-thread.worker.ts', import.meta.url), { type: 'module' })`).
 * The search loop and its message protocol are in wasm-thread-core.js, shared with Node.
 */
import { createThreadRuntime } from '../pow/wasm-thread-core.js';

const scope = self as unknown as {
  postMessage(message: unknown): void;
  addEventListener(type: 'message', listener: (event: MessageEvent) => void): void;
};

const runtime = createThreadRuntime((message) => scope.postMessage(message));
scope.addEventListener('message', (event) => runtime.handle(event.data));
