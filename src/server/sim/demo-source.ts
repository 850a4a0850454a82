/**
 * The demo work source for `dpow-web start` with nothing else configured: a steady stream of
 * precache jobs and ondemand requests on random roots, so a volunteer who opens the page sees
 * real jobs arrive, get solved, get credited and show up in the statistics.
 *
 * Defaults (all configurable, or `enabled: false` to turn it off):
 * - difficulty `fffff00000000000`: 2^20 ≈ 1M hashes expected, about 0.15 s on one WASM thread
 *   (≈7 MH/s) and well under a second on any WebGPU adapter, so a laptop clears each job fast
 *   while the hashrate display still has something to measure;
 * - one precache job every 5 s;
 * - one ondemand request every 15 s through `requestWork`, on behalf of a public "dpow-web demo"
 *   service, so `statistics` lists a public service with growing counters;
 * - ondemand requests wait 30 s (the service API's maximum) before timing out and cancelling.
 *
 * The roots are random 32-byte values: the work is real proof of work, but for no real block.
 */
import { randomBytes } from 'node:crypto';
import { parseDifficulty, toU64Hex } from '../../pow/work.ts';
import { type Logger, silentLogger } from '../log.ts';
import type { DispatcherStore } from '../store/store.ts';
import { DispatchError, type DispatcherApi } from '../types.ts';

export interface DemoOptions {
  /** Default true. */
  enabled?: boolean;
  /** 16 hex digits. Default fffff00000000000. */
  difficulty?: string;
  /** ms between precache jobs; 0 turns them off. Default 5000. */
  precacheEveryMs?: number;
  /** ms between ondemand requests; 0 turns them off. Default 15000. */
  ondemandEveryMs?: number;
  /** How long each ondemand request waits. Default 30000. */
  ondemandTimeoutMs?: number;
  /** Service user credited for the demo's ondemand requests. Default "demo". */
  service?: string;
}

export const DEMO_DEFAULTS = {
  difficulty: 'fffff00000000000',
  precacheEveryMs: 5000,
  ondemandEveryMs: 15_000,
  ondemandTimeoutMs: 30_000,
  service: 'demo',
} as const;

export interface DemoCounters {
  precache: number;
  ondemand: number;
  answered: number;
  timeouts: number;
  errors: number;
}

export interface DemoSourceOptions extends DemoOptions {
  dispatcher: DispatcherApi;
  /** Where the demo service is registered. */
  store: DispatcherStore;
  log?: Logger;
}

export class DemoSource {
  readonly counters: DemoCounters = { precache: 0, ondemand: 0, answered: 0, timeouts: 0, errors: 0 };
  /** 16 hex digits. */
  readonly difficulty: string;

  readonly #dispatcher: DispatcherApi;
  readonly #log: Logger;
  readonly #difficulty: bigint;
  readonly #ondemandTimeoutMs: number;
  readonly #service: string;
  readonly #timers: NodeJS.Timeout[] = [];
  #stopped = false;

  /**
   * Starts the demo stream. Registers the demo service in the store if absent (public, with an
   * API key hash that matches no key, so nobody can log in as it).
   */
  static async start(options: DemoSourceOptions): Promise<DemoSource> {
    const demo = new DemoSource(options);
    await registerService(options.store, demo.#service);
    if (options.enabled !== false) demo.#schedule(options.precacheEveryMs ?? DEMO_DEFAULTS.precacheEveryMs, options.ondemandEveryMs ?? DEMO_DEFAULTS.ondemandEveryMs);
    return demo;
  }

  private constructor(options: DemoSourceOptions) {
    this.#dispatcher = options.dispatcher;
    this.#log = options.log ?? silentLogger;
    this.#difficulty = parseDifficulty(options.difficulty ?? DEMO_DEFAULTS.difficulty);
    this.difficulty = toU64Hex(this.#difficulty);
    this.#ondemandTimeoutMs = options.ondemandTimeoutMs ?? DEMO_DEFAULTS.ondemandTimeoutMs;
    this.#service = options.service ?? DEMO_DEFAULTS.service;
  }

  stop(): void {
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
  }

  #schedule(precacheEveryMs: number, ondemandEveryMs: number): void {
    if (precacheEveryMs > 0) this.#timers.push(setInterval(() => this.#precacheOnce(), precacheEveryMs));
    if (ondemandEveryMs > 0) this.#timers.push(setInterval(() => this.#ondemandOnce(), ondemandEveryMs));
    this.#log.info(
      `demo: ${precacheEveryMs > 0 ? `a precache job every ${precacheEveryMs / 1000} s` : 'no precache'}, ` +
        `${ondemandEveryMs > 0 ? `an ondemand request every ${ondemandEveryMs / 1000} s` : 'no ondemand'}, ` +
        `difficulty ${this.difficulty}`,
    );
  }

  #precacheOnce(): void {
    if (this.#stopped) return;
    this.counters.precache++;
    this.#dispatcher.precache(randomRoot(), this.#difficulty).catch((err: unknown) => {
      if (this.#stopped) return;
      this.counters.errors++;
      this.#log.warn(`demo: precache failed: ${(err as Error).message}`);
    });
  }

  #ondemandOnce(): void {
    if (this.#stopped) return;
    this.counters.ondemand++;
    this.#dispatcher
      .requestWork({ hash: randomRoot(), difficulty: this.#difficulty, workType: 'ondemand', timeoutMs: this.#ondemandTimeoutMs, service: this.#service })
      .then(() => {
        this.counters.answered++;
      })
      .catch((err: unknown) => {
        if (this.#stopped) return;
        if (err instanceof DispatchError && err.code === 'timeout') this.counters.timeouts++;
        else {
          this.counters.errors++;
          this.#log.warn(`demo: ondemand request failed: ${(err as Error).message}`);
        }
      });
  }
}

/** The demo's service user, public, with an API key hash that matches no key. */
async function registerService(store: DispatcherStore, service: string): Promise<void> {
  if (await store.getService(service)) return;
  await store.addService({
    user: service,
    apiKeyHash: '!demo-service-has-no-api-key',
    display: 'dpow-web demo',
    website: '127.0.0.1',
    public: true,
    precache: 0,
    ondemand: 0,
    rateLimit: 0,
    createdAt: Date.now(),
  });
}

function randomRoot(): string {
  return randomBytes(32).toString('hex').toUpperCase();
}
