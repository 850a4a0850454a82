/**
 * Service API keys: generated once, shown once, stored only as a salted scrypt hash.
 *
 *   key:     32 random bytes, base64url (43 chars)
 *   stored:  scrypt$<N>$<r>$<p>$<salt base64url>$<hash base64url>
 *
 * scrypt costs tens of milliseconds and ~16 MiB per check, so `ApiKeyVerifier` remembers a
 * successful check for a few minutes (keyed by a SHA-256 of the presented key, never the key
 * itself) and a failed one for a few seconds: the hot path of a busy service is a map lookup.
 * Checks are limited per *source* (the caller's address; default 20 scrypt runs a minute): past
 * that, a key that source presents that is not already remembered is refused without scrypt,
 * so guessing cannot eat the server's CPU, and a guesser elsewhere cannot lock a service out.
 * A user that does not exist is checked against a dummy record with the same scrypt cost, so
 * the time of a refusal does not tell which service names exist.
 */
import { createHash, randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { RateLimiter } from './rate-limit.ts';

/** Default scrypt cost: N = 2^14, r = 8, p = 1 (about 16 MiB, a few tens of ms). */
export const SCRYPT_DEFAULTS = { N: 1 << 14, r: 8, p: 1 } as const;
const SALT_BYTES = 16;
const HASH_BYTES = 32;
const KEY_BYTES = 32;

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

/** A fresh API key: 256 random bits, base64url, safe in JSON and shell arguments. */
export function generateApiKey(): string {
  return randomBytes(KEY_BYTES).toString('base64url');
}

function scryptAsync(key: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  const options: ScryptOptions = { N: params.N, r: params.r, p: params.p, maxmem: 256 * params.N * params.r + (1 << 20) };
  return new Promise((resolve, reject) => {
    scrypt(key, salt, HASH_BYTES, options, (err, derived) => (err ? reject(err) : resolve(derived)));
  });
}

/** Hashes a key for storage as `scrypt$N$r$p$salt$hash`. */
export async function hashApiKey(key: string, params: ScryptParams = SCRYPT_DEFAULTS): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const derived = await scryptAsync(key, salt, params);
  return ['scrypt', params.N, params.r, params.p, salt.toString('base64url'), derived.toString('base64url')].join('$');
}

interface ParsedHash {
  params: ScryptParams;
  salt: Buffer;
  hash: Buffer;
}

const B64URL = /^[A-Za-z0-9_-]+$/;

/** Parses a stored hash; undefined for anything malformed (which then verifies nothing). */
export function parseKeyHash(encoded: string): ParsedHash | undefined {
  const parts = encoded.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return undefined;
  const [N, r, p] = parts.slice(1, 4).map((x) => (/^\d{1,9}$/.test(x) ? Number(x) : NaN));
  // N must be a power of two > 1; bound the cost so a corrupt record cannot stall the server.
  if (!(N > 1 && (N & (N - 1)) === 0 && N <= 1 << 20) || !(r >= 1 && r <= 32) || !(p >= 1 && p <= 16)) {
    return undefined;
  }
  if (!B64URL.test(parts[4]) || !B64URL.test(parts[5])) return undefined;
  const salt = Buffer.from(parts[4], 'base64url');
  const hash = Buffer.from(parts[5], 'base64url');
  if (salt.length < 8 || hash.length < 16) return undefined;
  return { params: { N, r, p }, salt, hash };
}

/** Checks a presented key against a stored hash in constant time (for equal lengths). */
export async function verifyApiKey(key: string, encoded: string): Promise<boolean> {
  if (typeof key !== 'string' || key.length === 0 || key.length > 256) return false;
  const parsed = parseKeyHash(encoded);
  if (!parsed) return false;
  const derived = await scryptAsync(key, parsed.salt, parsed.params);
  return derived.length === parsed.hash.length && timingSafeEqual(derived, parsed.hash);
}

