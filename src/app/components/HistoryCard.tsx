/**
 * The payout address's history in this browser: accepted works per hour over the last day and
 * per day over the last 30, uptime and the accept rate. It survives a reload (IndexedDB); where
 * the browser cannot keep it, a short note says so. The kiosk shows the same figures compactly.
 */
import type { AppController } from '../controller.ts';
import { summarize, type HistorySummary } from '../history.ts';
import { formatCount, formatDuration, shortAddress } from '../../format.ts';

/** "97%", or a dash when nothing was published. */
export function formatShare(share: number | null): string {
  return share === null ? '—' : `${Math.round(share * 100)}%`;
}

/** Uptime as a duration and as a share of the period: "3 h 20 min (14%)", "40 s (<1%)". */
export function formatUptime(ms: number, periodMs: number): string {
  if (ms < 1000) return '0 s';
  const share = (ms / periodMs) * 100;
  return `${formatDuration(ms)} (${share < 1 ? '<1' : Math.round(share)}%)`;
}

function Bars({ values, label, from, to, testId }: { values: { start: number; accepted: number }[]; label: string; from: string; to: string; testId: string }) {
  const peak = Math.max(1, ...values.map((v) => v.accepted));
  return (
    <figure class="bars" aria-label={label} data-testid={testId} data-values={values.map((v) => v.accepted).join(',')}>
      <div class="bars-plot">
        {values.map((v) => (
          <span
            key={v.start}
            class={v.accepted > 0 ? 'bar' : 'bar bar-empty'}
            style={{ height: `${v.accepted > 0 ? Math.max(4, (v.accepted / peak) * 100) : 0}%` }}
            title={`${new Date(v.start).toLocaleString()}: ${formatCount(v.accepted)} accepted`}
          />
        ))}
      </div>
      <figcaption class="chart-axis">
        <span>{from}</span>
        <span>{label}</span>
        <span>{to}</span>
      </figcaption>
    </figure>
  );
}

/** The four numbers, shared with the kiosk (compact: shorter labels, uptime without its share). */
export function historyFacts(s: HistorySummary | null, compact = false): [string, string, string][] {
  return [
    [compact ? 'Accepted 24 h' : 'Accepted, 24 h', s ? formatCount(s.accepted24h) : '—', 'history-accepted-24h'],
    [compact ? 'Accepted 30 d' : 'Accepted, 30 days', s ? formatCount(s.accepted30d) : '—', 'history-accepted-30d'],
    [compact ? 'Accept rate' : 'Accept rate, 24 h', s ? formatShare(s.acceptRate24h) : '—', 'history-accept-rate'],
    [
      compact ? 'Uptime 24 h' : 'Uptime, 24 h',
      s ? (compact ? (s.uptime24hMs < 1000 ? '0 s' : formatDuration(s.uptime24hMs)) : formatUptime(s.uptime24hMs, 24 * 3_600_000)) : '—',
      'history-uptime',
    ],
  ];
}

export function HistoryCard({ app }: { app: AppController }) {
  const record = app.historyShown.value;
  const summary = record ? summarize(record, app.now.value) : null;
  const problem = app.historyProblem.value;
  return (
    <section class="card history" aria-labelledby="history-title" data-testid="history">
      <div class="card-head">
        <h2 id="history-title">History</h2>
        <span class="muted">in this browser</span>
      </div>
      <dl class="counter-grid">
        {historyFacts(summary).map(([label, value, id]) => (
          <div key={id}>
            <dt>{label}</dt>
            <dd data-testid={id}>{value}</dd>
          </div>
        ))}
      </dl>
      {summary ? (
        <>
          <Bars values={summary.acceptedPerHour} label="accepted per hour" from="24 h ago" to="now" testId="history-hours" />
          <Bars values={summary.acceptedPerDay} label="accepted per day" from="30 days ago" to="today" testId="history-days" />
          <p class="help">
            For <span class="mono" title={record!.address}>{shortAddress(record!.address)}</span>. Accepted: results this browser published that
            the server credited. Taking work for {formatDuration(Math.max(1000, app.sessionUptimeMs.value))} since this page opened.
          </p>
        </>
      ) : (
        <p class="empty">The history of your payout address shows here once you start.</p>
      )}
      {problem && (
        <p class="note" role="status" data-testid="history-note">
          History is kept for this page only: {problem}.
        </p>
      )}
    </section>
  );
}
