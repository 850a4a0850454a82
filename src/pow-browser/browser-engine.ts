/**
 * The page's handle on the engine worker: one `new Worker`, one Comlink `wrap`. The engine runs in
 * a dedicated module worker (engine.worker.ts) so the page's thread never hashes, and WASM threads
 * and the GPU device live and die with that worker. No DOM here: only Worker.
 */
import * as Comlink from 'comlink';
import { PowCancelledError, type EngineApi, type EngineStatus } from '../pow/types.ts';
import { PowInputError, type PowErrorCode } from '../pow/work.ts';

/**
 * Comlink sends a thrown Error as {name, message, stack} and rebuilds a plain Error. This keeps
 * the engine's typed errors typed across the boundary (PowCancelledError.root, PowInputError.code)
 * so the page can use instanceof. Installed on both sides: the worker imports it too.
 */
export function installEngineErrorTransfer(): void {
  const original = Comlink.transferHandlers.get('throw');
  if (!original || (original as { engineErrors?: boolean }).engineErrors) return;
  type Wire = { isError: boolean; value: { name?: string; message?: string; code?: string; root?: string } };
  const handler: Comlink.TransferHandler<unknown, unknown> & { engineErrors: true } = {
    engineErrors: true,
    canHandle: (value): value is unknown => original.canHandle(value),
    serialize(thrown) {
      const [wire, transfer] = original.serialize(thrown) as [Wire, Transferable[]];
      const error = (thrown as { value?: unknown }).value;
      if (wire.isError && error instanceof PowCancelledError) wire.value.root = error.root;
      if (wire.isError && error instanceof PowInputError) wire.value.code = error.code;
      return [wire, transfer];
    },
    deserialize(serialized) {
      const wire = serialized as Wire;
      if (wire.isError && wire.value.name === 'PowCancelledError' && typeof wire.value.root === 'string') {
        throw new PowCancelledError(wire.value.root);
      }
      if (wire.isError && wire.value.name === 'PowInputError' && typeof wire.value.code === 'string') {
        throw new PowInputError(wire.value.code as PowErrorCode, wire.value.message ?? '');
      }
      return original.deserialize(serialized);
    },
  };
  Comlink.transferHandlers.set('throw', handler);
}

/** The worker's surface: EngineApi plus the test hook the lab page uses. */
export interface BrowserEngineApi extends EngineApi {
  /** Destroys the GPU device mid-job (device-loss tests); false when no WebGPU backend exists. */
  simulateDeviceLoss(): Promise<boolean>;
  dispose(): void;
}

export interface BrowserEngine {
  /**
   * The remote engine. Call its methods as usual (each returns a promise). A status callback must
   * cross the worker boundary as a Comlink proxy: use `onStatus` below, or
   * `engine.onStatus(Comlink.proxy(cb))`.
   */
  engine: Comlink.Remote<BrowserEngineApi>;
  /** Subscribes to status pushes (a few per second while busy, one with hashrate 0 when idle). */
  onStatus(callback: (status: EngineStatus) => void): Promise<void>;
  /** Stops the worker: any running search ends, threads and the GPU device are released. */
  terminate(): void;
}

export function createBrowserEngine(): BrowserEngine {
  installEngineErrorTransfer();
  const worker = new Worker(new URL('./engine.worker.ts', import.meta.url), { type: 'module', name: 'pow-engine' });
  const engine = Comlink.wrap<BrowserEngineApi>(worker);
  let terminated = false;
  return {
    engine,
    onStatus: (callback) => engine.onStatus(Comlink.proxy(callback)),
    terminate() {
      if (terminated) return;
      terminated = true;
      engine[Comlink.releaseProxy]();
      worker.terminate();
    },
  };
}
