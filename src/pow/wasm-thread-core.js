// One WASM search thread: the part shared by the browser module worker (wasm-thread.worker.ts)
// and the Node worker_threads entry (src/pow-node/wasm-thread.mjs). Plain JavaScript on purpose, so a
// Node worker runs it without a TypeScript loader; types are in wasm-thread-core.d.ts.
//
// Protocol (the other end is src/pow/wasm.ts):
//   in   { type: 'init', module }                          instantiate the kernel module
//        { type: 'search', job, words, difficulty, start, offset, stride, chunk }
//        { type: 'stop', job }
//   out  { type: 'ready', ms }   { type: 'hashes', job, count }
//        { type: 'found', job, nonce, count }               then the thread idles
//        { type: 'error', message }
//
// A search walks chunk indices offset, offset + stride, offset + 2 * stride, ...; chunk k covers
// nonces start + k * chunk .. + chunk - 1 (mod 2^64). With offset = thread index and stride =
// thread count the threads search disjoint ranges. A chunk is hashed in kernel calls of a few
// milliseconds each, and the thread yields to its event loop after every call, so a 'stop' or a
// new 'search' is seen within one call whatever the chunk size.

const U64 = (x) => BigInt.asUintN(64, x);

/** How often hash counts are posted while searching. */
const REPORT_MS = 50;
/** Target time of one kernel call; the thread yields between calls. */
const SLICE_MS = 4;
const MIN_STEP = 256;
const MAX_STEP = 1 << 20;

/** A macrotask turn that lets queued messages in: setImmediate in Node, a MessageChannel in browsers. */
function makeYield() {
  if (typeof setImmediate === 'function') return () => new Promise((resolve) => setImmediate(resolve));
  const channel = new MessageChannel();
  const waiting = [];
  channel.port1.onmessage = () => waiting.shift()?.();
  return () =>
    new Promise((resolve) => {
      waiting.push(resolve);
      channel.port2.postMessage(0);
    });
}

/**
 * @param {(message: unknown) => void} post sends a message to the backend
 * @returns {{ handle(message: unknown): void }}
 */
export function createThreadRuntime(post) {
  let kernel = null;
  let current = null;
  const yieldTurn = makeYield();

  async function init(module) {
    const started = performance.now();
    const instance = await WebAssembly.instantiate(module, {});
    const { setRoot, search } = instance.exports;
    if (typeof setRoot !== 'function' || typeof search !== 'function') {
      throw new Error('the kernel module does not export setRoot and search');
    }
    kernel = { setRoot, search };
    post({ type: 'ready', ms: performance.now() - started });
  }

  // Nonces per kernel call, adapted to take about SLICE_MS: small while V8 still runs the
  // kernel in its baseline tier (up to 20x slower for the first ~200 ms), larger once optimized.
  // Kept across jobs. The thread yields after every call, so this bounds how late a stop is seen.
  let step = MIN_STEP;

  async function run(job) {
    const stride = BigInt(job.stride);
    const chunk = BigInt(job.chunk);
    let index = BigInt(job.offset);
    let unreported = 0;
    let reportedAt = performance.now();
    while (current === job) {
      const chunkStart = U64(job.start + index * chunk);
      for (let done = 0; done < job.chunk; ) {
        if (current !== job) break;
        const count = Math.min(step, job.chunk - done);
        const start = U64(chunkStart + BigInt(done));
        const began = performance.now();
        // Loaded per call: cheap, and never stale if jobs interleave around a yield.
        kernel.setRoot(job.words[0], job.words[1], job.words[2], job.words[3]);
        const hit = kernel.search(job.difficulty, start, count);
        const now = performance.now();
        if (hit >= 0) {
          current = null;
          post({ type: 'found', job: job.id, nonce: U64(start + BigInt(hit)), count: unreported + hit + 1 });
          return;
        }
        done += count;
        unreported += count;
        if (count === step) {
          const took = now - began;
          if (took < SLICE_MS / 2 && step < MAX_STEP) step *= 2;
          else if (took > SLICE_MS * 2 && step > MIN_STEP) step /= 2;
        }
        if (now - reportedAt >= REPORT_MS) {
          post({ type: 'hashes', job: job.id, count: unreported });
          unreported = 0;
          reportedAt = now;
        }
        await yieldTurn();
      }
      index += stride;
    }
    if (unreported > 0) post({ type: 'hashes', job: job.id, count: unreported });
  }

  function fail(error) {
    current = null;
    post({ type: 'error', message: error instanceof Error ? error.message : String(error) });
  }

  function handle(message) {
    if (message === null || typeof message !== 'object') return;
    switch (message.type) {
      case 'init':
        init(message.module).catch(fail);
        return;
      case 'search': {
        if (!kernel) {
          fail(new Error('search before the kernel was loaded'));
          return;
        }
        const job = {
          id: message.job,
          words: message.words,
          difficulty: message.difficulty,
          start: message.start,
          offset: message.offset,
          stride: message.stride,
          chunk: message.chunk,
        };
        current = job;
        run(job).catch(fail);
        return;
      }
      case 'stop':
        if (current && current.id === message.job) current = null;
        return;
      default:
        return;
    }
  }

  return { handle };
}
