/**
 * The one place the server is assembled, for every entry point (`dpow-web start` in both modes,
 * the tests, the benchmarks). It takes one typed configuration, one section per part, and
 * brings the parts up in order:
 *
 *   store --> [app: HTTP listens] --> broker (embedded on the app's port, or external)
 *         --> dispatcher --> [app: service API and work RPC] --> demo (only when asked)
 *         --> metrics (on the app's port, or on a port of their own) --> precache feeds
 *
 * `kind: 'app'` is the full server (`dpow-web start`); `kind: 'dispatcher'` runs only the
 * dispatcher and its feeds against an external broker (`--dispatcher-only`). A section the
 * chosen kind does not use is a type error, and no section is merged into another: each part
 * gets its own. The demo and the simulated nodes are loaded with import() only when asked for,
 * so a production server never loads src/server/sim/.
 */
import type http from 'node:http';
import { DEFAULT_DEPLOYMENT, type DeploymentConfig } from '../dpow/deployment.ts';
import { DEFAULT_POLICY, type DifficultyPolicy } from '../pow/difficulty.ts';
import { THRESHOLDS } from '../pow/work.ts';
import { Broker } from './broker.ts';
import { DEFAULT_CLIENT_CREDENTIALS, defaultBrokerUsers, type BrokerLimits, type BrokerUsers, type Credentials } from './broker-rules.ts';
import { Dispatcher, type DispatcherOptions, type DispatcherTuning } from './dispatcher/dispatcher.ts';
import type { FeedSpec } from './feeds/feed-spec.ts';
import type { PrecachePolicyOptions } from './feeds/precache.ts';
import type { NodeSource, PrecacheFeed } from './feeds/precache-feed.ts';
import { AppHttpServer, BROKER_WS_PATH } from './http/app-server.ts';
import { ServerMetrics, type ServerMetricsOptions } from './http/metrics.ts';
import { MetricsServer } from './http/metrics-server.ts';
import { PayoutsApi } from './http/payouts-api.ts';
import { createRequestGuard } from './http/request-guard.ts';
import { ServiceApi, type RpcAllow, type ServiceApiOptions } from './http/service-api.ts';
import { type Logger, silentLogger } from './log.ts';
import type { DemoOptions, DemoSource } from './sim/demo-source.ts';
import { MemoryStore } from './store/memory-store.ts';
import { openStore, type StoreChoice } from './store/open-store.ts';
import type { DispatcherStore } from './store/store.ts';

// ------------------------------------------------------------------ configuration

/** Where the state lives. */
export type StoreConfig =
  /** In memory, lost on exit. */
  | { kind: 'memory'; workRetentionMs?: number }
  /** SQLite under `dataDir`, or Redis at `url` (openStore); closed with the server. */
  | { kind: 'open'; choice: StoreChoice }
  /** A store the caller opened and closes (tests, tools). */
  | { kind: 'given'; store: DispatcherStore };

/** The embedded aedes broker, on the app's port (WebSocket /mqtt) and optionally plain TCP. */
export interface EmbeddedBrokerConfig {
  kind: 'embedded';
  /** Logins; missing roles get defaults (client/client, a random server password). */
  users?: Partial<BrokerUsers>;
  /** Also listen for mqtt:// on this port (0 = any). */
  tcpPort?: number;
  /** What each connection may send (the broker's defaults where absent). */
  limits?: BrokerLimits;
}

/** A broker run elsewhere (Mosquitto, EMQX, another aedes). */
export interface ExternalBrokerConfig {
  kind: 'external';
  /** What the dispatcher connects to: mqtt://, mqtts://, ws:// or wss://. */
  url: string;
  /**
   * The other nodes of a clustered broker (same scheme and path): the dispatcher moves to the
   * next when its node dies, and the leader keeps the retained statistics on every node.
   */
  failoverUrls?: readonly string[];
  /** Its `server` role login, for the dispatcher. */
  username: string;
  password: string;
  /** The ws:// or wss:// URL the page is given, if not `url`. */
  publicUrl?: string;
  /** The public worker login the page is given. Default client/client, as the real DPoW broker. */
  clientLogin?: Credentials;
  /** Take results as `$share/<group>-<secret>/result/+`, so each goes to one dispatcher of the group. */
  sharedGroup?: string;
}

