/** The last few minutes of hashrate, one sample per second, as an SVG area chart. */
import { formatHashrate } from '../format.ts';
import { HISTORY_SAMPLES } from '../controller.ts';

/** 1, 2 or 5 times a power of ten, at or above v: round axis labels. */
function niceCeiling(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export function HashrateChart({ samples, height = 120 }: { samples: number[]; height?: number }) {
  const W = HISTORY_SAMPLES;
  const H = 100;
  const peak = Math.max(...samples, 0);
  const top = niceCeiling(peak * 1.1);
  const x0 = W - samples.length;
  const points = samples.map((v, i) => `${x0 + i},${(H - (v / top) * H).toFixed(2)}`);
  const line = points.join(' ');
  const area = samples.length ? `${x0},${H} ${line} ${W - 1},${H}` : '';
  const latest = samples.length ? samples[samples.length - 1] : 0;
  const minutes = Math.round(HISTORY_SAMPLES / 60);
  return (
    <figure class="chart" aria-label={`Hashrate over the last ${minutes} minutes, now ${formatHashrate(latest)}`}>
      <div class="chart-plot" style={{ height: `${height}px` }}>
        <svg viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-hidden="true">
          <line class="chart-grid" x1="0" y1={H / 2} x2={W} y2={H / 2} vector-effect="non-scaling-stroke" />
          <line class="chart-grid" x1="0" y1={0.5} x2={W} y2={0.5} vector-effect="non-scaling-stroke" />
          {samples.length > 1 && <polygon class="chart-area" points={area} />}
          {samples.length > 1 && <polyline class="chart-line" points={line} vector-effect="non-scaling-stroke" />}
        </svg>
        {peak > 0 ? (
          <>
            <span class="chart-label chart-top">{formatHashrate(top)}</span>
            <span class="chart-label chart-mid">{formatHashrate(top / 2)}</span>
          </>
        ) : (
          <span class="chart-empty">The hashrate shows here while a job runs</span>
        )}
      </div>
      <figcaption class="chart-axis">
        <span>{minutes} min ago</span>
        <span>now</span>
      </figcaption>
    </figure>
  );
}
