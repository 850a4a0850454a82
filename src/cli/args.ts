/**
 * Option parsing shared by the commands: each command is one commander definition, which both
 * parses its options and generates its `--help`, so the two never disagree.
 */
import { Command, CommanderError, type OptionValues } from 'commander';
import { MAX_BROKER_NODES } from '../server/dispatcher/broker-nodes.ts';

/** A usage error: printed as one line on stderr, exit code 2. */
export class CliError extends Error {}

/** `--help` was asked for and printed: the command ends with exit code 0. */
export class HelpShown extends Error {}

/** One line per command, for `dpow-web --help` and the head of each command's own help. */
export const COMMAND_SUMMARIES = {
  start: 'run the broker, dispatcher and app on 127.0.0.1',
  work: 'compute one proof of work',
  bench: 'measure hashrate per backend',
  worker: 'headless DPoW worker',
  service: 'manage on-demand services (add|list|remove|rekey)',
  snapshot: 'record the payout snapshot',
  payout: 'pay volunteers in Nano, exactly once (list|show)',
  'mqtt-front': "guard volunteers' MQTT (WebSocket, TCP) in front of Mosquitto or RabbitMQ",
} as const;

export type CommandName = keyof typeof COMMAND_SUMMARIES;

/**
 * The definition of `dpow-web <name>`: errors become CliErrors (one line, exit 2) and help is
 * printed to stdout, instead of commander printing and exiting by itself.
 */
export function defineCommand(name: CommandName): Command {
  return quiet(new Command(`dpow-web ${name}`).description(COMMAND_SUMMARIES[name]));
}

/** A subcommand of a command (e.g. `service add`), configured the same way. */
export function defineSubcommand(parent: Command, name: string, summary: string): Command {
  const sub = quiet(new Command(name).description(summary));
  parent.addCommand(sub);
  return sub;
}

function quiet(command: Command): Command {
  return command
    .exitOverride()
    .showHelpAfterError(false)
    .configureOutput({ writeErr: () => {}, outputError: () => {} });
}

/** Commander's "error: unknown option '--x'" as a sentence: "Unknown option '--x'". */
function sentence(message: string): string {
  const text = message.replace(/^error: /, '').split('\n')[0];
  return text.charAt(0).toUpperCase() + text.slice(1);
}

function translate(err: unknown): unknown {
  if (!(err instanceof CommanderError)) return err;
  if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version') {
    return new HelpShown();
  }
  if (err.code === 'commander.unknownCommand') {
    const name = /'([^']*)'/.exec(err.message)?.[1] ?? '';
    return new CliError(`unknown subcommand "${name}" (see --help)`);
  }
  return new CliError(sentence(err.message));
}

/** Parses `argv` (the words after the command name) by `command`. */
export function parseCommand<T extends OptionValues>(command: Command, argv: string[]): { options: T; args: string[] } {
  try {
    command.parse(argv, { from: 'user' });
  } catch (err) {
    throw translate(err);
  }
  return { options: command.opts<T>(), args: command.args };
}

/** As parseCommand, for a command whose subcommands have async actions. */
export async function parseCommandAsync(command: Command, argv: string[]): Promise<void> {
  try {
    await command.parseAsync(argv, { from: 'user' });
  } catch (err) {
    throw translate(err);
  }
}

/** For repeatable options: `--feed a --feed b` -> ['a', 'b']. */
export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/**
 * `--broker` repeated or comma-separated (collected): the nodes of one clustered broker, in
 * order, at most MAX_BROKER_NODES. Empty when none was given.
 */
export function brokerList(values: string[] | undefined): string[] {
  const urls = (values ?? []).flatMap((b) => b.split(',')).map((b) => b.trim()).filter(Boolean);
  if (urls.length > MAX_BROKER_NODES) throw new CliError(`--broker names at most ${MAX_BROKER_NODES} brokers, got ${urls.length}`);
  return urls;
}

/** Parses a positive integer option, or throws a CliError naming the option. */
export function intOption(value: string | undefined, name: string, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new CliError(`--${name} must be an integer >= ${min}, got "${value}"`);
  return n;
}

/** Parses a TCP port option (0 = any free port), or throws a CliError naming the option. */
export function portOption(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = /^\d{1,5}$/.test(value) ? Number(value) : Number.NaN;
  if (!(n <= 65535)) throw new CliError(`--${name} must be a port number from 0 to 65535, got "${value}"`);
  return n;
}
