/**
 * The hashrate a volunteer can believe, for one backend. On a fast GPU a job takes milliseconds,
 * so the live rate is 0 H/s most of the time although the worker is busy and fast. The meter
 * keeps the backend's computing spans (the time inside its searches: a backend's start-up, a
 * shader compile or thread spawn before the first search, is not computing) and reads:
 *   - rate: hashes / computing time over the most recent `windowMs` of computing, so idle gaps
 *     between jobs do not dilute it, a quiet spell does not zero it, and the first job already
 *     gives the device's rate instead of a ramp from near zero;
 *   - busyShare: computing time / wall time over the last `windowMs` (since the first span
 *     when the meter is younger);
 *   - peak: the best rate over PEAK_MIN_BUSY_MS of computing seen at any reading (one short
 *     job's timing is too coarse to be anyone's capacity, and a shorter stretch than the whole
 *     window, so no chart interval runs above it for long);
 *   - totals: hashes and computing time since creation, only growing, so a view can plot the
 *     rate of each interval from two readings (a running search's time counts up to its
 *     latest hash report, so the two always go together).
 */
export const SUSTAINED_WINDOW_MS = 60_000;
/** Computing time a rate needs behind it before it may count as a peak. */
export const PEAK_MIN_BUSY_MS = 2_000;
/** Spans kept at most: thousands of millisecond jobs are plenty for a rate. */
const MAX_SPANS = 4096;

export interface SustainedReading {
  /** Hashes per second over the last windowMs of computing time; 0 before any hash. */
  rate: number;
  /** Share of the last windowMs of wall time spent computing, in [0, 1]. */
  busyShare: number;
  /** The wall time busyShare is over: windowMs, or less while the meter is younger. */
  busyOverMs: number;
  /** Computing time behind `rate`, ms (at most windowMs). */
  busyMs: number;
  /** The best rate over PEAK_MIN_BUSY_MS of computing seen at a reading; 0 until then. */
  peak: number;
  /** Hashes since the meter was made. */
  totalHashes: number;
  /** Computing time since the meter was made, ms. */
  totalBusyMs: number;
}

interface Span {
  start: number;
  /** null while the search runs. */
  end: number | null;
  hashes: number;
  /** When hashes were last reported: a running search's rate counts its time up to there. */
  reportedAt: number;
}

export class SustainedMeter {
  readonly #spans: Span[] = [];
  #origin: number | null = null;
  #totalHashes = 0;
  /** Computing time of the spans that ended, including those already dropped. */
  #closedMs = 0;
  #peak = 0;

  readonly #windowMs: number;

  constructor(windowMs = SUSTAINED_WINDOW_MS) {
    this.#windowMs = windowMs;
  }

  /** A search starts. */
  begin(now: number): void {
    this.#origin ??= now;
    if (this.#spans.at(-1)?.end === null) return;
    this.#spans.push({ start: now, end: null, hashes: 0, reportedAt: now });
    if (this.#spans.length > MAX_SPANS) this.#spans.shift();
  }

  /** The search ended. */
  end(now: number): void {
    const last = this.#spans.at(-1);
    if (!last || last.end !== null) return;
    last.end = Math.max(now, last.start);
    this.#closedMs += last.end - last.start;
    this.read(now); // a peak is noticed even when nobody reads during the job
  }

  /** `count` more hashes, counted to the search running (or the one that just ended). */
  add(now: number, count: number): void {
    if (!(count > 0)) return;
    this.#totalHashes += count;
    const last = this.#spans.at(-1);
    if (!last) return;
    last.hashes += count;
    if (last.end === null) last.reportedAt = Math.max(last.reportedAt, now);
  }

  read(now: number): SustainedReading {
    const from = now - this.#windowMs;
    let busyMs = 0;
    let hashes = 0;
    let windowBusyMs = 0;
    let recent = 0;
    // Spans are in order and never overlap: walking back from the newest, once the rate has its
    // window of computing and a span ended before the wall window, no older span is needed.
    let firstNeeded = this.#spans.length;
    for (let i = this.#spans.length - 1; i >= 0; i--) {
      const span = this.#spans[i];
      const end = span.end ?? now;
      const forRate = busyMs < this.#windowMs;
      const forShare = end > from;
      if (!forRate && !forShare) break;
      firstNeeded = i;
      if (forRate) {
        // A running search reports its hashes a dispatch or a slice at a time: its rate counts
        // the time up to its latest report, so a reading between reports is not too low.
        // The oldest span in the rate's window counts in proportion to the time it gives.
        const length = (span.end ?? span.reportedAt) - span.start;
        const take = Math.min(length, this.#windowMs - busyMs);
        const per = length > 0 ? span.hashes / length : 0;
        if (busyMs < PEAK_MIN_BUSY_MS && busyMs + take >= PEAK_MIN_BUSY_MS) {
          // The newest PEAK_MIN_BUSY_MS of computing: a peak is the best such stretch seen.
          recent = ((hashes + per * (PEAK_MIN_BUSY_MS - busyMs)) * 1000) / PEAK_MIN_BUSY_MS;
        }
        busyMs += take;
        hashes += length > 0 ? per * take : span.hashes;
      }
      if (forShare) windowBusyMs += end - Math.max(span.start, from);
    }
    this.#spans.splice(0, firstNeeded);
    const rate = busyMs > 0 ? (hashes * 1000) / busyMs : 0;
    this.#peak = Math.max(this.#peak, recent, busyMs >= PEAK_MIN_BUSY_MS ? rate : 0);
    const elapsed = this.#origin === null ? 0 : now - Math.max(this.#origin, from);
    const open = this.#spans.at(-1);
    return {
      rate,
      busyShare: elapsed > 0 ? Math.min(1, windowBusyMs / elapsed) : 0,
      busyOverMs: Math.max(0, elapsed),
      busyMs,
      peak: this.#peak,
      totalHashes: this.#totalHashes,
      totalBusyMs: this.#closedMs + (open && open.end === null ? open.reportedAt - open.start : 0),
    };
  }
}