/** The service API and the work-server RPC on the app's port. */
export type ServiceApiConfig = Pick<ServiceApiOptions, 'rpc' | 'wsPingMs' | 'bodyTimeoutMs'>;

/** Precache feeds from nodes (or simulated ones); on a shared store they follow the leader. */
export interface FeedsConfig extends Pick<PrecachePolicyOptions, 'accounts' | 'nanoDifficulty' | 'qlcDifficulty' | 'qlcOpenBlocks' | 'refreshMs'> {
  specs: readonly FeedSpec[];
  /** The simulated nodes' pace: ms between made-up blocks. Default 5000. */
  simIntervalMs?: number;
}

interface SharedConfig {
  /** Default: in memory. */
  store?: StoreConfig;
  dispatcher?: DispatcherTuning;
  /** One difficulty policy for the dispatcher, the service API and the RPC. Default DEFAULT_POLICY. */
  policy?: DifficultyPolicy;
  feeds?: FeedsConfig;
  /** The demo work source; off unless given. */
  demo?: DemoOptions;
  log?: Logger;
}

/** Everything `dpow-web start` runs, on one port. */
export interface AppConfig extends SharedConfig {
  kind: 'app';
  http: {
    /** Default 127.0.0.1. */
    host?: string;
    /** Default 8787; 0 picks a free port. */
    port?: number;
    /** The built app. Default 'dist'. */
    staticDir?: string;
    /** Fields of /config.json; the broker URL and the worker login come from the broker section. */
    deployment?: Partial<Omit<DeploymentConfig, 'brokerUrl' | 'username' | 'password'>>;
    /** Names it is reached by besides its addresses and `host` (a TLS proxy's): the RPC and /metrics refuse other Host names. */
    publicNames?: string[];
  };
  /** Default: embedded, with default logins. */
  broker?: EmbeddedBrokerConfig | ExternalBrokerConfig;
  /** Default: on, with the RPC for loopback callers. */
  serviceApi?: ServiceApiConfig | false;
  /** /metrics, /healthz and /readyz on the app's port; /metrics follows the RPC's access rule. */
  metrics?: { operatorPasswordHash?: ServerMetricsOptions['operatorPasswordHash'] };
}

/** The dispatcher and its feeds only, against an external broker (`--dispatcher-only`). */
export interface DispatcherConfig extends SharedConfig {
  kind: 'dispatcher';
  broker: ExternalBrokerConfig;
  /** /metrics, /healthz and /readyz on a port of their own; none served when absent. */
  metrics?: {
    host?: string;
    port: number;
    access: RpcAllow | false;
    /** Names it is reached by besides its addresses and `host`: /metrics refuses other Host names. */
    publicNames?: string[];
    operatorPasswordHash?: ServerMetricsOptions['operatorPasswordHash'];
  };
}

export type ServerConfig = AppConfig | DispatcherConfig;

// ------------------------------------------------------------------ what runs

interface RunningParts {
  store: DispatcherStore;
  dispatcher: Dispatcher;
  demo?: DemoSource;
  /** The feeds running now (on a shared store: while this dispatcher leads). */
  readonly feeds: readonly PrecacheFeed[];
  /** Stops everything, newest part first; the store too unless it was given. */
  close(): Promise<void>;
}

export interface AppServer extends RunningParts {
  /** http://host:port/ */
  url: string;
  /** The broker URL the page is given, absolute (for tests and the startup line). */
  brokerWsUrl: string;
  /** /config.json as served. */
  deployment: DeploymentConfig;
  server: http.Server;
  broker?: Broker;
  serviceApi?: ServiceApi;
  metrics: ServerMetrics;
}

export interface DispatcherServer extends RunningParts {
  /** Where /metrics, /healthz and /readyz are served, when asked for. */
  metricsUrl?: string;
  metrics?: ServerMetrics;
}

/** Demo jobs nobody takes should not linger for the default half hour. */
const DEMO_TUNING = { precacheTtlMs: 120_000, statisticsMs: 30_000 };

export function createServer(config: AppConfig): Promise<AppServer>;
export function createServer(config: DispatcherConfig): Promise<DispatcherServer>;
export async function createServer(config: ServerConfig): Promise<AppServer | DispatcherServer> {
  const log = config.log ?? silentLogger;
  const closers = new Closers(log);
  try {
    return config.kind === 'app' ? await startApp(config, log, closers) : await startDispatcherOnly(config, log, closers);
  } catch (err) {
    await closers.closeAll();
    throw err;
  }
}

