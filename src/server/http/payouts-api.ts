/**
 * `GET /api/payouts/<address>`: what this server has paid one payout address (the JSON is
 * dpow/payouts.ts), read-only, for the page's rewards card and the headless worker.
 *
 * - Only GET and HEAD (405 otherwise). The address is checked (prefix, length, checksum) before
 *   the store is asked: 400 with the reason.
 * - Rate-limited per caller: 60 a minute per source (an IPv4 address, an IPv6 /64), the peer or,
 *   behind a local reverse proxy, the address the proxy added last to X-Forwarded-For
 *   (request-guard.ts callerAddress); 429 with Retry-After.
 * - Bounded: the newest PAYOUTS_SHOWN payouts and the address's own totals; nothing about any
 *   other address (the payouts are on the public ledger anyway, like client/<address>).
 * - Cacheable: public for 60 s with an ETag, and 304 to a matching If-None-Match.
 * - A store that does not answer gives 503 with Retry-After, never a 500.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { checkAddress, NANO_PREFIXES } from '../../dpow/address.ts';
import { PAYOUTS_PATH, PAYOUTS_SHOWN, type PayoutsReport } from '../../dpow/payouts.ts';
import { silentLogger, type Logger } from '../log.ts';
import { clip, LogLimiter } from '../log-limit.ts';
import type { AddressPayouts } from '../store/payout-ledger.ts';
import type { DispatcherStore } from '../store/store.ts';
import { RateLimiter } from './rate-limit.ts';
import { callerAddress, sourceKey } from './request-guard.ts';

export const PAYOUTS_PER_MINUTE = 60;
const MAX_SEGMENT = 100;
const CACHE = 'public, max-age=60';

export type PayoutsOutcome = 'ok' | 'not-modified' | 'bad-method' | 'bad-address' | 'rate-limited' | 'unavailable';

export interface PayoutsApiOptions {
  store: DispatcherStore;
  log?: Logger;
  /** Requests per minute per caller. Default PAYOUTS_PER_MINUTE. */
  perMinute?: number;
  now?: () => number;
}

/** The ledger's answer as the endpoint's JSON. */
export function toPayoutsReport(address: string, found: AddressPayouts): PayoutsReport {
  return {
    address,
    paid: found.paid.toString(),
    carried: found.carried.toString(),
    ...(found.carriedReason ? { carriedReason: found.carriedReason } : {}),
    payouts: found.payments.map((p) => ({
      at: p.sentAt ?? found.runTimes[p.runId] ?? 0,
      amount: p.amount.toString(),
      status: p.status === 'planned' ? 'sending' : p.status === 'confirmed' ? 'confirmed' : 'sent',
      ...(p.block ? { block: p.block.toUpperCase() } : {}),
    })),
    serverHasPaid: found.serverRuns > 0,
  };
}

function send(req: IncomingMessage, res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(Buffer.byteLength(text)), ...headers });
  res.end(req.method === 'HEAD' ? undefined : text);
}

/** `GET /api/payouts/<address>` on the app server; its rate limiter's prune runs until close(). */
export class PayoutsApi {
  readonly counters: Record<PayoutsOutcome, number> = { ok: 0, 'not-modified': 0, 'bad-method': 0, 'bad-address': 0, 'rate-limited': 0, unavailable: 0 };
  readonly #store: DispatcherStore;
  readonly #log: Logger;
  readonly #perMinute: number;
  readonly #limiter: RateLimiter;
  /** Refusals are counted one by one and logged as one line per kind and interval. */
  readonly #refusals: LogLimiter;
  readonly #prune: ReturnType<typeof setInterval>;

  constructor(options: PayoutsApiOptions) {
    this.#store = options.store;
    this.#log = options.log ?? silentLogger;
    this.#perMinute = options.perMinute ?? PAYOUTS_PER_MINUTE;
    this.#limiter = new RateLimiter({ now: options.now });
    this.#refusals = new LogLimiter(this.#log);
    this.#prune = setInterval(() => this.#limiter.prune(), 60_000);
    this.#prune.unref();
  }

  /** Answers requests under /api/payouts/ and returns true; false for any other path. */
  async handleRequest(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const { counters } = this;
    const path = (req.url ?? '/').split('?')[0];
    if (!path.startsWith(PAYOUTS_PATH)) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      counters['bad-method']++;
      req.resume();
      send(req, res, 405, { error: 'only GET and HEAD' }, { Allow: 'GET, HEAD' });
      return true;
    }
    const caller = callerAddress(req);
    const decision = this.#limiter.take(sourceKey(caller), this.#perMinute);
    if (!decision.ok) {
      counters['rate-limited']++;
      this.#refusals.info('payouts: rate limited', `payouts: rate limit reached for ${clip(caller)}`);
      send(req, res, 429, { error: 'too many requests, try again later' }, { 'Retry-After': String(Math.ceil(decision.retryAfterMs / 1000)) });
      return true;
    }
    const segment = path.slice(PAYOUTS_PATH.length);
    const check = segment.length <= MAX_SEGMENT ? checkAddress(segment, NANO_PREFIXES) : ({ ok: false, reason: `an address has at most ${MAX_SEGMENT} characters` } as const);
    if (!check.ok) {
      counters['bad-address']++;
      this.#refusals.info('payouts: bad address', `payouts: bad address ${clip(segment)} from ${clip(caller)}: ${check.reason}`);
      send(req, res, 400, { error: check.reason });
      return true;
    }
    let found: AddressPayouts;
    try {
      found = await this.#store.payouts.forAddress(segment, PAYOUTS_SHOWN);
    } catch (err) {
      counters.unavailable++;
      this.#refusals.warn('payouts: store', `payouts: the store did not answer: ${clip((err as Error).message)}`);
      send(req, res, 503, { error: 'payouts are unavailable right now' }, { 'Retry-After': '5', 'Cache-Control': 'no-store' });
      return true;
    }
    const body = toPayoutsReport(segment, found);
    const etag = `"${createHash('sha256').update(JSON.stringify(body)).digest('base64url').slice(0, 27)}"`;
    if (req.headers['if-none-match'] === etag) {
      counters['not-modified']++;
      res.writeHead(304, { ETag: etag, 'Cache-Control': CACHE }).end();
      return true;
    }
    counters.ok++;
    send(req, res, 200, body, { ETag: etag, 'Cache-Control': CACHE });
    return true;
  }

  close(): void {
    clearInterval(this.#prune);
    this.#refusals.close();
  }
}
