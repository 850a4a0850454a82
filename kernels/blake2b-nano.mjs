// The Blake2b facts both kernel generators fold into their kernels (WGSL: kernels/
// gen-wgsl.mjs; AssemblyScript: kernels/gen-assembly.mjs), for the Nano work hash: one
// 40-byte block, digest 8, no key.

export const U64_MASK = (1n << 64n) - 1n;

export const IV = [
  0x6a09e667f3bcc908n, 0xbb67ae8584caa73bn, 0x3c6ef372fe94f82bn, 0xa54ff53a5f1d36f1n,
  0x510e527fade682d1n, 0x9b05688c2b3e6c1fn, 0x1f83d9abfb41bd6bn, 0x5be0cd19137e2179n,
];

/** The message word order of each round (round r uses SIGMA[r % 10]). */
export const SIGMA = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
  [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
  [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
  [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
  [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
  [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
  [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
  [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
  [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
  [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
];

/** Parameter block word 0: digest length 8, key length 0, fanout 1, depth 1. */
export const PARAM0 = 0x01010008n;
/** Message length in bytes: 8 nonce bytes + 32 root bytes. */
export const MESSAGE_BYTES = 40n;
/** h0 after initialisation; the work value is H0 ^ v0 ^ v8 of the final state. */
export const H0 = IV[0] ^ PARAM0;

/** The state entering round 0: h = IV ^ params, v12 ^= t0 (40 bytes), v14 = ~IV6 (last block). */
export const V_INIT = [H0, ...IV.slice(1), ...IV.slice(0, 4), IV[4] ^ MESSAGE_BYTES, IV[5], IV[6] ^ U64_MASK, IV[7]];

/** Which (a, b, c, d) each of the 8 G calls of a round mixes: 4 columns, then 4 diagonals. */
export const G_LANES = [
  [0, 4, 8, 12],
  [1, 5, 9, 13],
  [2, 6, 10, 14],
  [3, 7, 11, 15],
  [0, 5, 10, 15],
  [1, 6, 11, 12],
  [2, 7, 8, 13],
  [3, 4, 9, 14],
];
