/**
 * Nano amounts, exactly. The ledger's unit is the raw: 1 NANO = 10^30 raw, and a balance fits
 * in 128 bits. The node's RPC carries raw as decimal strings; people read and type NANO. Both
 * directions are integer arithmetic on BigInt: a float has 53 bits, so `0.1 * 1e30` is already
 * wrong in the raw digits, and printing a float gives `1.2e-2` where a volunteer wants
 * `0.012 NANO`.
 */

/** Decimal places of one NANO in raw. */
export const NANO_DECIMALS = 30;
export const RAW_PER_NANO = 10n ** 30n;
/** The largest amount a Nano balance can hold: 2^128 - 1 raw. */
export const MAX_RAW = (1n << 128n) - 1n;

export type AmountParse = { ok: true; raw: bigint } | { ok: false; reason: string };

/**
 * Reads a NANO amount as a person types it ("1", "0.5", "12.000001"): digits, at most one
 * point, at most 30 decimals. No sign, exponent, spaces or thousands separators: those are
 * refused with the reason rather than guessed at.
 */
export function parseNano(text: string): AmountParse {
  const m = /^(\d{1,39})(?:\.(\d{1,30}))?$/.exec(text);
  if (!m) {
    if (/^\d*\.\d{31,}$/.test(text)) return { ok: false, reason: `"${text.slice(0, 50)}" has more than ${NANO_DECIMALS} decimals (1 raw is 0.${'0'.repeat(29)}1 NANO)` };
    return { ok: false, reason: `"${text.slice(0, 50)}" is not an amount in NANO (digits with an optional decimal point, e.g. 1.5)` };
  }
  const raw = BigInt(m[1]) * RAW_PER_NANO + BigInt((m[2] ?? '').padEnd(NANO_DECIMALS, '0'));
  if (raw > MAX_RAW) return { ok: false, reason: `${text} NANO is more than a Nano balance can hold` };
  return { ok: true, raw };
}

/** True for a raw amount as the node writes it: a decimal integer from 0 to 2^128 - 1, no sign or leading zeros. */
export function isRawString(text: unknown): text is string {
  return typeof text === 'string' && /^(0|[1-9]\d{0,38})$/.test(text) && BigInt(text) <= MAX_RAW;
}
