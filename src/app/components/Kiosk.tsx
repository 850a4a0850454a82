/**
 * Kiosk mode: a large, glanceable view for an unattended screen. No dialogs and no clicks
 * needed; it starts on its own when the URL says autostart=1. Its big word and number are the
 * dashboard's headline: what the worker does, and a rate that is never a false zero. Its counters
 * end with what this server has paid the address, in short (the exact amount on hover).
 */
import type { AppController } from '../controller.ts';
import { summarize } from '../history.ts';
import { formatCount, formatDuration, formatMultiplier, formatNanoAmount, formatNanoCompact, shortAddress, shortHash } from '../../format.ts';
import { ActivityWord, BACKEND_NAMES, expectedMs, headlineText, rateDetail, useDeviceName } from './WorkerStatus.tsx';
import { HashrateChart } from './HashrateChart.tsx';
import { historyFacts } from './HistoryCard.tsx';
import { payoutSnapshotKey, usePayouts } from './Payouts.tsx';

/** The total paid for a glance: cut short, "Not yet" from a server that has not paid. */
function paidText(view: ReturnType<typeof usePayouts>): string {
  if (view.kind === 'report') return formatNanoCompact(BigInt(view.report.paid));
  return view.kind === 'none' ? 'Not yet' : '—';
}

export function Kiosk({ app, wakeLock }: { app: AppController; wakeLock: boolean }) {
  const s = app.state.value;
  const stats = s.lastClientMessage?.kind === 'stats' ? s.lastClientMessage.stats : null;
  const check = app.addressCheck.value;
  const headline = app.headline.value;
  const device = useDeviceName(s.sustained.device);
  const history = app.historyShown.value;
  const facts = historyFacts(history ? summarize(history, app.now.value) : null, true);
  const paid = usePayouts(check.ok ? app.settings.value.address : null, payoutSnapshotKey(s.lastClientMessage));
  return (
    <main class="kiosk" data-testid="kiosk">
      <header class="kiosk-head">
        <ActivityWord activity={app.activity.value} large testId="kiosk-state" />
        <span class="kiosk-title">{app.config.title}</span>
      </header>
      {!check.ok && (
        <p class="banner banner-error" role="alert">
          Kiosk needs a valid payout address in the URL: {check.reason}.
        </p>
      )}
      <section class="kiosk-rate" aria-label="Hashrate">
        <span
          class={headline.rate === null ? 'kiosk-number kiosk-number-none' : 'kiosk-number'}
          data-testid="hashrate"
          data-rate={headline.rate ?? ''}
          data-live={String(headline.live)}
        >
          {headlineText(headline)}
        </span>
        <span class="kiosk-sub" data-testid="kiosk-sustained">
          {rateDetail(headline, s.sustained)}
        </span>
        <span class="kiosk-sub" data-testid="kiosk-device">
          {s.backend ? `${BACKEND_NAMES[s.backend]}${device ? ` · ${device}` : ''}` : 'The device is named with the first job'}
        </span>
      </section>
      <p class="kiosk-status" data-testid="kiosk-job">
        {s.current ? (
          <>
            Working on <strong>{s.current.workType === 'ondemand' ? 'on-demand' : 'precache'}</strong> work{' '}
            <span class="mono">{shortHash(s.current.hash, 6)}</span> at {formatMultiplier(s.current.multiplier)}
            {(() => {
              const eta = expectedMs(s.current.difficulty, headline.rate ?? 0);
              return eta === null ? '' : `, about ${formatDuration(eta)} expected`;
            })()}
          </>
        ) : app.activity.value === 'waiting' ? (
          'Waiting for work from the server'
        ) : (
          ''
        )}
      </p>
      <HashrateChart samples={app.rateSamples.value} height={160} />
      <dl class="kiosk-counters">
        <div>
          <dt>Published</dt>
          <dd data-testid="count-published">{formatCount(app.session.value.published)}</dd>
        </div>
        <div>
          <dt>Accepted</dt>
          <dd data-testid="count-accepted">{formatCount(app.session.value.accepted)}</dd>
        </div>
        {facts.map(([label, value, id]) => (
          <div key={id}>
            <dt>{label}</dt>
            <dd data-testid={id}>{value}</dd>
          </div>
        ))}
        <div>
          <dt>Queue</dt>
          <dd data-testid="queue-length">{formatCount(s.queue.length)}</dd>
        </div>
        <div>
          <dt>Rewarded total</dt>
          <dd>{stats ? formatCount(stats.precache + stats.ondemand) : '—'}</dd>
        </div>
        <div>
          <dt>Paid total</dt>
          <dd data-testid="kiosk-paid" title={paid.kind === 'report' ? formatNanoAmount(BigInt(paid.report.paid)) : undefined}>
            {paidText(paid)}
          </dd>
        </div>
      </dl>
      <footer class="kiosk-foot">
        <span class="mono">{app.settings.value.address ? shortAddress(app.settings.value.address) : ''}</span>
        {app.historyProblem.value && <span data-testid="history-note">History for this page only: {app.historyProblem.value}</span>}
        <span>{wakeLock ? 'Screen kept on' : ''}</span>
      </footer>
    </main>
  );
}
