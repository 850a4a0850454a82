/**
 * The bodies of the Logger (src/log.ts) for the server and the CLI. The CLI logs through pino:
 * one JSON object per line when stderr is not a terminal (journald, files, log shippers), the
 * readable `2026-01-01T00:00:00.000Z level message` line on a terminal. Tests and library users
 * pass `silentLogger` or collect lines.
 *
 * Secrets never reach the output: fields named like a secret (password, api_key, …) are redacted
 * by pino, URL credentials (`mqtt://user:pass@host`) are masked in every message, and the CLI
 * hands over the secrets it knows (broker passwords) so any text that contains one is masked too.
 */
import type { Writable } from 'node:stream';
import { pino, type Logger as Pino } from 'pino';
import type { LogFields, Logger } from '../log.ts';

export { silentLogger, type LogFields, type Logger } from '../log.ts';

export const REDACTED = '[redacted]';

/** Field paths pino blanks wherever they appear in a log object (one level deep as well). */
const REDACT_PATHS = ['password', 'api_key', 'apiKey', 'key', 'secret', 'token', 'authorization']
  .flatMap((f) => [f, `*.${f}`]);

/** `scheme://user:password@host` keeps the user and loses the password. */
const URL_CREDENTIALS = /(\b[a-z][a-z0-9+.-]*:\/\/[^\s/:@]*):[^\s/@]*@/gi;

/** Masks URL passwords and each known secret in a message. */
export function scrub(text: string, secrets: readonly string[] = []): string {
  let out = text.replace(URL_CREDENTIALS, `$1:${REDACTED}@`);
  for (const s of secrets) if (s) out = out.split(s).join(REDACTED);
  return out;
}

export interface LoggerOptions {
  /** Log debug too. */
  verbose?: boolean;
  /** Where lines go. Default process.stderr. */
  destination?: Writable & { isTTY?: boolean };
  /** JSON lines (true) or readable lines (false). Default: JSON unless the destination is a TTY. */
  json?: boolean;
  /** Values masked wherever they appear (passwords, keys given on the command line). */
  secrets?: readonly string[];
  /** Clock for the readable lines (tests). */
  now?: () => Date;
}

/**
 * `dispatcher: accepted …` becomes `{ component: "dispatcher", msg: "accepted …" }` in JSON, so
 * an operator can filter by part of the server without parsing messages.
 */
function split(message: string): { component?: string; msg: string } {
  const m = /^([a-z][a-z_ -]{0,23}): /.exec(message);
  return m ? { component: m[1], msg: message.slice(m[0].length) } : { msg: message };
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const destination = options.destination ?? process.stderr;
  const json = options.json ?? !destination.isTTY;
  const secrets = (options.secrets ?? []).filter((s) => s.length > 0);
  return json ? pinoLogger(destination, options.verbose ?? false, secrets) : lineLogger(destination, options, secrets);
}

function pinoLogger(destination: Writable, verbose: boolean, secrets: readonly string[]): Logger {
  const base: Pino = pino(
    {
      level: verbose ? 'debug' : 'info',
      base: { pid: process.pid },
      redact: { paths: REDACT_PATHS, censor: REDACTED },
      formatters: { level: (label) => ({ level: label }) },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
  const at =
    (level: 'info' | 'warn' | 'error' | 'debug') =>
    (message: string, fields?: LogFields) => {
      const { component, msg } = split(scrub(message, secrets));
      const extra = fields ? (JSON.parse(scrub(JSON.stringify(fields), secrets)) as LogFields) : {};
      base[level]({ ...(component ? { component } : {}), ...extra }, msg);
    };
  return { info: at('info'), warn: at('warn'), error: at('error'), ...(verbose ? { debug: at('debug') } : {}) };
}

function lineLogger(destination: Writable, options: LoggerOptions, secrets: readonly string[]): Logger {
  const now = options.now ?? (() => new Date());
  const line = (level: string) => (message: string, fields?: LogFields) => {
    let text = message;
    if (fields && Object.keys(fields).length) text += ` ${JSON.stringify(redactFields(fields))}`;
    destination.write(`${now().toISOString()} ${level.padEnd(5)} ${scrub(text, secrets)}\n`);
  };
  return {
    info: line('info'),
    warn: line('warn'),
    error: line('error'),
    ...(options.verbose ? { debug: line('debug') } : {}),
  };
}

const SECRET_FIELD = /^(password|api_key|apikey|key|secret|token|authorization)$/i;

function redactFields(fields: LogFields): LogFields {
  const out: LogFields = {};
  for (const [k, v] of Object.entries(fields)) {
    if (SECRET_FIELD.test(k)) out[k] = REDACTED;
    else if (v && typeof v === 'object' && !Array.isArray(v)) out[k] = redactFields(v as LogFields);
    else out[k] = v;
  }
  return out;
}
