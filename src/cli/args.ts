/** Small, strict option parsing shared by the commands (node:util parseArgs underneath). */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A usage error: printed as one line on stderr, exit code 2. */
export class CliError extends Error {}

export function parseOptions<T extends NonNullable<ParseArgsConfig['options']>>(
  argv: string[],
  options: T,
  allowPositionals = true,
) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (err) {
    throw new CliError((err as Error).message.split('\n')[0]);
  }
}

/** Parses a positive integer option, or throws a CliError naming the option. */
export function intOption(value: string | undefined, name: string, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new CliError(`--${name} must be an integer >= ${min}, got "${value}"`);
  return n;
}
