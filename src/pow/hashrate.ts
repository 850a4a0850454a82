/** Hashes per second for people: "850 H/s", "13.8 MH/s", "31.2 MH/s". Shared by the page and the CLI. */
const RATE_UNITS = ['H/s', 'kH/s', 'MH/s', 'GH/s', 'TH/s'];

export function formatHashrate(hashesPerSecond: number): string {
  if (!Number.isFinite(hashesPerSecond) || hashesPerSecond <= 0) return '0 H/s';
  let v = hashesPerSecond;
  let unit = 0;
  while (v >= 1000 && unit < RATE_UNITS.length - 1) {
    v /= 1000;
    unit++;
  }
  return `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${RATE_UNITS[unit]}`;
}
