/**
 * Abuse containment in the dispatcher's terms; the bookkeeping is AbuseGuard's (abuse.ts). It
 * says which results to ignore, before they are read, and what happens when a source crosses the
 * threshold: one log line, and a notice on client/<address> so the volunteer learns why.
 */
import type { Logger } from '../log.ts';
import { AbuseGuard, type AbuseOptions, type Containment as Contained } from './abuse.ts';
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
  readonly #log: Logger;

  constructor(options: ContainmentOptions) {
    this.guard = new AbuseGuard(options.abuse);
    this.#session = options.session;
    this.#log = options.log;
  }

  /** Why a result from this source is ignored, or undefined when the source is not contained. */
  ignoring(source: ResultSource): string | undefined {
    const c = this.guard.check(source.address, source.publisher);
    return c && `${c.kind} ${JSON.stringify(c.key.slice(0, 64))} is contained`;
  }

  /** Counts one invalid result against its source, and contains the source past the threshold. */
  noteInvalid(source: ResultSource): void {
    const contained = this.guard.noteInvalid(source.address, source.publisher);
    if (contained) this.#contain(contained);
  }

  /**
   * A source just crossed the threshold: log it once, and tell the volunteer on the payout
   * address it last named (the one crossing may be an unreadable payload that names none).
   */
  #contain(c: Contained): void {
    const seconds = Math.max(1, Math.round((c.until - Date.now()) / 1000));
    this.#log.warn(
      `dispatcher: too many invalid results from ${c.kind} ${JSON.stringify(c.key.slice(0, 64))}; its results are ignored for ${seconds} s`,
    );
    if (c.notify === undefined) return;
    const error = `Too many invalid results: results from this ${c.kind} are ignored for ${seconds} s`;
    this.#session.publishClient(c.notify, { kind: 'error', error });
  }
}
