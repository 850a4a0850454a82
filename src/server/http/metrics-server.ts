/**
 * The operator's endpoints of metrics.ts on an http.Server of their own, for a process with no
 * app server to serve them beside (`dpow-web start --dispatcher-only --metrics-port N`):
 *
 *   GET /metrics, /healthz, /readyz   as metrics.ts answers them
 *   anything else                     404
 */
import http from 'node:http';
import { silentLogger } from '../log.ts';
import { SECURITY_HEADERS } from './app-server.ts';
import { listen } from './listen.ts';
import { ServerMetrics, type ServerMetricsOptions } from './metrics.ts';
import { createRequestGuard } from './request-guard.ts';
import { clip } from '../log-limit.ts';

export interface MetricsServerOptions extends ServerMetricsOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Names it is reached by besides its addresses and `host`: /metrics refuses other Host names. */
  publicNames?: string[];
  /** 0 picks a free port. */
  port: number;
}

/** The operator's endpoints on their own port; MetricsServer.start() resolves once it listens. */
export class MetricsServer {
  /** Feeds started later report through metrics.addFeed. */
  readonly metrics: ServerMetrics;
  readonly server: http.Server;
  /** http://host:port/ */
  readonly url: string;

  static async start(options: MetricsServerOptions): Promise<MetricsServer> {
    const { host = '127.0.0.1', port, publicNames, ...metricsOptions } = options;
    const log = options.log ?? silentLogger;
    const metrics = new ServerMetrics({ guard: createRequestGuard({ host, publicNames }), ...metricsOptions });
    const server = http.createServer((req, res) => {
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
      void metrics
        .handleRequest(req, res)
        .then((handled) => {
          if (!handled) res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end('Not found\n');
        })
        .catch((err: unknown) => {
          log.error(`http: ${clip(req.method ?? '?')} ${clip(req.url ?? '/')}: ${(err as Error).stack ?? err}`);
          if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain; charset=utf-8' }).end('Internal error\n');
          else res.destroy();
        });
    });
    server.on('clientError', (_err, socket) => socket.destroy());
    try {
      return new MetricsServer(metrics, server, `${await listen(server, port, host)}/`);
    } catch (err) {
      metrics.close();
      throw err;
    }
  }

  private constructor(metrics: ServerMetrics, server: http.Server, url: string) {
    this.metrics = metrics;
    this.server = server;
    this.url = url;
  }

  async close(): Promise<void> {
    this.metrics.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
