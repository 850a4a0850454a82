/**
 * A WASM search thread in the browser: a module worker the engine worker spawns once per thread
 * (`new Worker(new URL('./wasm-thread.worker.ts', import.meta.url), { type: 'module' })`).
 * The search loop is src/pow/wasm-thread-core.ts, shared with Node; its messages are
 * src/pow/wasm-protocol.ts.
 */
import { asToThread, type FromThread } from '../pow/wasm-protocol.ts';
import { ThreadRuntime } from '../pow/wasm-thread-core.ts';

const scope = self as unknown as {
  postMessage(message: FromThread): void;
  addEventListener(type: 'message', listener: (event: MessageEvent) => void): void;
};

const runtime = new ThreadRuntime((message) => scope.postMessage(message));
scope.addEventListener('message', (event) => {
  const message = asToThread(event.data);
  if (message) runtime.handle(message);
});
