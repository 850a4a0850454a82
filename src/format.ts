/**
 * How numbers, hashes, addresses and amounts read to people, wherever they show: the page, the
 * engine lab, the kiosk, the CLI's tables and lines, and the log lines of the worker and the
 * server. Pure, so every part imports the same function and a hash or a rate never reads two
 * ways. Wire formats are not displays and live with their codecs (the work RPC's 15-decimal
 * `multiplier`, the node's raw amounts).
 */
import { NANO_DECIMALS, RAW_PER_NANO } from './dpow/nano-amount.ts';

/**
 * Characters outside printable ASCII as \u{…}: a field from the network that is quoted in a log
 * line or a refusal shows what it held, and cannot forge a line break.
 */
export function printable(text: string): string {
  return text.replace(/[^\x21-\x7e]/gu, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
}

/**
 * A hash cut short for people: its first `head` characters, "…" and its last `tail`, or the whole
 * of it when that is not longer. The page shows both ends (the default, `718CC212…995D79E2`; the
 * kiosk `shortHash(hash, 6)`); log lines and messages show the head only (`logHash(hash)`:
 * `BFEB8AA91D346E6E…`). Escaped as printable() does, since a hash in a refusal is whatever a
 * client sent.
 */
export function shortHash(hash: string, head = 8, tail = head): string {
  if (hash.length <= head + tail + 1) return printable(hash);
  return `${printable(hash.slice(0, head))}…${tail > 0 ? printable(hash.slice(-tail)) : ''}`;
}

const LOG_HASH_DIGITS = 16;

/** A hash in a log line: its first 16 digits, enough to grep for, with control characters escaped. */
export function logHash(hash: string): string {
  return shortHash(hash, LOG_HASH_DIGITS, 0);
}

/** logHash in a fixed-width column (the worker's job lines): the same digits, no ellipsis, as the column says it is cut. */
export function logHashColumn(hash: string): string {
  return printable(hash.slice(0, LOG_HASH_DIGITS));
}

/** nano_3t6k35…uohr3: the prefix plus the first and last characters people compare. */
export function shortAddress(address: string): string {
  const sep = address.indexOf('_');
  if (sep < 0 || address.length < sep + 16) return address;
  return `${address.slice(0, sep + 7)}…${address.slice(-5)}`;
}

const RATE_UNITS = ['H/s', 'kH/s', 'MH/s', 'GH/s', 'TH/s'];

/** Hashes per second: "850 H/s", "13.8 MH/s", "3.20 TH/s"; "0 H/s" for nothing or nonsense. */
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

/** "64.0×", "1.000×", "0.00391×": three significant figures or more, "—" when unknown. */
export function formatMultiplier(multiplier: number): string {
  if (!Number.isFinite(multiplier)) return '—';
  return `${multiplier >= 10 ? multiplier.toFixed(1) : multiplier.toFixed(multiplier < 0.01 ? 5 : 3)}×`;
}

/**
 * An amount in NANO with every significant decimal and no more: 1500000000000000000000000000000n
 * is "1.5", 12345000000000000000000000000n is "0.012345", 1n is "0.000000000000000000000000000001".
 * Integer arithmetic throughout: a float would print 1.2e-2, or get the raw digits wrong.
 */
export function formatNano(raw: bigint): string {
  const sign = raw < 0n ? '-' : '';
  const abs = raw < 0n ? -raw : raw;
  const whole = abs / RAW_PER_NANO;
  const fraction = (abs % RAW_PER_NANO).toString().padStart(NANO_DECIMALS, '0').replace(/0+$/, '');
  return `${sign}${whole}${fraction ? `.${fraction}` : ''}`;
}

/** "0.012345 NANO": formatNano with its unit. */
export function formatNanoAmount(raw: bigint): string {
  return `${formatNano(raw)} NANO`;
}

/**
 * An amount for a glance (the kiosk): at most `decimals` decimals, cut, never rounded up, and
 * "…" where digits were cut, so it never shows more than was paid: "0.205761… NANO". The exact
 * amount is formatNanoAmount's.
 */
export function formatNanoCompact(raw: bigint, decimals = 6): string {
  const [whole, fraction = ''] = formatNano(raw).split('.');
  if (fraction.length <= decimals) return formatNanoAmount(raw);
  return `${whole}.${fraction.slice(0, decimals)}… NANO`;
}

/**
 * A rate in MH/s whatever its size, "33.68 MH/s": benchmark rows and kernel log lines, where
 * rates are compared with each other (formatHashrate picks the unit for a reader instead).
 */
export function formatMegahashes(hashesPerSecond: number, decimals = 2): string {
  return `${(hashesPerSecond / 1e6).toFixed(decimals)} MH/s`;
}

/** "850 ms", "4.2 s", "3 min 20 s", "2 h 5 min", "3 days"; "—" for a negative or unknown time. */
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

/** A run time as a log line shows it, to the second: "45s", "3m20s", "1h02m03s". */
export function formatElapsed(ms: number): string {
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const two = (n: number) => String(n).padStart(2, '0');
  return h ? `${h}h${two(m)}m${two(s % 60)}s` : m ? `${m}m${two(s % 60)}s` : `${s}s`;
}

const COUNT = new Intl.NumberFormat('en');

/** "78,642". */
export function formatCount(n: number): string {
  return COUNT.format(n);
}

/** The local time of day, "14:05:09". */
export function formatClock(at: number): string {
  const d = new Date(at);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
