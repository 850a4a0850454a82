/**
 * Test helper, never imported by the product: child processes a test started die with the test
 * process. A test that fails half-way (or a vitest worker that is torn down) would otherwise
 * leave redis-server, redis-sentinel or a whole Erlang VM running on the machine.
 */
import type { ChildProcess } from 'node:child_process';

const living = new Set<{ child: ChildProcess; group: boolean }>();
let hooked = false;

function killAll(): void {
  for (const { child, group } of living) {
    try {
      // A process group (a detached child and everything it started) goes as one.
      if (group && child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      else child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  living.clear();
}

/**
 * Kills `child` with SIGKILL when this process exits, unless it exited first. With `group`, the
 * child must have been spawned `detached` (its own process group), and the whole group is killed.
 */
export function killOnExit(child: ChildProcess, options: { group?: boolean } = {}): void {
  const entry = { child, group: options.group ?? false };
  living.add(entry);
  child.once('exit', () => living.delete(entry));
  if (!hooked) {
    hooked = true;
    process.once('exit', killAll);
  }
}
