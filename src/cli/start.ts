/**
 * `dpow-web start`: the whole thing on one port of 127.0.0.1 — the app, the embedded broker
 * (WebSocket on /mqtt), the dispatcher, the service API and, unless told otherwise, the demo
 * work source, with state in SQLite under --data.
 *
 *   dpow-web start [options]      (`dpow-web start --help` lists them, from command() below)
 *
 * Run from the sources (a dev checkout), the app is rebuilt first when dist/index.html is
 * missing or older than its sources; an installed package serves the dist/ it shipped. With
 * --broker the page's /config.json points at that broker and the dispatcher logs in there as
 * the server role; the demo then stays off unless --demo is given (an external broker is a real
 * deployment with real volunteers). --dispatcher-only runs just the dispatcher (and feeds)
 * against an external broker, with no app server; --metrics-port then gives it /metrics,
 * /healthz and /readyz on a small HTTP server of its own. Ctrl-C or SIGTERM shuts everything
 * down cleanly.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { brokerList, CliError, collect, defineCommand, intOption, parseCommand, portOption } from './args.ts';
import { STORE_OPTION, storeChoice } from './store-option.ts';
import {
  createServer,
  type AppConfig,
  type AppServer,
  type DispatcherConfig,
  type DispatcherServer,
  type ExternalBrokerConfig,
  type FeedsConfig,
  type StoreConfig,
} from '../server/create-server.ts';
import { DEFAULT_BROKER_LIMITS as LIMITS, type BrokerLimits } from '../server/broker-rules.ts';
import { brokerNodesError } from '../server/dispatcher/broker-nodes.ts';
import { LOOKUP_BOUND } from '../server/dispatcher/lookup-bound.ts';
import type { DispatcherTuning } from '../server/dispatcher/dispatcher.ts';
import { parseFeedSpec, type FeedSpec } from '../server/feeds/feed-spec.ts';
import { hashApiKey } from '../server/http/api-keys.ts';
import type { RpcAllow } from '../server/http/service-api.ts';
import { createLogger, type Logger } from '../server/log.ts';
import type { DemoOptions } from '../server/sim/demo-source.ts';
import { describeStore, StoreOpenError } from '../server/store/open-store.ts';
import { DEFAULT_WORK_RETENTION_MS } from '../server/store/store.ts';
import { difficultyPolicy } from '../pow/difficulty.ts';
import { isU64Hex } from '../pow/work.ts';

/** The checkout or the installed package: src/cli/ and the built lib/cli/ are both two levels down. */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** True in a dev checkout (TypeScript through tsx); false in the package `npm run build` made. */
const FROM_SOURCES = import.meta.url.endsWith('.ts');
const DAY_MS = 24 * 60 * 60 * 1000;
/** A hundred years: beyond that the retention is "forever" for any deployment, and the ms still fit. */
const MAX_RETENTION_DAYS = 36_500;

