/**
 * The page's handle on the engine worker. The engine runs in a dedicated module worker
 * (engine.worker.ts) so the page's thread never hashes, and WASM threads and the GPU device live
 * and die with that worker. No DOM here: only Worker.
 *
 * A start-up watchdog stands between the page and the worker: Firefox ESR, beside a busy core,
 * now and then loads the worker's script and then answers nothing, with no `error` event. So the
 * first cheap call (status) must answer within a deadline, or the worker is terminated and a
 * fresh one started in its place, a bounded number of times. Callers await ready() and then use
 * `engine`, which always points at the worker that answered.
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

/** A worker that did not answer in time and was replaced. */
export interface WorkerReplacement {
  /** 1 for the first replacement. */
  readonly attempt: number;
  /** What the replaced worker did, e.g. "did not answer within 10 s". */
  readonly reason: string;
}

export interface BrowserEngineOptions {
  /** Starts one engine worker; the default is the real engine.worker.ts (tests inject hanging ones). */
  createWorker?: () => Worker;
  /**
   * How long the first worker may take to answer its first call; each replacement gets twice its
   * predecessor's time. Default 10 s (then 20 s, 40 s): a first visit on a slow link loads the
   * worker's script from the network, a replacement mostly from the cache.
   */
  answerWithinMs?: number;
  /** How many times a silent worker is replaced before the engine gives up. Default 2. */
  maxReplacements?: number;
}

export const DEFAULT_ANSWER_WITHIN_MS = 10_000;
export const DEFAULT_MAX_REPLACEMENTS = 2;

/** The real engine worker. */
export const defaultEngineWorker = (): Worker =>
  new Worker(new URL('./engine.worker.ts', import.meta.url), { type: 'module', name: 'pow-engine' });

/** One started worker with its Comlink remote and its failure, if it raised one. */
interface Started {
  readonly worker: Worker;
  readonly remote: Comlink.Remote<BrowserEngineApi>;
  /** Settles with a reason when the worker raises `error` or `messageerror`; never resolves otherwise. */
  readonly failed: Promise<string>;
}

export class BrowserEngine {
  readonly #createWorker: () => Worker;
  readonly #answerWithinMs: number;
  readonly #maxReplacements: number;
  #current: Started;
  readonly #ready: Promise<void>;
  readonly #replacements: WorkerReplacement[] = [];
  readonly #replacementListeners = new Set<(replacement: WorkerReplacement) => void>();
  #terminated = false;
  #failure: string | null = null;
  #answered = false;

  constructor(options: BrowserEngineOptions = {}) {
    installEngineErrorTransfer();
    this.#createWorker = options.createWorker ?? defaultEngineWorker;
    this.#answerWithinMs = options.answerWithinMs ?? DEFAULT_ANSWER_WITHIN_MS;
    this.#maxReplacements = options.maxReplacements ?? DEFAULT_MAX_REPLACEMENTS;
    this.#current = this.#start();
    this.#ready = this.#watch();
    // A caller that never awaits ready() still sees the failure through `failure`.
    this.#ready.catch(() => {});
  }

  /**
   * The current worker's remote engine. Call its methods after ready() (each returns a promise);
   * a call made before may go to a worker that is then replaced, and never settle. A status
   * callback must cross the worker boundary as a Comlink proxy: use `onStatus` below.
   */
  get engine(): Comlink.Remote<BrowserEngineApi> {
    return this.#current.remote;
  }

  /** Resolves once a worker has answered; rejects with `failure` when none did. */
  ready(): Promise<void> {
    return this.#ready;
  }

  /** Why the engine worker stopped or never started answering, when it did. */
  get failure(): string | null {
    return this.#failure;
  }

  /** The workers replaced because they did not answer in time, oldest first. */
  get replacements(): readonly WorkerReplacement[] {
    return this.#replacements;
  }

  /** Calls back for every replacement, those already made included; returns an unsubscribe. */
  onReplacement(callback: (replacement: WorkerReplacement) => void): () => void {
    for (const replacement of this.#replacements) callback(replacement);
    this.#replacementListeners.add(callback);
    return () => this.#replacementListeners.delete(callback);
  }

  /** Subscribes to status pushes (a few per second while busy, one with hashrate 0 when idle). */
  async onStatus(callback: (status: EngineStatus) => void): Promise<void> {
    await this.#ready;
    return this.engine.onStatus(Comlink.proxy(callback));
  }

  /** Stops the worker: any running search ends, threads and the GPU device are released. */
  terminate(): void {
    if (this.#terminated) return;
    this.#terminated = true;
    this.#stop(this.#current);
  }

  #start(): Started {
    const worker = this.#createWorker();
    const failed = new Promise<string>((resolve) => {
      // A worker whose script fails to load or throws at the top level answers no call: say why.
      const fail = (reason: string) => {
        if (this.#answered && this.#current.worker === worker) this.#failure ??= `the engine worker ${reason}`;
        resolve(reason);
      };
      worker.addEventListener('error', (event) => fail(`failed: ${event.message || 'its script could not be loaded'}`));
      worker.addEventListener('messageerror', () => fail('sent a message that could not be read'));
    });
    return { worker, remote: Comlink.wrap<BrowserEngineApi>(worker), failed };
  }

  #stop(started: Started): void {
    started.remote[Comlink.releaseProxy]();
    started.worker.terminate();
  }

  /** Waits for the current worker's first answer; replaces a silent or failed one, a few times. */
  async #watch(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const started = this.#current;
      const reason = await this.#firstAnswer(started, this.#answerWithinMs * 2 ** attempt);
      if (this.#terminated) throw new Error('the engine was stopped before its worker answered');
      if (reason === null) {
        this.#answered = true;
        return;
      }
      this.#stop(started);
      if (attempt >= this.#maxReplacements) {
        this.#failure = `the engine worker never answered: ${attempt + 1} workers started, the last one ${reason}`;
        throw new Error(this.#failure);
      }
      const replacement: WorkerReplacement = { attempt: attempt + 1, reason };
      this.#replacements.push(replacement);
      for (const listener of this.#replacementListeners) listener(replacement);
      this.#current = this.#start();
    }
  }

  /** null once the worker answers its cheap status call; otherwise why it did not. */
  async #firstAnswer(started: Started, withinMs: number): Promise<string | null> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`did not answer within ${withinMs / 1000} s`), withinMs);
    });
    const answered = started.remote.status().then(
      () => null,
      (err: unknown) => `failed its first call: ${(err as Error)?.message ?? String(err)}`,
    );
    try {
      return await Promise.race([answered, started.failed, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }
}
