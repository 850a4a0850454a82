/**
 * Log lines about what strangers send (refused publishes, failed logins, bad requests) are
 * bounded twice, so a flood of bad input never becomes a flood of log:
 * - every field taken from the network goes through `clip`: cut to a few dozen characters and
 *   JSON-quoted, so neither a 60 KB user name nor a newline in a topic reaches the log as it came;
 * - a `LogLimiter` logs each kind of event at once the first time in an interval, counts the rest
 *   and writes one summary line with that count (and the last of them) when the interval ends.
 * The counters that say how often each thing happened live with their owners (metrics); this
 * only keeps the log readable and small.
 */
import type { Logger } from './log.ts';

/** Longest field from the network a log line carries. */
export const CLIP_CHARS = 80;

/** `value` as a JSON string of at most `max` characters of its text, with how much was cut. */
export function clip(value: unknown, max = CLIP_CHARS): string {
  const text =
    typeof value === 'string' ? value : Buffer.isBuffer(value) ? value.toString('latin1') : value === undefined ? '' : String(value);
  if (text.length <= max) return JSON.stringify(text);
  return `${JSON.stringify(text.slice(0, max))}…(+${text.length - max} chars)`;
}

type Level = 'info' | 'warn' | 'error';

interface KindState {
  level: Level;
  windowEnd: number;
  suppressed: number;
  last: string;
}

export interface LogLimiterOptions {
  /** One line per kind per interval at most, plus one summary. Default 10 s. */
  intervalMs?: number;
  now?: () => number;
}

export class LogLimiter {
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #kinds = new Map<string, KindState>();
  #timer?: NodeJS.Timeout;

  constructor(log: Logger, options: LogLimiterOptions = {}) {
    this.#log = log;
    this.#intervalMs = options.intervalMs ?? 10_000;
    this.#now = options.now ?? Date.now;
  }

  info(kind: string, message: string): void {
    this.#note('info', kind, message);
  }

  warn(kind: string, message: string): void {
    this.#note('warn', kind, message);
  }

  error(kind: string, message: string): void {
    this.#note('error', kind, message);
  }

  /**
   * `kind` names the event in code ("broker: refused publish"), never text from the network:
   * the table of kinds is as small as the code that logs.
   */
  #note(level: Level, kind: string, message: string): void {
    const now = this.#now();
    const state = this.#kinds.get(kind);
    if (state && now < state.windowEnd) {
      state.suppressed++;
      state.last = message;
      this.#timer ??= setTimeout(() => this.flush(), Math.max(1, state.windowEnd - now)).unref();
      return;
    }
    if (state) this.#summarise(kind, state);
    this.#kinds.set(kind, { level, windowEnd: now + this.#intervalMs, suppressed: 0, last: message });
    this.#log[level](message);
  }

  /** Writes the summary of every kind whose interval has ended (or all of them with `all`). */
  flush(all = false): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const now = this.#now();
    let next = Infinity;
    for (const [kind, state] of this.#kinds) {
      if (!state.suppressed) continue;
      if (all || now >= state.windowEnd) this.#summarise(kind, state);
      else next = Math.min(next, state.windowEnd);
    }
    if (next !== Infinity && !all) this.#timer = setTimeout(() => this.flush(), Math.max(1, next - now)).unref();
  }

  /** Writes what is still counted and stops the timer. */
  close(): void {
    this.flush(true);
  }

  #summarise(kind: string, state: KindState): void {
    if (!state.suppressed) return;
    const ms = this.#intervalMs;
    const span = ms < 1000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`;
    this.#log[state.level](`${kind}: ${state.suppressed} more in ${span}, not logged one by one; the last: ${state.last}`);
    state.suppressed = 0;
  }
}
