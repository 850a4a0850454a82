/**
 * What a server has paid one payout address: the JSON of `GET /api/payouts/<address>`, written
 * by the app server (server/http/payouts-api.ts) and read (loadPayouts) by the page's rewards
 * card and the headless worker's summary. One codec for both sides; the reader trusts nothing.
 *
 *   {
 *     "address": "nano_…",
 *     "paid": "<raw>",                 every payment sent to the address, ever
 *     "carried": "<raw>",              owed, waiting for the next payout
 *     "carriedReason": "…",            why it waits (below the minimum, account not opened)
 *     "payouts": [ { "at": <ms>, "amount": "<raw>", "status": "sending"|"sent"|"confirmed",
 *                    "block": "<64 hex>" } ],    newest first, at most PAYOUTS_SHOWN
 *     "serverHasPaid": true            false while this server has made no payout run at all
 *   }
 */
import { isRawString } from './nano-amount.ts';

export const PAYOUTS_PATH = '/api/payouts/';
/** Payouts listed per address; the total covers all of them. */
export const PAYOUTS_SHOWN = 10;

export type PayoutStatus = 'sending' | 'sent' | 'confirmed';

export interface PayoutEntry {
  /** When it was sent (or, still sending, when its run was made), ms since epoch. */
  at: number;
  /** Raw. */
  amount: string;
  status: PayoutStatus;
  /** The send block's hash, once sent. */
  block?: string;
}

export interface PayoutsReport {
  address: string;
  paid: string;
  carried: string;
  carriedReason?: string;
  payouts: PayoutEntry[];
  serverHasPaid: boolean;
}

/** The endpoint for `address` on the server at `base` (an origin or any URL on it). */
export function payoutsUrl(base: string, address: string): string {
  return new URL(`${PAYOUTS_PATH}${encodeURIComponent(address)}`, base).toString();
}

const STATUSES: readonly PayoutStatus[] = ['sending', 'sent', 'confirmed'];
const BLOCK = /^[0-9A-F]{64}$/;

function readEntry(input: unknown): PayoutEntry | undefined {
  if (typeof input !== 'object' || input === null) return undefined;
  const e = input as Record<string, unknown>;
  if (typeof e.at !== 'number' || !Number.isFinite(e.at) || !isRawString(e.amount) || !STATUSES.includes(e.status as PayoutStatus)) return undefined;
  if (e.block !== undefined && (typeof e.block !== 'string' || !BLOCK.test(e.block))) return undefined;
  return { at: e.at, amount: e.amount, status: e.status as PayoutStatus, ...(typeof e.block === 'string' ? { block: e.block } : {}) };
}

/** The report, or undefined when the input is not one (a proxy's error page, a different server). */
export function parsePayoutsReport(input: unknown): PayoutsReport | undefined {
  if (typeof input !== 'object' || input === null) return undefined;
  const r = input as Record<string, unknown>;
  if (typeof r.address !== 'string' || r.address.length > 100 || !isRawString(r.paid) || !isRawString(r.carried) || typeof r.serverHasPaid !== 'boolean') return undefined;
  if (!Array.isArray(r.payouts) || r.payouts.length > PAYOUTS_SHOWN) return undefined;
  const payouts = r.payouts.map(readEntry);
  if (payouts.some((p) => p === undefined)) return undefined;
  return {
    address: r.address,
    paid: r.paid,
    carried: r.carried,
    ...(typeof r.carriedReason === 'string' ? { carriedReason: r.carriedReason.slice(0, 200) } : {}),
    payouts: payouts as PayoutEntry[],
    serverHasPaid: r.serverHasPaid,
  };
}

export type PayoutsView =
  /**
   * This server has not paid: it answered that it has made no payout run (`endpoint`), or it
   * has no payouts endpoint at all (a static host, a plain broker, an older server).
   */
  | { kind: 'none'; endpoint: boolean }
  /** No answer right now (offline, rate-limited, the store busy): ask again later. */
  | { kind: 'unavailable' }
  | { kind: 'report'; report: PayoutsReport };

/** The part of fetch loadPayouts uses, so the page and Node pass their own. */
export type FetchLike = (
  url: string,
  init: { cache: 'no-cache'; headers: Record<string, string>; signal?: AbortSignal },
) => Promise<{ status: number; ok: boolean; json(): Promise<unknown> }>;

/** What the server at `base` paid `address`, as a value: nothing here throws. */
export async function loadPayouts(address: string, base: string, fetchImpl: FetchLike, signal?: AbortSignal): Promise<PayoutsView> {
  let response: Awaited<ReturnType<FetchLike>>;
  try {
    // `no-cache`: revalidate with the ETag, so a fresh payout shows at once and an unchanged one costs a 304.
    response = await fetchImpl(payoutsUrl(base, address), { cache: 'no-cache', headers: { Accept: 'application/json' }, ...(signal ? { signal } : {}) });
  } catch {
    return { kind: 'unavailable' };
  }
  if (response.status === 404 || response.status === 405) return { kind: 'none', endpoint: false };
  if (!response.ok) return { kind: 'unavailable' };
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    // HTML where JSON should be: a static host's fallback page, so no payouts endpoint there.
    return { kind: 'none', endpoint: false };
  }
  const report = parsePayoutsReport(body);
  if (!report) return { kind: 'none', endpoint: false };
  return report.serverHasPaid ? { kind: 'report', report } : { kind: 'none', endpoint: true };
}
