/**
 * The transport of the on-demand service API and the work-server RPC, on the app server's one
 * http.Server: paths, body limits, JSON framing, status codes, sockets. What a request means is
 * decided elsewhere: service-request.ts (one service request to one reply) and work-rpc.ts.
 *
 *   POST /service/      one JSON request per POST (body <= 16 KiB; Content-Type not trusted)
 *   WS   /service_ws/   one JSON request per text frame, replies carry the request's `id`
 *   POST / and /rpc     work-server RPC (work_generate, work_cancel, work_validate), see work-rpc.ts
 *
 * Nothing a client sends can throw out of here. Status codes and texts are listed in
 * docs/service-api.md.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import { DEFAULT_POLICY, type DifficultyPolicy } from '../../pow/difficulty.ts';
import { silentLogger, type Logger } from '../log.ts';
import type { DispatcherStore } from '../store/store.ts';
import type { DispatcherApi } from '../types.ts';
import {
  ERRORS,
  isRecord,
  Rejection,
  ServiceRequestHandler,
  type Reply,
  type RequestCounters,
} from './service-request.ts';
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
  log?: Logger;
  /** Injectable clock for the rate limiter and key cache. */
  now?: () => number;
  /** WebSocket ping period; a socket that missed the previous pong is closed. Default 30 s. */
  wsPingMs?: number;
  /** How long a POST body may take to arrive before a 408. Default 10 s. */
  bodyTimeoutMs?: number;
}

export interface ServiceCounters extends RequestCounters {
  websockets: { open: number; total: number };
  rpc: WorkRpcCounters & { forbidden: number };
}

