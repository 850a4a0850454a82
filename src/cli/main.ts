/**
 * `dpow-web <command>`: each command lives in its own module and is loaded on demand, so
 * `dpow-web work` never pays for the dispatcher's imports.
 */
import { CliError } from './args.ts';

type Command = { summary: string; load: () => Promise<{ run(argv: string[]): Promise<number> }> };

const COMMANDS: Record<string, Command> = {
  start: { summary: 'run the broker, dispatcher and app on 127.0.0.1', load: () => import('./start.ts') },
  work: { summary: 'compute one proof of work', load: () => import('./work.ts') },
  bench: { summary: 'measure hashrate per backend', load: () => import('./bench.ts') },
  worker: { summary: 'headless DPoW worker', load: () => import('./worker.ts') },
  service: { summary: 'manage on-demand services (add|list|remove)', load: () => import('./service.ts') },
  snapshot: { summary: 'record the payout snapshot', load: () => import('./snapshot.ts') },
};

export function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(9)} ${c.summary}`);
  return `usage: dpow-web <command> [options]\n\ncommands:\n${lines.join('\n')}\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`dpow-web: unknown command "${name}"\n${usage()}`);
    return 2;
  }
  try {
    return await (await command.load()).run(rest);
  } catch (err) {
    if (err instanceof CliError) {
      process.stderr.write(`dpow-web ${name}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}
