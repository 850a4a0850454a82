/**
 * Nano-style account addresses (nano_, xrb_, qlc_, ban_), checksum included.
 *
 *   <prefix>_ + 52 chars (4 zero bits + 32-byte public key, base32)
 *             + 8 chars (blake2b(digest 5, public key), bytes reversed, base32)
 *
 * The old DPoW client checked only a regex, so a typo in a payout address silently lost a
 * volunteer's rewards. Here the checksum is always checked.
 */
import { blake2b } from '@noble/hashes/blake2.js';

const ALPHABET = '13456789abcdefghijkmnopqrstuwxyz';
const VALUE = new Map([...ALPHABET].map((c, i) => [c, i]));

export const NANO_PREFIXES = ['nano', 'xrb'] as const;
export const ALL_PREFIXES = ['nano', 'xrb', 'qlc', 'ban'] as const;

export type AddressErrorCode =
  | 'not-a-string'
  | 'bad-prefix'
  | 'bad-length'
  | 'bad-character'
  | 'bad-first-char'
  | 'bad-checksum';

export type AddressCheck =
  | { ok: true; prefix: string; publicKey: Uint8Array; publicKeyHex: string }
  | { ok: false; code: AddressErrorCode; reason: string };

function decodeBase32(text: string): Uint8Array | null {
  const bits = text.length * 5;
  const out = new Uint8Array(Math.floor(bits / 8));
  let acc = 0;
  let accBits = 0;
  let index = 0;
  const skip = bits % 8; // leading padding bits
  let skipped = 0;
  for (const ch of text) {
    const v = VALUE.get(ch);
    if (v === undefined) return null;
    for (let b = 4; b >= 0; b--) {
      const bit = (v >> b) & 1;
      if (skipped < skip) {
        if (bit !== 0) return null;
        skipped++;
        continue;
      }
      acc = (acc << 1) | bit;
      accBits++;
      if (accBits === 8) {
        out[index++] = acc;
        acc = 0;
        accBits = 0;
      }
    }
  }
  return out;
}

function encodeBase32(bytes: Uint8Array, chars: number): string {
  const totalBits = chars * 5;
  const pad = totalBits - bytes.length * 8;
  let out = '';
  let acc = 0;
  let accBits = pad;
  for (const byte of bytes) {
    acc = (acc << 8) | byte;
    accBits += 8;
    while (accBits >= 5) {
      out += ALPHABET[(acc >> (accBits - 5)) & 31];
      accBits -= 5;
    }
    acc &= (1 << accBits) - 1;
  }
  return out;
}

function checksum(publicKey: Uint8Array): Uint8Array {
  return blake2b(publicKey, { dkLen: 5 }).reverse();
}

function toHex(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += b.toString(16).padStart(2, '0');
  return out;
}

/**
 * Checks an address: prefix, length, alphabet, first key character and checksum.
 * `prefixes` limits which coins are accepted (e.g. a deployment that pays out in nano only).
 */
export function checkAddress(
  input: unknown,
  prefixes: readonly string[] = ALL_PREFIXES,
): AddressCheck {
  if (typeof input !== 'string') {
    return { ok: false, code: 'not-a-string', reason: 'address must be a string' };
  }
  const sep = input.indexOf('_');
  const prefix = sep > 0 ? input.slice(0, sep) : '';
  if (!prefixes.includes(prefix)) {
    const allowed = prefixes.map((p) => `${p}_`).join(', ');
    return { ok: false, code: 'bad-prefix', reason: `address must start with ${allowed}` };
  }
  const body = input.slice(sep + 1);
  if (body.length !== 60) {
    return {
      ok: false,
      code: 'bad-length',
      reason: `address must have 60 characters after "${prefix}_", got ${body.length}`,
    };
  }
  for (const ch of body) {
    if (!VALUE.has(ch)) {
      return {
        ok: false,
        code: 'bad-character',
        reason: `address contains "${ch}", which is not in the address alphabet`,
      };
    }
  }
  if (body[0] !== '1' && body[0] !== '3') {
    return { ok: false, code: 'bad-first-char', reason: 'address key must start with 1 or 3' };
  }
  const publicKey = decodeBase32(body.slice(0, 52));
  const sum = decodeBase32(body.slice(52));
  if (!publicKey || publicKey.length !== 32 || !sum || sum.length !== 5) {
    return { ok: false, code: 'bad-character', reason: 'address does not decode' };
  }
  const expected = checksum(publicKey);
  for (let i = 0; i < 5; i++) {
    if (expected[i] !== sum[i]) {
      return {
        ok: false,
        code: 'bad-checksum',
        reason: 'address checksum does not match: check it for a typo',
      };
    }
  }
  return { ok: true, prefix, publicKey, publicKeyHex: toHex(publicKey) };
}

export function isValidAddress(input: unknown, prefixes?: readonly string[]): input is string {
  return checkAddress(input, prefixes).ok;
}

/** Encodes a 32-byte public key (bytes or 64 hex) as an address with the given prefix. */
export function encodeAddress(publicKey: Uint8Array | string, prefix = 'nano'): string {
  const key =
    typeof publicKey === 'string'
      ? Uint8Array.from(publicKey.match(/../g) ?? [], (h) => parseInt(h, 16))
      : publicKey;
  if (key.length !== 32) throw new RangeError('public key must be 32 bytes');
  return `${prefix}_${encodeBase32(key, 52)}${encodeBase32(checksum(key), 8)}`;
}
