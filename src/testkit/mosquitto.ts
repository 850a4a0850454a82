/**
 * Test helper, never imported by the product: Debian's mosquitto running the shipped deployment
 * (deploy/mosquitto: the config with test ports and files, passwords made by make-passwords.sh,
 * the ACL as shipped), on free loopback ports, with the volunteers' WebSocket served as the
 * deployment serves it: by dpow-web's MQTT front (in this process) in front of Mosquitto's
 * volunteer listener.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MqttFront, type MqttFrontOptions } from '../server/mqtt-front.ts';
import { freePort } from './net.ts';

export const MOSQUITTO = '/usr/sbin/mosquitto';
export const DEPLOY_MOSQUITTO = join(import.meta.dirname, '../../deploy/mosquitto');
export const mosquittoInstalled = existsSync(MOSQUITTO) && spawnSync('sh', ['-c', 'command -v mosquitto_passwd']).status === 0;

/** True when the mosquitto tests should be skipped here (not installed, not CI); says so once. */
export function skipWithoutMosquitto(file: string): boolean {
  if (mosquittoInstalled || process.env.CI) return false;
  console.warn(`${file}: skipped, ${MOSQUITTO} or mosquitto_passwd is not installed (apt-get install mosquitto)`);
  return true;
}

/** The shipped config with test ports and files; every substitution must find its line. */
export function configForTest(
  template: string,
  files: { passwords: string; acl: string },
  ports: { tcp: number; volunteers: number },
  extra = '',
  volunteerConnections?: number,
): string {
  const swaps: Array<[RegExp, string]> = [
    [/^password_file .*$/m, `password_file ${files.passwords}`],
    [/^acl_file .*$/m, `acl_file ${files.acl}`],
    [/^listener 1883 127\.0\.0\.1$/m, `listener ${ports.tcp} 127.0.0.1`],
    [/^listener 1884 127\.0\.0\.1$/m, `listener ${ports.volunteers} 127.0.0.1`],
    ...(volunteerConnections === undefined ? [] : [[/^max_connections \d+$/m, `max_connections ${volunteerConnections}`] as [RegExp, string]]),
  ];
  let out = template;
  for (const [pattern, line] of swaps) {
    if (!pattern.test(out)) throw new Error(`deploy/mosquitto/mosquitto.conf has no line matching ${pattern}`);
    out = out.replace(pattern, line);
  }
  // Global options must come before the first listener.
  return extra ? out.replace(/^listener /m, `${extra}\nlistener `) : out;
}

export class Mosquitto {
  log = '';
  /** The volunteers' WebSocket: the MQTT front, started with the broker. */
  front!: MqttFront;
  private constructor(
    readonly process: ChildProcess,
    readonly dir: string,
    /** tcp: the dispatcher's listener; volunteers: the front's listener; ws: the front. */
    readonly ports: { tcp: number; volunteers: number; ws: number },
    readonly secrets: { server: string; dashboard: string },
    /** The configuration it runs: the shipped one with test ports and files. */
    readonly config: string,
  ) {
    process.stdout!.on('data', (d) => (this.log += d));
    process.stderr!.on('data', (d) => (this.log += d));
  }

  /** The listener for the dispatcher and this host's tools. */
  get tcpUrl(): string {
    return `mqtt://127.0.0.1:${this.ports.tcp}`;
  }

  /** Mosquitto's listener for volunteers, which the front pipes to. */
  get volunteersUrl(): string {
    return `mqtt://127.0.0.1:${this.ports.volunteers}`;
  }

  /** Where volunteers connect, as through the TLS proxy: the front. */
  get wsUrl(): string {
    return this.front.url;
  }

  /**
   * Starts the shipped deployment; `extraConfig` lines (global options) go before the listeners,
   * `volunteerConnections` replaces the volunteer listener's max_connections, `front` options go
   * to the front.
   */
  static async start(options: { extraConfig?: string; volunteerConnections?: number; front?: Partial<MqttFrontOptions> } = {}): Promise<Mosquitto> {
    const secrets = { server: randomBytes(12).toString('hex'), dashboard: randomBytes(12).toString('hex') };
    const dir = mkdtempSync(join(tmpdir(), 'dpow-mosquitto-'));
    // mosquitto drops root privileges to its own user before reading these files.
    chmodSync(dir, 0o755);
    const passwords = join(dir, 'passwords');
    const made = spawnSync('sh', [join(DEPLOY_MOSQUITTO, 'make-passwords.sh'), passwords], {
      env: { ...process.env, SERVER_PASSWORD: secrets.server, DASHBOARD_PASSWORD: secrets.dashboard },
      encoding: 'utf8',
    });
    if (made.status !== 0) throw new Error(`make-passwords.sh failed: ${made.stderr}`);
    chmodSync(passwords, 0o644);
    const acl = join(dir, 'acl');
    copyFileSync(join(DEPLOY_MOSQUITTO, 'acl'), acl);
    chmodSync(acl, 0o644);
    const ports = { tcp: await freePort(), volunteers: await freePort(), ws: 0 };
    const conf = join(dir, 'mosquitto.conf');
    const config = configForTest(readFileSync(join(DEPLOY_MOSQUITTO, 'mosquitto.conf'), 'utf8'), { passwords, acl }, ports, options.extraConfig, options.volunteerConnections);
    writeFileSync(conf, config);
    chmodSync(conf, 0o644);
    const child = spawn(MOSQUITTO, ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    const broker = new Mosquitto(child, dir, ports, secrets, config);
    // Its own word, not a probe: a connection closed before its CONNECT is counted off twice by
    // 2.0.11's max_connections (fixed in 2.0.12), which a test of that cap would then miss.
    const deadline = Date.now() + 10_000;
    while (!/ running$/m.test(broker.log)) {
      if (child.exitCode !== null || Date.now() > deadline) throw new Error(`mosquitto did not start:\n${broker.log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    broker.front = await MqttFront.start({ broker: broker.volunteersUrl, port: 0, ...options.front });
    ports.ws = Number(new URL(broker.front.url).port);
    return broker;
  }

  async close(): Promise<void> {
    await this.front?.close();
    if (this.process.exitCode === null && this.process.signalCode === null) {
      const exited = new Promise((r) => this.process.once('exit', r));
      this.process.kill('SIGTERM');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
