/**
 * The transport of the on-demand service API and the work-server RPC, on the app server's one
 * http.Server: paths, body limits, JSON framing, status codes, sockets. What a request means is
 * decided elsewhere: service-request.ts (one service request to one reply) and work-rpc.ts.
 *
 *   POST /service/      one JSON request per POST (body <= 16 KiB; Content-Type not trusted)
 *   WS   /service_ws/   one JSON request per text frame, replies carry the request's `id`
 *   POST / and /rpc     work-server RPC (work_generate, work_cancel, work_validate), see work-rpc.ts
 *
 * Every body and frame is parsed by parseBoundedJson (size and nesting bounded before anything
 * walks it). The service API is public and grants CORS (its key travels in the body); the RPC
 * grants none and is refused to other web pages and foreign Host names (request-guard.ts).
 * Nothing a client sends can throw out of here. Status codes and texts are listed in
 * docs/service-api.md.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import { DEFAULT_POLICY, type DifficultyPolicy } from '../../pow/difficulty.ts';
import { parseBoundedJson, type JsonResult } from '../bounded-json.ts';
import { clip, LogLimiter } from '../log-limit.ts';
import { silentLogger, type Logger } from '../log.ts';
import type { DispatcherStore } from '../store/store.ts';
import { RPC_REQUESTER, serviceRequester, type DispatcherApi, type Requester } from '../types.ts';
import {
  ERRORS,
  isRecord,
  Rejection,
  requestId,
  ServiceRequestHandler,
  type Reply,
  type RequestCounters,
} from './service-request.ts';
import { callerAddress, createRequestGuard, isLoopback, isProxied, sourceKey, type RequestGuard } from './request-guard.ts';
import { admitUpgrade, ConnectionLimit, DEFAULT_CONNECTION_CAPS, type ConnectionCaps, type RefusalReason } from '../connection-limit.ts';
import { WorkRpc, type WorkRpcCounters } from './work-rpc.ts';

/** Largest request body (HTTP) or frame (WebSocket) accepted. */
export const MAX_REQUEST_BYTES = 16 * 1024;
/** Requests one WebSocket may have waiting for work at once. */
export const MAX_IN_FLIGHT_PER_SOCKET = 64;

export type RpcAllow = 'loopback' | 'any' | { apiKeys: true };

export interface ServiceApiOptions {
  dispatcher: DispatcherApi;
  store: DispatcherStore;
  /** Base, floor and ceiling for both surfaces; share the dispatcher's. Default DEFAULT_POLICY. */
  policy?: DifficultyPolicy;
  /** Work-server RPC on POST / and /rpc. Default: enabled, loopback callers only. */
  rpc?: { enabled: boolean; allow: RpcAllow; timeoutMs?: number };
  /** Who may drive the RPC by Host and Origin. Default: createRequestGuard() (addresses and localhost). */
  guard?: RequestGuard;
  log?: Logger;
  /** Injectable clock for the rate limiter and key cache. */
  now?: () => number;
  /** WebSocket ping period; a socket that missed the previous pong is closed. Default 30 s. */
  wsPingMs?: number;
  /** How long a POST body may take to arrive before a 408. Default 10 s. */
  bodyTimeoutMs?: number;
  /** WebSockets to /service_ws/ one source may hold open, and all together. Default 64 and 10,000. */
  socketCaps?: Partial<ConnectionCaps>;
}

export interface ServiceCounters extends RequestCounters {
  websockets: { open: number; total: number };
  /** /service_ws/ upgrades refused over a cap, by which. */
  socketsRefused: Record<RefusalReason, number>;
  rpc: WorkRpcCounters & { forbidden: number };
}

/** A request body or frame, bounded in size and nesting. */
const parseRequest = (text: string): JsonResult => parseBoundedJson(text, { maxBytes: MAX_REQUEST_BYTES });

/** The text of strict UTF-8 bytes, or undefined if they are not UTF-8. */
function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

type BodyResult = { ok: true; text: string } | { ok: false; reason: 'too-large' | 'aborted' | 'bad-encoding' | 'body-timeout' };

/** How long a request body may take to arrive, by default. */
export const DEFAULT_BODY_TIMEOUT_MS = 10_000;

/**
 * Reads a request body up to `limit` bytes. Past it, the answer is given at once (413 with
 * `Connection: close`) and the rest is never buffered, so a huge upload costs no memory. A body
 * not complete within `timeoutMs` is given up (408), so a caller that sends half a body cannot
 * hold a socket for Node's default five minutes.
 */
