/** Test helper, never imported by the product: a logger that drops everything. */
import { silentLogger, type Logger } from '../log.ts';

/** The one Logger shape every part takes (src/log.ts), with debug on so its lines are built too. */
export const quietLogger: Logger = { ...silentLogger, debug: () => undefined };

/** A logger that keeps every line as "<level> <message>", to measure what a part writes. */
export function collectingLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const push = (level: string) => (m: string) => void lines.push(`${level} ${m}`);
  return { lines, info: push('info'), warn: push('warn'), error: push('error') };
}