async function startApp(config: AppConfig, log: Logger, closers: Closers): Promise<AppServer> {
  const store = await openConfiguredStore(closers, config.store);
  const serviceApiConfig = config.serviceApi === false ? undefined : (config.serviceApi ?? {});
  const rpc = serviceApiConfig?.rpc;
  const http = new AppHttpServer({
    host: config.http.host,
    port: config.http.port,
    staticDir: config.http.staticDir,
    serviceApi: serviceApiConfig !== undefined,
    rpcEnabled: rpc?.enabled ?? true,
    log,
  });
  const origin = await http.listen();
  closers.add(() => http.close());
  const payouts = new PayoutsApi({ store, log });
  closers.add(async () => payouts.close());
  http.attach({ payouts });
  // Who may drive the RPC and read /metrics, by Host and Origin.
  const guard = createRequestGuard({ host: config.http.host ?? '127.0.0.1', publicNames: config.http.publicNames });

  const brokerConfig = config.broker ?? { kind: 'embedded' };
  const { broker, login, page } = await brokerFor(brokerConfig, http, origin, config.http.host ?? '127.0.0.1', log, closers);
  const deployment: DeploymentConfig = {
    ...DEFAULT_DEPLOYMENT,
    ...config.http.deployment,
    brokerUrl: page.brokerUrl,
    username: page.login.username,
    password: page.login.password,
  };
  http.attach({ deployment });

  const dispatcher = await startDispatcher(config, login, store, broker, log, closers);
  let serviceApi: ServiceApi | undefined;
  if (serviceApiConfig) {
    const api = new ServiceApi({
      dispatcher,
      store,
      policy: config.policy ?? DEFAULT_POLICY,
      rpc,
      guard,
      wsPingMs: serviceApiConfig.wsPingMs,
      bodyTimeoutMs: serviceApiConfig.bodyTimeoutMs,
      log,
    });
    serviceApi = api;
    closers.add(async () => api.close());
    http.attach({ serviceApi });
  }
  const demo = await startDemo(config, dispatcher, store, log, closers);

  // /metrics follows the RPC's access rule: loopback unless set, off when the RPC is off.
  const access = rpc === undefined ? 'loopback' : rpc.enabled ? rpc.allow : false;
  const operatorPasswordHash = config.metrics?.operatorPasswordHash;
  const metrics = new ServerMetrics({ store, dispatcher, broker, serviceApi, payouts, access, guard, operatorPasswordHash, log });
  closers.add(async () => metrics.close());
  http.attach({ metrics });
  const feeds = await startFeeds(config, dispatcher, store, metrics, log, closers);

  return {
    url: `${origin}/`,
    brokerWsUrl: page.absoluteUrl,
    deployment,
    server: http.server,
    store,
    broker,
    dispatcher,
    serviceApi,
    demo,
    metrics,
    feeds,
    close: () => closers.closeAll(),
  };
}

async function startDispatcherOnly(config: DispatcherConfig, log: Logger, closers: Closers): Promise<DispatcherServer> {
  const store = await openConfiguredStore(closers, config.store);
  let metricsUrl: string | undefined;
  let metrics: ServerMetrics | undefined;
  const dispatcher = await startDispatcher(config, config.broker, store, undefined, log, closers, async (unstarted) => {
    // Listening before the broker connects: a taken port fails at once, and /readyz says 503
    // (not connected) while the dispatcher is still connecting.
    if (!config.metrics) return;
    const { host, port, access, publicNames, operatorPasswordHash } = config.metrics;
    const served = await MetricsServer.start({ host, port, publicNames, store, dispatcher: unstarted, access, operatorPasswordHash, log });
    closers.add(() => served.close());
    metricsUrl = served.url;
    metrics = served.metrics;
  });
  const demo = await startDemo(config, dispatcher, store, log, closers);
  const feeds = await startFeeds(config, dispatcher, store, metrics, log, closers);
  return { store, dispatcher, demo, feeds, metricsUrl, metrics, close: () => closers.closeAll() };
}

// ------------------------------------------------------------------ the parts

/** The dispatcher's login on a broker, and what the page is told about it. */
interface BrokerLogins {
  broker?: Broker;
  login: { url: string; failoverUrls?: readonly string[]; username: string; password: string; sharedGroup?: string };
  /** /config.json's broker URL (relative for the embedded one), the absolute one, the worker login. */
  page: { brokerUrl: string; absoluteUrl: string; login: Credentials };
}

