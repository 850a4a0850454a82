/**
 * The worker's event log and session counters: what the page's event list and "This session"
 * card, and the headless worker's log lines, are views of. Bounded (newest first, at most
 * MAX_EVENTS), clock injected, and a failing onEvent listener never breaks the session.
 */
import type { BackendName } from '../pow/types.ts';
import type { ClientCounters, ClientEvent, JobEventInfo } from './state.ts';
import { formatMultiplier, logHash } from '../format.ts';

export const MAX_EVENTS = 200;

/** The parts of a job an event line names. */
export interface LoggedJob {
  hash: string;
  workType: JobEventInfo['workType'];
  multiplier: number;
}

export const freshCounters = (): ClientCounters => ({
  received: 0,
  rejected: {},
  computed: 0,
  published: 0,
  cancelled: 0,
  accepted: 0,
  addressAccepted: 0,
  expired: 0,
});


type Tally = Exclude<keyof ClientCounters, 'rejected' | 'expired'>;

export interface EventLogOptions {
  now: () => number;
  /** Every event, as it happens (the headless worker prints them). */
  onEvent?: (event: ClientEvent) => void;
  /** Called after every change to the events or counters. */
  onChange: () => void;
}

export class EventLog {
  readonly #now: () => number;
  readonly #onEvent: ((event: ClientEvent) => void) | undefined;
  readonly #onChange: () => void;
  #list: ClientEvent[] = [];
  #tally: ClientCounters = freshCounters();

  constructor(options: EventLogOptions) {
    this.#now = options.now;
    this.#onEvent = options.onEvent;
    this.#onChange = options.onChange;
  }

  /** Most recent first (a copy). */
  events(): ClientEvent[] {
    return this.#list.slice();
  }

  /** The counters (a copy); `expired` is the queue's, so the caller fills it in. */
  counters(expired: number): ClientCounters {
    return { ...this.#tally, rejected: { ...this.#tally.rejected }, expired };
  }

  /** A new session: counters start from zero; the events stay for the reader. */
  resetCounters(): void {
    this.#tally = freshCounters();
    this.#onChange();
  }

  count(what: Tally): void {
    this.#tally[what]++;
    this.#onChange();
  }

  /** Counts a refusal by its code without logging it (the caller logs something better). */
  bump(code: string): void {
    this.#tally.rejected[code] = (this.#tally.rejected[code] ?? 0) + 1;
    this.#onChange();
  }

  /** A counted, logged rejection with its reason. */
  reject(code: string, reason: string, level: ClientEvent['level'] = 'warn'): void {
    this.bump(code);
    this.add(level, 'reject', `Rejected (${code}): ${reason}`);
  }

  /** One line about one job: "Computed ondemand 0123…  ×1.00 in 12 ms on wasm". */
  job(
    level: ClientEvent['level'],
    kind: string,
    event: JobEventInfo['event'],
    job: LoggedJob,
    note?: string,
    extra: { ms?: number; backend?: BackendName } = {},
  ): void {
    const info: JobEventInfo = { event, hash: job.hash, workType: job.workType, multiplier: job.multiplier, ...extra };
    const parts = [`${event[0].toUpperCase()}${event.slice(1)}`, job.workType, logHash(job.hash), formatMultiplier(job.multiplier)];
    if (extra.ms !== undefined) parts.push(`in ${extra.ms} ms`);
    if (extra.backend) parts.push(`on ${extra.backend}`);
    if (note) parts.push(note);
    this.add(level, kind, parts.join(' '), info);
  }

  add(level: ClientEvent['level'], kind: string, message: string, job?: JobEventInfo): void {
    const event: ClientEvent = job ? { at: this.#now(), level, kind, message, job } : { at: this.#now(), level, kind, message };
    this.#list.unshift(event);
    if (this.#list.length > MAX_EVENTS) this.#list.length = MAX_EVENTS;
    try {
      this.#onEvent?.(event);
    } catch {
      // A failing onEvent listener must not break the session.
    }
    this.#onChange();
  }
}
