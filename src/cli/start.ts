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
import { CliError, collect, defineCommand, intOption, parseCommand, portOption } from './args.ts';
import { startAppServer, type AppServer } from '../server/http/app-server.ts';
import type { ServerMetrics } from '../server/http/metrics.ts';
import { startMetricsServer } from '../server/http/metrics-server.ts';
import { Dispatcher } from '../server/dispatcher/dispatcher.ts';
import { createLogger, type Logger } from '../server/log.ts';
import { MemoryStore } from '../server/store/memory-store.ts';
import { describeStore } from '../server/store/open-store.ts';
import { openCliStore, STORE_OPTION } from './store-option.ts';
import { DEFAULT_WORK_RETENTION_MS, type DispatcherStore } from '../server/store/store.ts';
import { difficultyPolicy } from '../pow/difficulty.ts';
import { isU64Hex } from '../pow/work.ts';
import type { DemoOptions } from '../server/sim/demo-source.ts';
import type { RpcAllow } from '../server/http/service-api.ts';
import { hashApiKey } from '../server/http/api-keys.ts';

/** A --<name> in seconds (0 allowed) as the `${key}` option in ms, or nothing when not given. */
function seconds(value: string | undefined, name: string, key: keyof DemoOptions): Partial<DemoOptions> {
  if (value === undefined) return {};
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new CliError(`--${name} must be a number of seconds >= 0, got "${value}"`);
  return { [key]: Math.round(n * 1000) };
}

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
    .option('--broker <url>', 'use an external broker (mqtt://, ws://, wss://) instead of the embedded one')
    .option('--broker-username <u>', "its server-role login")
    .option('--broker-password <p>', 'its password (or DPOW_BROKER_PASSWORD, which ps does not show)')
    .option('--broker-public-url <url>', 'the ws:// or wss:// URL the page should use (default --broker)')
    .option('--broker-tcp-port <n>', 'embedded broker: also listen for mqtt:// on this port')
    .option('--dashboard-password <p>', 'embedded broker: enable the read-only monitoring login (or DPOW_DASHBOARD_PASSWORD)')
    .option('--dashboard-user <name>', 'its user name (default dashboard; the original DPoW ACL says dpowinterface)')
    .option('--dispatcher-only', 'only the dispatcher (and feeds), against --broker; no app server (see --metrics-port)')
    .option('--metrics-port <n>', 'with --dispatcher-only: serve /metrics, /healthz and /readyz on this port of --host (0 = any free port; default: none served)')
    .option('--shared-results <group>', 'take results as $share/<group>/result/+ (Mosquitto 2, EMQX), so each goes to one dispatcher of the group')
    .option('--feed <spec>', 'precache feed: qlc-sim, nano-sim, qlc:<ws url>, nano:<ws url> (repeatable)', collect, [])
    .option('--account <address>', 'account to precache for (repeatable)', collect, [])
    .option('--nano-difficulty <hex>', "difficulty of Nano precache jobs (default fffffff800000000, the send threshold, since an account's next block may be a send)")
    .option('--qlc-difficulty <hex>', "difficulty of QLC precache jobs (default fffffe0000000000, mainnet's threshold; QLC testnet needs far less)")
    .option('--qlc-open-blocks', "also precache a QLC recipient's open block from a send's link")
    .option('--abuse-threshold <n>', 'invalid results from one connection (or, behind --broker, one payout address) within --abuse-window that get it ignored (default 20)')
    .option('--abuse-window <s>', 'seconds over which invalid results are counted (default 60)')
    .option('--abuse-cooldown <s>', 'seconds a contained source is then ignored (default 600)')
    .option('--publish-rate <n>', 'embedded broker: publishes per second per worker connection before it is closed (default 20)')
    .option('--publish-burst <n>', 'embedded broker: publishes allowed at once above the rate (default 100)')
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
  broker?: string;
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
  publishRate?: string;
  publishBurst?: string;
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
  const port = portOption(values.port, 'port', 8787);
  const brokerTcpPort = values.brokerTcpPort === undefined ? undefined : portOption(values.brokerTcpPort, 'broker-tcp-port', 0);
  const metricsPort = values.metricsPort === undefined ? undefined : portOption(values.metricsPort, 'metrics-port', 0);
  if (metricsPort !== undefined && !values.dispatcherOnly) {
    throw new CliError('--metrics-port is for --dispatcher-only; the full server serves /metrics, /healthz and /readyz on --port');
  }
  const demoDifficulty = values.demoDifficulty;
  if (demoDifficulty !== undefined && !isU64Hex(demoDifficulty)) throw new CliError('--demo-difficulty must be 16 hex digits');
  const demoOptions: DemoOptions = {
    ...(demoDifficulty !== undefined ? { difficulty: demoDifficulty } : {}),
    ...seconds(values.demoPrecacheEvery, 'demo-precache-every', 'precacheEveryMs'),
    ...seconds(values.demoOndemandEvery, 'demo-ondemand-every', 'ondemandEveryMs'),
  };
  const dashboardUser = values.dashboardUser ?? 'dashboard';
  if (values.dashboardUser !== undefined && (values.dashboardPassword ?? process.env.DPOW_DASHBOARD_PASSWORD) === undefined) {
    throw new CliError('--dashboard-user needs --dashboard-password');
  }
  if (dashboardUser === '' || dashboardUser === 'client' || dashboardUser === 'server') {
    throw new CliError(`--dashboard-user must be a name other than client and server, got "${dashboardUser}"`);
  }
  const rpcModes: Record<string, RpcAllow | null> = { loopback: 'loopback', any: 'any', keys: { apiKeys: true }, off: null };
  if (!(values.rpc in rpcModes)) throw new CliError(`--rpc must be loopback, any, keys or off, got "${values.rpc}"`);
  const rpcAllow = rpcModes[values.rpc];
  const rpc = rpcAllow === null ? { enabled: false, allow: 'loopback' as const } : { enabled: true, allow: rpcAllow };

  let external: { url: string; username: string; password: string; publicUrl?: string } | undefined;
  if (values.broker !== undefined) {
    if (!/^(mqtts?|wss?):\/\//.test(values.broker)) throw new CliError('--broker must be an mqtt://, mqtts://, ws:// or wss:// URL');
    const username = values.brokerUsername;
    const password = values.brokerPassword ?? process.env.DPOW_BROKER_PASSWORD;
    if (!username || password === undefined) {
      throw new CliError('--broker needs --broker-username and --broker-password (or DPOW_BROKER_PASSWORD)');
    }
    const publicUrl = values.brokerPublicUrl;
    if (publicUrl !== undefined && !/^wss?:\/\//.test(publicUrl)) throw new CliError('--broker-public-url must be a ws:// or wss:// URL');
    if (publicUrl === undefined && !values.dispatcherOnly && !/^wss?:\/\//.test(values.broker)) {
      throw new CliError('the page needs a WebSocket broker URL: give --broker-public-url ws(s)://…');
    }
    external = { url: values.broker, username, password, ...(publicUrl ? { publicUrl } : {}) };
  } else if (values.dispatcherOnly) {
    throw new CliError('--dispatcher-only needs --broker (and its server login)');
  }
  const dashboardPassword = values.dashboardPassword ?? process.env.DPOW_DASHBOARD_PASSWORD;
  // From the environment only (the unit's EnvironmentFile), never argv, which `ps` shows; kept as
  // a hash, and taken out of the environment so no child process (the app build) inherits it.
  const metricsPassword = process.env.DPOW_METRICS_PASSWORD || undefined;
  delete process.env.DPOW_METRICS_PASSWORD;
  const metricsPasswordHash = metricsPassword === undefined ? undefined : await hashApiKey(metricsPassword);
  const publicNames = values.publicName;
  const badName = publicNames.find((name) => !/^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(name));
  if (badName !== undefined) throw new CliError(`--public-name must be a host name such as example.org, got "${badName}"`);
  const demoOn = values.demo === true || (values.demo !== false && external === undefined);
  const feeds = await parseFeeds(values.feed);
  const chainDifficulty = (name: 'nano-difficulty' | 'qlc-difficulty'): bigint | undefined => {
    const text = name === 'nano-difficulty' ? values.nanoDifficulty : values.qlcDifficulty;
    if (text === undefined) return undefined;
    if (!isU64Hex(text)) throw new CliError(`--${name} must be 16 hex digits`);
    return BigInt(`0x${text}`);
  };
  const nanoDifficulty = chainDifficulty('nano-difficulty');
  const qlcDifficulty = chainDifficulty('qlc-difficulty');
  const retentionDays = intOption(values.workRetention, 'work-retention', DEFAULT_WORK_RETENTION_MS / DAY_MS, 1);
  if (retentionDays > MAX_RETENTION_DAYS) throw new CliError(`--work-retention must be at most ${MAX_RETENTION_DAYS} days, got "${values.workRetention}"`);
  const workRetentionMs = retentionDays * DAY_MS;
  const abuse = {
    threshold: intOption(values.abuseThreshold, 'abuse-threshold', 20, 1),
    windowMs: intOption(values.abuseWindow, 'abuse-window', 60, 1) * 1000,
    cooldownMs: intOption(values.abuseCooldown, 'abuse-cooldown', 600, 0) * 1000,
  };
  const brokerLimits = {
    publishRate: {
      perSecond: intOption(values.publishRate, 'publish-rate', 20, 1),
      burst: intOption(values.publishBurst, 'publish-burst', 100, 1),
    },
  };
  const policyOptions = {
    ...(nanoDifficulty !== undefined ? { nanoDifficulty } : {}),
    ...(qlcDifficulty !== undefined ? { qlcDifficulty } : {}),
    qlcOpenBlocks: values.qlcOpenBlocks,
  };

  // JSON lines when stderr is not a terminal; the passwords given here are masked wherever they
  // would appear.
  const log = createLogger({
    verbose: values.verbose,
    secrets: [external?.password ?? '', dashboardPassword ?? '', metricsPassword ?? ''],
  });
  if (!values.dispatcherOnly && !['127.0.0.1', 'localhost', '::1'].includes(values.host)) {
    log.warn(
      `binding ${values.host}: browsers allow WebGPU and service workers only on https:// or localhost, ` +
        'so serve other machines through a TLS proxy (and wss:// for the broker)',
    );
  }
  if (!values.dispatcherOnly && values.build) await ensureBuilt(log);

  if (values.memory && values.store !== undefined) throw new CliError('--memory and --store contradict each other');
  const sharedGroup = values.sharedResults;
  if (sharedGroup !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(sharedGroup)) {
    throw new CliError('--shared-results must be a group name of letters, digits, "_" or "-"');
  }
  if (sharedGroup !== undefined && external === undefined) throw new CliError('--shared-results needs --broker (aedes has no shared subscriptions)');
  const store: DispatcherStore = values.memory ? new MemoryStore({ workRetentionMs }) : await openCliStore(values, { workRetentionMs });

  const closers: Array<() => Promise<unknown>> = [() => store.close()];
  const closeAll = async () => {
    while (closers.length) await closers.pop()!().catch((err: unknown) => log.warn(`shutdown: ${(err as Error).message}`));
  };

  // One difficulty policy for the dispatcher, the service API and the RPC.
  const policy = difficultyPolicy();
  let dispatcher: Dispatcher;
  /** Where /metrics is served (the app server, or the --metrics-port one), for the feeds. */
  let metrics: ServerMetrics | undefined;
  let banner: string;
  try {
    if (values.dispatcherOnly) {
      dispatcher = new Dispatcher({
        brokerUrl: external!.url,
        username: external!.username,
        password: external!.password,
        store,
        policy,
        log,
        abuse,
        ...(sharedGroup ? { sharedGroup } : {}),
      });
      // Listening before the broker connects: a taken port fails at once, and /readyz says 503
      // (not connected) while the dispatcher is still connecting.
      let operatorUrl: string | undefined;
      if (metricsPort !== undefined) {
        const served = await startMetricsServer({ host: values.host, port: metricsPort, publicNames, store, dispatcher, access: rpcAllow ?? false, operatorPasswordHash: metricsPasswordHash, log }).catch(
          (err: NodeJS.ErrnoException) => {
            if (err.code === 'EADDRINUSE') throw new CliError(`port ${metricsPort} on ${values.host} is already in use (try --metrics-port)`);
            throw err;
          },
        );
        closers.push(() => served.close());
        metrics = served.metrics;
        operatorUrl = served.url;
      }
      await dispatcher.start();
      closers.push(() => dispatcher.stop());
      if (demoOn) {
        const { startDemoSource } = await import('../server/sim/demo-source.ts');
        const demo = await startDemoSource(dispatcher, store, demoOptions, log);
        closers.push(async () => demo.stop());
      }
      banner = `dpow-web dispatcher is running against ${external!.url}`;
      if (operatorUrl) banner += `  (${rpcAllow === null ? '' : '/metrics, '}/healthz, /readyz at ${operatorUrl})`;
    } else {
      let started: AppServer;
      try {
        started = await startAppServer({
          host: values.host,
          port,
          staticDir: path.join(ROOT, 'dist'),
          brokerTcpPort,
          brokerLimits,
          // One object: a second dispatcherOptions key would replace this one, dropping --abuse-*.
          dispatcherOptions: { abuse, ...(sharedGroup ? { sharedGroup } : {}) },
          ...(dashboardPassword ? { brokerUsers: { dashboard: { username: dashboardUser, password: dashboardPassword } } } : {}),
          externalBroker: external,
          demo: demoOn ? demoOptions : false,
          serviceApi: { rpc },
          publicNames,
          metricsPasswordHash,
          policy,
          store,
          log,
        });
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (e.code === 'EADDRINUSE') throw new CliError(`port ${port} on ${values.host} is already in use (try --port)`);
        throw err;
      }
      metrics = started.metrics;
      closers.push(() => started.close());
      dispatcher = started.dispatcher!;
      const tcp = started.broker?.tcpUrl ? `, ${started.broker.tcpUrl}` : '';
      banner = `dpow-web is running at ${started.url}  (broker ${started.brokerWsUrl}${tcp})`;
    }

    if (feeds.length) {
      const { startPrecacheFeed } = await import('../server/feeds/precache.ts');
      const running: Array<{ close(): Promise<unknown> | unknown }> = [];
      const openFeeds = async () => {
        for (const spec of feeds) {
          const feed = await startPrecacheFeed(spec, { dispatcher, store, accounts: values.account, ...policyOptions, log });
          running.push(feed);
          // A feed taken over again after a lost lease is a new feed for the metrics too.
          metrics?.addFeed(feed);
          log.info(`precache feed: ${feed.description}`);
        }
      };
      const closeFeeds = async () => {
        while (running.length) await running.pop()!.close();
      };
      closers.push(closeFeeds);
      // On a shared store the feeds are a singleton: they follow the elected dispatcher.
      if (store.cluster) {
        dispatcher.on('leadership', (leader) => {
          void (leader ? openFeeds() : closeFeeds()).catch((err: Error) => log.warn(`precache feed: ${err.message}`));
        });
        if (dispatcher.leadership.leader) await openFeeds();
      } else {
        await openFeeds();
      }
    }
  } catch (err) {
    await closeAll();
    if (err instanceof CliError) throw err;
    process.stderr.write(`dpow-web start: ${(err as Error).message}\n`);
    return 1;
  }

  process.stdout.write(`${banner}\n`);
  process.stdout.write(
    `  state: ${values.memory ? 'in memory (lost on exit)' : describeStore({ dataDir: values.data, url: values.store })}; demo: ${demoOn ? 'on' : 'off'}; press Ctrl-C to stop\n`,
  );

  return await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        process.stderr.write('dpow-web: forced exit\n');
        process.exit(1);
      }
      stopping = true;
      log.info(`${signal}: shutting down`);
      void closeAll().then(() => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve(0);
      });
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

async function parseFeeds(specs: string[]) {
  if (specs.length === 0) return [];
  const { parseFeedSpec } = await import('../server/feeds/precache.ts');
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
