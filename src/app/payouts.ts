/**
 * The rewards card's payouts: `GET /api/payouts/<address>` from the page's own origin, read with
 * the shared codec (dpow/payouts.ts). Errors are values the card can say in words; nothing here
 * throws.
 */
import { parsePayoutsReport, payoutsUrl, type PayoutsReport } from '../dpow/payouts.ts';

export type PayoutsView =
  | { kind: 'loading' }
  /** This server has made no payout run, or has no payouts endpoint (a static deployment). */
  | { kind: 'none' }
  /** No answer right now (offline, rate-limited, the server busy): tried again later. */
  | { kind: 'unavailable' }
  | { kind: 'report'; report: PayoutsReport };

/** Re-asked at most this often on new work, and at least this often while the page is open. */
export const PAYOUTS_REFRESH_MS = 60_000;

export async function loadPayouts(address: string, origin: string, fetchImpl: typeof fetch = fetch): Promise<PayoutsView> {
  let response: Response;
  try {
    // `no-cache`: revalidate with the ETag, so a fresh payout shows at once and an unchanged one costs a 304.
    response = await fetchImpl(payoutsUrl(origin, address), { cache: 'no-cache', headers: { Accept: 'application/json' } });
  } catch {
    return { kind: 'unavailable' };
  }
  if (response.status === 404 || response.status === 405) return { kind: 'none' };
  if (!response.ok) return { kind: 'unavailable' };
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    // An HTML page where JSON should be: a static host's fallback, so no payouts endpoint.
    return { kind: 'none' };
  }
  const report = parsePayoutsReport(body);
  if (!report) return { kind: 'none' };
  return report.serverHasPaid ? { kind: 'report', report } : { kind: 'none' };
}
