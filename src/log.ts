/**
 * The one logging surface every part takes as its `log` option: the engine and the protocol
 * (pure), the page's engine worker, the CLI and the server. Four levels, a message and optional
 * fields. Pure TypeScript, so src/pow and src/dpow can name it; the bodies live at the edges:
 * src/server/log.ts (pino JSON lines or readable lines, secrets masked) for the server and the
 * CLI, the console in the page's engine worker, and plainLogger below for a command's plain
 * progress lines. A part that is given no logger is silent.
 */

export type LogFields = Record<string, unknown>;

export interface Logger {
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** Absent unless the operator asked for debug lines (call it as `log.debug?.(…)`). */
  debug?(message: string, fields?: LogFields): void;
}

export const silentLogger: Logger = {
  info() {},
  warn() {},
  error() {},
};

/**
 * Every level written through `write` as the bare message (fields appended as JSON): for output
 * that people read as a stream of lines, such as `dpow-web work`'s progress on stderr or the
 * headless worker's `engine` lines, where a level word would only be noise.
 */
export function plainLogger(write: (line: string) => void): Logger {
  const line = (message: string, fields?: LogFields) =>
    write(fields && Object.keys(fields).length > 0 ? `${message} ${JSON.stringify(fields)}` : message);
  return { info: line, warn: line, error: line };
}

/** The console, each line prefixed (the page's engine worker: `[pow-engine] …`). */
export function consoleLogger(prefix: string): Logger {
  const tag = (message: string) => (prefix ? `${prefix} ${message}` : message);
  const args = (message: string, fields?: LogFields) => (fields ? [tag(message), fields] : [tag(message)]);
  return {
    info: (message, fields) => console.info(...args(message, fields)),
    warn: (message, fields) => console.warn(...args(message, fields)),
    error: (message, fields) => console.error(...args(message, fields)),
  };
}
