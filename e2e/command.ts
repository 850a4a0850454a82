/**
 * `dpow-web start` as a volunteer runs it (`npm start`): the real command in a child process,
 * on a free port, with the demo source unless told otherwise. For browser tests that want the
 * whole product as shipped, demo included.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface Started {
  child: ChildProcess;
  url: string;
  output: () => string;
}

export async function startCommand(extra: string[] = []): Promise<Started> {
  const child = spawn(process.execPath, ['bin/dpow-web.mjs', 'start', '--port', '0', '--no-build', '--memory', ...extra], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`dpow-web start printed no URL:\n${output}`)), 60_000);
    child.stdout!.on('data', () => {
      const m = /dpow-web is running at (http:\/\/127\.0\.0\.1:\d+\/)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once('exit', (code) => reject(new Error(`dpow-web start exited with ${code}:\n${output}`)));
  });
  return { child, url, output: () => output };
}

export async function stopCommand(started: Started | undefined): Promise<void> {
  const child = started?.child;
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGINT');
  await exited;
}
