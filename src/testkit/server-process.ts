/**
 * Test helper, never imported by the product: one server process on a loopback port (a
 * redis-server, a redis-sentinel), started and started again on the same port, stopped with a
 * signal (SIGKILL for a crash), or frozen (SIGSTOP) as a hung host. It dies with the test process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { killOnExit } from './exit-kill.ts';
import { canConnect } from './net.ts';
import { waitForAsync } from './wait.ts';

export class ServerProcess {
  #process?: ChildProcess;
  #log = '';

  constructor(readonly port: number) {}

  /** What the process printed, for a failure message. */
  get log(): string {
    return this.#log;
  }

  get running(): boolean {
    return this.#process !== undefined && this.#process.exitCode === null && this.#process.signalCode === null;
  }

  /** Spawns `command args` and resolves once it accepts connections on the port. */
  protected async spawn(command: string, args: string[]): Promise<void> {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#process = child;
    killOnExit(child);
    child.stdout!.on('data', (d) => (this.#log += d));
    child.stderr!.on('data', (d) => (this.#log += d));
    await waitForAsync(
      `${command} on ${this.port}`,
      async () => {
        if (!this.running) throw new Error(`${command} exited before listening on ${this.port}:\n${this.#log}`);
        return canConnect('127.0.0.1', this.port);
      },
      10_000,
    );
  }

  /** Stops the process (SIGTERM, or SIGKILL for a crash) and waits for it to exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.#process;
    if (!child || !this.running) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  }

  /** Freezes the process (SIGSTOP): it holds its connections and answers nothing, as a hung host. */
  pause(): void {
    if (this.running) this.#process!.kill('SIGSTOP');
  }

  /** Lets a paused process run on (SIGCONT). */
  resume(): void {
    if (this.running) this.#process!.kill('SIGCONT');
  }
}
