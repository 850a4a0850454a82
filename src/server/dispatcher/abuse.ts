/**
 * Containment of invalid-result floods. All volunteers share one public broker login, so a bad
 * actor can publish as many junk results as the broker lets through. The dispatcher counts every
 * invalid result (bad work, malformed payload, unknown hash) per payout address and per MQTT
 * client id; past `threshold` in `windowMs`, results from that source are ignored for
 * `cooldownMs`.
 *
 * Which source is contained depends on what is known about the publisher:
 *   - the publishing connection is known (the embedded broker tells the dispatcher): the
 *     connection is contained. The address is counted but not contained, because anyone can
 *     write someone else's address into a bad result: blocking it would let a flooder silence
 *     an honest volunteer.
 *   - the connection is unknown (an external broker): the payout address is contained.
 *
 * Pure bookkeeping with an injected clock; the dispatcher decides what to do with the answers.
 */

export interface AbuseOptions {
  /** Invalid results within `windowMs` that start a containment. Default 20. */
  threshold: number;
  /** Default 60 s. */
  windowMs: number;
  /** How long a contained source stays ignored. Default 10 minutes. */
  cooldownMs: number;
  /** Sources tracked at once (each kind); the stalest are forgotten beyond it. Default 100 000. */
  maxTracked: number;
  now: () => number;
}

export const DEFAULT_ABUSE_OPTIONS: Omit<AbuseOptions, 'now'> = {
  threshold: 20,
  windowMs: 60_000,
  cooldownMs: 10 * 60_000,
  maxTracked: 100_000,
};

export type SourceKind = 'address' | 'connection';

export interface Containment {
  kind: SourceKind;
  /** The address or client id. */
  key: string;
  /** ms since epoch when results are taken again. */
  until: number;
  /**
   * Where to tell the volunteer: the payout address this source named most recently in an
   * invalid result (for an address, the address itself). Absent when it never named one, as
   * when a connection only sent unreadable payloads.
   */
  notify?: string;
}

export interface AbuseCounters {
  /** Invalid results counted, by the kind of source they were counted against. */
  invalid: Record<SourceKind, number>;
  /** Containments started. */
  contained: Record<SourceKind, number>;
  /** Results ignored because their source was contained. */
  ignored: Record<SourceKind, number>;
}

interface Tally {
  windowStart: number;
  count: number;
  blockedUntil: number;
  /** The last payout address named in an invalid result from this source. */
  lastAddress?: string;
}

export class AbuseGuard {
  readonly counters: AbuseCounters = {
    invalid: { address: 0, connection: 0 },
    contained: { address: 0, connection: 0 },
    ignored: { address: 0, connection: 0 },
  };
  readonly #opts: AbuseOptions;
  readonly #tallies: Record<SourceKind, Map<string, Tally>> = { address: new Map(), connection: new Map() };

  constructor(options: Partial<AbuseOptions> = {}) {
    this.#opts = { ...DEFAULT_ABUSE_OPTIONS, now: Date.now, ...options };
  }

  /** Sources contained right now, for /metrics and status displays. */
  containedNow(kind: SourceKind): number {
    const now = this.#opts.now();
    let n = 0;
    for (const t of this.#tallies[kind].values()) if (t.blockedUntil > now) n++;
    return n;
  }

  /**
   * The containment that makes a result from this source ignored, if any. Checked before a
   * result is looked at, so ignoring costs a map lookup.
   */
  check(address: string | undefined, clientId: string | undefined): Containment | undefined {
    const now = this.#opts.now();
    const hit = (kind: SourceKind, key: string | undefined): Containment | undefined => {
      if (key === undefined) return undefined;
      const t = this.#tallies[kind].get(key);
      return t && t.blockedUntil > now ? { kind, key, until: t.blockedUntil } : undefined;
    };
    const found = clientId !== undefined ? hit('connection', clientId) : hit('address', address);
    if (found) this.counters.ignored[found.kind]++;
    return found;
  }

  /** Counts one invalid result; returns the containment it started, if it crossed the threshold. */
  noteInvalid(address: string | undefined, clientId: string | undefined): Containment | undefined {
    // Both are counted; the connection is contained when known, else the address.
    const known = clientId !== undefined;
    const byAddress = address !== undefined ? this.#count('address', address, !known, address) : undefined;
    return known ? this.#count('connection', clientId, true, address) : byAddress;
  }

  #count(kind: SourceKind, key: string, contain: boolean, address: string | undefined): Containment | undefined {
    const now = this.#opts.now();
    const map = this.#tallies[kind];
    this.counters.invalid[kind]++;
    let t = map.get(key);
    if (!t || now - t.windowStart >= this.#opts.windowMs) {
      t = { windowStart: now, count: 0, blockedUntil: t?.blockedUntil ?? 0, ...(t?.lastAddress !== undefined ? { lastAddress: t.lastAddress } : {}) };
    }
    if (address !== undefined) t.lastAddress = address;
    map.delete(key); // re-inserted last: the Map's order is then least recently seen first
    map.set(key, t);
    if (map.size > this.#opts.maxTracked) this.#forgetStalest(map, now);
    t.count++;
    if (!contain || t.blockedUntil > now || t.count < this.#opts.threshold) return undefined;
    t.blockedUntil = now + this.#opts.cooldownMs;
    t.count = 0;
    this.counters.contained[kind]++;
    return { kind, key, until: t.blockedUntil, ...(t.lastAddress !== undefined ? { notify: t.lastAddress } : {}) };
  }

  #forgetStalest(map: Map<string, Tally>, now: number): void {
    for (const [key, t] of map) {
      if (map.size <= this.#opts.maxTracked) return;
      if (t.blockedUntil <= now) map.delete(key);
    }
  }
}
