/**
 * The shipped systemd units (deploy/systemd/): `systemd-analyze verify` accepts them with not a
 * single warning (the command is swapped for this checkout's bin/dpow-web.mjs, since verify checks
 * that it exists), their offline security exposure stays low, every variable they use is in
 * their example environment file, and every option those files give is one the command knows.
 *
 * Skipped with a message when systemd-analyze is not installed (a container without systemd).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const DEPLOY = path.join(REPO, 'deploy', 'systemd');
const BIN = path.join(REPO, 'bin', 'dpow-web.mjs');
const INSTALLED_BIN = '/usr/local/bin/dpow-web';
const hasAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;
if (!hasAnalyze) console.warn('systemd.test.ts: systemd-analyze is not installed; the units are checked without it');

const UNITS = [
  { unit: 'dpow-web.service', env: 'dispatcher.env.example', command: 'start', optionsVar: 'DPOW_START_OPTIONS' },
  { unit: 'dpow-web-worker.service', env: 'worker.env.example', command: 'worker', optionsVar: 'DPOW_WORKER_OPTIONS' },
  { unit: 'dpow-web-mqtt-front.service', env: 'mqtt-front.env.example', command: 'mqtt-front', optionsVar: 'DPOW_FRONT_OPTIONS' },
  // The same unit on a RabbitMQ node's host, with that deployment's environment file.
  { unit: 'dpow-web-mqtt-front.service', env: '../rabbitmq/mqtt-front.env.example', command: 'mqtt-front', optionsVar: 'DPOW_FRONT_OPTIONS' },
];

const dir = mkdtempSync(path.join(tmpdir(), 'dpow-units-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** KEY=value lines, commented-out ones too (they document the optional variables). */
function envFile(text: string): Map<string, string[]> {
  const vars = new Map<string, string[]>();
  for (const m of text.matchAll(/^#?([A-Z][A-Z0-9_]*)=(.*)$/gm)) vars.set(m[1], [...(vars.get(m[1]) ?? []), m[2]]);
  return vars;
}

describe.each(UNITS)('deploy/systemd/$unit with $env', ({ unit, env, command, optionsVar }) => {
  const text = readFileSync(path.join(DEPLOY, unit), 'utf8');
  const local = path.join(dir, unit);
  writeFileSync(local, text.replaceAll(INSTALLED_BIN, BIN));

  it('runs the installed command under its own user, restarts on failure, takes its settings from a file', () => {
    expect(text).toMatch(new RegExp(`^ExecStart=${INSTALLED_BIN} ${command} `, 'm'));
    expect(text).toMatch(/^DynamicUser=yes$/m);
    expect(text).toMatch(/^Restart=on-failure$/m);
    expect(text).toMatch(/^RestartPreventExitStatus=2$/m);
    expect(text).toMatch(new RegExp(`^EnvironmentFile=/etc/dpow-web/${path.basename(env, '.example')}$`, 'm'));
    expect(text).toMatch(/^NoNewPrivileges=yes$/m);
    expect(text).toMatch(/^ProtectSystem=strict$/m);
    // No credential in the unit itself.
    expect(text).not.toMatch(/password|PASSWORD=/i);
  });

  it('uses only variables its example environment file defines, and options the command knows', () => {
    const vars = envFile(readFileSync(path.join(DEPLOY, env), 'utf8'));
    const execStart = /^ExecStart=(.*)$/m.exec(text)![1];
    const used = [...execStart.matchAll(/\$\{?([A-Z][A-Z0-9_]*)\}?/g)].map((m) => m[1]);
    expect(used.length).toBeGreaterThan(0);
    for (const name of used) expect(vars.has(name), name).toBe(true);

    const help = spawnSync(process.execPath, [BIN, command, '--help'], { encoding: 'utf8', timeout: 30_000 });
    expect(help.status, help.stderr).toBe(0);
    const options = [...execStart.matchAll(/(?<=\s)--[a-z-]+/g), ...(vars.get(optionsVar) ?? []).flatMap((v) => [...v.matchAll(/(?<=^|\s)--[a-z-]+/g)])];
    expect(options.length).toBeGreaterThan(0);
    for (const [option] of options) expect(help.stdout, option).toMatch(new RegExp(`(^|\\s)${option}[\\s,]`, 'm'));
  });

  it.skipIf(!hasAnalyze)('passes systemd-analyze verify with no warning, at a low exposure level', () => {
    const verify = spawnSync('systemd-analyze', ['verify', local], { encoding: 'utf8', cwd: dir });
    expect(verify.stderr).toBe('');
    expect(verify.status).toBe(0);

    const security = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', local], { encoding: 'utf8', cwd: dir });
    const level = Number(/Overall exposure level for \S+: ([\d.]+)/.exec(security.stdout)?.[1]);
    // 0 is a fully locked-down service, 10 an unconfined one; the worker needs the GPU's devices.
    expect(level, security.stdout).toBeLessThanOrEqual(unit === 'dpow-web-worker.service' ? 2 : 1.5);
  });
});
