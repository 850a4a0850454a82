/**
 * The operator's view of a running server, on the app server's one http.Server:
 *
 *   GET /metrics   Prometheus text format (prom-client), for the operator: loopback callers (as the
 *                  RPC's rule says) or the operator's password; never another web page (no CORS,
 *                  Host and Origin checked by request-guard.ts)
 *   GET /healthz   200 while the process serves HTTP
 *   GET /readyz    200 when the broker is connected and the store answers; 503 with the reason
 *
 * Almost every number is read at scrape time from the counters the dispatcher, broker, service
 * API and feeds already keep, so nothing is counted twice and nothing here can drift from them.
 * The one exception is accept latency, a histogram fed from the dispatcher's `accepted` event.
 * Each server has its own Registry (several servers in one process, as tests run, never collide).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { WORK_TYPES } from '../../dpow/codec.ts';
import type { Broker } from '../broker.ts';
import type { ConnectionLimit, RefusalReason } from '../connection-limit.ts';
import type { MqttFront } from '../mqtt-front.ts';
import type { PacketType } from '../mqtt-packet-size.ts';
import type { AcceptedResult, Dispatcher } from '../dispatcher/dispatcher.ts';
import type { PrecacheFeed } from '../feeds/precache-feed.ts';
import { silentLogger, type Logger } from '../log.ts';
import type { DispatcherStore } from '../store/store.ts';
import { clip, LogLimiter } from '../log-limit.ts';
import { ApiKeyVerifier } from './api-keys.ts';
import { callerAddress, createRequestGuard, isLoopback, isProxied, sourceKey, type RequestGuard } from './request-guard.ts';
import type { RpcAllow, ServiceApi } from './service-api.ts';

/** The HTTP Basic user name of the operator's metrics login (Prometheus `basic_auth`). */
export const METRICS_USER = 'metrics';

export interface ServerMetricsOptions {
  /** The dispatcher's store; /readyz asks it. */
  store?: DispatcherStore;
  dispatcher?: Dispatcher;
  broker?: Broker;
  /** The MQTT front (`dpow-web mqtt-front`); /readyz asks whether its broker accepts connections. */
  front?: MqttFront;
  serviceApi?: ServiceApi;
  /** The payouts endpoint's counters (payouts-api.ts). */
  payouts?: { readonly counters: Readonly<Record<string, number>> };
  /**
   * Who may read /metrics without the operator's password, as `--rpc` says: loopback callers,
   * anyone, or (keys) nobody; false = not served at all.
   */
  access: RpcAllow | false;
  /**
   * hashApiKey() of the operator's metrics password (DPOW_METRICS_PASSWORD): HTTP Basic
   * `metrics:<password>` reads /metrics in every mode but off, also through a proxy.
   */
  operatorPasswordHash?: string;
  /** Host and Origin check. Default createRequestGuard(). */
  guard?: RequestGuard;
  /** How long /readyz waits for the store. Default 2000 ms. */
  storeTimeoutMs?: number;
  log?: Logger;
}

/** Accept latency buckets, seconds: ondemand answers in well under a second to a minute; precache waits up to its TTL. */
const LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800];

/** A Counter whose value is read from elsewhere at scrape time. */
function readCounter<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly L[],
  read: () => Array<[Partial<Record<L, string>>, number]>,
): void {
  new Counter<L>({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, value] of read()) this.inc(labels, value);
    },
  });
}

function readGauge<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly L[],
  read: () => Array<[Partial<Record<L, string>>, number]> | Promise<Array<[Partial<Record<L, string>>, number]>>,
): void {
  new Gauge<L>({
    name,
    help,
    labelNames,
    registers: [registry],
    async collect() {
      this.reset();
      for (const [labels, value] of await read()) this.set(labels, value);
    },
  });
}

const entries = <K extends string>(record: Partial<Record<K, number>>): Array<[K, number]> =>
  Object.entries(record) as Array<[K, number]>;