export function command() {
  return defineCommand('start')
    .option('--port <n>', 'HTTP port of the app (0 = any free port; unused with --dispatcher-only)', '8787')
    .option('--host <addr>', 'interface to bind (the app, or the --metrics-port server)', '127.0.0.1')
    .option('--data <dir>', 'SQLite state directory', '.data')
    .option(...STORE_OPTION)
    .option('--memory', 'keep state in memory only (lost on exit)')
    .option('--work-retention <days>', 'days stored work answers requests for its hash before it is forgotten (default 120)')
    .option('--no-demo', 'no demo jobs')
    .option('--demo', 'demo jobs even with --broker')
    .option('--demo-difficulty <hex>', 'difficulty of demo jobs (default fffff00000000000)')
    .option('--demo-precache-every <s>', 'seconds between demo precache jobs (default 5; 0 = none)')
    .option('--demo-ondemand-every <s>', 'seconds between demo ondemand requests (default 15; 0 = none)')
    .option('--rpc <mode>', 'work-server RPC on POST /, and who may read /metrics: loopback, any, keys (user and api_key in each request; /metrics then only with DPOW_METRICS_PASSWORD) or off', 'loopback')
    .option('--public-name <name>', 'a name the server is reached by (a TLS proxy\'s, e.g. example.org): the RPC and /metrics refuse Host names other than it, the addresses, localhost and --host (repeatable)', collect, [])
    .option('--broker <url>', 'use an external broker (mqtt://, ws://, wss://) instead of the embedded one; the nodes of a clustered broker (RabbitMQ), repeated or comma-separated, are tried in turn', collect)
    .option('--broker-username <u>', "its server-role login")
    .option('--broker-password <p>', 'its password (or DPOW_BROKER_PASSWORD, which ps does not show)')
    .option('--broker-public-url <url>', 'the ws:// or wss:// URL the page should use (default --broker)')
    .option('--broker-tcp-port <n>', 'embedded broker: also listen for mqtt:// on this port')
    .option('--dashboard-password <p>', 'embedded broker: enable the read-only monitoring login (or DPOW_DASHBOARD_PASSWORD)')
    .option('--dashboard-user <name>', 'its user name (default dashboard; the original DPoW ACL says dpowinterface)')
    .option('--dispatcher-only', 'only the dispatcher (and feeds), against --broker; no app server (see --metrics-port)')
    .option('--metrics-port <n>', 'with --dispatcher-only: serve /metrics, /healthz and /readyz on this port of --host (0 = any free port; default: none served)')
    .option('--shared-results <group>', 'take results as $share/<group>-<secret>/result/+ (Mosquitto 2, EMQX; the suffix comes from the server password), so each goes to one dispatcher of the group')
    .option('--feed <spec>', 'precache feed: qlc-sim, nano-sim, qlc:<ws url>, nano:<ws url> (repeatable)', collect, [])
    .option('--account <address>', 'account to precache for (repeatable)', collect, [])
    .option('--nano-difficulty <hex>', "difficulty of Nano precache jobs (default fffffff800000000, the send threshold, since an account's next block may be a send)")
    .option('--qlc-difficulty <hex>', "difficulty of QLC precache jobs (default fffffe0000000000, mainnet's threshold; QLC testnet needs far less)")
    .option('--qlc-open-blocks', "also precache a QLC recipient's open block from a send's link")
    .option('--abuse-threshold <n>', 'invalid results from one connection (or, behind --broker, one payout address) within --abuse-window that get it ignored (default 20)')
    .option('--abuse-window <s>', 'seconds over which invalid results are counted (default 60)')
    .option('--abuse-cooldown <s>', 'seconds a contained source is then ignored (default 600)')
    .option('--lookups-in-flight <n>', `shared store (Redis): store lookups for results whose job this dispatcher does not hold, waiting at once; past it such a result is dropped (default ${LOOKUP_BOUND.inFlight})`)
    .option('--lookup-rate <n>', `shared store: such lookups per second (default ${LOOKUP_BOUND.perSecond})`)
    .option('--lookup-burst <n>', `shared store: such lookups at once above the rate (default ${LOOKUP_BOUND.burst})`)
    .option('--publish-rate <n>', 'embedded broker: publishes and subscriptions per second per worker connection before it is closed (default 20)')
    .option('--publish-burst <n>', 'embedded broker: publishes allowed at once above the rate (default 100)')
    .option('--mqtt-max-packet <bytes>', `embedded broker: largest CONNECT, SUBSCRIBE or other packet but PUBLISH (default ${LIMITS.maxPacketBytes})`)
    .option('--mqtt-max-subscriptions <n>', `embedded broker: subscriptions one worker connection may hold (default ${LIMITS.maxSubscriptions})`)
    .option('--mqtt-max-inflight <n>', `embedded broker: QoS 2 publishes one connection may leave awaiting PUBREL (default ${LIMITS.maxInflight})`)
    .option('--mqtt-max-refusals <n>', `embedded broker: refused publishes and subscriptions before a worker connection is closed (default ${LIMITS.maxRefusals})`)
    .option('--mqtt-max-connections-per-source <n>', `embedded broker: connections one IPv4 address or IPv6 /64 may hold open (default ${LIMITS.maxConnectionsPerSource}; the operator's own on loopback are exempt)`)
    .option('--mqtt-max-connections <n>', `embedded broker: connections all sources together may hold open (default ${LIMITS.maxConnections})`)
    .option('--mqtt-max-failed-logins <n>', `embedded broker: failed logins one IPv4 address or IPv6 /64 may make a minute; past it its logins are refused unchecked until that refills (default ${LIMITS.maxFailedLoginsPerMinute}; the public worker login and the operator's own on loopback are exempt)`)
    .option('--no-build', 'serve dist/ as it is')
    .option('--verbose', 'debug logging (logs are JSON lines unless stderr is a terminal)')
    .addHelpText(
      'after',
      '\nGET /metrics (Prometheus), /healthz and /readyz are served beside the app; /metrics follows --rpc.\n' +
        'With --dispatcher-only they are served only when --metrics-port is given, so several dispatchers\n' +
        'on one machine need one port each and none opens a port unasked.',
    );
}

