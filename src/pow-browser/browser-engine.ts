/**
 * The page's handle on the engine worker: one `new Worker`, one Comlink `wrap`. The engine runs in
 * a dedicated module worker (engine.worker.ts) so the page's thread never hashes, and WASM threads
 * and the GPU device live and die with that worker. No DOM here: only Worker.
 */
import * as Comlink from 'comlink';
import { installEngineErrorTransfer } from '../pow/engine-errors.ts';
import type { EngineApi, EngineStatus } from '../pow/types.ts';

/** The worker's surface: EngineApi plus the test hook the lab page uses. */
export interface BrowserEngineApi extends EngineApi {
  /** Destroys the GPU device mid-job (device-loss tests); false when no WebGPU backend exists. */
  simulateDeviceLoss(): Promise<boolean>;
  dispose(): void;
}

/** The engine worker, started by the constructor (nothing to wait for: Comlink queues calls until it loads). */
export class BrowserEngine {
  /**
   * The remote engine. Call its methods as usual (each returns a promise). A status callback must
   * cross the worker boundary as a Comlink proxy: use `onStatus` below, or
   * `engine.onStatus(Comlink.proxy(cb))`.
   */
  readonly engine: Comlink.Remote<BrowserEngineApi>;

  readonly #worker: Worker;
  #terminated = false;
  #failure: string | null = null;

  constructor() {
    installEngineErrorTransfer();
    this.#worker = new Worker(new URL('./engine.worker.ts', import.meta.url), { type: 'module', name: 'pow-engine' });
    // A worker whose script fails to load or throws at the top level answers no call: say why.
    this.#worker.addEventListener('error', (event) => {
      this.#failure ??= `the engine worker failed: ${event.message || 'its script could not be loaded'}`;
    });
    this.#worker.addEventListener('messageerror', () => {
      this.#failure ??= 'the engine worker sent a message that could not be read';
    });
    this.engine = Comlink.wrap<BrowserEngineApi>(this.#worker);
  }

  /** Why the engine worker stopped answering, when it did (its script failed, or an uncaught error). */
  get failure(): string | null {
    return this.#failure;
  }

  /** Subscribes to status pushes (a few per second while busy, one with hashrate 0 when idle). */
  onStatus(callback: (status: EngineStatus) => void): Promise<void> {
    return this.engine.onStatus(Comlink.proxy(callback));
  }

  /** Stops the worker: any running search ends, threads and the GPU device are released. */
  terminate(): void {
    if (this.#terminated) return;
    this.#terminated = true;
    this.engine[Comlink.releaseProxy]();
    this.#worker.terminate();
  }
}