export interface ServiceApi {
  handleRequest(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean;
  close(): void;
  readonly counters: ServiceCounters;
}

const LOOPBACK_V4 = /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

/** True for 127.0.0.0/8 and ::1 (also v4-mapped). */
export function isLoopback(address: string | undefined): boolean {
  return address === '::1' || (address !== undefined && LOOPBACK_V4.test(address));
}

/** A reverse proxy on loopback makes every caller look local; these headers give it away. */
export function isProxied(req: IncomingMessage): boolean {
  return ['forwarded', 'x-forwarded-for', 'x-real-ip'].some((h) => req.headers[h] !== undefined);
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

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

function sendJson(res: ServerResponse, reply: Reply): void {
  if (res.headersSent || res.destroyed) return;
  const body = JSON.stringify(reply.body);
  res.writeHead(reply.status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
    'Access-Control-Allow-Origin': '*',
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

export function createServiceApi(options: ServiceApiOptions): ServiceApi {
  const { dispatcher, store } = options;
  const log: Logger = options.log ?? silentLogger;
  const policy = options.policy ?? DEFAULT_POLICY;
  const rpcOptions = options.rpc ?? { enabled: true, allow: 'loopback' as const };
  const requests = new ServiceRequestHandler({ dispatcher, store, policy, log, now: options.now });
  const rpc = new WorkRpc({ dispatcher, policy, timeoutMs: rpcOptions.timeoutMs });
  const bodyTimeoutMs = options.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS;
  // ws would close a text frame that is not UTF-8 with 1007; the docs promise an answer and an
  // open socket, so frames are decoded (strictly) here instead.
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_REQUEST_BYTES, skipUTF8Validation: true });
  const pruneTimer = setInterval(() => requests.prune(), 60_000);
  pruneTimer.unref();
  // Sockets that stop answering pings (a vanished client, a silently dropped proxy connection)
  // are closed, so they do not hold memory forever.
  const alive = new WeakMap<WebSocket, boolean>();
  const pingTimer = setInterval(() => {
    for (const ws of wss.clients) {
      if (alive.get(ws) === false) {
        ws.terminate();
        continue;
      }
      alive.set(ws, false);
      ws.ping();
    }
  }, options.wsPingMs ?? 30_000);
  pingTimer.unref();
  let closed = false;

  const counters: ServiceCounters = Object.assign(requests.counters, {
    websockets: { open: 0, total: 0 },
    rpc: Object.assign(rpc.counters, { forbidden: 0 }),
  });

  async function handleService(req: IncomingMessage, res: ServerResponse, origin: string): Promise<void> {
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
      sendJson(res, { ...requests.refuseUncounted('bad-method', 405, ERRORS.method, origin), headers: { Allow: 'POST, OPTIONS' } });
      return;
    }
    const body = await readBody(req, MAX_REQUEST_BYTES, bodyTimeoutMs);
    if (!body.ok) {
      if (body.reason === 'aborted') return;
      if (body.reason === 'body-timeout') {
        sendJson(res, { ...requests.refuse('body-timeout', 408, ERRORS.bodyTimeout, origin), headers: { Connection: 'close' } });
      } else if (body.reason === 'too-large') {
        sendJson(res, { ...requests.refuse('too-large', 413, ERRORS.tooLarge, origin), headers: { Connection: 'close' } });
      } else {
        sendJson(res, requests.refuse('bad-json', 400, ERRORS.notJson, origin));
      }
      return;
    }
    const parsed = parseJson(body.text);
    if (!parsed.ok) {
      sendJson(res, requests.refuse('bad-json', 400, ERRORS.notJson, origin));
      return;
    }
    sendJson(res, await requests.handle(parsed.value, origin));
  }

  async function handleRpc(req: IncomingMessage, res: ServerResponse, origin: string): Promise<void> {
    const forbid = (why: string) => {
      counters.rpc.forbidden++;
      log.info(`rpc: forbidden for ${origin} (${why})`);
      sendJson(res, { status: 403, body: { error: ERRORS.forbidden } });
    };
    if (rpcOptions.allow === 'loopback' && (!isLoopback(req.socket.remoteAddress) || isProxied(req))) {
      req.resume();
      return forbid(isProxied(req) ? 'forwarded by a proxy' : 'not loopback');
    }
    const body = await readBody(req, MAX_REQUEST_BYTES, bodyTimeoutMs);
    if (!body.ok) {
      if (body.reason === 'aborted') return;
      rpc.counters.requests++;
      if (body.reason === 'body-timeout') {
        rpc.counters.errors['body-timeout'] = (rpc.counters.errors['body-timeout'] ?? 0) + 1;
        sendJson(res, { status: 408, body: { error: ERRORS.bodyTimeout }, headers: { Connection: 'close' } });
        return;
      }
      const too = body.reason === 'too-large';
      rpc.counters.errors[too ? 'too-large' : 'bad-json'] = (rpc.counters.errors[too ? 'too-large' : 'bad-json'] ?? 0) + 1;
      sendJson(res, { status: too ? 413 : 400, body: { error: too ? 'Request too large' : 'Unable to parse JSON' }, headers: too ? { Connection: 'close' } : undefined });
      return;
    }
    const parsed = parseJson(body.text);
    const request = parsed.ok ? parsed.value : undefined;
    if (typeof rpcOptions.allow === 'object' && rpcOptions.allow.apiKeys) {
      const r = isRecord(request) ? request : {};
      const service = await requests.authenticate(r.user, r.api_key);
      if (service instanceof Rejection) {
        counters.rpc.forbidden++;
        log.info(`rpc: ${service.reason} from ${origin}`);
        const error = service.reason === 'rate-limited' ? ERRORS.rateLimited : ERRORS.forbidden;
        sendJson(res, { status: service.reason === 'rate-limited' ? 429 : 403, body: { error }, headers: service.headers });
        return;
      }
    }
    let reply;
    try {
      reply = await rpc.handle(request);
    } catch (err) {
      log.error(`rpc: request from ${origin} failed: ${err instanceof Error ? err.stack : String(err)}`);
      reply = { status: 500, body: { error: ERRORS.internal } };
    }
    if (reply.status !== 200) log.info(`rpc: ${String(reply.body.error)} for ${origin}`);
    sendJson(res, reply);
  }

  async function handleRequest(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const path = pathOf(req);
    const origin = `${req.socket.remoteAddress ?? '?'}`;
    try {
      if (SERVICE_PATHS.has(path)) {
        await handleService(req, res, origin);
        return true;
      }
      if (rpcOptions.enabled && RPC_PATHS.has(path) && req.method === 'POST') {
        await handleRpc(req, res, origin);
        return true;
      }
    } catch (err) {
      // Nothing above should throw; if it does, answer and keep serving.
      log.error(`service: unexpected failure for ${origin}: ${err instanceof Error ? err.stack : String(err)}`);
      sendJson(res, { status: 500, body: { error: ERRORS.internal } });
      return true;
    }
    return false;
  }

  function onSocket(ws: WebSocket, origin: string): void {
    counters.websockets.open++;
    counters.websockets.total++;
    let inFlight = 0;
    alive.set(ws, true);
    ws.on('pong', () => alive.set(ws, true));
    const send = (body: Record<string, unknown>) => {
      if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(body));
    };
    ws.on('message', (data: RawData, isBinary: boolean) => {
      const buffer = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
      const text = isBinary ? undefined : decodeUtf8(buffer);
      const parsed = text === undefined ? { ok: false as const } : parseJson(text);
      if (!parsed.ok) {
        send(requests.refuse('bad-json', 400, ERRORS.notJson, origin).body);
        return;
      }
      if (inFlight >= MAX_IN_FLIGHT_PER_SOCKET) {
        const reply = requests.refuse('too-many-in-flight', 429, ERRORS.rateLimited, origin);
        const id = isRecord(parsed.value) ? parsed.value.id : undefined;
        send(id === undefined ? reply.body : { ...reply.body, id });
        return;
      }
      inFlight++;
      void requests.handle(parsed.value, origin).then((reply) => {
        inFlight--;
        send(reply.body);
      });
    });
    ws.on('error', (err) => log.info(`service_ws: socket error from ${origin}: ${err.message}`));
    ws.on('close', () => {
      counters.websockets.open--;
    });
  }

  function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    if (!SERVICE_WS_PATHS.has(pathOf(req))) return false;
    if (closed) {
      socket.destroy();
      return true;
    }
    const origin = `${req.socket.remoteAddress ?? '?'}`;
    wss.handleUpgrade(req, socket, head, (ws) => onSocket(ws, origin));
    return true;
  }

  function close(): void {
    if (closed) return;
    closed = true;
    requests.close();
    clearInterval(pruneTimer);
    clearInterval(pingTimer);
    for (const ws of wss.clients) ws.close(1001, 'server shutting down');
    wss.close();
  }

  return { handleRequest, handleUpgrade, close, counters };
}
