/**
 * What a result for a job this dispatcher does not hold may cost: on a shared store it may be
 * another dispatcher's job, and only a store lookup says (its pending record gives the
 * difficulty). Anyone can publish results, and neither Mosquitto nor RabbitMQ limits a
 * volunteer's publish rate, so these lookups are bounded here, for the whole dispatcher:
 *
 * - at most `inFlight` at once and `perSecond` on average (a token bucket holding `burst`); a
 *   result past either is dropped without a store call. A legitimate result for another
 *   dispatcher's job that meets a flood may be dropped too: the dispatcher that published the
 *   job still takes it (it sees every result, unless the broker shares them out), and so does
 *   this one once the flood ebbs;
 * - the same result refused as "no such job" is answered from memory for a while, so junk
 *   repeated word for word costs one lookup. The key is the whole result (hash, work, address):
 *   nobody can make a volunteer's work for a job count as refused by sending junk for its hash.
 *
 * Results for jobs held here need no lookup and never meet this bound.
 */
import { LRUCache } from 'lru-cache';
import { TokenBucket } from '../token-bucket.ts';

export interface LookupBoundOptions {
  /** Lookups waiting for the store at once. Default 32. */
  inFlight: number;
  /** Lookups a second on average. Default 200. */
  perSecond: number;
  /** Lookups at once above the rate (the bucket's size). Default 400. */
  burst: number;
  now?: () => number;
}

export const LOOKUP_BOUND: Readonly<Omit<LookupBoundOptions, 'now'>> = { inFlight: 32, perSecond: 200, burst: 400 };

/** Refused results remembered, and for how long: a few thousand keys of ~150 bytes. */
const REFUSED_KEPT = 4096;
const REFUSED_TTL_MS = 30_000;

/** Why a result was not looked up. */
export type LookupRefusal = 'in-flight' | 'rate';

export class LookupBound {
  readonly #inFlightLimit: number;
  readonly #bucket: TokenBucket;
  readonly #now: () => number;
  /** Results the store said are for no pending job, by `resultKey`. */
  readonly #notPending = new LRUCache<string, true>({ max: REFUSED_KEPT, ttl: REFUSED_TTL_MS });
  #inFlight = 0;

  constructor(options: Partial<LookupBoundOptions> = {}) {
    this.#inFlightLimit = options.inFlight ?? LOOKUP_BOUND.inFlight;
    this.#now = options.now ?? Date.now;
    this.#bucket = new TokenBucket(options.burst ?? LOOKUP_BOUND.burst, options.perSecond ?? LOOKUP_BOUND.perSecond, this.#now());
  }

  /** Lookups waiting for the store now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Lookups the rate allows at once now (whole ones). */
  get tokens(): number {
    return Math.floor(this.#bucket.available(this.#now()));
  }

  /** Whether the store lately said this exact result is for no pending job. */
  knownNotPending(key: string): boolean {
    return this.#notPending.get(key) === true;
  }

  /**
   * Takes a place in flight and a token for one lookup, or says which was used up (and takes
   * nothing). A place is given back with end().
   */
  start(): LookupRefusal | undefined {
    if (this.#inFlight >= this.#inFlightLimit) return 'in-flight';
    if (!this.#bucket.take(this.#now())) return 'rate';
    this.#inFlight++;
    return undefined;
  }

  /** A lookup start() admitted is over (answered or failed). */
  end(): void {
    this.#inFlight--;
  }

  /** The store said this result is for no pending job. */
  notPending(key: string): void {
    this.#notPending.set(key, true);
  }
}

/** One key per result as published: hash, work and address, case folded. */
export function resultKey(hash: string, work: string, address: string): string {
  return `${hash},${work},${address}`.toLowerCase();
}
