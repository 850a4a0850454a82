/**
 * The app's HTTP side: one http.Server on one origin (127.0.0.1 by default) for everything the
 * page and its callers reach:
 *
 *   GET  /config.json      the page's DeploymentConfig
 *   WS   /mqtt             the embedded broker (it attaches its own upgrade listener)
 *   POST /service/, WS /service_ws/, POST / and /rpc   the service API and work-server RPC
 *   GET  /metrics, /healthz, /readyz   for the operator (metrics.ts)
 *   GET  /api/payouts/<address>        what was paid to a payout address (payouts-api.ts)
 *   GET  anything else     the built app from `dist/` (static.ts)
 *
 * It listens before anything else starts, so a taken port fails at once; createServer
 * (../create-server.ts) then attaches each part as it comes up. Until the service API is
 * attached, its callers get a JSON 503 they can retry, never a plain-text 405.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { DeploymentConfig } from '../../dpow/deployment.ts';
import type { Logger } from '../log.ts';
import { listen } from './listen.ts';
import type { PayoutsApi } from './payouts-api.ts';
import { isServiceApiRequest, type ServiceApi } from './service-api.ts';
import type { ServerMetrics } from './metrics.ts';
import { createStaticHandler } from './static.ts';
import { clip } from '../log-limit.ts';

/** What the service API's callers get between the port opening and the API being ready. */
export const STARTING = 'Service starting, try again shortly';

/** Sent on every HTTP response. The CSP lives in index.html (a meta tag), not here. */
export const SECURITY_HEADERS: Record<string, string> = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'SAMEORIGIN',
  'Cross-Origin-Opener-Policy': 'same-origin',
};

/** Where the embedded broker's WebSocket listens on the app's port. */
export const BROKER_WS_PATH = '/mqtt';

export interface AppHttpOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 8787; 0 picks a free port (tests). */
  port?: number;
  /** The built app. Default 'dist'. */
  staticDir?: string;
  /** A service API will be attached: its callers get a 503 until it is. */
  serviceApi: boolean;
  /** The work-server RPC is on (POST / and /rpc are the service API's). */
  rpcEnabled: boolean;
  log: Logger;
}

/** The parts that answer requests, attached as they come up. */
export interface AppParts {
  deployment?: DeploymentConfig;
  /** The embedded broker listens on BROKER_WS_PATH. */
  broker?: boolean;
  serviceApi?: ServiceApi;
  metrics?: ServerMetrics;
  payouts?: PayoutsApi;
}

export class AppHttpServer {
  readonly server: http.Server;
  readonly #serveStatic: (req: http.IncomingMessage, res: http.ServerResponse) => Promise<boolean>;
  readonly #options: AppHttpOptions;
  #configBody = '';
  #broker = false;
  #serviceApi?: ServiceApi;
  #metrics?: ServerMetrics;
  #payouts?: PayoutsApi;
  /** The service API is expected and not attached yet. */
  #apiStarting: boolean;

  constructor(options: AppHttpOptions) {
    this.#options = options;
    this.#apiStarting = options.serviceApi;
    this.#serveStatic = createStaticHandler({ root: options.staticDir ?? 'dist' });
    this.server = http.createServer((req, res) => {
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
      void this.#route(req, res).catch((err: unknown) => {
        options.log.error(`http: ${clip(req.method ?? '?')} ${clip(req.url ?? '/')}: ${(err as Error).stack ?? err}`);
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end('Internal error\n');
        else res.destroy();
      });
    });
    this.server.on('clientError', (_err, socket) => socket.destroy());
    this.server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => this.#upgrade(req, socket, head));
  }

  /** Listens; resolves with the origin, `http://host:port`. */
  listen(): Promise<string> {
    return listen(this.server, this.#options.port ?? 8787, this.#options.host ?? '127.0.0.1');
  }

  /** Attaches the parts given (each replaces what was there). */
  attach(parts: AppParts): void {
    if (parts.deployment) this.#configBody = `${JSON.stringify(parts.deployment, null, 2)}\n`;
    if (parts.broker) this.#broker = true;
    if (parts.metrics) this.#metrics = parts.metrics;
    if (parts.payouts) this.#payouts = parts.payouts;
    if (parts.serviceApi) {
      this.#serviceApi = parts.serviceApi;
      this.#apiStarting = false;
    }
  }

  async close(): Promise<void> {
    this.#apiStarting = false;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  async #route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const metrics = this.#metrics;
    const serviceApi = this.#serviceApi;
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/config.json' && (req.method === 'GET' || req.method === 'HEAD')) {
      res.writeHead(200, {
        'Content-Type': 'application/json; charset=utf-8',
        'Cache-Control': 'no-cache',
        'Content-Length': Buffer.byteLength(this.#configBody),
      });
      res.end(req.method === 'HEAD' ? undefined : this.#configBody);
      return;
    }
    if (metrics && (await metrics.handleRequest(req, res))) return;
    if (serviceApi && (await serviceApi.handleRequest(req, res))) return;
    if (this.#apiStarting && isServiceApiRequest(req, this.#options.rpcEnabled)) {
      req.resume();
      const body = JSON.stringify({ error: STARTING });
      res.writeHead(503, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), 'Retry-After': '1' });
      res.end(body);
      return;
    }
    if (this.#payouts && (await this.#payouts.handleRequest(req, res))) return;
    if (await this.#serveStatic(req, res)) return;
    res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain; charset=utf-8' }).end('Method not allowed\n');
  }

  #upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const path = (req.url ?? '').split('?')[0];
    if (this.#broker && (path === BROKER_WS_PATH || path === `${BROKER_WS_PATH}/`)) return; // the broker's own listener takes it
    if (this.#serviceApi?.handleUpgrade(req, socket, head)) return;
    if (this.#apiStarting && isServiceApiRequest(req, this.#options.rpcEnabled, true)) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
  }
}
