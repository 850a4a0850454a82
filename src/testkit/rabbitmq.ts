/**
 * Test helper, never imported by the product: a RabbitMQ cluster (Debian's rabbitmq-server 3.10
 * with its MQTT and Web MQTT plugins) running the shipped deployment, deploy/rabbitmq: every node
 * reads rabbitmq.conf as shipped, then a file of its own with its free loopback ports and the
 * cluster's node names; the logins come from make-users.sh.
 *
 * All on one host: each node has its own name (`dpow<id>-<n>@localhost`), temporary
 * RABBITMQ_MNESIA_BASE, RABBITMQ_LOG_BASE and config directory; they share one Erlang cookie
 * (a temporary HOME) and an epmd of their own on a free port, so a system epmd (Debian's
 * package may leave one running) is neither used nor touched. Every node runs in a process
 * group of its own: kill() sends SIGKILL to the whole VM, start() brings it back on the same
 * ports and data, and readiness is asked of the cluster (its listeners accept connections,
 * `rabbitmqctl` lists every node as running), never slept on. All of it dies with the test
 * process.
 *
 * Runs as root (CI) or as any user: the real start script (/usr/lib/rabbitmq/bin), not Debian's
 * /usr/sbin wrapper, which switches to the rabbitmq user when started as root.
 *
 * Skipped with a message only when rabbitmq-server is not installed AND this is not CI (.ci/run
 * installs it); under CI a missing binary fails.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { killOnExit } from './exit-kill.ts';
import { rssOf } from './mqtt-attack.ts';
import { canConnect, freeQuietPort } from './net.ts';
import { waitForAsync } from './wait.ts';

/**
 * An MQTT 3.1.1 login to a RabbitMQ node, as the tests want it (no reconnect), whose close goes on
 * `cleanups`. RabbitMQ 3.10 answers "Server unavailable" while its client-id Raft group has no
 * leader (an election on a starved machine), and Web MQTT hangs up without a CONNACK: outcomes
 * matching `retryOn` (both, by default) are tried again, as a volunteer's client would, until
 * `timeoutMs`; anything else, a refused login included, is not.
 */
