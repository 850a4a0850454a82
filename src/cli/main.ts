/**
 * `dpow-web <command>`: each command lives in its own module and is loaded on demand, so
 * `dpow-web work` never pays for the dispatcher's imports. Each module's commander definition
 * parses its options and prints its `--help`.
 */
import { readFileSync } from 'node:fs';
import { CliError, COMMAND_SUMMARIES, HelpShown, type CommandName } from './args.ts';

const COMMANDS: Record<CommandName, () => Promise<{ run(argv: string[]): Promise<number> }>> = {
  start: () => import('./start.ts'),
  work: () => import('./work.ts'),
  bench: () => import('./bench.ts'),
  worker: () => import('./worker.ts'),
  service: () => import('./service.ts'),
  snapshot: () => import('./snapshot.ts'),
  payout: () => import('./payout.ts'),
  'mqtt-front': () => import('./mqtt-front.ts'),
};

export function usage(): string {
  const lines = Object.entries(COMMAND_SUMMARIES).map(([name, summary]) => `  ${name.padEnd(10)} ${summary}`);
  return `usage: dpow-web <command> [options]\n       dpow-web --version\n\ncommands:\n${lines.join('\n')}\n\n'dpow-web <command> --help' describes a command's options.\n`;
}

/** The package's version. src/cli/ and the compiled lib/cli/ both sit two levels below package.json. */
export function version(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return typeof manifest.version === 'string' ? manifest.version : 'unknown';
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-V') {
    process.stdout.write(`dpow-web ${version()}\n`);
    return 0;
  }
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name as CommandName] : undefined;
  if (!load) {
    process.stderr.write(`dpow-web: unknown command "${name}"\n${usage()}`);
    return 2;
  }
  try {
    return await (await load()).run(rest);
  } catch (err) {
    if (err instanceof HelpShown) return 0;
    if (err instanceof CliError) {
      process.stderr.write(`dpow-web ${name}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