/** What the MQTT gate (mqtt-gate.ts) counts, the same in the embedded broker and the front. */
function gateMetrics(
  registry: Registry,
  gate: {
    counters: { oversizePackets: Partial<Record<PacketType, number>>; refusedConnections: Record<RefusalReason, number> };
    connections: Pick<ConnectionLimit, 'open' | 'sources'>;
  },
): void {
  const c = gate.counters;
  readCounter(registry, 'dpow_mqtt_oversize_packets_total', 'MQTT connections closed at a packet header over the size limit, by packet type', ['type'], () =>
    entries(c.oversizePackets).map(([type, n]) => [{ type }, n]),
  );
  readCounter(registry, 'dpow_mqtt_connections_refused_total', 'MQTT connections refused before they were taken: over the cap of their source (per-source) or of the server (total)', ['reason'], () =>
    entries(c.refusedConnections).map(([reason, n]) => [{ reason }, n]),
  );
  readGauge(registry, 'dpow_mqtt_open_connections', 'MQTT connections open, logged in or not (the operator\'s own loopback ones included)', [], () => [[{}, gate.connections.open]]);
  readGauge(registry, 'dpow_mqtt_sources', 'Sources (IPv4 address or IPv6 /64) with an MQTT connection open, loopback ones not counted', [], () => [[{}, gate.connections.sources]]);
}

/**
 * The registry of one server and the three paths it answers. Synchronous to build: nothing here
 * waits, every number is read from its owner at scrape time.
 */
export class ServerMetrics {
  readonly registry = new Registry();

  readonly #feeds: PrecacheFeed[] = [];
  readonly #closers: Array<() => void> = [];
  readonly #store: DispatcherStore | undefined;
  readonly #dispatcher: Dispatcher | undefined;
  readonly #front: MqttFront | undefined;
  readonly #access: RpcAllow | false;
  readonly #operatorPasswordHash: string | undefined;
  readonly #guard: RequestGuard;
  readonly #verifier = new ApiKeyVerifier();
  readonly #refusals: LogLimiter;
  readonly #storeTimeoutMs: number;
  /** The readiness check in progress, which every /readyz arriving meanwhile shares. */
  #readiness: Promise<string | undefined> | undefined;

