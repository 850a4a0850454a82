/**
 * The on-demand service API and the work-server RPC, on the app server's one http.Server.
 *
 *   POST /service/      one JSON request per POST (body <= 16 KiB; Content-Type not trusted)
 *   WS   /service_ws/   one JSON request per text frame, replies carry the request's `id`
 *   POST / and /rpc     work-server RPC (work_generate, work_cancel, work_validate), see work-rpc.ts
 *
 * Every rejection is a reply with a fixed `error` text, counted by reason and logged; nothing a
 * client sends can throw out of here. Status codes and texts are listed in docs/service-api.md.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import { checkAddress } from '../../dpow/address.ts';
import { DEFAULT_POLICY, difficultyError, type DifficultyPolicy } from '../../pow/difficulty.ts';
import { fromMultiplier, isRootHex, isU64Hex, parseMultiplier, PowInputError, toU64Hex } from '../../pow/work.ts';
import { ApiKeyVerifier } from './api-keys.ts';
import { silentLogger, type Logger } from '../log.ts';
import { RateLimiter } from './rate-limit.ts';
import type { DispatcherStore, ServiceRecord } from '../store/store.ts';
import { DispatchError, type DispatcherApi } from '../types.ts';
import { WorkRpc, type WorkRpcCounters } from './work-rpc.ts';

/** Largest request body (HTTP) or frame (WebSocket) accepted. */
export const MAX_REQUEST_BYTES = 16 * 1024;
/** Requests one WebSocket may have waiting for work at once. */
export const MAX_IN_FLIGHT_PER_SOCKET = 64;

export const DEFAULT_TIMEOUT_S = 5;
export const MAX_TIMEOUT_S = 30;

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
}

export interface ServiceCounters {
  /** Requests received (HTTP and WebSocket). */
  requests: number;
  /** Requests answered with work. */
  work: number;
  /** Rejections and failures by reason (bad-json, invalid-credentials, timeout, ...). */
  errors: Record<string, number>;
  websockets: { open: number; total: number };
  rpc: WorkRpcCounters & { forbidden: number };
}

export interface ServiceApi {
  handleRequest(req: IncomingMessage, res: ServerResponse): Promise<boolean>;
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean;
  close(): void;
  readonly counters: ServiceCounters;
}

/** One reply: the HTTP status (ignored on WebSocket) and the JSON body. */
interface Reply {
  status: number;
  body: Record<string, unknown>;
  headers?: Record<string, string>;
}

class Rejection {
  constructor(
    readonly reason: string,
    readonly status: number,
    readonly body: Record<string, unknown>,
    readonly detail = '',
    readonly headers?: Record<string, string>,
  ) {}
}

const reject = (reason: string, status: number, error: string, detail = '') =>
  new Rejection(reason, status, { error }, detail);

export const ERRORS = {
  missing: 'Incorrect submission. Required information: user, api_key, hash',
  credentials: 'Invalid credentials',
  hash: 'Invalid hash',
  account: 'Invalid account',
  difficulty: 'Invalid difficulty',
  tooLow: 'Difficulty too low',
  multiplier: 'Multiplier must be a float',
  timeout: 'Timeout must be an integer between 1 and 30',
  notJson: 'Bad request (not json)',
  tooLarge: 'Bad request (too large)',
  rateLimited: 'Rate limit exceeded',
  noWork: 'Timeout reached without work',
  cancelled: 'Cancelled',
  shuttingDown: 'Service shutting down',
  internal: 'Internal error',
  forbidden: 'Forbidden',
  method: 'Method not allowed',
} as const;

const LOOPBACK_V4 = /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

/** True for 127.0.0.0/8 and ::1 (also v4-mapped). */
export function isLoopback(address: string | undefined): boolean {
  return address === '::1' || (address !== undefined && LOOPBACK_V4.test(address));
}

/** A reverse proxy on loopback makes every caller look local; these headers give it away. */
function isProxied(req: IncomingMessage): boolean {
  return ['forwarded', 'x-forwarded-for', 'x-real-ip'].some((h) => req.headers[h] !== undefined);
}

function parseJson(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const present = (v: unknown) => v !== undefined && v !== null && v !== '';

type BodyResult = { ok: true; text: string } | { ok: false; reason: 'too-large' | 'aborted' | 'bad-encoding' };

/**
 * Reads a request body up to `limit` bytes. Past it, the answer is given at once (413 with
 * `Connection: close`) and the rest is never buffered, so a huge upload costs no memory.
 */
function readBody(req: IncomingMessage, limit: number): Promise<BodyResult> {
  return new Promise((resolve) => {
    let chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      if (size > limit) return; // already answered; the rest is dropped as it arrives
      size += chunk.length;
      if (size <= limit) chunks.push(chunk);
      else {
        chunks = [];
        resolve({ ok: false, reason: 'too-large' });
      }
    });
    req.on('end', () => {
      if (size > limit) return resolve({ ok: false, reason: 'too-large' });
      try {
        resolve({ ok: true, text: new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks)) });
      } catch {
        resolve({ ok: false, reason: 'bad-encoding' });
      }
    });
    req.on('error', () => resolve({ ok: false, reason: 'aborted' }));
    req.on('aborted', () => resolve({ ok: false, reason: 'aborted' }));
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

