/** Personal stats (client/<address>) and the network's statistics table. */
import type { AppController } from '../controller.ts';
import type { Statistics } from '../../dpow/codec.ts';
import { formatCount } from '../../format.ts';
import { safeHref } from '../links.ts';
import { BlockLink } from './BlockLink.tsx';
import { Payouts, payoutSnapshotKey } from './Payouts.tsx';

export function PersonalStats({ app }: { app: AppController }) {
  const msg = app.state.value.lastClientMessage;
  return (
    <section class="card personal" aria-labelledby="personal-title" data-testid="personal-stats">
      <h2 id="personal-title">Your rewards</h2>
      {!msg && <p class="empty">Counts arrive from the server after your first accepted work.</p>}
      {msg?.kind === 'error' && (
        <p class="warning" role="alert" data-testid="personal-error">
          {msg.error}
        </p>
      )}
      {msg?.kind === 'stats' && (
        <>
          <table class="personal-table">
            <caption class="sr-only">Work credited to your address</caption>
            <thead>
              <tr>
                <th scope="col">Work</th>
                <th scope="col" class="num">Total</th>
                <th scope="col" class="num">Since last payout</th>
              </tr>
            </thead>
            <tbody>
              <tr>
                <th scope="row">Precache</th>
                <td class="num big" data-testid="personal-precache">{formatCount(msg.stats.precache)}</td>
                <td class="num">{formatCount(Math.max(0, msg.stats.precache - msg.stats.snapshot_precache))}</td>
              </tr>
              <tr>
                <th scope="row">On demand</th>
                <td class="num big" data-testid="personal-ondemand">{formatCount(msg.stats.ondemand)}</td>
                <td class="num">{formatCount(Math.max(0, msg.stats.ondemand - msg.stats.snapshot_ondemand))}</td>
              </tr>
            </tbody>
          </table>
          {msg.stats.block_rewarded && (
            <p class="rewarded">
              Last rewarded block:{' '}
              <BlockLink hash={msg.stats.block_rewarded} template={app.config.explorerBlockUrl} testId="rewarded-block" />
            </p>
          )}
        </>
      )}
      {app.addressCheck.value.ok && (
        <Payouts
          address={app.settings.value.address}
          explorerTemplate={app.config.explorerBlockUrl}
          snapshotKey={payoutSnapshotKey(msg)}
        />
      )}
    </section>
  );
}

export function NetworkStats({ statistics }: { statistics: Statistics | null }) {
  return (
    <section class="card network" aria-labelledby="network-title" data-testid="network-stats">
      <h2 id="network-title">Network</h2>
      {!statistics ? (
        <p class="empty">No network statistics from the server yet (they arrive as soon as it is reached).</p>
      ) : (
        <div class="table-wrap">
          <table>
            <caption class="sr-only">Work done for each service</caption>
            <thead>
              <tr>
                <th scope="col">Service</th>
                <th scope="col" class="num">Precache</th>
                <th scope="col" class="num">On demand</th>
              </tr>
            </thead>
            <tbody>
              {statistics.services.public.map((svc, i) => {
                const href = safeHref(svc.website);
                return (
                  <tr key={`${svc.display}-${i}`}>
                    <th scope="row">
                      {href ? (
                        <a href={href} target="_blank" rel="noopener noreferrer">
                          {svc.display}
                        </a>
                      ) : (
                        svc.display
                      )}
                    </th>
                    <td class="num">{formatCount(svc.precache)}</td>
                    <td class="num">{formatCount(svc.ondemand)}</td>
                  </tr>
                );
              })}
              <tr class="private">
                <th scope="row">
                  {formatCount(statistics.services.private.count)} private service
                  {statistics.services.private.count === 1 ? '' : 's'}
                </th>
                <td class="num">{formatCount(statistics.services.private.precache)}</td>
                <td class="num">{formatCount(statistics.services.private.ondemand)}</td>
              </tr>
            </tbody>
            <tfoot>
              <tr>
                <th scope="row">Total work</th>
                <td class="num" data-testid="network-precache">{formatCount(statistics.work.precache)}</td>
                <td class="num" data-testid="network-ondemand">{formatCount(statistics.work.ondemand)}</td>
              </tr>
            </tfoot>
          </table>
        </div>
      )}
    </section>
  );
}
