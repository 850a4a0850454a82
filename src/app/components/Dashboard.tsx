/** The live dashboard: worker status, current job, counters, history, personal and network stats, log. */
import type { AppController } from '../controller.ts';
import type { ClientState, SustainedRates } from '../../dpow/state.ts';
import type { KernelState } from '../../pow/types.ts';
import { formatCount, formatDuration, formatHashrate, formatMultiplier, shortAddress, shortHash } from '../../format.ts';
import { HashrateChart } from './HashrateChart.tsx';
import { EventLog } from './EventLog.tsx';
import { HistoryCard } from './HistoryCard.tsx';
import { NetworkStats, PersonalStats } from './Stats.tsx';
import { ActivityWord, BACKEND_NAMES, ConnectionPill, expectedMs, headlineText, rateDetail, useDeviceName } from './WorkerStatus.tsx';

/** The tuner's state in a word, as the backend card shows it. */
const KERNEL_STATE_WORDS: Record<KernelState, string> = {
  calibrating: 'calibrating…',
  cached: 'cached',
  tuned: 'tuned',
  forced: 'forced',
  default: 'default',
};

const KERNEL_STATE_HINTS: Record<KernelState, string> = {
  calibrating: 'Measuring each kernel variant on this device; work runs meanwhile on the best so far.',
  cached: 'The choice measured on this device before, kept in this browser.',
  tuned: 'Measured on this device just now; kept for next time.',
  forced: 'Pinned in Settings (GPU kernel).',
  default: 'Not measured yet.',
};

/** "plain-n64-w64 · 21.3 MH/s calibrated · cached" */
function kernelLine(rates: SustainedRates): string {
  const parts = [rates.kernel ?? ''];
  if (rates.calibratedRate !== null) parts.push(`${formatHashrate(rates.calibratedRate)} calibrated`);
  if (rates.kernelState) parts.push(KERNEL_STATE_WORDS[rates.kernelState]);
  return parts.join(' · ');
}

/** Why the worker is paused, and what the volunteer can do about it. */
function PauseNote({ app }: { app: AppController }) {
  const reason = app.pauseReason.value;
  if (!app.wanted.value || !reason) return null;
  return (
    <p class="warning pause-note" data-testid="pause-note">
      {reason === 'battery' && 'This device runs on battery: work resumes when it is plugged in (Settings: Pause on battery).'}
      {reason === 'hidden' && 'This page is hidden: work resumes when it is shown again (Settings: Pause when hidden).'}
      {reason === 'another-tab' && (
        <>
          Another tab of this browser is computing; this one takes over when it stops.{' '}
          <button type="button" class="btn btn-small" onClick={() => app.takeOver()} data-testid="take-over">
            Take over
          </button>
        </>
      )}
    </p>
  );
}

function WorkerCard({ app }: { app: AppController }) {
  const s = app.state.value;
  const wanted = app.wanted.value;
  const busy = app.busy.value;
  const headline = app.headline.value;
  const device = useDeviceName(s.sustained.device);
  const heartbeatAge = s.lastHeartbeatAt ? Math.max(0, app.now.value - s.lastHeartbeatAt) : null;
  return (
    <section class="card worker" aria-labelledby="worker-title">
      <div class="card-head">
        <h2 id="worker-title">Worker</h2>
        {wanted ? (
          <button type="button" class="btn btn-danger" onClick={() => void app.stop()} disabled={busy} data-testid="stop">
            Stop
          </button>
        ) : (
          <button
            type="button"
            class="btn btn-primary"
            onClick={() => void app.start()}
            disabled={busy || !app.addressCheck.value.ok}
            data-testid="start"
          >
            Start
          </button>
        )}
      </div>
      <div class="headline" data-testid="headline">
        <ActivityWord activity={app.activity.value} />
        <span class="big-number" data-testid="hashrate" data-rate={headline.rate ?? ''} data-live={String(headline.live)}>
          {headlineText(headline)}
        </span>
        <span class="muted headline-detail" data-testid="rate-detail">
          {rateDetail(headline, s.sustained)}
        </span>
      </div>
      <PauseNote app={app} />
      <HashrateChart samples={app.rateSamples.value} />
      <dl class="facts">
        <div>
          <dt>Connection</dt>
          <dd>
            <ConnectionPill state={s} wanted={wanted} />
          </dd>
        </div>
        <div>
          <dt>Heartbeat</dt>
          <dd data-testid="heartbeat">{heartbeatAge === null ? '—' : heartbeatAge < 1500 ? 'just now' : `${formatDuration(heartbeatAge)} ago`}</dd>
        </div>
        <div>
          <dt>Backend</dt>
          <dd data-testid="backend">{s.backend ? BACKEND_NAMES[s.backend] : '—'}</dd>
        </div>
        <div class="fact-wide">
          <dt>Device</dt>
          <dd data-testid="adapter" title={s.backendLabel}>
            {device ?? '—'}
          </dd>
        </div>
        <div class="fact-wide">
          <dt>Kernel</dt>
          <dd
            data-testid="kernel"
            data-variant={s.sustained.kernel ?? ''}
            data-state={s.sustained.kernelState ?? ''}
            title={s.sustained.kernelState ? KERNEL_STATE_HINTS[s.sustained.kernelState] : undefined}
          >
            {s.sustained.kernel ? kernelLine(s.sustained) : '—'}
          </dd>
        </div>
        <div>
          <dt>Payout</dt>
          <dd class="mono" title={app.settings.value.address}>
            {app.settings.value.address ? shortAddress(app.settings.value.address) : '—'}
          </dd>
        </div>
      </dl>
    </section>
  );
}