function readBody(req: IncomingMessage, limit: number, timeoutMs: number): Promise<BodyResult> {
  return new Promise((resolve) => {
    let chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => {
      chunks = [];
      resolve({ ok: false, reason: 'body-timeout' });
    }, timeoutMs);
    const settle = (result: BodyResult) => {
      clearTimeout(timer);
      resolve(result);
    };
    req.on('data', (chunk: Buffer) => {
      if (size > limit) return; // already answered; the rest is dropped as it arrives
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
      else {
        chunks = [];
        settle({ ok: false, reason: 'too-large' });
      }
    });
    req.on('end', () => {
      if (size > limit) return settle({ ok: false, reason: 'too-large' });
      const text = decodeUtf8(Buffer.concat(chunks));
      settle(text === undefined ? { ok: false, reason: 'bad-encoding' } : { ok: true, text });
    });
    req.on('error', () => settle({ ok: false, reason: 'aborted' }));
    req.on('aborted', () => settle({ ok: false, reason: 'aborted' }));
  });
}

/** The service API's replies may be read by any page (`cors`); the RPC's by none. */
function sendJson(res: ServerResponse, reply: Reply, cors = false): void {
  if (res.headersSent || res.destroyed) return;
  const body = JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    ...(cors ? { 'Access-Control-Allow-Origin': '*' } : {}),
    ...reply.headers,
  });
  res.end(body);
}

function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

const SERVICE_PATHS = new Set(['/service', '/service/']);
const SERVICE_WS_PATHS = new Set(['/service_ws', '/service_ws/']);
const RPC_PATHS = new Set(['/', '/rpc', '/rpc/']);

/**
 * Whether the service API answers this request (an upgrade when `upgrade` is set): the app
 * server asks while the API is not ready yet, to answer a JSON 503 instead of its own 405.
 */
export function isServiceApiRequest(req: IncomingMessage, rpcEnabled: boolean, upgrade = false): boolean {
  const path = pathOf(req);
  if (upgrade) return SERVICE_WS_PATHS.has(path);
  return SERVICE_PATHS.has(path) || (rpcEnabled && RPC_PATHS.has(path) && req.method === 'POST');
}

/**
 * The service API and the RPC on one http.Server: the app server hands it each request and
 * upgrade (handleRequest, handleUpgrade), and it answers what is its own. Its timers (the WebSocket
 * pings, the rate limiter's prune) run from construction until close().
 */
export class ServiceApi {
  readonly counters: ServiceCounters;
  readonly #log: Logger;
  readonly #rpcOptions: NonNullable<ServiceApiOptions['rpc']>;
  readonly #requests: ServiceRequestHandler;
  readonly #rpc: WorkRpc;
  readonly #bodyTimeoutMs: number;
  readonly #guard: RequestGuard;
  /** Refusals, RPC errors and socket errors: one line per kind per interval however many come. */
  readonly #refusalLog: LogLimiter;
  /** A service keeps a socket or a few: the caps bound what strangers can hold open. */
  readonly #sockets: ConnectionLimit;
  readonly #wss: WebSocketServer;
  /** Whether each socket answered the last ping. */
  readonly #alive = new WeakMap<WebSocket, boolean>();
  readonly #pruneTimer: ReturnType<typeof setInterval>;
  readonly #pingTimer: ReturnType<typeof setInterval>;
  #closed = false;