  constructor(options: ServerMetricsOptions) {
    const { store, dispatcher, broker, serviceApi, front, payouts } = options;
    this.#store = store;
    this.#dispatcher = dispatcher;
    this.#front = front;
    this.#access = options.access;
    this.#operatorPasswordHash = options.operatorPasswordHash;
    this.#guard = options.guard ?? createRequestGuard();
    this.#refusals = new LogLimiter(options.log ?? silentLogger);
    this.#closers.push(() => this.#refusals.close());
    this.#storeTimeoutMs = options.storeTimeoutMs ?? 2000;

    const registry = this.registry;
    collectDefaultMetrics({ register: registry });
    if (dispatcher) this.#closers.push(dispatcherMetrics(registry, dispatcher));
    if (store?.replication) {
      const r = store.replication;
      readCounter(registry, 'dpow_store_replicated_writes_total', 'Store writes that wait for Redis replicas (accepts, credits, snapshots, services, the lease), by outcome; a shortfall is held, not answered', ['outcome'], () => [
        [{ outcome: 'confirmed' }, r.confirmed],
        [{ outcome: 'shortfall' }, r.shortfall],
      ]);
    }
    if (broker) brokerMetrics(registry, broker);
    if (front) {
      gateMetrics(registry, front);
      readCounter(registry, 'dpow_mqtt_front_piped_total', 'Connections the MQTT front let in and piped to the broker', [], () => [[{}, front.counters.piped]]);
      readCounter(registry, 'dpow_mqtt_front_broker_unreachable_total', 'Connections the MQTT front closed because the broker did not accept them', [], () => [[{}, front.counters.brokerUnreachable]]);
    }
    if (serviceApi) serviceApiMetrics(registry, serviceApi);
    if (payouts) {
      const p = payouts.counters;
      readCounter(registry, 'dpow_payouts_requests_total', 'GET /api/payouts/<address> requests, by outcome (ok, not-modified or the refusal)', ['outcome'], () =>
        entries(p).map(([outcome, n]): [{ outcome: string }, number] => [{ outcome }, n]),
      );
    }
    feedMetrics(registry, this.#feeds);
  }

  /** Reports a precache feed's state and counters under `feed="<description>"`. */
  addFeed(feed: PrecacheFeed): void {
    this.#feeds.push(feed);
  }

  /** Answers /metrics, /healthz and /readyz; false for any other path. */
  async handleRequest(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const head = req.method === 'HEAD';
    if (path === '/healthz') {
      json(res, 200, { status: 'ok' }, head);
      return true;
    }
    if (path === '/readyz') {
      // Anyone may ask, and a check reads the store: however many ask at once, one check runs.
      this.#readiness ??= this.notReady().finally(() => (this.#readiness = undefined));
      const reason = await this.#readiness;
      json(res, reason ? 503 : 200, reason ? { status: 'unavailable', reason } : { status: 'ready' }, head);
      return true;
    }
    if (path === '/metrics' && this.#access !== false) {
      if (!(await this.#allowed(req, res))) return true;
      const body = await this.registry.metrics();
      res.writeHead(200, { 'Content-Type': this.registry.contentType, 'Cache-Control': 'no-store' });
      res.end(head ? undefined : body);
      return true;
    }
    return false;
  }

  /** Why the server is not ready, or undefined when it is. */
  async notReady(): Promise<string | undefined> {
    const dispatcher = this.#dispatcher;
    if (dispatcher && !dispatcher.connected) return 'the dispatcher is not connected to the broker';
    if (this.#front) return this.#front.notReady();
    const store = this.#store;
    if (!store) return undefined;
    const storeTimeoutMs = this.#storeTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        store.getTotals(),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${storeTimeoutMs} ms`)), storeTimeoutMs);
        }),
      ]);
    } catch (err) {
      return `the store does not answer: ${(err as Error).message}`;
    } finally {
      clearTimeout(timer);
    }
    return undefined;
  }

  close(): void {
    while (this.#closers.length) this.#closers.pop()!();
  }

  /** The /metrics password checks: answered from memory, by running scrypt, or refused unchecked. */
  get loginChecks(): Readonly<{ cached: number; computed: number; throttled: number }> {
    return this.#verifier.stats;
  }

  /** True when the caller may read /metrics; answers 403/401 itself otherwise. */
  async #allowed(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const source = sourceKey(callerAddress(req));
    const challenge = { 'WWW-Authenticate': 'Basic realm="dpow-web metrics"' };
    const deny = (status: number, why: string, headers: Record<string, string> = {}, detail = '') => {
      this.#refusals.info(`metrics: ${why}`, `metrics: refused for ${source} (${why}${detail})`);
      res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...headers }).end(status === 401 ? 'Unauthorized\n' : 'Forbidden\n');
      return false;
    };
    const refused = this.#guard(req);
    if (refused) return deny(403, refused.reason, {}, `: ${clip(refused.detail)}`);
    const authorization = req.headers.authorization;
    if (authorization !== undefined) {
      // The operator's login, never a service key: services must not read each other's names.
      const m = /^Basic\s+([A-Za-z0-9+/=]{1,1024})$/.exec(authorization);
      const text = m ? Buffer.from(m[1], 'base64').toString('utf8') : '';
      const colon = text.indexOf(':');
      const user = colon < 0 ? '' : text.slice(0, colon);
      const password = colon < 0 ? '' : text.slice(colon + 1);
      // With no operator password set nothing can succeed: no scrypt is spent on a stranger's guess.
      if (this.#operatorPasswordHash === undefined) return deny(401, 'invalid credentials', challenge);
      const hash = user === METRICS_USER ? this.#operatorPasswordHash : undefined;
      if (password !== '' && (await this.#verifier.verify(METRICS_USER, password, hash, source))) return true;
      return deny(401, 'invalid credentials', challenge);
    }
    if (this.#access === 'any') return true;
    if (this.#access === 'loopback') {
      if (isProxied(req)) return deny(403, 'forwarded by a proxy');
      return isLoopback(req.socket.remoteAddress) ? true : deny(403, 'not loopback');
    }
    return deny(401, 'no credentials', challenge);
  }
}

function json(res: ServerResponse, status: number, body: Record<string, unknown>, head: boolean): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(text) });
  res.end(head ? undefined : text);
}

