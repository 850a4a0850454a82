/**
 * Everything `dpow-web start` runs, on one http.Server and one origin (127.0.0.1 by default):
 *
 *   GET  /config.json      the page's DeploymentConfig, generated from these options
 *   WS   /mqtt             the embedded broker (unless an external broker is named)
 *   POST /service/, WS /service_ws/, POST / and /rpc   the service API and work-server RPC
 *   GET  /metrics, /healthz, /readyz   for the operator (metrics.ts)
 *   GET  /api/payouts/<address>        what was paid to a payout address (payouts-api.ts)
 *   GET  anything else     the built app from `dist/` (static.ts)
 *
 * plus the dispatcher (connected to the broker as the `server` user) and, by default, the demo
 * work source. Tests start it on port 0 with a MemoryStore; the CLI passes the SQLite store.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { DEFAULT_DEPLOYMENT, type DeploymentConfig } from '../../dpow/deployment.ts';
import { DEFAULT_POLICY, type DifficultyPolicy } from '../../pow/difficulty.ts';
import { defaultBrokerUsers, startBroker, type Broker, type BrokerOptions, type BrokerUsers } from '../broker.ts';
import { startDemoSource, type DemoOptions, type DemoSource } from '../sim/demo-source.ts';
import { Dispatcher, type DispatcherOptions } from '../dispatcher/dispatcher.ts';
import { type Logger, silentLogger } from '../log.ts';
import { MemoryStore } from '../store/memory-store.ts';
import { createServiceApi, isServiceApiRequest, type RpcAllow, type ServiceApi, type ServiceApiOptions } from './service-api.ts';
import { createServerMetrics, type ServerMetrics } from './metrics.ts';
import { createRequestGuard } from './request-guard.ts';
import { createStaticHandler } from './static.ts';
import { createPayoutsApi } from './payouts-api.ts';
import type { DispatcherStore } from '../store/store.ts';

export interface ExternalBroker {
  /** URL the dispatcher connects to (mqtt://, ws:// or wss://). */
  url: string;
  /** The broker's `server` role login, used by the dispatcher. */
  username: string;
  password: string;
  /** URL the page connects to, if not `url` (it must be ws:// or wss://). */
  publicUrl?: string;
}

export interface AppServerOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 8787; 0 picks a free port (tests). */
  port?: number;
  /** The built app. Default 'dist'. */
  staticDir?: string;
  /** Logins of the embedded broker; missing roles get defaults (client/client, random server). */
  brokerUsers?: Partial<BrokerUsers>;
  /** Also open a plain MQTT TCP listener for the embedded broker on this port (0 = any). */
  brokerTcpPort?: number;
  /** Per-connection publish rate and payload cap of the embedded broker. */
  brokerLimits?: Pick<BrokerOptions, 'publishRate' | 'maxPayloadBytes'>;
  /** Use this broker instead of the embedded one. */
  externalBroker?: ExternalBroker;
  /** Run the dispatcher. Default true. */
  dispatcher?: boolean;
  /** Overrides for the dispatcher (timeouts, statistics interval, prefixes, …). */
  dispatcherOptions?: Partial<Omit<DispatcherOptions, 'brokerUrl' | 'username' | 'password' | 'store' | 'log' | 'policy'>>;
  /** The demo work source. Default true (needs the dispatcher). */
  demo?: boolean | DemoOptions;
  /** Default: a MemoryStore owned (and closed) by the server. A given store is not closed. */
  store?: DispatcherStore;
  /** Fields of /config.json; brokerUrl and the client login are filled in from the broker. */
  deployment?: Partial<DeploymentConfig>;
  /** The service API and work-server RPC. Default true (needs the dispatcher). */
  serviceApi?: boolean | Partial<Omit<ServiceApiOptions, 'dispatcher' | 'store' | 'log' | 'policy'>>;
  /** Difficulty bounds, one object for the dispatcher, the service API and the RPC. Default DEFAULT_POLICY. */
  policy?: DifficultyPolicy;
  /** Who may read GET /metrics. Default: the RPC's rule (loopback unless set; off when the RPC is off). */
  metrics?: RpcAllow | false;
  /** hashApiKey() of the operator's metrics password: HTTP Basic `metrics:<password>` reads /metrics. */
  metricsPasswordHash?: string;
  /** Names the server is reached by besides its addresses and --host (a TLS proxy's name): the RPC and /metrics refuse other Host names. */
  publicNames?: string[];
  log?: Logger;
}