  constructor(options: ServiceApiOptions) {
    const { dispatcher, store } = options;
    const policy = options.policy ?? DEFAULT_POLICY;
    this.#log = options.log ?? silentLogger;
    this.#rpcOptions = options.rpc ?? { enabled: true, allow: 'loopback' };
    this.#requests = new ServiceRequestHandler({ dispatcher, store, policy, log: this.#log, now: options.now });
    this.#rpc = new WorkRpc({ dispatcher, policy, timeoutMs: this.#rpcOptions.timeoutMs });
    this.#bodyTimeoutMs = options.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS;
    this.#guard = options.guard ?? createRequestGuard();
    this.#refusalLog = new LogLimiter(this.#log, { now: options.now });
    this.#sockets = new ConnectionLimit({ perSource: 64, total: DEFAULT_CONNECTION_CAPS.total, ...options.socketCaps });
    // ws would close a text frame that is not UTF-8 with 1007; the docs promise an answer and an
    // open socket, so frames are decoded (strictly) here instead.
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: MAX_REQUEST_BYTES, skipUTF8Validation: true });
    this.counters = Object.assign(this.#requests.counters, {
      websockets: { open: 0, total: 0 },
      socketsRefused: this.#sockets.counters.refused,
      rpc: Object.assign(this.#rpc.counters, { forbidden: 0 }),
    });
    this.#pruneTimer = setInterval(() => this.#requests.prune(), 60_000);
    this.#pruneTimer.unref();
    // Sockets that stop answering pings (a vanished client, a silently dropped proxy connection)
    // are closed, so they do not hold memory forever.
    this.#pingTimer = setInterval(() => {
      for (const ws of this.#wss.clients) {
        if (this.#alive.get(ws) === false) {
          ws.terminate();
          continue;
        }
        this.#alive.set(ws, false);
        ws.ping();
      }
    }, options.wsPingMs ?? 30_000);
    this.#pingTimer.unref();
  }

  /** Answers the request when it is the service API's or the RPC's; false leaves it to the caller. */
  async handleRequest(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const path = pathOf(req);
    const source = sourceKey(callerAddress(req));
    try {
      if (SERVICE_PATHS.has(path)) {
        await this.#handleService(req, res, source);
        return true;
      }
      if (this.#rpcOptions.enabled && RPC_PATHS.has(path) && req.method === 'POST') {
        await this.#handleRpc(req, res, source);
        return true;
      }
    } catch (err) {
      // Nothing above should throw; if it does, answer and keep serving.
      this.#log.error(`service: unexpected failure for ${source}: ${err instanceof Error ? err.stack : String(err)}`);
      sendJson(res, { status: 500, body: { error: ERRORS.internal } });
      return true;
    }
    return false;
  }

  /** Takes a WebSocket upgrade to /service_ws/; false leaves any other path to the caller. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    if (!SERVICE_WS_PATHS.has(pathOf(req))) return false;
    if (this.#closed) {
      socket.destroy();
      return true;
    }
    const admission = admitUpgrade((address, exempt) => this.#sockets.admit(address, exempt), req, socket);
    if (!admission.ok) {
      this.#refusalLog.warn(`service: refused socket (${admission.reason})`, `service: refused a socket from ${clip(admission.source)}: ${admission.why}`);
      return true;
    }
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#onSocket(ws, admission.source));
    return true;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#requests.close();
    this.#refusalLog.close();
    clearInterval(this.#pruneTimer);
    clearInterval(this.#pingTimer);
    for (const ws of this.#wss.clients) ws.close(1001, 'server shutting down');
    this.#wss.close();
  }

  async #handleService(req: IncomingMessage, res: ServerResponse, source: string): Promise<void> {
    const requests = this.#requests;
    const send = (reply: Reply) => sendJson(res, reply, true);
    if (req.method === 'OPTIONS') {
      res.writeHead(204, {
        'Access-Control-Allow-Origin': '*',
        'Access-Control-Allow-Methods': 'POST, OPTIONS',
        'Access-Control-Allow-Headers': 'Content-Type',
        'Access-Control-Max-Age': '86400',
      });
      res.end();
      return;
    }
    if (req.method !== 'POST') {
      send({ ...requests.refuseUncounted('bad-method', 405, ERRORS.method, source), headers: { Allow: 'POST, OPTIONS' } });
      return;
    }
    const body = await readBody(req, MAX_REQUEST_BYTES, this.#bodyTimeoutMs);
    if (!body.ok) {
      if (body.reason === 'aborted') return;
      if (body.reason === 'body-timeout') {
        send({ ...requests.refuse('body-timeout', 408, ERRORS.bodyTimeout, source), headers: { Connection: 'close' } });
      } else if (body.reason === 'too-large') {
        send({ ...requests.refuse('too-large', 413, ERRORS.tooLarge, source), headers: { Connection: 'close' } });
      } else {
        send(requests.refuse('bad-json', 400, ERRORS.notJson, source));
      }
      return;
    }
    const parsed = parseRequest(body.text);
    if (!parsed.ok) {
      send(this.#refuseUnparsed(parsed.reason, source));
      return;
    }
    send(await requests.handle(parsed.value, source));
  }

  /** The answer to a body or frame parseBoundedJson refused. */
  #refuseUnparsed(reason: 'too-large' | 'too-deep' | 'not-json', source: string): Reply {
    if (reason === 'too-large') return { ...this.#requests.refuse('too-large', 413, ERRORS.tooLarge, source), headers: { Connection: 'close' } };
    return this.#requests.refuse(reason === 'too-deep' ? 'too-deep' : 'bad-json', 400, ERRORS.notJson, source);
  }

  /** One RPC refusal or error: counted under `reason`, logged once per kind per interval. */
  #rpcError(reason: string, source: string, detail: string): void {
    this.counters.rpc.errors[reason] = (this.counters.rpc.errors[reason] ?? 0) + 1;
    this.#refusalLog.info(`rpc: ${reason}`, `rpc: ${reason} from ${source}${detail ? ` (${detail})` : ''}`);
  }

  async #handleRpc(req: IncomingMessage, res: ServerResponse, source: string): Promise<void> {
    const { counters } = this;
    const rpc = this.#rpc;
    const forbid = (why: string) => {
      counters.rpc.forbidden++;
      this.#refusalLog.info('rpc: forbidden', `rpc: forbidden for ${source} (${why})`);
      sendJson(res, { status: 403, body: { error: ERRORS.forbidden } });
    };
    const refused = this.#guard(req);
    if (refused) {
      req.resume();
      rpc.counters.requests++;
      this.#rpcError(refused.reason, source, clip(refused.detail));
      sendJson(res, { status: 403, body: { error: ERRORS.forbidden } });
      return;
    }
    if (this.#rpcOptions.allow === 'loopback' && (!isLoopback(req.socket.remoteAddress) || isProxied(req))) {
      req.resume();
      return forbid(isProxied(req) ? 'forwarded by a proxy' : 'not loopback');
    }
    const body = await readBody(req, MAX_REQUEST_BYTES, this.#bodyTimeoutMs);
    if (!body.ok) {
      if (body.reason === 'aborted') return;
      rpc.counters.requests++;
      if (body.reason === 'body-timeout') {
        this.#rpcError('body-timeout', source, '');
        sendJson(res, { status: 408, body: { error: ERRORS.bodyTimeout }, headers: { Connection: 'close' } });
        return;
      }
      const too = body.reason === 'too-large';
      this.#rpcError(too ? 'too-large' : 'bad-json', source, '');
      sendJson(res, { status: too ? 413 : 400, body: { error: too ? 'Request too large' : 'Unable to parse JSON' }, headers: too ? { Connection: 'close' } : undefined });
      return;
    }
    const parsed = parseRequest(body.text);
    if (!parsed.ok && parsed.reason === 'too-deep') {
      rpc.counters.requests++;
      this.#rpcError('too-deep', source, '');
      sendJson(res, { status: 400, body: { error: 'Unable to parse JSON' } });
      return;
    }
    const request = parsed.ok ? parsed.value : undefined;
    // Who the caller is, for work_cancel: a service in API-key mode, else the RPC's one requester.
    let requester: Requester = RPC_REQUESTER;
    const allow = this.#rpcOptions.allow;
    if (typeof allow === 'object' && allow.apiKeys) {
      const r = isRecord(request) ? request : {};
      const service = await this.#requests.authenticate(r.user, r.api_key, source);
      if (service instanceof Rejection) {
        counters.rpc.forbidden++;
        this.#refusalLog.info(`rpc: ${service.reason}`, `rpc: ${service.reason} from ${source}${service.detail ? `: ${service.detail}` : ''}`);
        const error = service.reason === 'rate-limited' ? ERRORS.rateLimited : ERRORS.forbidden;
        sendJson(res, { status: service.reason === 'rate-limited' ? 429 : 403, body: { error }, headers: service.headers });
        return;
      }
      requester = serviceRequester(service.user);
    }
    let reply;
    try {
      reply = await rpc.handle(request, requester);
    } catch (err) {
      this.#log.error(`rpc: request from ${source} failed: ${err instanceof Error ? err.stack : String(err)}`);
      reply = { status: 500, body: { error: ERRORS.internal } };
    }
    // The error texts are the RPC's own fixed ones: a small table of kinds.
    if (reply.status !== 200) this.#refusalLog.info(`rpc: ${String(reply.body.error)}`, `rpc: ${String(reply.body.error)} for ${source}`);
    sendJson(res, reply);
  }

  #onSocket(ws: WebSocket, source: string): void {
    const { counters } = this;
    const log = this.#log;
    counters.websockets.open++;
    counters.websockets.total++;
    let inFlight = 0;
    this.#alive.set(ws, true);
    ws.on('pong', () => this.#alive.set(ws, true));
    // Replies carry only what this server wrote or checked (an id passed requestId), so
    // stringify cannot meet a caller's structure; still, a failure here must not end the process.
    const send = (body: Record<string, unknown>) => {
      if (ws.readyState !== ws.OPEN) return;
      try {
        ws.send(JSON.stringify(body));
      } catch (err) {
        log.error(`service_ws: reply to ${source} failed: ${err instanceof Error ? err.stack : String(err)}`);
      }
    };
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const buffer = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      const text = isBinary ? undefined : decodeUtf8(buffer);
      const parsed = text === undefined ? undefined : parseRequest(text);
      if (!parsed?.ok) {
        send(this.#refuseUnparsed(parsed?.reason ?? 'not-json', source).body);
        return;
      }
      if (inFlight >= MAX_IN_FLIGHT_PER_SOCKET) {
        const id = requestId(parsed.value);
        send(this.#requests.refuse('too-many-in-flight', 429, ERRORS.rateLimited, source, id instanceof Rejection ? undefined : id).body);
        return;
      }
      inFlight++;
      this.#requests
        .handle(parsed.value, source)
        .then((reply) => send(reply.body))
        .catch((err: unknown) => log.error(`service_ws: request from ${source} failed: ${err instanceof Error ? err.stack : String(err)}`))
        .finally(() => inFlight--);
    });
    ws.on('error', (err) => this.#refusalLog.info('service_ws: socket error', `service_ws: socket error from ${source}: ${clip(err.message)}`));
    ws.on('close', () => {
      counters.websockets.open--;
    });
  }
}
