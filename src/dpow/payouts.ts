/**
 * What a server has paid one payout address: the JSON of `GET /api/payouts/<address>`, written
 * by the app server (server/http/payouts-api.ts) and read by the page's rewards card and the
 * headless worker's summary. One codec for both sides; the reader trusts nothing in it.
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
