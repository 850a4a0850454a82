/**
 * A production start never loads src/server/sim/: the demo source and the simulated nodes come
 * in through import() only when asked for. A module hook in the child process writes down every
 * file it loads.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = path.join(ROOT, 'bin', 'dpow-web.mjs');
const dir = mkdtempSync(path.join(tmpdir(), 'dpow-loads-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

writeFileSync(
  path.join(dir, 'hooks.mjs'),
  `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  if (url.startsWith('file:') && !url.includes('/node_modules/')) appendFileSync(process.env.DPOW_LOAD_TRACE, url + '\\n');
  return next(url, context);
}
`,
);
writeFileSync(path.join(dir, 'register.mjs'), `import { register } from 'node:module';\nregister('./hooks.mjs', import.meta.url);\n`);

/** The project files `dpow-web start <args>` loaded by the time it was running, relative to the root. */
async function loadedBy(args: string[], name: string): Promise<string[]> {
  const trace = path.join(dir, `${name}.txt`);
  writeFileSync(trace, '');
  const child = spawn(process.execPath, ['--import', path.join(dir, 'register.mjs'), BIN, 'start', '--port', '0', '--no-build', '--memory', ...args], {
    cwd: ROOT,
    env: { ...process.env, DPOW_LOAD_TRACE: trace },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  await new Promise<void>((resolve, reject) => {
    const seen = (d: Buffer) => {
      output += d;
      if (output.includes('press Ctrl-C to stop')) resolve();
    };
    child.stdout.on('data', seen);
    child.stderr.on('data', seen);
    void exited.then((code) => reject(new Error(`dpow-web start exited ${code}:\n${output}`)));
  });
  // An answer proves the process is past start-up (its signal handlers are set) before it is stopped.
  const url = /running at (http:\/\/\S+)/.exec(output)![1];
  expect((await fetch(new URL('/healthz', url))).status).toBe(200);
  child.kill('SIGTERM');
  expect(await exited).toBe(0);
  return readFileSync(trace, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((url) => path.relative(ROOT, fileURLToPath(url)));
}

describe('dpow-web start', () => {
  it('loads no simulator and no demo unless asked for', { timeout: 60_000 }, async () => {
    const production = await loadedBy(['--no-demo', '--feed', 'nano:ws://127.0.0.1:1'], 'production');
    expect(production).toContain(path.join('src', 'server', 'create-server.ts'));
    expect(production).toContain(path.join('src', 'server', 'feeds', 'nano-feed.ts'));
    expect(production.filter((f) => f.includes(`${path.sep}sim${path.sep}`))).toEqual([]);

    const demo = await loadedBy(['--feed', 'qlc-sim'], 'demo');
    expect(demo).toContain(path.join('src', 'server', 'sim', 'demo-source.ts'));
    expect(demo).toContain(path.join('src', 'server', 'sim', 'qlc-sim.ts'));
    expect(demo).not.toContain(path.join('src', 'server', 'sim', 'nano-sim.ts'));
  });
});
