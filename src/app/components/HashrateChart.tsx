/**
 * The rate while computing over the last few minutes, one point per interval (the controller's
 * rateSamples), as an SVG line. An interval with no computing is a gap, not a zero, and a fast GPU
 * whose jobs take milliseconds still draws its rate.
 */
import { formatHashrate } from '../../format.ts';
import { CHART_INTERVAL_MS, CHART_POINTS } from '../controller.ts';

/** 1, 2 or 5 times a power of ten, at or above v: round axis labels. */
function niceCeiling(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/** The samples as runs of consecutive points; a null ends a run. */
function runs(samples: (number | null)[]): { x: number; v: number }[][] {
  const out: { x: number; v: number }[][] = [];
  const x0 = CHART_POINTS - samples.length;
  let run: { x: number; v: number }[] = [];
  samples.forEach((v, i) => {
    if (v === null) {
      if (run.length) out.push(run);
      run = [];
    } else {
      run.push({ x: x0 + i, v });
    }
  });
  if (run.length) out.push(run);
  return out;
}

export function HashrateChart({ samples, height = 120 }: { samples: (number | null)[]; height?: number }) {
  const W = CHART_POINTS - 1;
  const H = 100;
  const values = samples.filter((v): v is number => v !== null);
  const peak = Math.max(...values, 0);
  const top = niceCeiling(peak * 1.1);
  const y = (v: number) => (H - (v / top) * H).toFixed(2);
  const minutes = Math.round((CHART_POINTS * CHART_INTERVAL_MS) / 60_000);
  const latest = values.at(-1);
  return (
    <figure
      class="chart"
      data-testid="rate-chart"
      data-points={values.length}
      aria-label={`Rate while computing, per ${CHART_INTERVAL_MS / 1000} s over the last ${minutes} minutes${latest ? `, latest ${formatHashrate(latest)}` : ''}`}
    >
      <div class="chart-plot" style={{ height: `${height}px` }}>
        <svg viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-hidden="true">
          <line class="chart-grid" x1="0" y1={H / 2} x2={W} y2={H / 2} vector-effect="non-scaling-stroke" />
          <line class="chart-grid" x1="0" y1={0.5} x2={W} y2={0.5} vector-effect="non-scaling-stroke" />
          {runs(samples).map((run) =>
            run.length > 1 ? (
              <g key={run[0].x}>
                <polygon class="chart-area" points={`${run[0].x},${H} ${run.map((p) => `${p.x},${y(p.v)}`).join(' ')} ${run.at(-1)!.x},${H}`} />
                <polyline class="chart-line" points={run.map((p) => `${p.x},${y(p.v)}`).join(' ')} vector-effect="non-scaling-stroke" />
              </g>
            ) : (
              // A lone point: a short tick, so it shows at any width.
              <line key={run[0].x} class="chart-line" x1={run[0].x - 0.3} y1={y(run[0].v)} x2={run[0].x + 0.3} y2={y(run[0].v)} vector-effect="non-scaling-stroke" />
            ),
          )}
        </svg>
        {peak > 0 ? (
          <>
            <span class="chart-label chart-top">{formatHashrate(top)}</span>
            <span class="chart-label chart-mid">{formatHashrate(top / 2)}</span>
          </>
        ) : (
          <span class="chart-empty">The rate while computing shows here, every {CHART_INTERVAL_MS / 1000} s</span>
        )}
      </div>
      <figcaption class="chart-axis">
        <span>{minutes} min ago</span>
        <span>rate while computing, per {CHART_INTERVAL_MS / 1000} s</span>
        <span>now</span>
      </figcaption>
    </figure>
  );
}