/** What the dispatcher counts, and its accept latency; returns what stops the latency's listener. */
function dispatcherMetrics(registry: Registry, dispatcher: Dispatcher): () => void {
  const c = dispatcher.counters;
  readCounter(registry, 'dpow_results_total', 'Results received from workers, by outcome', ['outcome'], () =>
    entries(c.results).map(([outcome, n]) => [{ outcome }, n]),
  );
  readCounter(registry, 'dpow_malformed_results_total', 'Malformed results, by codec reason', ['reason'], () =>
    entries(c.malformed).map(([reason, n]) => [{ reason }, n]),
  );
  readCounter(registry, 'dpow_results_dropped_total', 'Results dropped unchecked, by reason (lookup-bound, hold-full)', ['reason'], () =>
    entries(c.dropped).map(([reason, n]) => [{ reason }, n]),
  );
  readGauge(registry, 'dpow_result_lookups_in_flight', 'Store lookups in flight for results whose job this dispatcher does not hold', [], () => [
    [{}, dispatcher.resultLookups.inFlight],
  ]);
  const byType = (field: 'published' | 'expired' | 'cancelled') => () =>
    WORK_TYPES.map((type): [{ type: string }, number] => [{ type }, c.jobs[type][field]]);
  readCounter(registry, 'dpow_jobs_published_total', 'work/<type> messages published (republishes included)', ['type'], byType('published'));
  readCounter(registry, 'dpow_jobs_expired_total', 'Jobs that timed out or expired without work (cancel published)', ['type'], byType('expired'));
  readCounter(registry, 'dpow_jobs_cancelled_total', 'Jobs withdrawn, or cancelled by their last requester, before work came (cancel published)', ['type'], byType('cancelled'));
  readGauge(registry, 'dpow_jobs_pending', 'Jobs waiting for a result', ['type'], () => {
    const n: Record<string, number> = { precache: 0, ondemand: 0 };
    for (const j of dispatcher.pending) n[j.workType]++;
    return Object.entries(n).map(([type, v]) => [{ type }, v]);
  });
  readCounter(registry, 'dpow_store_errors_total', 'Store calls that failed', [], () => [[{}, c.storeErrors]]);
  readCounter(registry, 'dpow_stored_work_pruned_total', 'Stored works forgotten past the work retention', [], () => [[{}, c.workPruned]]);
  readCounter(registry, 'dpow_invalid_address_total', 'Accepted work whose payout address failed the check (not credited)', [], () => [[{}, c.invalidAddress]]);
  readGauge(registry, 'dpow_broker_connected', '1 while the dispatcher is connected to the broker', [], () => [[{}, dispatcher.connected ? 1 : 0]]);
  readCounter(registry, 'dpow_broker_disconnects_total', "The dispatcher's broker connections lost", [], () => [[{}, c.broker.disconnects]]);
  readCounter(registry, 'dpow_broker_takeovers_total', "The dispatcher's broker connections another login took over by reusing the client id", [], () => [[{}, c.broker.takeovers]]);
  readCounter(registry, 'dpow_broker_failovers_total', "Times the dispatcher's broker connection came back on another node of a clustered broker than the one it lost", [], () => [[{}, c.brokerFailovers]]);
  // On a shared store only the lease holder runs heartbeat, statistics, feeds and expiry: this says which one it is.
  readGauge(registry, 'dpow_dispatcher_leader', '1 while this dispatcher runs the singletons (holds the lease on a shared store)', [], () => [[{}, dispatcher.leadership.leader ? 1 : 0]]);

  const a = dispatcher.abuse.counters;
  const bySource = (record: Record<string, number>) => () => entries(record).map(([source, n]): [{ source: string }, number] => [{ source }, n]);
  readCounter(registry, 'dpow_abuse_invalid_results_total', 'Invalid results counted against a source (address or connection)', ['source'], bySource(a.invalid));
  readCounter(registry, 'dpow_abuse_containments_total', 'Sources contained for sending too many invalid results', ['source'], bySource(a.contained));
  readCounter(registry, 'dpow_abuse_ignored_results_total', 'Results ignored because their source was contained', ['source'], bySource(a.ignored));
  readGauge(registry, 'dpow_abuse_contained', 'Sources contained right now', ['source'], () =>
    (['address', 'connection'] as const).map((source) => [{ source }, dispatcher.abuse.containedNow(source)]),
  );

  const latency = new Histogram({
    name: 'dpow_accept_latency_seconds',
    help: 'From a job being created to its accepted result',
    labelNames: ['type'],
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });
  const onAccepted = (r: AcceptedResult) => latency.observe({ type: r.workType }, r.latencyMs / 1000);
  dispatcher.on('accepted', onAccepted);
  return () => dispatcher.off('accepted', onAccepted);
}

