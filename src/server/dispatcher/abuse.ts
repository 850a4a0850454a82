/**
 * Containment of invalid-result floods. All volunteers share one public broker login, so a bad
 * actor can publish as many junk results as the broker lets through. The dispatcher counts every
 * invalid result (bad work, malformed payload, unknown hash) per payout address and per MQTT
 * client id; past `threshold` in `windowMs`, the source is contained for `cooldownMs`.
 *
 * Which source is contained depends on what is known about the publisher:
 *   - the publishing connection is known (the embedded broker tells the dispatcher): the
 *     connection is contained, and its results are ignored. The address is counted but not
 *     contained, because anyone can write someone else's address into a bad result.
 *   - the connection is unknown (an external broker): the payout address is contained. For the
 *     same reason this may only spare the dispatcher the cost of invalid results naming it (the
 *     store lookups, log lines and notices): the dispatcher still takes every result whose work
 *     proves itself, so naming a victim's address cannot stop its valid work being credited.
 *
 * A volunteer hears of a containment on client/<address>, at most once per address per
 * cooldown, whichever sources name it: an attacker cannot flood a victim with notices.
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
   * when a connection only sent unreadable payloads, or when that address was told within the
   * cooldown already.
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
  /** For an address: until when it is not told about another containment. */
  notifiedUntil?: number;
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
   * The containment of this source, if any: its connection when known, else its address. A map
   * lookup, so it can be asked before a result is read.
   */
  check(address: string | undefined, clientId: string | undefined): Containment | undefined {
    const now = this.#opts.now();
    const hit = (kind: SourceKind, key: string | undefined): Containment | undefined => {
      if (key === undefined) return undefined;
      const t = this.#tallies[kind].get(key);
      return t && t.blockedUntil > now ? { kind, key, until: t.blockedUntil } : undefined;
    };
    return clientId !== undefined ? hit('connection', clientId) : hit('address', address);
  }

  /** A result was ignored because its source of this kind is contained. */
  noteIgnored(kind: SourceKind): void {
    this.counters.ignored[kind]++;
  }

  /** Counts one invalid result; returns the containment it started, if it crossed the threshold. */
  noteInvalid(address: string | undefined, clientId: string | undefined): Containment | undefined {
    // Both are counted; the connection is contained when known, else the address.
    const known = clientId !== undefined;
    const byAddress = address !== undefined ? this.#count('address', address, !known, address) : undefined;
    const started = known ? this.#count('connection', clientId, true, address) : byAddress;
    if (started?.notify !== undefined && !this.#mayNotify(started.notify)) delete started.notify;
    return started;
  }

  /** Whether this address may be told of a containment now (once per cooldown), and notes it. */
  #mayNotify(address: string): boolean {
    const now = this.#opts.now();
    const t = this.#tallies.address.get(address);
    if (!t) return true; // forgotten among the stalest: no record to keep it quiet
    if ((t.notifiedUntil ?? 0) > now) return false;
    t.notifiedUntil = now + this.#opts.cooldownMs;
    return true;
  }

  #count(kind: SourceKind, key: string, contain: boolean, address: string | undefined): Containment | undefined {
    const now = this.#opts.now();
    const map = this.#tallies[kind];
    this.counters.invalid[kind]++;
    let t = map.get(key);
    if (!t || now - t.windowStart >= this.#opts.windowMs) {
      t = { ...t, windowStart: now, count: 0, blockedUntil: t?.blockedUntil ?? 0 };
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
      if (t.blockedUntil <= now && (t.notifiedUntil ?? 0) <= now) map.delete(key);
    }
  }
}
