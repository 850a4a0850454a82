/** Number and time formatting for the view. */

export { formatHashrate } from '../pow/hashrate.ts';
export { formatMultiplier } from '../dpow/format.ts';

/** "850 ms", "4.2 s", "3 min 20 s", "2 h 5 min". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s - m * 60)} s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h} h ${m - h * 60} min`;
  return `${Math.round(h / 24)} days`;
}

/** 718cc212…995d79e2 */
export function shortHash(hash: string, keep = 8): string {
  return hash.length <= keep * 2 + 1 ? hash : `${hash.slice(0, keep)}…${hash.slice(-keep)}`;
}

/** nano_3t6k35…hgvsg: prefix plus the first and last characters people compare. */
export function shortAddress(address: string): string {
  const sep = address.indexOf('_');
  if (sep < 0 || address.length < sep + 16) return address;
  return `${address.slice(0, sep + 7)}…${address.slice(-5)}`;
}

export function formatCount(n: number): string {
  return new Intl.NumberFormat('en').format(n);
}

export function formatClock(at: number): string {
  const d = new Date(at);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