/** Starts the embedded broker on the app's port, or takes the external one's logins. */
async function brokerFor(
  config: EmbeddedBrokerConfig | ExternalBrokerConfig,
  http: AppHttpServer,
  origin: string,
  host: string,
  log: Logger,
  closers: Closers,
): Promise<BrokerLogins> {
  if (config.kind === 'external') {
    const { url, failoverUrls, username, password, sharedGroup } = config;
    const pageUrl = config.publicUrl ?? url;
    if (!/^wss?:\/\//.test(pageUrl)) log.warn(`app: the page needs a ws:// or wss:// broker URL, got ${pageUrl}`);
    const login = { url, failoverUrls, username, password, sharedGroup };
    return { login, page: { brokerUrl: pageUrl, absoluteUrl: pageUrl, login: config.clientLogin ?? DEFAULT_CLIENT_CREDENTIALS } };
  }
  const users = defaultBrokerUsers(config.users);
  const broker = await Broker.start({
    users,
    server: http.server,
    wsPath: BROKER_WS_PATH,
    host,
    tcpPort: config.tcpPort,
    limits: config.limits,
    log,
  });
  closers.add(() => broker.close());
  http.attach({ broker: true });
  const login = { url: broker.wsUrl, username: users.server.username, password: users.server.password };
  const absoluteUrl = `${origin.replace(/^http/, 'ws')}${BROKER_WS_PATH}`;
  return { broker, login, page: { brokerUrl: BROKER_WS_PATH, absoluteUrl, login: users.client } };
}

async function openConfiguredStore(closers: Closers, config: StoreConfig = { kind: 'memory' }): Promise<DispatcherStore> {
  if (config.kind === 'given') return config.store;
  const store = config.kind === 'memory' ? new MemoryStore({ workRetentionMs: config.workRetentionMs }) : await openStore(config.choice);
  closers.add(() => store.close());
  return store;
}

/**
 * The dispatcher on the broker's `server` login. `beforeStart` runs once it exists and before
 * it connects (the dispatcher-only metrics server listens then).
 */
async function startDispatcher(
  config: SharedConfig,
  broker: { url: string; failoverUrls?: readonly string[]; username: string; password: string; sharedGroup?: string },
  store: DispatcherStore,
  embedded: Broker | undefined,
  log: Logger,
  closers: Closers,
  beforeStart?: (dispatcher: Dispatcher) => Promise<void>,
): Promise<Dispatcher> {
  const t = config.dispatcher ?? {};
  const demo = demoOn(config);
  const options = {
    // Every knob of DispatcherTuning, named: one added there and not passed on is a type error.
    heartbeatMs: t.heartbeatMs,
    statisticsMs: t.statisticsMs ?? (demo ? DEMO_TUNING.statisticsMs : undefined),
    statisticsChangeMs: t.statisticsChangeMs,
    defaultTimeoutMs: t.defaultTimeoutMs,
    precacheTtlMs: t.precacheTtlMs ?? (demo ? DEMO_TUNING.precacheTtlMs : undefined),
    addressPrefixes: t.addressPrefixes,
    connectTimeoutMs: t.connectTimeoutMs,
    leaseMs: t.leaseMs,
    retryMs: t.retryMs,
    pruneWorkMs: t.pruneWorkMs,
    abuse: t.abuse,
    resultLookups: t.resultLookups,
    brokerUrl: broker.url,
    failoverBrokerUrls: broker.failoverUrls,
    username: broker.username,
    password: broker.password,
    sharedGroup: broker.sharedGroup,
    // Any login may take over a client id on an external broker; the embedded one refuses it.
    standby: embedded === undefined,
    store,
    policy: config.policy ?? DEFAULT_POLICY,
    log,
    // The embedded broker knows who published each result: containment by connection.
    resultPublisher: embedded?.publisherOf,
  } satisfies DispatcherOptions & Record<keyof DispatcherTuning, unknown>;
  const dispatcher = new Dispatcher(options);
  await beforeStart?.(dispatcher);
  await dispatcher.start();
  closers.add(() => dispatcher.stop());
  return dispatcher;
}

function demoOn(config: SharedConfig): boolean {
  return config.demo !== undefined && config.demo.enabled !== false;
}

async function startDemo(config: SharedConfig, dispatcher: Dispatcher, store: DispatcherStore, log: Logger, closers: Closers): Promise<DemoSource | undefined> {
  if (!config.demo) return undefined;
  const { DemoSource } = await import('./sim/demo-source.ts');
  const demo = await DemoSource.start({ ...config.demo, dispatcher, store, log });
  closers.add(async () => demo.stop());
  return demo;
}

/** Starts the feeds; on a shared store they are a singleton, opened and closed with the lease. */
async function startFeeds(
  config: SharedConfig,
  dispatcher: Dispatcher,
  store: DispatcherStore,
  metrics: ServerMetrics | undefined,
  log: Logger,
  closers: Closers,
): Promise<readonly PrecacheFeed[]> {
  const feeds = config.feeds;
  const running: PrecacheFeed[] = [];
  if (!feeds || feeds.specs.length === 0) return running;
  const { PrecacheFeed } = await import('./feeds/precache-feed.ts');
  const open = async () => {
    for (const spec of feeds.specs) {
      const { source, accounts } = await nodeFor(spec, feeds.simIntervalMs ?? 5000);
      const simulated = source.simulated !== undefined;
      const feed = await PrecacheFeed.start({
        source,
        dispatcher,
        store,
        accounts: [...(feeds.accounts ?? []), ...accounts],
        // Made-up demo chains get light Nano work, so a CPU-only volunteer sees results.
        nanoDifficulty: feeds.nanoDifficulty ?? (spec.kind === 'nano-sim' ? THRESHOLDS.nanoReceive : undefined),
        qlcDifficulty: feeds.qlcDifficulty,
        qlcOpenBlocks: feeds.qlcOpenBlocks,
        refreshMs: feeds.refreshMs,
        // ... and vanish with the process instead of piling up in the store.
        persist: !simulated,
        log,
      });
      running.push(feed);
      // A feed taken over again after a lost lease is a new feed for the metrics too.
      metrics?.addFeed(feed);
      log.info(`precache feed: ${feed.description}`);
    }
  };
  const close = async () => {
    while (running.length) await running.pop()!.close();
  };
  closers.add(close);
  if (store.cluster) {
    dispatcher.on('leadership', (leader) => {
      void (leader ? open() : close()).catch((err: Error) => log.warn(`precache feed: ${err.message}`));
    });
    if (dispatcher.leadership.leader) await open();
  } else {
    await open();
  }
  return running;
}

/**
 * The node a --feed spec names: a real node's WebSocket, or a simulated node started here, on
 * 127.0.0.1 with an ephemeral port, making up blocks for a few accounts (tracked by the feed).
 * The simulators are loaded only for a *-sim spec.
 */
async function nodeFor(spec: FeedSpec, intervalMs: number): Promise<{ source: NodeSource; accounts: string[] }> {
  const demo = { intervalMs, accounts: 3 };
  switch (spec.kind) {
    case 'qlc':
    case 'nano':
      return { source: { coin: spec.kind, url: spec.url, description: `${spec.kind} ${spec.url}` }, accounts: [] };
    case 'qlc-sim': {
      const { QlcSim } = await import('./sim/qlc-sim.ts');
      const sim = await QlcSim.start({ demo });
      const accounts = [...new Set(sim.demoChains().map((c) => c.address))];
      return { source: { coin: 'qlc', url: sim.url, description: `qlc-sim ${sim.url}`, simulated: sim }, accounts };
    }
    case 'nano-sim': {
      const { NanoSim } = await import('./sim/nano-sim.ts');
      const sim = await NanoSim.start({ demo });
      const accounts = sim.demoAccounts().map((a) => a.account);
      return { source: { coin: 'nano', url: sim.url, description: `nano-sim ${sim.url}`, simulated: sim }, accounts };
    }
  }
}

/** What to stop, newest first; each failure logged and the rest still stopped. */
class Closers {
  readonly #steps: Array<() => Promise<unknown>> = [];
  #closing?: Promise<void>;

  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  add(step: () => Promise<unknown>): void {
    this.#steps.push(step);
  }

  closeAll(): Promise<void> {
    this.#closing ??= (async () => {
      while (this.#steps.length) await this.#steps.pop()!().catch((err: unknown) => this.#log.warn(`shutdown: ${(err as Error).message}`));
    })();
    return this.#closing;
  }
}