interface StartOptions {
  port: string;
  host: string;
  data: string;
  store?: string;
  sharedResults?: string;
  memory?: boolean;
  /** true for --demo, false for --no-demo, undefined for neither. */
  demo?: boolean;
  demoDifficulty?: string;
  demoPrecacheEvery?: string;
  demoOndemandEvery?: string;
  rpc: string;
  publicName: string[];
  broker?: string[];
  brokerUsername?: string;
  brokerPassword?: string;
  brokerPublicUrl?: string;
  brokerTcpPort?: string;
  dashboardPassword?: string;
  dashboardUser?: string;
  dispatcherOnly?: boolean;
  metricsPort?: string;
  feed: string[];
  account: string[];
  nanoDifficulty?: string;
  qlcDifficulty?: string;
  qlcOpenBlocks?: boolean;
  workRetention?: string;
  abuseThreshold?: string;
  abuseWindow?: string;
  abuseCooldown?: string;
  lookupsInFlight?: string;
  lookupRate?: string;
  lookupBurst?: string;
  publishRate?: string;
  publishBurst?: string;
  mqttMaxPacket?: string;
  mqttMaxSubscriptions?: string;
  mqttMaxInflight?: string;
  mqttMaxRefusals?: string;
  mqttMaxConnectionsPerSource?: string;
  mqttMaxConnections?: string;
  mqttMaxFailedLogins?: string;
  build: boolean;
  verbose?: boolean;
}

export async function run(argv: string[]): Promise<number> {
  const definition = command();
  // --demo and --no-demo set one value (the last wins); giving both is a contradiction.
  const demoFlags = new Set<string>();
  definition.on('option:demo', () => demoFlags.add('demo'));
  definition.on('option:no-demo', () => demoFlags.add('no-demo'));
  const { options: values } = parseCommand<StartOptions>(definition, argv);
  if (demoFlags.size === 2) throw new CliError('--demo and --no-demo contradict each other');
  // The metrics password comes from the environment only (the unit's EnvironmentFile), never argv,
  // which `ps` shows; it is kept as a hash, and taken out of the environment so no child process
  // (the app build) inherits it.
  const metricsPassword = process.env.DPOW_METRICS_PASSWORD || undefined;
  delete process.env.DPOW_METRICS_PASSWORD;
  const secrets = {
    broker: values.brokerPassword ?? process.env.DPOW_BROKER_PASSWORD,
    dashboard: values.dashboardPassword ?? process.env.DPOW_DASHBOARD_PASSWORD,
    metricsHash: metricsPassword === undefined ? undefined : await hashApiKey(metricsPassword),
  };
  // JSON lines when stderr is not a terminal; the passwords given here are masked wherever they
  // would appear.
  const log = createLogger({ verbose: values.verbose, secrets: [secrets.broker ?? '', secrets.dashboard ?? '', metricsPassword ?? ''] });
  const config = serverConfig(values, secrets, log);
  if (config.kind === 'app' && !['127.0.0.1', 'localhost', '::1'].includes(values.host)) {
    log.warn(
      `binding ${values.host}: browsers allow WebGPU and service workers only on https:// or localhost, ` +
        'so serve other machines through a TLS proxy (and wss:// for the broker)',
    );
  }
  if (config.kind === 'app' && values.build) await ensureBuilt(log);

  let server: AppServer | DispatcherServer;
  let banner: string;
  try {
    if (config.kind === 'app') {
      const app = (server = await createServer(config));
      const tcp = app.broker?.tcpUrl ? `, ${app.broker.tcpUrl}` : '';
      banner = `dpow-web is running at ${app.url}  (broker ${app.brokerWsUrl}${tcp})`;
    } else {
      const only = (server = await createServer(config));
      banner = `dpow-web dispatcher is running against ${[config.broker.url, ...(config.broker.failoverUrls ?? [])].join(', ')}`;
      if (only.metricsUrl) banner += `  (${config.metrics?.access === false ? '' : '/metrics, '}/healthz, /readyz at ${only.metricsUrl})`;
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (err instanceof StoreOpenError) throw new CliError(err.message);
    if (e.code === 'EADDRINUSE') {
      const [port, option] = config.kind === 'app' ? [config.http.port, '--port'] : [config.metrics?.port, '--metrics-port'];
      throw new CliError(`port ${port} on ${values.host} is already in use (try ${option})`);
    }
    process.stderr.write(`dpow-web start: ${e.message}\n`);
    return 1;
  }

  process.stdout.write(`${banner}\n`);
  const state = values.memory ? 'in memory (lost on exit)' : describeStore({ dataDir: values.data, url: values.store });
  process.stdout.write(`  state: ${state}; demo: ${config.demo ? 'on' : 'off'}; press Ctrl-C to stop\n`);

  return await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        process.stderr.write('dpow-web: forced exit\n');
        process.exit(1);
      }
      stopping = true;
      log.info(`${signal}: shutting down`);
      void server.close().then(() => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve(0);
      });
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