export async function loginToRabbit(
  url: string,
  login: { username: string; password: string },
  cleanups: (() => unknown)[],
  options: IClientOptions = {},
  retryOn = /Server unavailable|^closed$/,
  timeoutMs = 60_000,
): Promise<MqttClient> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = mqtt.connect(url, { ...login, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 10_000, ...options });
    cleanups.push(() => (client.disconnected ? undefined : client.endAsync(true)));
    const outcome = await new Promise<string>((resolve) => {
      client.once('connect', () => resolve('connected'));
      client.once('error', (err) => resolve(err.message));
      client.once('close', () => resolve('closed'));
    });
    if (outcome === 'connected') return client;
    client.end(true);
    if (!retryOn.test(outcome) || Date.now() > deadline) throw new Error(`cannot log in to ${url} as ${login.username}: ${outcome}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const RABBITMQ_BIN = '/usr/lib/rabbitmq/bin';
export const RABBITMQ_SERVER = join(RABBITMQ_BIN, 'rabbitmq-server');
export const RABBITMQCTL = join(RABBITMQ_BIN, 'rabbitmqctl');
export const DEPLOY_RABBITMQ = join(import.meta.dirname, '../../deploy/rabbitmq');
export const rabbitmqInstalled = existsSync(RABBITMQ_SERVER) && existsSync(RABBITMQCTL);
const run = promisify(execFile);

/** True when the RabbitMQ tests should be skipped here (not installed, not CI); says so once. */
export function skipWithoutRabbitmq(file: string): boolean {
  if (rabbitmqInstalled || process.env.CI) return false;
  console.warn(`${file}: skipped, ${RABBITMQ_SERVER} is not installed (apt-get install rabbitmq-server)`);
  return true;
}

/** What a node prints, kept to its last 64 KiB for a failure message. */
const LOG_TAIL = 64 * 1024;

export class RabbitNode {
  #process?: ChildProcess;
  #log = '';
  readonly #env: NodeJS.ProcessEnv;

  constructor(
    readonly name: string,
    readonly ports: { mqtt: number; ws: number; dist: number },
    readonly dir: string,
    env: NodeJS.ProcessEnv,
  ) {
    this.#env = env;
  }

  get mqttUrl(): string {
    return `mqtt://127.0.0.1:${this.ports.mqtt}`;
  }

  /** Web MQTT at the shipped path. */
  get wsUrl(): string {
    return `ws://127.0.0.1:${this.ports.ws}/mqtt`;
  }

  get running(): boolean {
    return this.#process !== undefined && this.#process.exitCode === null && this.#process.signalCode === null;
  }

  get log(): string {
    return this.#log;
  }

  /** The process the node runs under (its VM and helpers are below it), while it runs. */
  get pid(): number | undefined {
    return this.running ? this.#process!.pid : undefined;
  }

  /** Starts the node (again, on the same ports and data); resolves once both listeners accept connections. */
  async start(timeoutMs = 120_000): Promise<void> {
    if (this.running) return;
    const child = spawn(RABBITMQ_SERVER, [], { env: this.#env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    this.#process = child;
    killOnExit(child, { group: true });
    const keep = (d: Buffer) => (this.#log = (this.#log + d).slice(-LOG_TAIL));
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    await waitForAsync(
      `RabbitMQ node ${this.name} to listen`,
      async () => {
        if (!this.running) throw new Error(`RabbitMQ node ${this.name} exited:\n${this.#log}`);
        return (await canConnect('127.0.0.1', this.ports.mqtt)) && (await canConnect('127.0.0.1', this.ports.ws));
      },
      timeoutMs,
    );
  }

  /** Kills the whole VM with `signal` (SIGKILL: a crash, nothing flushed) and waits for it to go. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.#process;
    if (!child || !this.running) return;
    const exited = new Promise((r) => child.once('exit', r));
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // already gone
    }
    await exited;
  }

  /** The node's Erlang VM's resident memory in bytes (its pid from the VM itself, its RSS from /proc). */
  async rss(): Promise<number> {
    const pid = Number((await this.ctl(['eval', 'os:getpid().'])).trim().replace(/"/g, ''));
    return rssOf(pid);
  }

  /** `rabbitmqctl -n <this node> <args>`; the stdout, or a rejection with what it said. */
  async ctl(args: string[], input?: string): Promise<string> {
    return rabbitmqctl(this.#env, ['-n', this.name, ...args], input);
  }
}

function rabbitmqctl(env: NodeJS.ProcessEnv, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(RABBITMQCTL, args, { env, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`rabbitmqctl ${args.join(' ')}: ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
    child.stdin!.end(input ?? '');
  });
}

export interface RabbitClusterOptions {
  /** Default 3. */
  nodes?: number;
  /** Lines appended to every node's own config file. */
  extraConfig?: string;
}

export class RabbitCluster {
  readonly #epmd: ChildProcess;
  readonly #env: NodeJS.ProcessEnv;

  private constructor(
    readonly nodes: RabbitNode[],
    readonly dir: string,
    readonly secrets: { server: string; dashboard: string },
    epmd: ChildProcess,
    env: NodeJS.ProcessEnv,
  ) {
    this.#epmd = epmd;
    this.#env = env;
  }

  /**
   * Starts every node at once (they find each other through the shipped classic_config peer
   * discovery, which takes a lock so that exactly one cluster forms), then makes the logins with
   * the shipped make-users.sh and waits until every node runs in the one cluster.
   */
  static async start(options: RabbitClusterOptions = {}): Promise<RabbitCluster> {
    const count = options.nodes ?? 3;
    const id = randomBytes(3).toString('hex');
    const dir = mkdtempSync(join(tmpdir(), 'dpow-rabbitmq-'));
    const home = join(dir, 'home');
    mkdirSync(home);
    writeFileSync(join(home, '.erlang.cookie'), randomBytes(20).toString('hex'));
    chmodSync(join(home, '.erlang.cookie'), 0o400);
    const epmdPort = await freeQuietPort();
    // Only what the scripts need: nothing from the caller's RABBITMQ_* or a system rabbitmq-env.conf.
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH,
      LANG: 'C.UTF-8',
      HOME: home,
      ERL_EPMD_PORT: String(epmdPort),
      RABBITMQ_CONF_ENV_FILE: join(dir, 'no-rabbitmq-env.conf'),
      // rabbitmqctl's VM spins its schedulers while idle (the server's script turns that off for
      // the nodes, not for the CLI): on 2 cores beside 4 busy processes a call took 17-22 s
      // instead of 2.4-3, and make-users.sh's dozen calls over 5 minutes.
      RABBITMQ_CTL_ERL_ARGS: '+sbwt none +sbwtdcpu none +sbwtdio none',
    };
    const epmd = spawn('epmd', ['-port', String(epmdPort), '-address', '127.0.0.1'], { env, stdio: 'ignore' });
    killOnExit(epmd);
    await waitForAsync('epmd', async () => canConnect('127.0.0.1', epmdPort), 10_000);

    const names = Array.from({ length: count }, (_, i) => `dpow${id}-${i + 1}@localhost`);
    const shipped = readFileSync(join(DEPLOY_RABBITMQ, 'rabbitmq.conf'), 'utf8');
    const nodes: RabbitNode[] = [];
    for (const [i, name] of names.entries()) {
      const ports = { mqtt: await freeQuietPort(), ws: await freeQuietPort(), dist: await freeQuietPort() };
      const nodeDir = join(dir, `node${i + 1}`);
      const confDir = join(nodeDir, 'conf.d');
      mkdirSync(confDir, { recursive: true });
      // The shipped file first, verbatim; this node's own file after it overrides what differs here.
      writeFileSync(join(confDir, '10-dpow.conf'), shipped);
      writeFileSync(
        join(confDir, '20-node.conf'),
        [
          `mqtt.listeners.tcp.default = 127.0.0.1:${ports.mqtt}`,
          `web_mqtt.tcp.port = ${ports.ws}`,
          ...names.map((n, j) => `cluster_formation.classic_config.nodes.${j + 1} = ${n}`),
          options.extraConfig ?? '',
        ].join('\n'),
      );
      copyFileSync(join(DEPLOY_RABBITMQ, 'enabled_plugins'), join(nodeDir, 'enabled_plugins'));
      nodes.push(
        new RabbitNode(name, ports, nodeDir, {
          ...env,
          RABBITMQ_NODENAME: name,
          RABBITMQ_DIST_PORT: String(ports.dist),
          RABBITMQ_MNESIA_BASE: join(nodeDir, 'mnesia'),
          RABBITMQ_LOG_BASE: join(nodeDir, 'log'),
          RABBITMQ_CONFIG_FILES: confDir,
          RABBITMQ_ADVANCED_CONFIG_FILE: join(nodeDir, 'advanced.config'),
          RABBITMQ_ENABLED_PLUGINS_FILE: join(nodeDir, 'enabled_plugins'),
          RABBITMQ_PLUGINS_EXPAND_DIR: join(nodeDir, 'plugins-expand'),
          RABBITMQ_PID_FILE: join(nodeDir, 'rabbitmq.pid'),
        }),
      );
    }
    const secrets = { server: randomBytes(12).toString('hex'), dashboard: randomBytes(12).toString('hex') };
    const cluster = new RabbitCluster(nodes, dir, secrets, epmd, env);
    try {
      await Promise.all(nodes.map((n) => n.start()));
      await cluster.ready();
      await cluster.makeUsers();
      await cluster.#everyNodeLogsIn();
    } catch (err) {
      await cluster.close();
      throw err;
    }
    return cluster;
  }

  /**
   * Every node answers an MQTT login with a CONNACK. A cluster whose nodes all list each other can
   * still have a node whose member of the client-id Raft group (mqtt_node) never joined: seen once
   * in a CI-style run, its logins hung without an answer while the other two agreed on a leader.
   * Such a node is started again (it rejoins the group as it boots), at most twice, as an
   * operator would; a node that still does not answer fails the start.
   */
  async #everyNodeLogsIn(): Promise<void> {
    const login = { username: 'server', password: this.secrets.server };
    for (const node of this.nodes) {
      for (let attempt = 1; ; attempt++) {
        const cleanups: Array<() => unknown> = [];
        const answered: true | Error = await loginToRabbit(node.mqttUrl, login, cleanups, undefined, undefined, 30_000).then(
          (): true => true,
          (err: Error) => err,
        );
        await Promise.all(cleanups.map((c) => c()));
        if (answered === true) break;
        if (attempt > 2) throw new Error(`RabbitMQ node ${node.name} still takes no MQTT login after ${attempt - 1} restarts: ${answered.message}`);
        console.warn(`RabbitMQ node ${node.name} takes no MQTT login (${answered.message}); starting it again`);
        await node.kill();
        await node.start();
        await this.ready();
      }
    }
  }

  /**
   * Runs the shipped make-users.sh against the first running node; `env` adds to its settings
   * (MAX_CONNECTIONS…). It makes a dozen rabbitmqctl calls, each an Erlang VM of its own: 7 s on
   * an idle machine, about a minute on a starved one, hence the long deadline; a failure says how
   * it ended and what the script printed.
   */
  async makeUsers(env: NodeJS.ProcessEnv = {}): Promise<void> {
    const node = this.nodes.find((n) => n.running)!;
    const timeout = 300_000;
    await run('sh', [join(DEPLOY_RABBITMQ, 'make-users.sh'), '-n', node.name], {
      env: { ...this.#env, RABBITMQCTL, SERVER_PASSWORD: this.secrets.server, DASHBOARD_PASSWORD: this.secrets.dashboard, ...env },
      timeout,
    }).catch((err: Error & { killed?: boolean; signal?: string; code?: number; stdout?: string; stderr?: string }) => {
      const how = err.killed ? `killed after ${timeout / 1000} s` : err.signal ? `ended by ${err.signal}` : `exit ${err.code}`;
      throw new Error(`make-users.sh on ${node.name}: ${how}\n${err.stdout ?? ''}${err.stderr ?? ''}`);
    });
  }

  /** Resolves once every running node lists every running node as a running member of its cluster. */
  async ready(timeoutMs = 120_000): Promise<void> {
    const running = this.nodes.filter((n) => n.running);
    const want = running.map((n) => n.name).sort();
    await waitForAsync(
      'every RabbitMQ node to run in one cluster',
      async () => {
        const views = await Promise.all(
          running.map(async (n) => {
            const status = JSON.parse(await n.ctl(['cluster_status', '--formatter', 'json']).catch(() => '{}')) as { running_nodes?: string[] };
            return JSON.stringify((status.running_nodes ?? []).slice().sort());
          }),
        );
        return views.every((v) => v === JSON.stringify(want));
      },
      timeoutMs,
    );
  }

  async close(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.kill()));
    if (this.#epmd.exitCode === null && this.#epmd.signalCode === null) {
      const exited = new Promise((r) => this.#epmd.once('exit', r));
      this.#epmd.kill('SIGKILL');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
