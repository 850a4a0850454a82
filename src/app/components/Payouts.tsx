/**
 * The rewards card's payout part: what this server has paid the payout address (total, the last
 * payouts with their exact NANO amount and block, what waits for the next payout), or plainly
 * that it has not paid yet. Loaded when the card shows, again every minute, and at once when the
 * address's snapshot moves (a payout run recorded it). The kiosk shows the total from the same
 * usePayouts.
 */
import { useEffect, useState } from 'preact/hooks';
import type { ClientMessage } from '../../dpow/codec.ts';
import { formatNanoAmount } from '../../format.ts';
import { loadPayouts, type PayoutsView } from '../../dpow/payouts.ts';
import { BlockLink } from './BlockLink.tsx';
import './payouts.css';

const DATE = new Intl.DateTimeFormat('en', { dateStyle: 'medium' });
const MOMENT = new Intl.DateTimeFormat('en', { dateStyle: 'medium', timeStyle: 'short' });
const nano = (raw: string) => formatNanoAmount(BigInt(raw));
/** Asked again this often while the card shows (well inside the endpoint's 60 a minute). */
const REFRESH_MS = 60_000;

/** Where the address's payouts stand in its client/<address> counters: a payout run moves it. */
export function payoutSnapshotKey(message: ClientMessage | null): string {
  return message?.kind === 'stats' ? `${message.stats.snapshot_precache}:${message.stats.snapshot_ondemand}` : '';
}

/**
 * What this server paid `address` (null: no valid address, so nothing is asked): asked now, every
 * minute while shown, and at once when `snapshotKey` moves.
 */
export function usePayouts(address: string | null, snapshotKey: string): PayoutsView | { kind: 'loading' } {
  const [view, setView] = useState<PayoutsView | { kind: 'loading' }>({ kind: 'loading' });
  useEffect(() => {
    if (address === null) return undefined;
    let live = true;
    const load = () => void loadPayouts(address, window.location.origin, fetch).then((next) => live && setView(next));
    load();
    const timer = setInterval(load, REFRESH_MS);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [address, snapshotKey]);
  return view;
}

export function Payouts({ address, explorerTemplate, snapshotKey }: { address: string; explorerTemplate: string; snapshotKey: string }) {
  const view = usePayouts(address, snapshotKey);

  return (
    <div class="payouts" data-testid="payouts">
      <h3>Paid to you</h3>
      {view.kind === 'loading' && <p class="empty">Asking the server what it has paid…</p>}
      {view.kind === 'none' && (
        <p class="empty" data-testid="payouts-none">
          This server has not paid yet.
        </p>
      )}
      {view.kind === 'unavailable' && <p class="empty">Payouts could not be loaded just now; they are asked again in a minute.</p>}
      {view.kind === 'report' && (
        <>
          <p class="payouts-total">
            Total paid: <strong data-testid="payouts-total">{nano(view.report.paid)}</strong>
          </p>
          {view.report.carried !== '0' && (
            <p class="payouts-carried" data-testid="payouts-carried">
              Waiting for the next payout: {nano(view.report.carried)}
              {view.report.carriedReason ? ` (${view.report.carriedReason})` : ''}
            </p>
          )}
          {view.report.payouts.length === 0 ? (
            <p class="empty">Nothing paid to this address yet.</p>
          ) : (
            <div class="table-wrap">
              <table class="payouts-table">
                <caption class="sr-only">Last payouts to your address</caption>
                <thead>
                  <tr>
                    <th scope="col">Date</th>
                    <th scope="col" class="num">Amount</th>
                    <th scope="col">Block</th>
                  </tr>
                </thead>
                <tbody>
                  {view.report.payouts.map((p) => (
                    <tr key={`${p.at}-${p.block ?? ''}`} data-testid="payout-row">
                      <td title={MOMENT.format(p.at)}>{DATE.format(p.at)}</td>
                      <td class="num" data-testid="payout-amount">
                        {nano(p.amount)}
                      </td>
                      <td>{p.block ? <BlockLink hash={p.block} template={explorerTemplate} testId="payout-block" /> : 'sending…'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
        </>
      )}
    </div>
  );
}
