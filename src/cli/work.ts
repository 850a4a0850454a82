/**
 * `dpow-web work <root> [--difficulty <16 hex> | --multiplier <m>] [--backend auto|webgpu|wasm]
 *  [--threads N]`: computes one proof of work and prints one JSON line
 *  {"hash","work","difficulty","value","backend","hashes","ms"}.
 *
 * Exit 0 only for work that passed the reference check; 2 for bad input (one line on stderr);
 * 1 when the search itself failed (e.g. --backend webgpu with no adapter); 130 on Ctrl-C.
 */
import { availableParallelism } from 'node:os';
import { CliError, defineCommand, intOption, parseCommand } from './args.ts';
import { plainLogger, type Logger } from '../log.ts';
import { createNodeEngine } from '../pow-node/engine.ts';
import { checkDifficulty, difficultyPolicy } from '../pow/difficulty.ts';
import type { BackendChoice } from '../pow/types.ts';
import { PowCancelledError } from '../pow/types.ts';
import {
  PowInputError,
  THRESHOLDS,
  fromMultiplier,
  parseDifficulty,
  parseMultiplier,
  parseRoot,
  toU64Hex,
  validateWork,
} from '../pow/work.ts';

/** A command's progress (backend start-up, fallbacks) as bare lines on stderr; `bench` shares it. */
export const stderrLines: Logger = plainLogger((line) => process.stderr.write(`${line}\n`));

const BACKENDS: readonly BackendChoice[] = ['auto', 'webgpu', 'wasm'];

export function parseBackend(value: string | undefined, allowed: readonly string[] = BACKENDS): string {
  if (value === undefined) return 'auto';
  if (!allowed.includes(value)) {
    throw new CliError(`--backend must be one of ${allowed.join('|')}, got "${value}"`);
  }
  return value;
}

/** Turns PowInputError (already a specific, one-line reason) into a usage error. */
function asCliError<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof PowInputError) throw new CliError(err.message);
    throw err;
  }
}

export function command() {
  return defineCommand('work')
    .argument('<root>', "64 hex: the previous block's hash, or an open block's account public key")
    .option('-d, --difficulty <hex>', 'threshold as 16 hex digits (default fffffe0000000000, the Nano receive threshold)')
    .option('-m, --multiplier <m>', 'threshold as a multiple of the Nano send threshold')
    .option('-b, --backend <backend>', 'auto, webgpu or wasm', 'auto')
    .option('-t, --threads <n>', `WASM threads (default: every core, ${availableParallelism()} here)`)
    .addHelpText('after', '\nPrints one JSON line {hash, work, difficulty, value, backend, hashes, ms}; exit 0 only for work\nthat passed the reference check, 2 for bad input, 1 when the search failed.');
}

interface WorkOptions {
  difficulty?: string;
  multiplier?: string;
  backend: string;
  threads?: string;
}

export async function run(argv: string[]): Promise<number> {
  const { options: values, args } = parseCommand<WorkOptions>(command(), argv);
  const root = args[0];
  asCliError(() => parseRoot(root));
  if (values.difficulty !== undefined && values.multiplier !== undefined) {
    throw new CliError('give either --difficulty or --multiplier, not both');
  }
  const difficulty =
    values.multiplier !== undefined
      ? asCliError(() => fromMultiplier(parseMultiplier(values.multiplier)))
      : values.difficulty !== undefined
        ? asCliError(() => parseDifficulty(values.difficulty))
        : THRESHOLDS.nanoReceive;
  // Refuse an absurd difficulty before any GPU or thread is started; the engine gets the same policy.
  const policy = difficultyPolicy();
  asCliError(() => checkDifficulty(difficulty, policy));
  const backend = parseBackend(values.backend) as BackendChoice;
  // One job asked for on the command line: it may have the whole machine.
  const threads = intOption(values.threads, 'threads', availableParallelism());
  const difficultyHex = toU64Hex(difficulty);

  const engine = await createNodeEngine({ backend, threads, policy, log: stderrLines });
  const interrupt = () => void engine.cancel(root);
  process.once('SIGINT', interrupt);
  try {
    const result = await engine.generate(root, difficulty, { backend, threads });
    // The engine already checked it; check once more here so exit 0 can never mean unchecked work.
    const check = validateWork(root, result.work, difficulty);
    if (!check.valid) {
      process.stderr.write(`dpow-web work: ${result.work} failed the reference check (value ${toU64Hex(check.value)})\n`);
      return 1;
    }
    const line = {
      hash: root.toUpperCase(),
      work: result.work,
      difficulty: difficultyHex,
      value: toU64Hex(check.value),
      backend: result.backend,
      hashes: result.hashes,
      ms: Math.round(result.ms),
    };
    process.stdout.write(`${JSON.stringify(line)}\n`);
    return 0;
  } catch (err) {
    if (err instanceof PowInputError) throw new CliError(err.message);
    if (err instanceof PowCancelledError) {
      process.stderr.write('dpow-web work: interrupted\n');
      return 130;
    }
    process.stderr.write(`dpow-web work: ${(err as Error).message ?? String(err)}\n`);
    return 1;
  } finally {
    process.off('SIGINT', interrupt);
    engine.dispose();
  }
}
