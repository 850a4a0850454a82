/**
 * The Nano/QLC proof-of-work rule, in one place.
 *
 *   value = LE_u64(blake2b(digest 8, input = LE_bytes(work) || root[32]))
 *   valid when value >= difficulty   (unsigned 64-bit, ">=" not ">")
 *
 * A work string is 16 hex digits, the big-endian form of the u64, so its bytes are reversed
 * before hashing. Everything here is pure: no DOM, no Node APIs. The kernels (WGSL, WASM) must
 * agree with `workValue`; every work they find is checked by `validateWork` before it leaves the
 * engine. Which difficulties are accepted at all (ceiling, floor) is policy: difficulty.ts.
 */
import { blake2b } from '@noble/hashes/blake2.js';

export const THRESHOLDS = {
  /** Nano epoch 1 (2^26 hashes expected). */
  nanoEpoch1: 0xffffffc000000000n,
  /** Nano send/change after epoch 2 (2^29). */
  nanoSend: 0xfffffff800000000n,
  /** Nano receive/open after epoch 2 (2^23). */
  nanoReceive: 0xfffffe0000000000n,
  /** QLC mainnet. */
  qlc: 0xfffffe0000000000n,
} as const;

/** The base a multiplier is relative to, unless the caller names another. */
export const DEFAULT_BASE = THRESHOLDS.nanoSend;

const U64 = 1n << 64n;
const U64_MAX = U64 - 1n;

export type PowErrorCode =
  | 'bad-root'
  | 'bad-work'
  | 'bad-difficulty'
  | 'bad-multiplier'
  | 'difficulty-too-low'
  | 'difficulty-too-high';

/** A bad input to the work rule; `code` is stable, `message` is for people. */
export class PowInputError extends Error {
  override readonly name = 'PowInputError';
  constructor(
    readonly code: PowErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const HEX64 = /^[0-9a-fA-F]{64}$/;
const HEX16 = /^[0-9a-fA-F]{16}$/;

function describe(input: unknown): string {
  if (typeof input !== 'string') return `a ${input === null ? 'null' : typeof input}`;
  const shown = input.length > 20 ? `${input.slice(0, 20)}…` : input;
  return `"${shown}" (${input.length} chars)`;
}

/** True for a 64-hex-digit root/hash in either case. */
export function isRootHex(input: unknown): input is string {
  return typeof input === 'string' && HEX64.test(input);
}

/** True for a 16-hex-digit work or difficulty in either case. */
export function isU64Hex(input: unknown): input is string {
  return typeof input === 'string' && HEX16.test(input);
}

/** Parses a 64-hex-digit root (block hash or account public key) into its 32 bytes. */
export function parseRoot(input: unknown): Uint8Array {
  if (!isRootHex(input)) {
    throw new PowInputError('bad-root', `root must be 64 hex characters, got ${describe(input)}`);
  }
  const bytes = new Uint8Array(32);
  for (let i = 0; i < 32; i++) bytes[i] = parseInt(input.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

/** Parses a 16-hex-digit work value (big-endian text) into a u64. */
export function parseWork(input: unknown): bigint {
  if (!isU64Hex(input)) {
    throw new PowInputError('bad-work', `work must be 16 hex characters, got ${describe(input)}`);
  }
  return BigInt(`0x${input}`);
}

/** Parses a 16-hex-digit difficulty into a u64. */
export function parseDifficulty(input: unknown): bigint {
  if (!isU64Hex(input)) {
    throw new PowInputError(
      'bad-difficulty',
      `difficulty must be 16 hex characters, got ${describe(input)}`,
    );
  }
  return BigInt(`0x${input}`);
}

/** Formats a u64 as 16 lowercase hex digits. */
export function toU64Hex(value: bigint): string {
  if (value < 0n || value > U64_MAX) throw new RangeError(`not a u64: ${value}`);
  return value.toString(16).padStart(16, '0');
}

/** Formats 32 bytes as 64 uppercase hex digits (the way nodes print block hashes). */
export function rootToHex(root: Uint8Array): string {
  let out = '';
  for (const b of root) out += b.toString(16).padStart(2, '0');
  return out.toUpperCase();
}

/** The 40-byte message the hash is taken over: LE_bytes(work) || root. */
function message(root: Uint8Array, work: bigint): Uint8Array {
  const msg = new Uint8Array(40);
  let w = work;
  for (let i = 0; i < 8; i++) {
    msg[i] = Number(w & 0xffn);
    w >>= 8n;
  }
  msg.set(root, 8);
  return msg;
}

/** The work value of (root, work): the number compared with a difficulty. */
export function workValue(root: Uint8Array | string, work: bigint | string): bigint {
  const rootBytes = typeof root === 'string' ? parseRoot(root) : root;
  const workU64 = typeof work === 'string' ? parseWork(work) : work;
  const digest = blake2b(message(rootBytes, workU64), { dkLen: 8 });
  let value = 0n;
  for (let i = 7; i >= 0; i--) value = (value << 8n) | BigInt(digest[i]);
  return value;
}

/** Valid when the work value is at least the difficulty. */
export function validateWork(
  root: Uint8Array | string,
  work: bigint | string,
  difficulty: bigint | string,
): { valid: boolean; value: bigint } {
  const target = typeof difficulty === 'string' ? parseDifficulty(difficulty) : difficulty;
  const value = workValue(root, work);
  return { valid: value >= target, value };
}

/** m = (2^64 - base) / (2^64 - difficulty). */
export function toMultiplier(difficulty: bigint, base: bigint = DEFAULT_BASE): number {
  return Number(U64 - base) / Number(U64 - difficulty);
}

/** difficulty = 2^64 - (2^64 - base) / m, clamped into the u64 range. */
export function fromMultiplier(multiplier: number, base: bigint = DEFAULT_BASE): bigint {
  if (typeof multiplier !== 'number' || !Number.isFinite(multiplier) || multiplier <= 0) {
    throw new PowInputError(
      'bad-multiplier',
      `multiplier must be a positive finite number, got ${String(multiplier)}`,
    );
  }
  // Scale to keep 2^-30 precision without leaving integer arithmetic. Every positive finite
  // multiplier has a difficulty: one too small to scale asks for difficulty 0, one whose scaled
  // form overflows a double asks for the largest difficulty below 2^64.
  const SCALE = 1n << 30n;
  const scaledNumber = Math.round(multiplier * Number(SCALE));
  if (scaledNumber === 0) return 0n;
  if (!Number.isFinite(scaledNumber)) return U64_MAX;
  let span = ((U64 - base) * SCALE) / BigInt(scaledNumber);
  if (span < 1n) span = 1n;
  if (span > U64) span = U64;
  return U64 - span;
}

/** Parses a multiplier given as text or number (as a service request or CLI would). */
export function parseMultiplier(input: unknown): number {
  const m = typeof input === 'string' && input.trim() !== '' ? Number(input) : input;
  if (typeof m !== 'number' || !Number.isFinite(m) || m <= 0) {
    throw new PowInputError(
      'bad-multiplier',
      `multiplier must be a positive number, got ${describe(input)}`,
    );
  }
  return m;
}

/** Expected number of hashes to find work at this difficulty: 2^64 / (2^64 - difficulty). */
export function expectedHashes(difficulty: bigint): number {
  return Number(U64) / Number(U64 - difficulty);
}
