/**
 * Abuse containment in the dispatcher's terms; the bookkeeping is AbuseGuard's (abuse.ts). It
 * says which sources are contained and what happens when a source crosses the threshold: one
 * (rate-limited) log line, and a notice on client/<address> so the volunteer learns why.
 *
 * What a containment costs its source depends on the kind (the walk is in results.ts):
 *   - a connection (known on the embedded broker): every result it publishes is ignored, before
 *     it is read. Only the flooder's own connection is keyed, so nobody else loses anything.
 *   - an address (an external broker, where the publisher is unknown): anyone can name any
 *     address, so only results that fail to prove their work are ignored unread; valid work
 *     naming the address is credited as ever.
 */
import { clip, LogLimiter } from '../log-limit.ts';
import type { Logger } from '../log.ts';
import { AbuseGuard, type AbuseOptions, type Containment as Contained, type SourceKind } from './abuse.ts';
import type { BrokerSession } from './broker-session.ts';

/** What is known about who sent a result: the payout address it names, the MQTT client id. */
export interface ResultSource {
  address?: string;
  publisher?: string;
}

export interface ContainmentOptions {
  /** Thresholds, window and cooldown; AbuseGuard's defaults for what is not given. */
  abuse?: Partial<Omit<AbuseOptions, 'now'>>;
  session: Pick<BrokerSession, 'publishClient'>;
  log: Logger;
}

export class Containment {
  /** Invalid results by source and the containments they started (read by /metrics). */
  readonly guard: AbuseGuard;
  readonly #session: Pick<BrokerSession, 'publishClient'>;
  /** Containments start once per source per cooldown, but sources are many: one line per interval. */
  readonly #log: LogLimiter;

  constructor(options: ContainmentOptions) {
    this.guard = new AbuseGuard(options.abuse);
    this.#session = options.session;
    this.#log = new LogLimiter(options.log);
  }

  /** Why this source is contained (its connection when known, else its address), or undefined. */
  contained(source: ResultSource): { kind: SourceKind; reason: string } | undefined {
    const c = this.guard.check(source.address, source.publisher);
    return c && { kind: c.kind, reason: `${c.kind} ${clip(c.key)} is contained` };
  }

  /** A result was ignored because its source of this kind is contained (counted for /metrics). */
  ignored(kind: SourceKind): void {
    this.guard.noteIgnored(kind);
  }

  /** Counts one invalid result against its source, and contains the source past the threshold. */
  noteInvalid(source: ResultSource): void {
    const contained = this.guard.noteInvalid(source.address, source.publisher);
    if (contained) this.#contain(contained);
  }

  /** Writes what the log limiter still counts. */
  close(): void {
    this.#log.close();
  }

  /**
   * A source just crossed the threshold: log it, and tell the volunteer on the payout address it
   * last named (the one crossing may be an unreadable payload that names none), unless that
   * address heard of a containment within the cooldown.
   */
  #contain(c: Contained): void {
    const seconds = Math.max(1, Math.round((c.until - Date.now()) / 1000));
    const what = c.kind === 'connection' ? 'its results are ignored' : 'its invalid results are ignored (valid work is still credited)';
    this.#log.warn(
      'dispatcher: containment',
      `dispatcher: too many invalid results from ${c.kind} ${clip(c.key)}; ${what} for ${seconds} s`,
    );
    if (c.notify === undefined) return;
    const error =
      c.kind === 'connection'
        ? `Too many invalid results: results from this connection are ignored for ${seconds} s`
        : `Too many invalid results name this address: invalid ones are ignored for ${seconds} s; valid work is still credited`;
    this.#session.publishClient(c.notify, { kind: 'error', error });
  }
}
