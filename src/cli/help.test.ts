/**
 * Every command answers --help from the same commander definition that parses its options, and
 * a wrong option is still one clear line on stderr with exit 2.
 */
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Command } from 'commander';
import { COMMAND_SUMMARIES, type CommandName } from './args.ts';
import { main } from './main.ts';

let stdout: string[];
let stderr: string[];
beforeEach(() => {
  stdout = [];
  stderr = [];
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => (stdout.push(String(chunk)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => (stderr.push(String(chunk)), true));
});
afterEach(() => vi.restoreAllMocks());

const definitions: Record<CommandName, () => Promise<Command>> = {
  start: async () => (await import('./start.ts')).command(),
  work: async () => (await import('./work.ts')).command(),
  bench: async () => (await import('./bench.ts')).command(),
  worker: async () => (await import('./worker.ts')).command(),
  service: async () => (await import('./service.ts')).command(),
  snapshot: async () => (await import('./snapshot.ts')).command(),
  payout: async () => (await import('./payout.ts')).command(),
  'mqtt-front': async () => (await import('./mqtt-front.ts')).command(),
};

describe('dpow-web <command> --help', () => {
  it.each(Object.keys(COMMAND_SUMMARIES) as CommandName[])('%s --help lists every option it parses and exits 0', async (name) => {
    for (const flag of ['--help', '-h']) {
      stdout = [];
      expect(await main([name, flag]), flag).toBe(0);
      const help = stdout.join('');
      expect(help).toMatch(new RegExp(`^Usage: dpow-web ${name} `));
      expect(help).toContain(COMMAND_SUMMARIES[name]);
      for (const option of (await definitions[name]()).options) expect(help).toContain(option.long!);
    }
    expect(stderr).toEqual([]);
  });

  it('service subcommands have their own help', async () => {
    for (const sub of (await definitions.service()).commands) {
      stdout = [];
      expect(await main(['service', sub.name(), '--help'])).toBe(0);
      const help = stdout.join('');
      expect(help).toMatch(new RegExp(`^Usage: dpow-web service ${sub.name()} `));
      for (const option of sub.options) expect(help).toContain(option.long!);
    }
  });

  it('--version and -V print the package version and exit 0', async () => {
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      stdout = [];
      expect(await main([flag]), flag).toBe(0);
      expect(stdout.join('')).toBe(`dpow-web ${version}\n`);
    }
    expect(stderr).toEqual([]);
  });

  it('an unknown option is still one line on stderr and exit 2', async () => {
    for (const name of ['worker', 'work', 'start', 'bench', 'snapshot', 'mqtt-front'] as const) {
      stderr = [];
      expect(await main([name, '--bogus'])).toBe(2);
      expect(stderr.join('')).toBe(`dpow-web ${name}: Unknown option '--bogus'\n`);
    }
    expect(stdout).toEqual([]);
  });
});
