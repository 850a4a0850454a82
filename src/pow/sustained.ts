/**
 * The hashrate a volunteer can believe. On a fast GPU a job takes milliseconds, so the live rate
 * is 0 H/s most of the time although the worker is busy and fast. Over a window (default 60 s):
 *   - sustained rate = hashes done / time spent computing, so gaps between jobs do not dilute it;
 *   - busy share = time spent computing / time elapsed (since the first job, at most the window).
 */
export const SUSTAINED_WINDOW_MS = 60_000;

export interface SustainedReading {
  /** Hashes per second of computing time over the window; 0 before any hash. */
  rate: number;
  /** Share of the window spent computing, in [0, 1]. */
  busyShare: number;
  /** Computing time inside the window, ms. */
  busyMs: number;
}

export class SustainedMeter {
  private readonly busy: { start: number; end: number | null }[] = [];
  private readonly hashes: { at: number; count: number }[] = [];
  private origin: number | null = null;

  constructor(private readonly windowMs = SUSTAINED_WINDOW_MS) {}

  begin(now: number): void {
    this.origin ??= now;
    if (this.busy.at(-1)?.end === null) return;
    this.busy.push({ start: now, end: null });
  }

  end(now: number): void {
    const last = this.busy.at(-1);
    if (last && last.end === null) last.end = now;
  }

  add(now: number, count: number): void {
    if (count > 0) this.hashes.push({ at: now, count });
  }

  read(now: number): SustainedReading {
    const from = now - this.windowMs;
    while (this.busy.length > 0 && (this.busy[0].end ?? now) < from) this.busy.shift();
    while (this.hashes.length > 0 && this.hashes[0].at < from) this.hashes.shift();
    let busyMs = 0;
    for (const { start, end } of this.busy) busyMs += Math.max(0, (end ?? now) - Math.max(start, from));
    const hashes = this.hashes.reduce((n, h) => n + h.count, 0);
    const elapsed = this.origin === null ? 0 : now - Math.max(this.origin, from);
    return {
      rate: busyMs > 0 ? (hashes * 1000) / busyMs : 0,
      busyShare: elapsed > 0 ? Math.min(1, busyMs / elapsed) : 0,
      busyMs,
    };
  }
}