export interface ApiKeyVerifierOptions {
  /** How long a successful check is remembered (ms). Default 5 minutes. */
  positiveTtlMs?: number;
  /** How long a failed check is remembered (ms), so retries of one wrong key cost no scrypt. Default 10 s. */
  negativeTtlMs?: number;
  /** Most remembered checks; the oldest are dropped first. Default 10000. */
  maxEntries?: number;
  /** scrypt checks one source may start per minute; past that its unremembered keys are refused unchecked. Default 20. */
  maxFailuresPerMinute?: number;
  now?: () => number;
}

/**
 * A stored hash no key matches, at the default cost: what an unknown user's key is checked
 * against, so that refusal costs what a wrong key for a real user costs.
 */
function dummyKeyHash(): string {
  const { N, r, p } = SCRYPT_DEFAULTS;
  return ['scrypt', N, r, p, randomBytes(SALT_BYTES).toString('base64url'), randomBytes(HASH_BYTES).toString('base64url')].join('$');
}

/**
 * Verifies keys with a short memory. An entry is tied to the stored hash it was checked
 * against, so removing or re-keying a service invalidates it at once.
 */
export class ApiKeyVerifier {
  readonly #cache = new Map<string, { storedHash: string; ok: boolean; expires: number }>();
  readonly #positiveTtlMs: number;
  readonly #negativeTtlMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  readonly #scryptRuns: RateLimiter;
  readonly #maxFailuresPerMinute: number;
  readonly #dummyHash = dummyKeyHash();
  /** Checks answered from memory, by running scrypt, or refused unchecked (the source ran too many). */
  readonly stats = { cached: 0, computed: 0, throttled: 0 };

  constructor(options: ApiKeyVerifierOptions = {}) {
    this.#positiveTtlMs = options.positiveTtlMs ?? 5 * 60_000;
    this.#negativeTtlMs = options.negativeTtlMs ?? 10_000;
    this.#maxEntries = options.maxEntries ?? 10_000;
    this.#now = options.now ?? Date.now;
    this.#maxFailuresPerMinute = options.maxFailuresPerMinute ?? 20;
    this.#scryptRuns = new RateLimiter({ now: this.#now });
  }

  /**
   * True when `key` is `user`'s key. `storedHash` is undefined for a user that does not exist
   * (checked all the same, against the dummy). `source` is who presents it (sourceKey of the
   * caller's address): its checks, not the user's, are what gets throttled.
   */
  async verify(user: string, key: string, storedHash: string | undefined, source: string): Promise<boolean> {
    const against = storedHash ?? this.#dummyHash;
    const id = createHash('sha256').update(user).update('\0').update(key).digest('base64url');
    const now = this.#now();
    const hit = this.#cache.get(id);
    if (hit && hit.storedHash === against && hit.expires > now) {
      this.stats.cached++;
      return hit.ok && storedHash !== undefined;
    }
    // Every scrypt a source starts takes from its allowance up front (a success is rare: it is
    // remembered), so a burst of concurrent guesses cannot all start before the first fails.
    if (!this.#scryptRuns.take(source, this.#maxFailuresPerMinute).ok) {
      this.stats.throttled++;
      return false;
    }
    this.stats.computed++;
    const ok = (await verifyApiKey(key, against)) && storedHash !== undefined;
    this.#cache.delete(id);
    while (this.#cache.size >= this.#maxEntries) {
      const oldest = this.#cache.keys().next().value;
      if (oldest === undefined) break;
      this.#cache.delete(oldest);
    }
    this.#cache.set(id, { storedHash: against, ok, expires: now + (ok ? this.#positiveTtlMs : this.#negativeTtlMs) });
    return ok;
  }

  clear(): void {
    this.#cache.clear();
  }

  /** The record an unknown user's key is checked against (its cost is what a test checks). */
  get dummyHash(): string {
    return this.#dummyHash;
  }
}