export function createServiceApi(options: ServiceApiOptions): ServiceApi {
  const { dispatcher, store } = options;
  const log: Logger = options.log ?? silentLogger;
  const policy = options.policy ?? DEFAULT_POLICY;
  const rpcOptions = options.rpc ?? { enabled: true, allow: 'loopback' as const };
  const verifier = new ApiKeyVerifier({ now: options.now });
  const limiter = new RateLimiter({ now: options.now });
  const rpc = new WorkRpc({ dispatcher, policy, timeoutMs: rpcOptions.timeoutMs });
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_REQUEST_BYTES });
  const pruneTimer = setInterval(() => limiter.prune(), 60_000);
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

  const counters: ServiceCounters = {
    requests: 0,
    work: 0,
    errors: {},
    websockets: { open: 0, total: 0 },
    rpc: Object.assign(rpc.counters, { forbidden: 0 }),
  };

  function count(reason: string): void {
    counters.errors[reason] = (counters.errors[reason] ?? 0) + 1;
  }

  const maxText = `${toU64Hex(policy.max)} (multiplier ${policy.maxMultiplier})`;

  /** Looks the service up and checks its key; the Rejection says why not. */
  async function authenticate(user: unknown, apiKey: unknown): Promise<ServiceRecord | Rejection> {
    if (typeof user !== 'string' || typeof apiKey !== 'string' || user === '' || apiKey === '') {
      return reject('missing-fields', 400, ERRORS.missing);
    }
    const service = await store.getService(user);
    if (!service || !(await verifier.verify(user, apiKey, service.apiKeyHash))) {
      // JSON-quoted: a user name from the request must not be able to forge log lines.
      return reject('invalid-credentials', 401, ERRORS.credentials, `user ${JSON.stringify(user.slice(0, 64))}`);
    }
    const rate = limiter.take(service.user, service.rateLimit);
    if (!rate.ok) {
      const seconds = String(Math.max(1, Math.ceil(rate.retryAfterMs / 1000)));
      return new Rejection('rate-limited', 429, { error: ERRORS.rateLimited }, `user ${JSON.stringify(user)}`, { 'Retry-After': seconds });
    }
    return service;
  }

  /** The difficulty a service request asks for: `difficulty` wins over `multiplier`. */
  function serviceDifficulty(r: Record<string, unknown>): bigint | Rejection {
    let difficulty: bigint;
    if (present(r.difficulty)) {
      if (!isU64Hex(r.difficulty)) return reject('bad-difficulty', 400, ERRORS.difficulty);
      difficulty = BigInt(`0x${r.difficulty}`);
    } else if (present(r.multiplier)) {
      let m: number;
      try {
        m = parseMultiplier(r.multiplier);
      } catch (err) {
        if (err instanceof PowInputError) return reject('bad-multiplier', 400, ERRORS.multiplier);
        throw err;
      }
      if (m > policy.maxMultiplier) return reject('difficulty-too-high', 400, `Difficulty too high. Maximum: ${maxText}`);
      difficulty = fromMultiplier(m, policy.base);
    } else {
      difficulty = policy.base;
    }
    const refused = difficultyError(difficulty, policy, 'request');
    if (refused?.code === 'difficulty-too-high') return reject('difficulty-too-high', 400, `Difficulty too high. Maximum: ${maxText}`);
    if (refused) return reject('difficulty-too-low', 400, ERRORS.tooLow);
    return difficulty;
  }

  function parseTimeout(value: unknown): number | Rejection {
    if (!present(value)) return DEFAULT_TIMEOUT_S;
    const n = typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_TIMEOUT_S) {
      return reject('bad-timeout', 400, ERRORS.timeout);
    }
    return n;
  }

  /** One service request, already parsed, to one reply. Never throws. */
  async function serviceRequest(parsed: unknown, origin: string): Promise<Reply> {
    counters.requests++;
    let id: unknown;
    const withId = (body: Record<string, unknown>) => (id === undefined ? body : { ...body, id });
    try {
      if (closed) throw reject('shutting-down', 503, ERRORS.shuttingDown);
      if (!isRecord(parsed)) throw reject('missing-fields', 400, ERRORS.missing);
      const r = parsed;
      id = r.id;
      if (!present(r.user) || !present(r.api_key) || !present(r.hash)) throw reject('missing-fields', 400, ERRORS.missing);
      const service = await authenticate(r.user, r.api_key);
      if (service instanceof Rejection) throw service;
      if (!isRootHex(r.hash)) throw reject('bad-hash', 400, ERRORS.hash);
      const hash = r.hash;
      let account: string | undefined;
      if (present(r.account)) {
        const check = checkAddress(r.account);
        if (!check.ok) throw reject('bad-account', 400, ERRORS.account, check.reason);
        account = r.account as string;
      }
      const timeout = parseTimeout(r.timeout);
      if (timeout instanceof Rejection) throw timeout;
      const difficulty = serviceDifficulty(r);
      if (difficulty instanceof Rejection) throw difficulty;

      const answer = await dispatcher.requestWork({
        hash,
        difficulty,
        workType: 'ondemand',
        timeoutMs: timeout * 1000,
        service: service.user,
        // The dispatcher tracks this account for precache (DispatcherApi contract).
        account,
      });
      counters.work++;
      return { status: 200, body: withId({ work: answer.work, hash }) };
    } catch (err) {
      let rejection: Rejection;
      if (err instanceof Rejection) rejection = err;
      else if (err instanceof DispatchError && err.code === 'timeout') {
        rejection = new Rejection('timeout', 504, { error: ERRORS.noWork, timeout: true });
      } else if (err instanceof DispatchError && err.code === 'cancelled') {
        rejection = reject('cancelled', 409, ERRORS.cancelled);
      } else if (err instanceof DispatchError) {
        rejection = reject('shutting-down', 503, ERRORS.shuttingDown);
      } else if (err instanceof PowInputError && err.code === 'difficulty-too-high') {
        // The dispatcher's own ceiling is lower than this API's (configured apart).
        rejection = reject('difficulty-too-high', 400, `Difficulty too high. Maximum: ${maxText}`, err.message);
      } else {
        rejection = reject('internal', 500, ERRORS.internal, String(err));
        log.error(`service: request from ${origin} failed: ${err instanceof Error ? err.stack : String(err)}`);
      }
      count(rejection.reason);
      if (rejection.reason !== 'internal') {
        log.info(`service: ${rejection.reason} from ${origin}${rejection.detail ? `: ${rejection.detail}` : ''}`);
      }
      return { status: rejection.status, body: withId(rejection.body), headers: rejection.headers };
    }
  }

  function rejectNow(reason: string, status: number, error: string, origin: string): Reply {
    count(reason);
    log.info(`service: ${reason} from ${origin}`);
    return { status, body: { error } };
  }

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
      sendJson(res, { ...rejectNow('bad-method', 405, ERRORS.method, origin), headers: { Allow: 'POST, OPTIONS' } });
      return;
    }
    const body = await readBody(req, MAX_REQUEST_BYTES);
    if (!body.ok) {
      if (body.reason === 'aborted') return;
      counters.requests++;
      if (body.reason === 'too-large') {
        sendJson(res, { ...rejectNow('too-large', 413, ERRORS.tooLarge, origin), headers: { Connection: 'close' } });
      } else {
        sendJson(res, rejectNow('bad-json', 400, ERRORS.notJson, origin));
      }
      return;
    }
    const parsed = parseJson(body.text);
    if (!parsed.ok) {
      counters.requests++;
      sendJson(res, rejectNow('bad-json', 400, ERRORS.notJson, origin));
      return;
    }
    sendJson(res, await serviceRequest(parsed.value, origin));
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
    const body = await readBody(req, MAX_REQUEST_BYTES);
    if (!body.ok) {
      if (body.reason === 'aborted') return;
      const too = body.reason === 'too-large';
      rpc.counters.requests++;
      rpc.counters.errors[too ? 'too-large' : 'bad-json'] = (rpc.counters.errors[too ? 'too-large' : 'bad-json'] ?? 0) + 1;
      sendJson(res, { status: too ? 413 : 400, body: { error: too ? 'Request too large' : 'Unable to parse JSON' }, headers: too ? { Connection: 'close' } : undefined });
      return;
    }
    const parsed = parseJson(body.text);
    const request = parsed.ok ? parsed.value : undefined;
    if (typeof rpcOptions.allow === 'object' && rpcOptions.allow.apiKeys) {
      const r = isRecord(request) ? request : {};
      const service = await authenticate(r.user, r.api_key);
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
      let text: string | undefined;
      if (!isBinary) text = buffer.toString('utf8');
      const parsed = text === undefined ? { ok: false as const } : parseJson(text);
      if (!parsed.ok) {
        counters.requests++;
        send(rejectNow('bad-json', 400, ERRORS.notJson, origin).body);
        return;
      }
      if (inFlight >= MAX_IN_FLIGHT_PER_SOCKET) {
        counters.requests++;
        const reply = rejectNow('too-many-in-flight', 429, ERRORS.rateLimited, origin);
        const id = isRecord(parsed.value) ? parsed.value.id : undefined;
        send(id === undefined ? reply.body : { ...reply.body, id });
        return;
      }
      inFlight++;
      void serviceRequest(parsed.value, origin).then((reply) => {
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
    clearInterval(pruneTimer);
    clearInterval(pingTimer);
    for (const ws of wss.clients) ws.close(1001, 'server shutting down');
    wss.close();
  }

  return { handleRequest, handleUpgrade, close, counters };
}