export interface AppServer {
  /** http://host:port/ */
  url: string;
  /** The broker URL the page is given (absolute, for tests and the startup line). */
  brokerWsUrl: string;
  /** /config.json as served. */
  deployment: DeploymentConfig;
  server: http.Server;
  store: DispatcherStore;
  broker?: Broker;
  dispatcher?: Dispatcher;
  serviceApi?: ServiceApi;
  demo?: DemoSource;
  /** /metrics, /healthz and /readyz; feeds started later report through addFeed. */
  metrics: ServerMetrics;
  close(): Promise<void>;
}

/** What the service API's callers get between the port opening and the API being ready. */
export const STARTING = 'Service starting, try again shortly';

/** Sent on every HTTP response. The CSP lives in index.html (a meta tag), not here. */
export const SECURITY_HEADERS: Record<string, string> = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'SAMEORIGIN',
  'Cross-Origin-Opener-Policy': 'same-origin',
};

export async function startAppServer(options: AppServerOptions = {}): Promise<AppServer> {
  const log = options.log ?? silentLogger;
  const host = options.host ?? '127.0.0.1';
  const ownsStore = options.store === undefined;
  const store = options.store ?? new MemoryStore();
  const wantDispatcher = options.dispatcher ?? true;
  const serveStatic = createStaticHandler({ root: options.staticDir ?? 'dist' });
  const guard = createRequestGuard({ host, publicNames: options.publicNames });
  const payouts = createPayoutsApi({ store, log });

  let serviceApi: ServiceApi | undefined;
  // Until the dispatcher is connected and the API made, its callers get a JSON 503 to retry.
  let apiStarting = wantDispatcher && options.serviceApi !== false;
  const rpcEnabled = typeof options.serviceApi === 'object' ? (options.serviceApi.rpc?.enabled ?? true) : true;
  let metrics: ServerMetrics | undefined;
  let deployment: DeploymentConfig = { ...DEFAULT_DEPLOYMENT };
  let configBody = '';

  const server = http.createServer((req, res) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
    void route(req, res).catch((err: unknown) => {
      log.error(`http: ${req.method} ${req.url}: ${(err as Error).stack ?? err}`);
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end('Internal error\n');
      else res.destroy();
    });
  });
  server.on('clientError', (_err, socket) => socket.destroy());

  async function route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/config.json' && (req.method === 'GET' || req.method === 'HEAD')) {
      res.writeHead(200, {
        'Content-Type': 'application/json; charset=utf-8',
        'Cache-Control': 'no-cache',
        'Content-Length': Buffer.byteLength(configBody),
      });
      res.end(req.method === 'HEAD' ? undefined : configBody);
      return;
    }
    if (metrics && (await metrics.handleRequest(req, res))) return;
    if (serviceApi && (await serviceApi.handleRequest(req, res))) return;
    if (apiStarting && isServiceApiRequest(req, rpcEnabled)) {
      req.resume();
      const body = JSON.stringify({ error: STARTING });
      res.writeHead(503, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'Retry-After': '1' });
      res.end(body);
      return;
    }
    if (await payouts.handleRequest(req, res)) return;
    if (await serveStatic(req, res)) return;
    res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('Method not allowed\n');
  }

  const wsPath = '/mqtt';
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '').split('?')[0];
    if (broker && (path === wsPath || path === `${wsPath}/`)) return; // the broker's own listener takes it
    if (serviceApi?.handleUpgrade(req, socket, head)) return;
    if (apiStarting && isServiceApiRequest(req, rpcEnabled, true)) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8787, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const origin = `http://${address.address.includes(':') ? `[${address.address}]` : address.address}:${address.port}`;

  let broker: Broker | undefined;
  let dispatcher: Dispatcher | undefined;
  let demo: DemoSource | undefined;
  const closeAll = async () => {
    apiStarting = false;
    demo?.stop();
    metrics?.close();
    payouts.close();
    serviceApi?.close();
    await dispatcher?.stop().catch(() => {});
    await broker?.close().catch(() => {});
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (ownsStore) await store.close();
  };

  try {
    let dispatcherLogin: { url: string; username: string; password: string };
    let pageBrokerUrl: string;
    let brokerWsUrl: string;
    let clientLogin: { username: string; password: string };
    if (options.externalBroker) {
      const ext = options.externalBroker;
      dispatcherLogin = { url: ext.url, username: ext.username, password: ext.password };
      pageBrokerUrl = ext.publicUrl ?? ext.url;
      brokerWsUrl = pageBrokerUrl;
      if (!/^wss?:\/\//.test(pageBrokerUrl)) {
        log.warn(`app: the page needs a ws:// or wss:// broker URL, got ${pageBrokerUrl}`);
      }
      clientLogin = {
        username: options.deployment?.username ?? DEFAULT_DEPLOYMENT.username,
        password: options.deployment?.password ?? DEFAULT_DEPLOYMENT.password,
      };
    } else {
      const users = defaultBrokerUsers(options.brokerUsers);
      broker = await startBroker({ ...options.brokerLimits, users, server, wsPath, host, tcpPort: options.brokerTcpPort, log });
      dispatcherLogin = { url: broker.wsUrl, username: users.server.username, password: users.server.password };
      pageBrokerUrl = wsPath;
      brokerWsUrl = `${origin.replace(/^http/, 'ws')}${wsPath}`;
      clientLogin = users.client;
    }

    deployment = {
      ...DEFAULT_DEPLOYMENT,
      ...options.deployment,
      brokerUrl: pageBrokerUrl,
      username: clientLogin.username,
      password: clientLogin.password,
    };
    configBody = `${JSON.stringify(deployment, null, 2)}\n`;

    if (wantDispatcher) {
      const policy = options.policy ?? DEFAULT_POLICY;
      const demoOn = options.demo !== false && !(typeof options.demo === 'object' && options.demo.enabled === false);
      dispatcher = new Dispatcher({
        // Demo jobs nobody takes should not linger for the default half hour.
        ...(demoOn ? { precacheTtlMs: 120_000, statisticsMs: 30_000 } : {}),
        ...options.dispatcherOptions,
        brokerUrl: dispatcherLogin.url,
        username: dispatcherLogin.username,
        password: dispatcherLogin.password,
        store,
        policy,
        log,
        // The embedded broker knows who published each result: containment by connection.
        ...(broker ? { resultPublisher: broker.publisherOf } : {}),
      });
      await dispatcher.start();
      if (options.serviceApi !== false) {
        const extra = typeof options.serviceApi === 'object' ? options.serviceApi : {};
        serviceApi = createServiceApi({ guard, ...extra, dispatcher, store, policy, log });
      }
      apiStarting = false;
      if (demoOn) {
        demo = await startDemoSource(dispatcher, store, typeof options.demo === 'object' ? options.demo : {}, log);
      }
    }

    const rpc = typeof options.serviceApi === 'object' ? options.serviceApi.rpc : undefined;
    const access = options.metrics ?? (rpc === undefined ? 'loopback' : rpc.enabled ? rpc.allow : false);
    metrics = createServerMetrics({ store, dispatcher, broker, serviceApi, payouts, access, guard, operatorPasswordHash: options.metricsPasswordHash, log });

    return {
      url: `${origin}/`,
      brokerWsUrl,
      deployment,
      server,
      store,
      broker,
      dispatcher,
      serviceApi,
      demo,
      metrics,
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
