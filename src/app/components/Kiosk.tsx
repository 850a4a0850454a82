/**
 * Kiosk mode: a large, glanceable view for an unattended screen. No dialogs and no clicks
 * needed; it starts on its own when the URL says autostart=1.
 */
import type { AppController } from '../controller.ts';
import { formatCount, formatDuration, formatHashrate, formatMultiplier, shortAddress, shortHash } from '../format.ts';
import { BACKEND_NAMES, CONNECTION_LABELS, expectedMs, sustainedLine, workingAverageRate } from './WorkerStatus.tsx';
import { HashrateChart } from './HashrateChart.tsx';

export function Kiosk({ app, wakeLock }: { app: AppController; wakeLock: boolean }) {
  const s = app.state.value;
  const online = app.online.value;
  const status = !online ? 'Offline — waiting for the network' : CONNECTION_LABELS[s.connection];
  const stats = s.lastClientMessage?.kind === 'stats' ? s.lastClientMessage.stats : null;
  const check = app.addressCheck.value;
  const average = workingAverageRate(app.history.value);
  return (
    <main class="kiosk" data-testid="kiosk">
      <header class="kiosk-head">
        <span class={`pill pill-${online ? s.connection : 'server-offline'} pill-large`} data-testid="connection-state">
          <span class="dot" aria-hidden="true" />
          {status}
        </span>
        <span class="kiosk-title">{app.config.title}</span>
      </header>
      {!check.ok && (
        <p class="banner banner-error" role="alert">
          Kiosk needs a valid payout address in the URL: {check.reason}.
        </p>
      )}
      <section class="kiosk-rate" aria-label="Hashrate">
        {/* Between jobs the live rate is 0, which reads as "broken" from across a room: show what
            this rig does while it works instead, and say so. */}
        <span class="kiosk-number" data-testid="hashrate">
          {s.hashrate > 0 ? formatHashrate(s.hashrate) : average !== null ? formatHashrate(average) : s.current ? formatHashrate(0) : 'Idle'}
        </span>
        <span class="kiosk-sub">
          {s.hashrate > 0 || average === null ? '' : 'average while working · '}
          {s.backend ? BACKEND_NAMES[s.backend] : 'Starting…'}
          {s.backendLabel ? ` · ${s.backendLabel}` : ''}
        </span>
      </section>
      <p class="kiosk-sustained" data-testid="kiosk-sustained">
        {sustainedLine(s.sustained)}
      </p>
      <p class="kiosk-status" data-testid="kiosk-job">
        {s.current ? (
          <>
            Working on <strong>{s.current.workType === 'ondemand' ? 'on-demand' : 'precache'}</strong> work{' '}
            <span class="mono">{shortHash(s.current.hash, 6)}</span> at {formatMultiplier(s.current.multiplier)}
            {(() => {
              const eta = expectedMs(s.current.difficulty, s.hashrate);
              return eta === null ? '' : `, about ${formatDuration(eta)} expected`;
            })()}
          </>
        ) : s.connection === 'online' ? (
          'Waiting for work from the server'
        ) : (
          ''
        )}
      </p>
      <HashrateChart samples={app.history.value} height={160} />
      <dl class="kiosk-counters">
        <div>
          <dt>Published</dt>
          <dd data-testid="count-published">{formatCount(s.counters.published)}</dd>
        </div>
        <div>
          <dt>Accepted</dt>
          <dd data-testid="count-accepted">{formatCount(s.counters.accepted)}</dd>
        </div>
        <div>
          <dt>Queue</dt>
          <dd data-testid="queue-length">{formatCount(s.queue.length)}</dd>
        </div>
        <div>
          <dt>Rewarded total</dt>
          <dd>{stats ? formatCount(stats.precache + stats.ondemand) : '—'}</dd>
        </div>
      </dl>
      <footer class="kiosk-foot">
        <span class="mono">{app.settings.value.address ? shortAddress(app.settings.value.address) : ''}</span>
        <span>{wakeLock ? 'Screen kept on' : ''}</span>
      </footer>
    </main>
  );
}