/** What the embedded broker counts and refuses. */
function brokerMetrics(registry: Registry, broker: Broker): void {
  const b = broker.counters;
  readGauge(registry, 'dpow_mqtt_connections', 'Connections logged in to the embedded broker, by role', ['role'], () =>
    entries(broker.connectedByRole()).map(([role, n]) => [{ role }, n]),
  );
  readGauge(registry, 'dpow_workers_connected', 'Worker connections (client role) on the embedded broker', [], () => [[{}, broker.connectedByRole().client]]);
  readCounter(registry, 'dpow_mqtt_refused_total', 'What the embedded broker refused, by reason', ['reason'], () => [
    [{ reason: 'login' }, b.refusedLogins],
    [{ reason: 'login-rate' }, b.refusedLoginRate],
    [{ reason: 'publish-acl' }, b.refusedPublish],
    [{ reason: 'publish-rate' }, b.refusedRate],
    [{ reason: 'publish-size' }, b.refusedSize],
    [{ reason: 'subscribe' }, b.refusedSubscribe],
    [{ reason: 'topic-length' }, b.refusedTopicLength],
    [{ reason: 'subscription-limit' }, b.refusedSubscriptionLimit],
    [{ reason: 'qos2-inflight' }, b.refusedInflight],
    [{ reason: 'too-many-refusals' }, b.closedForRefusals],
  ]);
  gateMetrics(registry, broker);
  readCounter(registry, 'dpow_mqtt_clean_sessions_forced_total', 'Logins that asked for a persistent session and got a clean one (only the server role keeps one)', [], () => [[{}, b.cleanSessionsForced]]);
}

/** The service API's and the work RPC's requests. */
function serviceApiMetrics(registry: Registry, serviceApi: ServiceApi): void {
  const s = serviceApi.counters;
  readCounter(registry, 'dpow_service_requests_total', 'Service API requests, by service user and outcome (work or the rejection reason)', ['service', 'outcome'], () =>
    Object.entries(s.byService).flatMap(([service, row]) => entries(row).map(([outcome, n]): [{ service: string; outcome: string }, number] => [{ service, outcome }, n])),
  );
  readGauge(registry, 'dpow_service_websockets', 'Open service WebSockets', [], () => [[{}, s.websockets.open]]);
  readCounter(registry, 'dpow_service_websockets_refused_total', 'Service WebSocket upgrades refused over a cap, by which', ['reason'], () =>
    entries(s.socketsRefused).map(([reason, n]) => [{ reason }, n]),
  );
  readCounter(registry, 'dpow_rpc_requests_total', 'Work-server RPC requests, by outcome (the action, or the error)', ['outcome'], () => [
    ...entries(s.rpc.actions).map(([outcome, n]): [{ outcome: string }, number] => [{ outcome }, n]),
    ...entries(s.rpc.errors).map(([outcome, n]): [{ outcome: string }, number] => [{ outcome: `error:${outcome}` }, n]),
    [{ outcome: 'forbidden' }, s.rpc.forbidden],
  ]);
}

/** The precache feeds, read from the list addFeed() fills. */
function feedMetrics(registry: Registry, feeds: readonly PrecacheFeed[]): void {
  readGauge(registry, 'dpow_feed_connected', '1 while a precache feed is connected to its node', ['feed'], () =>
    feeds.map((f) => [{ feed: f.description }, f.connected ? 1 : 0]),
  );
  readCounter(registry, 'dpow_precache_events_total', 'Precache feed events, by feed and event', ['feed', 'event'], () =>
    feeds.flatMap((f) => {
      const st = f.policy.stats;
      const rows: Array<[{ feed: string; event: string }, number]> = [
        [{ feed: f.description, event: 'precached' }, st.precached],
        [{ feed: f.description, event: 'withdrawn' }, st.withdrawn],
        [{ feed: f.description, event: 'opens' }, st.opens],
        [{ feed: f.description, event: 'errors' }, st.errors],
      ];
      for (const [reason, n] of entries(st.skipped)) rows.push([{ feed: f.description, event: `skipped:${reason}` }, n]);
      return rows;
    }),
  );
  readCounter(registry, 'dpow_feed_dropped_frames_total', 'Frames from a feed\'s node dropped, by feed and reason', ['feed', 'reason'], () =>
    feeds.flatMap((f) => entries(f.dropped).map(([reason, n]): [{ feed: string; reason: string }, number] => [{ feed: f.description, reason }, n])),
  );
}