function JobCard({ state, now, rate }: { state: ClientState; now: number; rate: number | null }) {
  const job = state.current;
  const eta = job ? expectedMs(job.difficulty, rate ?? 0) : null;
  return (
    <section class="card job" aria-labelledby="job-title">
      <div class="card-head">
        <h2 id="job-title">Current job</h2>
        <span class="muted" data-testid="queue-length">
          Queue: {state.queue.length}
        </span>
      </div>
      {job ? (
        <dl class="facts" data-testid="current-job">
          <div>
            <dt>Type</dt>
            <dd>
              <span class={`tag tag-${job.workType}`}>{job.workType === 'ondemand' ? 'On demand' : 'Precache'}</span>
            </dd>
          </div>
          <div>
            <dt>Block hash</dt>
            <dd class="mono" title={job.hash}>
              {shortHash(job.hash)}
            </dd>
          </div>
          <div>
            <dt>Difficulty</dt>
            <dd title={job.difficulty}>
              {formatMultiplier(job.multiplier)} <span class="muted mono">{job.difficulty}</span>
            </dd>
          </div>
          <div>
            <dt>Expected time</dt>
            <dd>{eta === null ? '—' : `≈ ${formatDuration(eta)}`}</dd>
          </div>
          <div>
            <dt>Running for</dt>
            <dd>{formatDuration(Math.max(0, now - job.startedAt))}</dd>
          </div>
        </dl>
      ) : (
        <p class="empty">{state.connection === 'online' ? 'Waiting for work from the server…' : 'No job.'}</p>
      )}
      {state.queue.length > 0 && (
        <ol class="queue" aria-label="Queued jobs">
          {state.queue.slice(0, 5).map((q) => (
            <li key={q.hash}>
              <span class={`tag tag-${q.workType}`}>{q.workType === 'ondemand' ? 'On demand' : 'Precache'}</span>
              <span class="mono">{shortHash(q.hash, 6)}</span>
            </li>
          ))}
          {state.queue.length > 5 && <li class="muted">and {state.queue.length - 5} more</li>}
        </ol>
      )}
    </section>
  );
}

const REJECT_LABELS: Record<string, string> = {
  'bad-hash': 'bad hash',
  'bad-difficulty': 'bad difficulty',
  'difficulty-too-high': 'difficulty too high',
  duplicate: 'duplicate',
  'queue-full': 'queue full',
};

function CountersCard({ app }: { app: AppController }) {
  const c = app.session.value;
  const rejected = Object.entries(c.rejected).filter(([, n]) => n > 0);
  const rejectedTotal = rejected.reduce((sum, [, n]) => sum + n, 0);
  const items: [string, number, string, string?][] = [
    ['Received', c.received, 'received'],
    ['Computed', c.computed, 'computed'],
    ['Published', c.published, 'published'],
    ['Accepted', c.accepted, 'accepted', 'Results from this worker that the server credited'],
    ['Address total', c.addressAccepted, 'address-accepted', 'Credits to your address from every worker paying it, while this session ran'],
    ['Cancelled', c.cancelled, 'cancelled'],
    ['Expired', c.expired, 'expired'],
    ['Rejected', rejectedTotal, 'rejected'],
  ];
  return (
    <section class="card counters" aria-labelledby="counters-title">
      <div class="card-head">
        <h2 id="counters-title">This session</h2>
        <span class="muted">since this page opened</span>
      </div>
      <dl class="counter-grid">
        {items.map(([label, n, id, hint]) => (
          <div key={id} title={hint}>
            <dt>{label}</dt>
            <dd data-testid={`count-${id}`}>{formatCount(n)}</dd>
          </div>
        ))}
      </dl>
      {rejected.length > 0 && (
        <ul class="reasons" aria-label="Rejected by reason">
          {rejected.map(([code, n]) => (
            <li key={code}>
              <span>{REJECT_LABELS[code] ?? code}</span> <strong>{formatCount(n)}</strong>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}

export function Dashboard({ app }: { app: AppController }) {
  const s = app.state.value;
  return (
    <div class="dashboard">
      <WorkerCard app={app} />
      <JobCard state={s} now={app.now.value} rate={app.headline.value.rate} />
      <CountersCard app={app} />
      <HistoryCard app={app} />
      <PersonalStats app={app} />
      <NetworkStats statistics={s.lastStatistics} />
      <EventLog events={s.events} />
    </div>
  );
}
