/**
 * A WASM search thread under Node worker_threads, started by startThreadWorker()
 * (wasm-threads.ts). The search loop is src/pow/wasm-thread-core.ts; its messages are
 * src/pow/wasm-protocol.ts.
 */
import { parentPort } from 'node:worker_threads';
import { asToThread } from '../pow/wasm-protocol.ts';
import { ThreadRuntime } from '../pow/wasm-thread-core.ts';

if (!parentPort) throw new Error('wasm-thread.ts must run as a worker thread');
const port = parentPort;
const runtime = new ThreadRuntime((message) => port.postMessage(message));
port.on('message', (raw: unknown) => {
  const message = asToThread(raw);
  if (message) runtime.handle(message);
});
