// A WASM search thread under Node worker_threads, spawned by src/pow-node/wasm-threads.ts. Plain
// JavaScript so the worker needs no TypeScript loader; the loop is src/pow/wasm-thread-core.js.
import { parentPort } from 'node:worker_threads';
import { createThreadRuntime } from '../pow/wasm-thread-core.js';

if (!parentPort) throw new Error('wasm-thread.mjs must run as a worker thread');
const port = parentPort;
const runtime = createThreadRuntime((message) => port.postMessage(message));
port.on('message', (message) => runtime.handle(message));
