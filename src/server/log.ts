/**
 * The server side's logging surface: four levels, strings only. The CLI prints to stderr with a
 * timestamp; tests and library users pass `silentLogger` or collect lines.
 */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  debug?(message: string): void;
}

export const silentLogger: Logger = {
  info() {},
  warn() {},
  error() {},
};

/** Writes `2026-01-01T00:00:00.000Z level message` lines to stderr; debug only when `verbose`. */
export function consoleLogger(verbose = false): Logger {
  const line = (level: string, message: string) =>
    process.stderr.write(`${new Date().toISOString()} ${level.padEnd(5)} ${message}\n`);
  return {
    info: (m) => line('info', m),
    warn: (m) => line('warn', m),
    error: (m) => line('error', m),
    ...(verbose ? { debug: (m: string) => line('debug', m) } : {}),
  };
}
