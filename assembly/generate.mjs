// Writes the two unrolled AssemblyScript kernels, assembly/nano-pow-scalar.ts and
// assembly/nano-pow-simd.ts, from one description of the folded Nano Blake2b.
//
//   node assembly/generate.mjs          rewrite both files
//   kernelSource('scalar' | 'simd')     the text, for the build script and the staleness test
//
// Why generate: Blake2b's message schedule (SIGMA) indexes message words with a different
// permutation every round. Written as a loop that is array indexing into memory; unrolled, every
// message word is a local or a constant zero, which lets us drop the zero words (m5..m15) outright
// and leaves the optimizer nothing to guess. Twelve rounds x eight G calls are too many to keep
// right by hand, so they are produced here.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const IV = [
  0x6a09e667f3bcc908n,
  0xbb67ae8584caa73bn,
  0x3c6ef372fe94f82bn,
  0xa54ff53a5f1d36f1n,
  0x510e527fade682d1n,
  0x9b05688c2b3e6c1fn,
  0x1f83d9abfb41bd6bn,
  0x5be0cd19137e2179n,
];

const SIGMA = [
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

const U64 = (1n << 64n) - 1n;
const hex = (x) => `0x${x.toString(16).padStart(16, '0')}`;

/** Parameter block word 0: digest length 8, no key, fanout 1, depth 1. */
const H0 = IV[0] ^ 0x01010008n;

/** The state after initialisation: h = IV ^ params, v[12] ^= t0 (40 bytes), v[14] ^= ~0 (last block). */
const V_INIT = [H0, ...IV.slice(1), ...IV.slice(0, 4), IV[4] ^ 40n, IV[5], IV[6] ^ U64, IV[7]];

/** Which (a, b, c, d) each of the 8 G calls of a round mixes: 4 columns, then 4 diagonals. */
const G_LANES = [
  [0, 4, 8, 12],
  [1, 5, 9, 13],
  [2, 6, 10, 14],
  [3, 7, 11, 15],
  [0, 5, 10, 15],
  [1, 6, 11, 12],
  [2, 7, 8, 13],
  [3, 4, 9, 14],
];

/** The operations of one flavour of kernel: scalar u64 or two u64 lanes in a v128. */
const FLAVOURS = {
  scalar: {
    type: 'u64',
    add: (a, b) => `${a} + ${b}`,
    xor: (a, b) => `${a} ^ ${b}`,
    rotr: (x, k) => `rotr<u64>(${x}, ${k})`,
    constant: (c) => `${hex(c)}`,
  },
  simd: {
    type: 'v128',
    add: (a, b) => `i64x2.add(${a}, ${b})`,
    xor: (a, b) => `v128.xor(${a}, ${b})`,
    // rotr 32 swaps the 32-bit halves of each lane (one pshufd); rotr 24 and 16 are byte
    // swizzles with a loop-invariant constant mask (one pshufb: V8 sees the mask is constant and
    // in range); rotr 63 is "rotate left by one": x + x | x >>> 63.
    rotr: (x, k) => {
      if (k === 32) return `i8x16.shuffle(${x}, ${x}, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11)`;
      if (k === 63) return `v128.or(i64x2.add(${x}, ${x}), i64x2.shr_u(${x}, 63))`;
      return `i8x16.swizzle(${x}, rot${k})`;
    },
    constant: (c) => `i64x2.splat(<i64>${hex(c)})`,
  },
};

/**
 * Emits G(a, b, c, d, x, y) as statements over locals `${v}0..${v}15`; x and y are message-word
 * names or null for a zero word (the add is dropped).
 */
function g(f, v, [a, b, c, d], x, y, out) {
  const va = `${v}${a}`;
  const vb = `${v}${b}`;
  const vc = `${v}${c}`;
  const vd = `${v}${d}`;
  out.push(x ? `${va} = ${f.add(f.add(va, vb), x)};` : `${va} = ${f.add(va, vb)};`);
  out.push(`${vd} = ${f.rotr(f.xor(vd, va), 32)};`);
  out.push(`${vc} = ${f.add(vc, vd)};`);
  out.push(`${vb} = ${f.rotr(f.xor(vb, vc), 24)};`);
  out.push(y ? `${va} = ${f.add(f.add(va, vb), y)};` : `${va} = ${f.add(va, vb)};`);
  out.push(`${vd} = ${f.rotr(f.xor(vd, va), 16)};`);
  out.push(`${vc} = ${f.add(vc, vd)};`);
  out.push(`${vb} = ${f.rotr(f.xor(vb, vc), 63)};`);
}

/** The G calls of round 0 that never see the nonce: columns 1..3 (words m2..m7). */
const ROOT_ONLY_G = [1, 2, 3];
/** The state words those calls produce, which the kernel takes precomputed per root. */
const ROOT_ONLY_WORDS = ROOT_ONLY_G.flatMap((i) => G_LANES[i]).sort((p, q) => p - q);

/**
 * Statements leaving v0 ^ v8 of the hash of nonce `n` in `${v}0` and `${v}8` (the caller folds in
 * h0). Precomputed round-0 words are read from `q*`, root words from m1..m4.
 */
function compress(f, v, n) {
  const msg = (index) => (index === 0 ? n : index <= 4 ? `m${index}` : null);
  const out = [];
  for (let i = 0; i < 16; i++) {
    const init = ROOT_ONLY_WORDS.includes(i) ? `q${i}` : f.constant(V_INIT[i]);
    out.push(`let ${v}${i}: ${f.type} = ${init};`);
  }
  for (let round = 0; round < 12; round++) {
    const s = SIGMA[round % 10];
    for (let i = 0; i < 8; i++) {
      if (round === 0 && ROOT_ONLY_G.includes(i)) continue;
      g(f, v, G_LANES[i], msg(s[2 * i]), msg(s[2 * i + 1]), out);
    }
  }
  return out;
}

/**
 * Two independent hashes, statement by statement interleaved. Blake2b's G is one long dependency
 * chain; a second hash in flight gives an out-of-order CPU independent work. (In V8 on x64 it
 * measured even with one hash at a time, within noise, never slower; it may help elsewhere.)
 */
function interleave(a, b) {
  const out = [];
  for (let i = 0; i < a.length; i++) out.push(a[i], b[i]);
  return out;
}

function header(flavour) {
  const simd = flavour === 'simd';
  return `// GENERATED by assembly/generate.mjs (node assembly/generate.mjs). Do not edit by hand.
//
// Nano / QLC proof of work, ${simd ? 'WASM SIMD: two nonces per v128 (i64x2 lanes), two v128 in flight' : 'scalar u64: two nonces in flight'}.
//
//   value = LE_u64(blake2b(digest 8, nonce_le8 || root32)); a nonce is work when value >= difficulty
//
// The 40-byte message is one Blake2b block: m0 = nonce, m1..m4 = the root as four little-endian
// u64 words, m5..m15 = 0. Folding done here, as in a GPU kernel:
//  - the zero message words are not added at all;
//  - the initial state (IV, parameter word 0x01010008, t0 = 40, last-block flag) is constants;
//  - round 0's columns 1..3 mix only root words, so setRoot() computes them once per root (p*);
//  - only the first output word is needed: value = h0 ^ v0 ^ v8 (the optimizer drops the rest).
//
// Exports (i64 crosses to JS as BigInt; read u64 results with BigInt.asUintN(64, x)):
//   setRoot(m1, m2, m3, m4)            load a root (its four little-endian u64 words)
//   search(difficulty, start, count)   tests nonces start .. start+count-1 (wrapping at 2^64) in
//                                      order; returns the index of the first whose value >=
//                                      difficulty (unsigned), or -1
//   value(nonce)                       the work value of one nonce for the loaded root${simd ? '\n//   valueHigh(nonce)                   the same, computed in the upper i64x2 lane' : ''}
`;
}

/** Loop-invariant locals for one search call: root words m1..m4 and round-0 words q*. */
function invariants(type, wrap) {
  const out = [];
  for (let i = 1; i <= 4; i++) out.push(`const m${i}: ${type} = ${wrap(`r${i}`)};`);
  if (type === 'v128') {
    // Byte masks for rotr 24 / rotr 16 within each 64-bit lane (output byte i = input byte i + k/8).
    out.push('const rot24 = i8x16(3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10);');
    out.push('const rot16 = i8x16(2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9);');
  }
  for (const w of ROOT_ONLY_WORDS) out.push(`const q${w}: ${type} = ${wrap(`p${w}`)};`);
  return out;
}

function scalarSource() {
  const f = FLAVOURS.scalar;
  const load = invariants('u64', (x) => x);
  return `${header('scalar')}
${commonGlobals()}
export function value(nonce: u64): u64 {
${indent(load, 1)}
  const n = nonce;
${indent(compress(f, 'v', 'n'), 1)}
  return H0 ^ v0 ^ v8;
}

export function search(difficulty: u64, start: u64, count: u32): i32 {
${indent(load, 1)}
  // Two nonces per iteration (n, n + 1), hashed interleaved.
  for (let i: u32 = 0; i < count; i += 2) {
    const n = start + <u64>i;
    const nb = n + 1;
${indent(interleave(compress(f, 'v', 'n'), compress(f, 'w', 'nb')), 2)}
    if ((H0 ^ v0 ^ v8) >= difficulty) return <i32>i;
    // nb is past the end when count is odd.
    if ((H0 ^ w0 ^ w8) >= difficulty && i + 1 < count) return <i32>(i + 1);
  }
  return -1;
}
`;
}

function simdSource() {
  const f = FLAVOURS.simd;
  const load = invariants('v128', (x) => `i64x2.splat(<i64>${x})`);
  const lanes = (lo, hi) => `i64x2.replace_lane(i64x2.splat(<i64>${lo}), 1, <i64>${hi})`;
  const single = (lo, hi, lane) => `${indent(load, 1)}
  const n = ${lanes(lo, hi)};
${indent(compress(f, 'v', 'n'), 1)}
  return H0 ^ <u64>i64x2.extract_lane(v128.xor(v0, v8), ${lane});`;
  return `${header('simd')}
${commonGlobals()}
export function value(nonce: u64): u64 {
${single('nonce', '(nonce + 1)', 0)}
}

export function valueHigh(nonce: u64): u64 {
${single('(nonce - 1)', 'nonce', 1)}
}

export function search(difficulty: u64, start: u64, count: u32): i32 {
${indent(load, 1)}
  const four = i64x2.splat(4);
  // Four nonces per iteration: n = (s, s + 1) and nb = (s + 2, s + 3), hashed interleaved.
  let n = ${lanes('start', '(start + 1)')};
  let nb = ${lanes('(start + 2)', '(start + 3)')};
  for (let i: u32 = 0; i < count; i += 4) {
${indent(interleave(compress(f, 'v', 'n'), compress(f, 'w', 'nb')), 2)}
    const x = v128.xor(v0, v8);
    const y = v128.xor(w0, w8);
    // Lanes past the end (count not a multiple of 4) are ignored.
    if ((H0 ^ <u64>i64x2.extract_lane(x, 0)) >= difficulty) return <i32>i;
    if ((H0 ^ <u64>i64x2.extract_lane(x, 1)) >= difficulty && i + 1 < count) return <i32>(i + 1);
    if ((H0 ^ <u64>i64x2.extract_lane(y, 0)) >= difficulty && i + 2 < count) return <i32>(i + 2);
    if ((H0 ^ <u64>i64x2.extract_lane(y, 1)) >= difficulty && i + 3 < count) return <i32>(i + 3);
    n = i64x2.add(n, four);
    nb = i64x2.add(nb, four);
  }
  return -1;
}
`;
}

function commonGlobals() {
  const f = FLAVOURS.scalar;
  const body = [];
  for (const w of ROOT_ONLY_WORDS) body.push(`let v${w}: u64 = ${f.constant(V_INIT[w])};`);
  const msg = (index) => (index >= 1 && index <= 4 ? `m${index}` : null);
  for (const i of ROOT_ONLY_G) g(f, 'v', G_LANES[i], msg(SIGMA[0][2 * i]), msg(SIGMA[0][2 * i + 1]), body);
  for (const w of ROOT_ONLY_WORDS) body.push(`p${w} = v${w};`);
  return `/** h0 after parameter-block folding; the work value is H0 ^ v0 ^ v8. */
const H0: u64 = ${hex(H0)};

// The loaded root (message words m1..m4) and round 0 columns 1..3, precomputed per root.
${[1, 2, 3, 4].map((i) => `let r${i}: u64 = 0;`).join('\n')}
${ROOT_ONLY_WORDS.map((w) => `let p${w}: u64 = 0;`).join('\n')}

export function setRoot(m1: u64, m2: u64, m3: u64, m4: u64): void {
  r1 = m1;
  r2 = m2;
  r3 = m3;
  r4 = m4;
${indent(body, 1)}
}
`;
}

function indent(lines, depth) {
  const pad = '  '.repeat(depth);
  return lines.map((l) => pad + l).join('\n');
}

/** The generated AssemblyScript text of one kernel. */
export function kernelSource(flavour) {
  if (flavour === 'scalar') return scalarSource();
  if (flavour === 'simd') return simdSource();
  throw new Error(`unknown kernel flavour ${flavour}`);
}

export const KERNEL_FILES = {
  scalar: 'nano-pow-scalar.ts',
  simd: 'nano-pow-simd.ts',
};

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const [flavour, file] of Object.entries(KERNEL_FILES)) {
    const target = new URL(`./${file}`, import.meta.url);
    writeFileSync(target, kernelSource(flavour));
    console.log(`wrote assembly/${file}`);
  }
}