/** The options, checked, as the server's configuration: each option lands in the one section that uses it. */
function serverConfig(values: StartOptions, secrets: { broker?: string; dashboard?: string; metricsHash?: string }, log: Logger): AppConfig | DispatcherConfig {
  const port = portOption(values.port, 'port', 8787);
  const brokerTcpPort = values.brokerTcpPort === undefined ? undefined : portOption(values.brokerTcpPort, 'broker-tcp-port', 0);
  const metricsPort = values.metricsPort === undefined ? undefined : portOption(values.metricsPort, 'metrics-port', 0);
  if (metricsPort !== undefined && !values.dispatcherOnly) {
    throw new CliError('--metrics-port is for --dispatcher-only; the full server serves /metrics, /healthz and /readyz on --port');
  }
  const demoDifficulty = values.demoDifficulty;
  if (demoDifficulty !== undefined && !isU64Hex(demoDifficulty)) throw new CliError('--demo-difficulty must be 16 hex digits');
  const demoOptions: DemoOptions = {
    difficulty: demoDifficulty,
    precacheEveryMs: seconds(values.demoPrecacheEvery, 'demo-precache-every'),
    ondemandEveryMs: seconds(values.demoOndemandEvery, 'demo-ondemand-every'),
  };
  const dashboardUser = values.dashboardUser ?? 'dashboard';
  const dashboardPassword = secrets.dashboard;
  if (values.dashboardUser !== undefined && dashboardPassword === undefined) throw new CliError('--dashboard-user needs --dashboard-password');
  if (dashboardUser === '' || dashboardUser === 'client' || dashboardUser === 'server') {
    throw new CliError(`--dashboard-user must be a name other than client and server, got "${dashboardUser}"`);
  }
  const rpcModes: Record<string, RpcAllow | null> = { loopback: 'loopback', any: 'any', keys: { apiKeys: true }, off: null };
  if (!(values.rpc in rpcModes)) throw new CliError(`--rpc must be loopback, any, keys or off, got "${values.rpc}"`);
  const rpcAllow = rpcModes[values.rpc];
  const publicNames = values.publicName;
  const badName = publicNames.find((name) => !/^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(name));
  if (badName !== undefined) throw new CliError(`--public-name must be a host name such as example.org, got "${badName}"`);

  let external: ExternalBrokerConfig | undefined;
  const brokers = brokerList(values.broker);
  if (brokers.length) {
    const nodesError = brokerNodesError(brokers);
    if (nodesError) throw new CliError(`--broker: ${nodesError}`);
    const username = values.brokerUsername;
    const password = secrets.broker;
    if (!username || password === undefined) {
      throw new CliError('--broker needs --broker-username and --broker-password (or DPOW_BROKER_PASSWORD)');
    }
    const publicUrl = values.brokerPublicUrl;
    if (publicUrl !== undefined && !/^wss?:\/\//.test(publicUrl)) throw new CliError('--broker-public-url must be a ws:// or wss:// URL');
    if (publicUrl === undefined && !values.dispatcherOnly && !/^wss?:\/\//.test(brokers[0])) {
      throw new CliError('the page needs a WebSocket broker URL: give --broker-public-url ws(s)://…');
    }
    if (publicUrl === undefined && !values.dispatcherOnly && brokers.length > 1) {
      throw new CliError('the page takes one broker URL: give --broker-public-url, a proxy over the nodes (deploy/rabbitmq/nginx-mqtt-upstream.conf)');
    }
    const sharedGroup = values.sharedResults;
    if (sharedGroup !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(sharedGroup)) {
      throw new CliError('--shared-results must be a group name of letters, digits, "_" or "-"');
    }
    const [url, ...failoverUrls] = brokers;
    external = { kind: 'external', url, ...(failoverUrls.length ? { failoverUrls } : {}), username, password, publicUrl, sharedGroup };
  } else if (values.dispatcherOnly) {
    throw new CliError('--dispatcher-only needs --broker (and its server login)');
  } else if (values.sharedResults !== undefined) {
    throw new CliError('--shared-results needs --broker (aedes has no shared subscriptions)');
  }

  const retentionDays = intOption(values.workRetention, 'work-retention', DEFAULT_WORK_RETENTION_MS / DAY_MS, 1);
  if (retentionDays > MAX_RETENTION_DAYS) throw new CliError(`--work-retention must be at most ${MAX_RETENTION_DAYS} days, got "${values.workRetention}"`);
  const workRetentionMs = retentionDays * DAY_MS;
  if (values.memory && values.store !== undefined) throw new CliError('--memory and --store contradict each other');
  const store: StoreConfig = values.memory ? { kind: 'memory', workRetentionMs } : { kind: 'open', choice: storeChoice(values, { workRetentionMs, onFailover: (primary) => log.warn(`store: Sentinel named a new Redis primary, ${primary}; following it`) }) };
  // One difficulty policy for the dispatcher, the service API and the RPC.
  const policy = difficultyPolicy();
  const dispatcher: DispatcherTuning = {
    abuse: {
      threshold: intOption(values.abuseThreshold, 'abuse-threshold', 20, 1),
      windowMs: intOption(values.abuseWindow, 'abuse-window', 60, 1) * 1000,
      cooldownMs: intOption(values.abuseCooldown, 'abuse-cooldown', 600, 0) * 1000,
    },
    resultLookups: {
      inFlight: intOption(values.lookupsInFlight, 'lookups-in-flight', LOOKUP_BOUND.inFlight, 1),
      perSecond: intOption(values.lookupRate, 'lookup-rate', LOOKUP_BOUND.perSecond, 1),
      burst: intOption(values.lookupBurst, 'lookup-burst', LOOKUP_BOUND.burst, 1),
    },
  };
  const feeds: FeedsConfig = {
    specs: parseFeeds(values.feed),
    accounts: values.account,
    nanoDifficulty: chainDifficulty(values.nanoDifficulty, 'nano-difficulty'),
    qlcDifficulty: chainDifficulty(values.qlcDifficulty, 'qlc-difficulty'),
    qlcOpenBlocks: values.qlcOpenBlocks,
  };
  // An external broker is a real deployment with real volunteers: no demo unless asked.
  const demo = values.demo === true || (values.demo !== false && external === undefined) ? demoOptions : undefined;
  if (values.dispatcherOnly) {
    // /metrics follows --rpc here too; /healthz and /readyz are always served.
    const metrics: DispatcherConfig['metrics'] =
      metricsPort === undefined
        ? undefined
        : { host: values.host, port: metricsPort, access: rpcAllow ?? false, publicNames, operatorPasswordHash: secrets.metricsHash };
    return { kind: 'dispatcher', store, policy, dispatcher, feeds, demo, log, broker: external!, metrics };
  }
  const users = dashboardPassword === undefined ? undefined : { dashboard: { username: dashboardUser, password: dashboardPassword } };
  const limits: BrokerLimits = {
    publishRate: {
      perSecond: intOption(values.publishRate, 'publish-rate', LIMITS.publishRate.perSecond, 1),
      burst: intOption(values.publishBurst, 'publish-burst', LIMITS.publishRate.burst, 1),
    },
    // Below 256 bytes the dispatcher's own login would not fit.
    maxPacketBytes: intOption(values.mqttMaxPacket, 'mqtt-max-packet', LIMITS.maxPacketBytes, 256),
    maxSubscriptions: intOption(values.mqttMaxSubscriptions, 'mqtt-max-subscriptions', LIMITS.maxSubscriptions, 1),
    maxInflight: intOption(values.mqttMaxInflight, 'mqtt-max-inflight', LIMITS.maxInflight, 1),
    maxRefusals: intOption(values.mqttMaxRefusals, 'mqtt-max-refusals', LIMITS.maxRefusals, 0),
    maxConnectionsPerSource: intOption(values.mqttMaxConnectionsPerSource, 'mqtt-max-connections-per-source', LIMITS.maxConnectionsPerSource, 1),
    maxConnections: intOption(values.mqttMaxConnections, 'mqtt-max-connections', LIMITS.maxConnections, 1),
    maxFailedLoginsPerMinute: intOption(values.mqttMaxFailedLogins, 'mqtt-max-failed-logins', LIMITS.maxFailedLoginsPerMinute, 1),
  };
  return {
    kind: 'app',
    store,
    policy,
    dispatcher,
    feeds,
    demo,
    log,
    http: { host: values.host, port, staticDir: path.join(ROOT, 'dist'), publicNames },
    broker: external ?? { kind: 'embedded', users, tcpPort: brokerTcpPort, limits },
    serviceApi: { rpc: rpcAllow === null ? { enabled: false, allow: 'loopback' } : { enabled: true, allow: rpcAllow } },
    metrics: { operatorPasswordHash: secrets.metricsHash },
  };
}

/** A --<name> in seconds (0 allowed) in ms, or undefined when not given. */
function seconds(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new CliError(`--${name} must be a number of seconds >= 0, got "${value}"`);
  return Math.round(n * 1000);
}

function chainDifficulty(text: string | undefined, name: 'nano-difficulty' | 'qlc-difficulty'): bigint | undefined {
  if (text === undefined) return undefined;
  if (!isU64Hex(text)) throw new CliError(`--${name} must be 16 hex digits`);
  return BigInt(`0x${text}`);
}

function parseFeeds(specs: string[]): FeedSpec[] {
  return specs.map((s) => {
    try {
      return parseFeedSpec(s);
    } catch (err) {
      throw new CliError((err as Error).message);
    }
  });
}

// ------------------------------------------------------------------ build check

/** Files whose change means the built app is stale. */
const BUILD_INPUTS = ['index.html', 'vite.config.ts', 'package.json', 'public', 'shaders', 'src/app', 'src/pow', 'src/dpow', 'assembly'];

function newestMtime(p: string): number {
  let st;
  try {
    st = statSync(p);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return /\.test\.tsx?$/.test(p) ? 0 : st.mtimeMs;
  let newest = 0;
  for (const name of readdirSync(p)) newest = Math.max(newest, newestMtime(path.join(p, name)));
  return newest;
}

/** True when dist/index.html is missing or older than any build input. */
export function buildIsStale(root = ROOT): boolean {
  const index = path.join(root, 'dist', 'index.html');
  if (!existsSync(index)) return true;
  const built = statSync(index).mtimeMs;
  return BUILD_INPUTS.some((input) => newestMtime(path.join(root, input)) > built);
}

async function ensureBuilt(log: Logger): Promise<void> {
  if (!FROM_SOURCES) {
    if (!existsSync(path.join(ROOT, 'dist', 'index.html'))) throw new CliError(`the package has no built app (${path.join(ROOT, 'dist')})`);
    return;
  }
  if (!buildIsStale()) return;
  log.info('building the app (npm run build) …');
  const code = await new Promise<number>((resolve) => {
    const child = spawn('npm', ['run', 'build'], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', () => resolve(127));
    child.on('exit', (c) => resolve(c ?? 1));
  });
  if (code !== 0) throw new CliError(`the app build failed (npm run build exited ${code}); fix it or pass --no-build`);
}
