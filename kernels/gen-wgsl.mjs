#!/usr/bin/env node
/**
 * Generates the WGSL kernel family (shaders/nano-pow-*.wgsl) and the bench's naive yardstick
 * (shaders/yardstick.wgsl) from one description of Blake2b over the 40-byte Nano block.
 *
 *   node kernels/gen-wgsl.mjs          writes the shaders
 *   node kernels/gen-wgsl.mjs --check  exits 1 when a committed shader is stale
 *
 * A kernel's source is named by its carry form; its variants (src/pow/kernel-family.ts) add the
 * nonces per invocation and the workgroup size, which are pipeline override constants. Every
 * member keeps the buffer layout of src/pow/kernel-layout.ts, documented in its header.
 *
 * The generator runs Blake2b's 12 rounds symbolically. Every u64 is either a constant (folded here
 * with BigInt) or a WGSL `let`. That gives, with no hand-unrolling:
 *   - the sigma permutation baked in (each G names its message words directly),
 *   - the zero message words m5..m15 dropped (adding zero emits nothing),
 *   - the IV/parameter words folded (h0 = IV0 ^ 0x01010008, v12 = IV4 ^ 40, v14 = ~IV6),
 *   - dead statements pruned (only h0 ^ v0 ^ v8 is read, so most of round 12 goes),
 *   - statements that depend only on the root hoisted out of the per-nonce loop,
 *   - the final xor with h0 folded into the compare, high word first;
 *   - carries either as plain unsigned compares ('plain') or as signed compares on biased low
 *     words ('biased', see "symbolic u64 values").
 * Before writing, it runs each straight-line program on BigInts and checks it against a Blake2b
 * library, so a generator bug fails here rather than on a GPU. kernels/kernel-ops.mjs then
 * evaluates the generated WGSL itself (and counts its ops).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { blake2b } from '@noble/hashes/blake2.js';
import { IV, MESSAGE_BYTES, PARAM0, SIGMA, U64_MASK } from './blake2b-nano.mjs';

const MASK = U64_MASK;
const BIAS = 0x80000000n;
const LO = 0xffffffffn;
const rotr64 = (x, n) => ((x >> BigInt(n)) | (x << BigInt(64 - n))) & MASK;
const words = (k) => [k & LO, k >> 32n];
const join = (lo, hi) => ((hi & LO) << 32n) | (lo & LO);
const hex32 = (w) => `0x${w.toString(16).padStart(8, '0')}u`;

/** Kernel sources: file name and what it is. */
export const KERNEL_SOURCES = {
  plain: 'nano-pow-plain.wgsl',
  biased: 'nano-pow-biased.wgsl',
};
export const YARDSTICK_FILE = 'yardstick.wgsl';

// ---- symbolic u64 values -------------------------------------------------------------------
//
// A value is a constant (its true value, folded here) or a WGSL `let`. A `let` is stored xor a
// known mask K (stored = true ^ K). With carry 'plain' every mask is 0. With 'biased' the
// generator keeps low words "biased" (top bit flipped, K.lo = 0x80000000) where that helps: the
// carry of a 64-bit add is an unsigned compare, which x86 SIMD (llvmpipe) lacks and emulates in
// 2-3 instructions, but with one addend's low word biased the sum's low word comes out biased too
// and the carry is a single signed compare. Xors and rotations carry the mask along (xor: K = Ka ^
// Kb, rotate: K rotates); constants are emitted with whatever mask suits; an add whose operands'
// masks do not fit gets one xor ("fixup") per word first. On a GPU the plain form may win: its
// compilers turn an unsigned `sum < addend` into add-with-carry, a pattern the bias hides.

/**
 * A builder of one straight-line program. fold: false (the yardstick) turns every constant into a
 * `let` first, so nothing is folded or dropped.
 */
function makeBuilder({ carry, fold = true }) {
  const biased = carry === 'biased';
  /** Straight-line program: each statement defines one `let`. */
  const statements = [];
  let counter = 0;

  const constant = (value) => ({ kind: 'const', value: value & MASK });

  /** operands: { var: name } or { lit: stored bigint }. */
  function emit(op, operands, n, mask) {
    const name = `t${counter++}`;
    const vars = operands.filter((o) => o.var);
    const nonce = vars.some((o) => o.nonce);
    statements.push({ name, op, operands, n, nonce, uses: vars.map((o) => o.var) });
    return { kind: 'var', name, nonce, mask: mask & MASK };
  }

  const ref = (v) => ({ var: v.name, nonce: v.nonce });
  /** A constant written so that it reads as `value` under mask `mask`. */
  const lit = (value, mask) => ({ lit: (value ^ mask) & MASK });
  /** Without folding, a constant operand becomes a `let` of its literal. */
  const materialise = (a) => (a.kind === 'const' && !fold ? emit('const', [lit(a.value, 0n)], 0, 0n) : a);

  function xor(a, b) {
    [a, b] = [materialise(a), materialise(b)];
    if (a.kind === 'const' && b.kind === 'const') return constant(a.value ^ b.value);
    if (a.kind === 'const') [a, b] = [b, a];
    // var ^ const: fold a's mask into the literal so the result is clean (mask 0).
    if (b.kind === 'const') return b.value === 0n && a.mask === 0n ? a : emit('xor', [ref(a), lit(b.value, a.mask)], 0, 0n);
    return emit('xor', [ref(a), ref(b)], 0, a.mask ^ b.mask);
  }

  /** xor then rotate right, as one statement (the only way G rotates). */
  function xorRotr(a, b, n) {
    [a, b] = [materialise(a), materialise(b)];
    if (a.kind === 'const' && b.kind === 'const') return constant(rotr64(a.value ^ b.value, n));
    if (a.kind === 'const') [a, b] = [b, a];
    if (b.kind === 'const') {
      const operands = b.value === 0n && a.mask === 0n ? [ref(a)] : [ref(a), lit(b.value, a.mask)];
      return emit('xorrotr', operands, n, 0n);
    }
    // Clean the mask right after the rotation: a rotated bias is junk to every later add, and one
    // fixup here serves all of the value's uses (measured: ~40% fewer fixups than fixing lazily).
    return remask(emit('xorrotr', [ref(a), ref(b)], n, rotr64(a.mask ^ b.mask, n)), 0n);
  }

  const okWord = (w) => w === 0n || w === BIAS;

  /** Re-masks a to `target` with one xor (memoised: one fixup per value and mask). */
  const fixed = new Map();
  function remask(a, target) {
    if (a.mask === target) return a;
    const key = `${a.name}:${target}`;
    if (!fixed.has(key)) {
      const fix = emit('xor', [ref(a), { lit: a.mask ^ target }], 0, target);
      statements.at(-1).fixupWords = words(a.mask ^ target).filter((w) => w !== 0n).length;
      fixed.set(key, fix);
    }
    return fixed.get(key);
  }

  /** The nearest usable mask: junk words go to 0, or the low word to `lo` when given. */
  function usable(mask, lo) {
    const [l, h] = words(mask);
    return join(lo ?? (okWord(l) ? l : 0n), okWord(h) ? h : 0n);
  }

  function add(a, b) {
    [a, b] = [materialise(a), materialise(b)];
    if (a.kind === 'const' && b.kind === 'const') return constant(a.value + b.value);
    if (a.kind === 'const') [a, b] = [b, a];
    if (!biased) {
      if (b.kind === 'const') return b.value === 0n ? a : emit('add', [ref(a), lit(b.value, 0n)], 0, 0n);
      return emit('add', [ref(a), ref(b)], 0, 0n);
    }
    if (b.kind === 'const') {
      if (b.value === 0n) return a;
      // The constant takes whichever low-word bias a lacks.
      const am = remask(a, usable(a.mask));
      const [al, ah] = words(am.mask);
      const bl = al === 0n ? BIAS : 0n;
      const operands = al === BIAS ? [ref(am), lit(b.value, join(bl, 0n))] : [lit(b.value, join(bl, 0n)), ref(am)];
      return emit('add', operands, 0, join(BIAS, ah));
    }
    // Two lets: exactly one low word biased, high words 0 or BIAS.
    const [al] = words(a.mask);
    const [bl] = words(b.mask);
    let am;
    let bm;
    if (okWord(al) && okWord(bl) && al !== bl) {
      am = remask(a, usable(a.mask));
      bm = remask(b, usable(b.mask));
    } else if (okWord(al)) {
      am = remask(a, usable(a.mask));
      bm = remask(b, usable(b.mask, al === 0n ? BIAS : 0n));
    } else if (okWord(bl)) {
      bm = remask(b, usable(b.mask));
      am = remask(a, usable(a.mask, bl === 0n ? BIAS : 0n));
    } else {
      am = remask(a, usable(a.mask, BIAS));
      bm = remask(b, usable(b.mask, 0n));
    }
    const hi = (words(am.mask)[1] + words(bm.mask)[1]) & LO;
    const [first, second] = words(am.mask)[0] === BIAS ? [am, bm] : [bm, am];
    return emit('add', [ref(first), ref(second)], 0, join(BIAS, hi));
  }

  return { statements, constant, xor, xorRotr, add, input: (name, nonce) => ({ kind: 'var', name, nonce, mask: 0n }) };
}

/** Runs a program on BigInts with the shader's exact word arithmetic (for the self-check). */
function evaluate(program, env, carry) {
  const val = (o) => (o.var ? env.get(o.var) : o.lit);
  const signed = (w) => (w >= BIAS ? w - (1n << 32n) : w);
  for (const s of program) {
    const x = s.operands.map(val);
    let out;
    if (s.op === 'add') {
      const [al, ah] = words(x[0]);
      const [bl, bh] = words(x[1]);
      const lo = (al + bl) & LO;
      const carried = carry === 'biased' ? signed(lo) < signed(al) : lo < al;
      out = join(lo, ah + bh + (carried ? 1n : 0n));
    } else if (s.op === 'const') {
      out = x[0];
    } else {
      out = x.reduce((p, q) => p ^ q, 0n);
      if (s.op === 'xorrotr') out = rotr64(out, s.n);
    }
    env.set(s.name, out);
  }
  return env;
}

// ---- Blake2b over the 40-byte block ---------------------------------------------------------

/**
 * The program of one kernel: the mixed value s = v0 ^ v8 of the final state (stored under mask
 * `finalMask`, so the work value is s ^ (h0 ^ finalMask)), its statements split into the
 * root-only part (prepare) and the per-nonce part.
 */
function buildProgram({ carry, fold = true }) {
  const b = makeBuilder({ carry, fold });
  const m = Array.from({ length: 16 }, (_, i) =>
    i === 0 ? b.input('m0', true) : i <= 4 ? b.input(`m${i}`, false) : b.constant(0n),
  );
  const h0 = IV[0] ^ PARAM0;
  const v = [
    b.constant(h0), ...IV.slice(1).map(b.constant),
    ...IV.slice(0, 4).map(b.constant),
    b.constant(IV[4] ^ MESSAGE_BYTES), // t0 = 40 (t1 = 0 leaves v13 alone)
    b.constant(IV[5]),
    b.constant(~IV[6]), // last block: f0 = all ones
    b.constant(IV[7]),
  ];
  const G = (a, bb, c, d, x, y) => {
    v[a] = b.add(b.add(v[a], v[bb]), x);
    v[d] = b.xorRotr(v[d], v[a], 32);
    v[c] = b.add(v[c], v[d]);
    v[bb] = b.xorRotr(v[bb], v[c], 24);
    v[a] = b.add(b.add(v[a], v[bb]), y);
    v[d] = b.xorRotr(v[d], v[a], 16);
    v[c] = b.add(v[c], v[d]);
    v[bb] = b.xorRotr(v[bb], v[c], 63);
  };
  for (let r = 0; r < 12; r++) {
    const s = SIGMA[r % 10];
    G(0, 4, 8, 12, m[s[0]], m[s[1]]);
    G(1, 5, 9, 13, m[s[2]], m[s[3]]);
    G(2, 6, 10, 14, m[s[4]], m[s[5]]);
    G(3, 7, 11, 15, m[s[6]], m[s[7]]);
    G(0, 5, 10, 15, m[s[8]], m[s[9]]);
    G(1, 6, 11, 12, m[s[10]], m[s[11]]);
    G(2, 7, 8, 13, m[s[12]], m[s[13]]);
    G(3, 4, 9, 14, m[s[14]], m[s[15]]);
  }
  const mixed = b.xor(v[0], v[8]);
  if (mixed.kind !== 'var') throw new Error('the mixed value must be a let');
  const { statements } = b;

  // Liveness, backwards from the result: drop everything the final h0 does not read.
  const live = new Set([mixed.name]);
  const kept = [];
  for (let i = statements.length - 1; i >= 0; i--) {
    const s = statements[i];
    if (fold && !live.has(s.name)) continue;
    kept.unshift(s);
    for (const u of s.uses) live.add(u);
  }
  // Root-only statements run once per invocation (prepare); the rest run once per nonce. The
  // yardstick hoists nothing.
  const hoisted = fold ? kept.filter((s) => !s.nonce) : [];
  const perNonce = fold ? kept.filter((s) => s.nonce) : kept;
  const hoistedNames = new Set(hoisted.map((s) => s.name));
  const crossing = [...new Set(perNonce.flatMap((s) => s.uses).filter((u) => hoistedNames.has(u)))];
  const rootWordsUsed = ['m1', 'm2', 'm3', 'm4'].filter((w) => perNonce.some((s) => s.uses.includes(w)));
  const program = {
    carry,
    total: statements.length,
    kept,
    hoisted,
    perNonce,
    preparedFields: [...rootWordsUsed, ...crossing],
    mixed: mixed.name,
    finalConstant: h0 ^ mixed.mask,
    fixups: perNonce.reduce((n, s) => n + (s.fixupWords ?? 0), 0),
  };
  selfCheck(program);
  return program;
}

/** Runs the program on BigInts and compares with a Blake2b library. */
function selfCheck(program) {
  for (let seed = 1n; seed <= 64n; seed++) {
    const nonce = (seed * 0x9e3779b97f4a7c15n) & MASK;
    const root = Array.from({ length: 4 }, (_, i) => ((seed + BigInt(i)) * 0xbf58476d1ce4e5b9n) & MASK);
    const env = new Map([['m0', nonce], ...root.map((w, i) => [`m${i + 1}`, w])]);
    const got = evaluate(program.kept, env, program.carry).get(program.mixed) ^ program.finalConstant;
    const message = new Uint8Array(40);
    const view = new DataView(message.buffer);
    [nonce, ...root].forEach((w, i) => view.setBigUint64(i * 8, w, true));
    const want = new DataView(blake2b(message, { dkLen: 8 }).buffer).getBigUint64(0, true);
    if (got !== want) throw new Error(`${program.carry} self-check failed: ${got.toString(16)} != ${want.toString(16)}`);
  }
}

// ---- output ---------------------------------------------------------------------------------

function render(o) {
  if (o.var) return o.var;
  const [lo, hi] = words(o.lit);
  return `vec2<u32>(${hex32(lo)}, ${hex32(hi)})`;
}

function renderStatement(s, rename = (x) => x) {
  const args = s.operands.map((o) => (o.var ? rename(o.var) : render(o)));
  switch (s.op) {
    case 'const':
      return args[0];
    case 'add':
      return `add(${args[0]}, ${args[1]})`;
    case 'xor':
      return `${args[0]} ^ ${args[1]}`;
    case 'xorrotr':
      return `rotr${s.n}(${args.join(' ^ ')})`;
  }
  throw new Error(s.op);
}

const indent = (lines) => lines.map((l) => `  ${l}`).join('\n');

const ADD = {
  plain: `/** 64-bit add: the carry out of the low words is an unsigned compare. */
fn add(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
  let lo = a.x + b.x;
  return vec2<u32>(lo, a.y + b.y + select(0u, 1u, lo < a.x));
}`,
  biased: `/**
 * 64-bit add where a's low word is biased (stored with its top bit flipped) and b's is not: the
 * sum's low word comes out biased too, and the carry (an unsigned lo < a.lo) is a signed compare
 * of the biased words, one instruction on SIMD hardware without unsigned compares.
 */
fn add(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
  let lo = a.x + b.x;
  return vec2<u32>(lo, a.y + b.y + select(0u, 1u, bitcast<i32>(lo) < bitcast<i32>(a.x)));
}`,
};

const TITLE = {
  plain: 'carries as plain unsigned compares (the form GPU compilers turn into add-with-carry)',
  biased: 'carries as signed compares on biased low words (fastest on CPU rasterisers)',
  yardstick: "the bench's naive yardstick: every round written out, nothing folded, pruned or hoisted",
};

function header(program, kind) {
  const tricks =
    kind === 'yardstick'
      ? `// No tricks on purpose: the bench measures the family against this kernel. Rounds unrolled with
// the sigma permutation baked in, u64 as vec2<u32>, plain carries; the IV, the parameter words
// and the zero message words m5..m15 are written out as literals and added like any other
// value, and all ${program.total} statements run for every nonce. Run it with
// NONCES_PER_INVOCATION = 1.`
      : `// Tricks (all applied by the generator):
//   - rounds fully unrolled with the sigma permutation baked in: no message array, no indexing;
//   - zero message words m5..m15 folded away: additions of zero are never emitted;
//   - IV / parameter words folded: h0 = IV0 ^ 0x01010008, v12 = IV4 ^ 40, v14 = ~IV6, and any
//     arithmetic on constants alone is done by the generator;
//   - dead code pruned: only h0 ^ v0 ^ v8 is read, so ${program.total - program.kept.length} of ${program.total} statements are dropped;
//   - root-only statements (${program.hoisted.length} of them, most of round 1) run once per invocation in
//     prepare(), not once per nonce;
//   - the final xor with h0 is folded into the compare, which looks at the high word first;
//   - rotations specialised: 32 = swap halves, 24 / 16 = shift pairs, 63 = rotate left by 1;
${
  kind === 'biased'
    ? `//   - carries as signed compares: lets are stored xor a mask known to the generator so that one
//     addend of every add has its low word biased (top bit flipped); ${program.fixups} word xors per
//     nonce re-mask values where needed (see add());
`
    : `//   - carries as unsigned compares (lo < a.lo), which GPU compilers map to add-with-carry;
`
}//   - each invocation tests NONCES_PER_INVOCATION nonces (amortising its start-up and prepare())
//     and stops once any invocation has set the found flag: checked when it starts and every
//     STOP_CHECK_INTERVAL nonces.`;
  return `// Nano / QLC proof of work: value = LE_u64(blake2b(digest 8, LE_bytes(nonce) || root[32])),
// valid when value >= difficulty (unsigned 64-bit). The rule itself lives in src/pow/work.ts.
//
// Kernel source: ${kind}, ${TITLE[kind]}.
// GENERATED by kernels/gen-wgsl.mjs -- edit the generator, not this file.
//
// Every u64 is a vec2<u32>: .x = low 32 bits, .y = high 32 bits.
//
// Bindings (group 0), as src/pow/kernel-layout.ts writes them:
//   @binding(0) params: uniform Params, 64 bytes
//     offset  0  root        array<vec4<u32>, 2>  message words m1..m4 (the root as 4 LE u64s):
//                                                  root[0] = (m1.lo, m1.hi, m2.lo, m2.hi),
//                                                  root[1] = (m3.lo, m3.hi, m4.lo, m4.hi)
//     offset 32  difficulty  vec2<u32>            (lo, hi)
//     offset 40  base        vec2<u32>            first nonce of this dispatch (lo, hi)
//     offset 48  row_width   u32                  invocations per row of the 2-D grid
//                                                  (workgroups in x * WORKGROUP_SIZE)
//     offset 52  count       u32                  values_main only: nonces to evaluate
//     offset 56  (padding to 64)
//   @binding(1) result: storage, read_write, 16 bytes (search_main)
//     offset  0  found       atomic<u32>          0 until a nonce qualifies; the first invocation
//                                                  whose atomicAdd returns 0 writes the nonce
//     offset  4  (padding)
//     offset  8  nonce       vec2<u32>            the winning nonce (lo, hi)
//   @binding(2) values: storage, read_write, count * 8 bytes (values_main, tests only)
//
// Nonce layout: invocation i = gid.y * row_width + gid.x tests the NONCES_PER_INVOCATION nonces
//   base + i * NONCES_PER_INVOCATION + k, k = 0 .. NONCES_PER_INVOCATION - 1 (64-bit add with
//   carry), so one dispatch covers base .. base + invocations * NONCES_PER_INVOCATION - 1 and the
//   host advances base by that much. values_main uses nonce base + i for i < count.
//
// Per-nonce path (what kernels/kernel-ops.mjs evaluates and counts): nonce_at, mixed, meets.
//
${tricks}`;
}

function kernelSource(kind) {
  const program = buildProgram(kind === 'yardstick' ? { carry: 'plain', fold: false } : { carry: kind });
  const fields = program.preparedFields;
  const prepareBody = program.hoisted.map((s) => `let ${s.name} = ${renderStatement(s)};`);
  const perNonceBody = program.perNonce.map(
    (s) => `let ${s.name} = ${renderStatement(s, (w) => (fields.includes(w) ? `p.${w}` : w))};`,
  );
  const [finalLo, finalHi] = words(program.finalConstant);
  return `${header(program, kind)}

/** Workgroup size along x. */
override WORKGROUP_SIZE: u32 = 64u;
/** Nonces each search_main invocation tests in its loop. */
override NONCES_PER_INVOCATION: u32 = ${kind === 'yardstick' ? 1 : 64}u;
/** Nonces between two looks at the found flag inside the loop (a power of two). */
const STOP_CHECK_INTERVAL: u32 = 16u;
/** The work value is mixed() ^ FINAL: h0 of the initial state, xor the mask mixed() is kept under. */
const FINAL = vec2<u32>(${hex32(finalLo)}, ${hex32(finalHi)});

struct Params {
  root: array<vec4<u32>, 2>,
  difficulty: vec2<u32>,
  base: vec2<u32>,
  row_width: u32,
  count: u32,
}

struct SearchResult {
  found: atomic<u32>,
  pad: u32,
  nonce: vec2<u32>,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> result: SearchResult;
@group(0) @binding(2) var<storage, read_write> values: array<vec2<u32>>;

${ADD[program.carry]}

/** Rotate right by 32: swap the halves. */
fn rotr32(x: vec2<u32>) -> vec2<u32> {
  return x.yx;
}

/** Rotate right by 24: each half takes its top byte from the other. */
fn rotr24(x: vec2<u32>) -> vec2<u32> {
  return (x >> vec2<u32>(24u)) | (x.yx << vec2<u32>(8u));
}

/** Rotate right by 16. */
fn rotr16(x: vec2<u32>) -> vec2<u32> {
  return (x >> vec2<u32>(16u)) | (x.yx << vec2<u32>(16u));
}

/** Rotate right by 63 = rotate left by 1. */
fn rotr63(x: vec2<u32>) -> vec2<u32> {
  return (x << vec2<u32>(1u)) | (x.yx >> vec2<u32>(31u));
}

/** What every nonce of a root shares: the root words${program.hoisted.length ? ' and the root-only part of round 1' : ''}. */
struct Prepared {
${fields.map((f) => `  ${f}: vec2<u32>,`).join('\n')}
}

fn prepare() -> Prepared {
  let m1 = params.root[0].xy;
  let m2 = params.root[0].zw;
  let m3 = params.root[1].xy;
  let m4 = params.root[1].zw;
${indent(prepareBody)}
  return Prepared(${fields.join(', ')});
}

/** v0 ^ v8 of the final state for nonce m0 (the work value is this ^ FINAL). */
fn mixed(m0: vec2<u32>, p: Prepared) -> vec2<u32> {
${indent(perNonceBody)}
  return ${program.mixed};
}

/** The work value (the final h0) of nonce m0. */
fn work_value(m0: vec2<u32>, p: Prepared) -> vec2<u32> {
  return mixed(m0, p) ^ FINAL;
}

/** base + offset, with the carry into the high word. */
fn nonce_at(offset: u32) -> vec2<u32> {
  let lo = params.base.x + offset;
  return vec2<u32>(lo, params.base.y + select(0u, 1u, lo < offset));
}

/**
 * value >= difficulty over the full 64 bits, from the mixed value: the high words decide unless
 * they are equal (about 1 nonce in 2^32), and only then is the low word finished.
 */
fn meets(m: vec2<u32>) -> bool {
  let d = params.difficulty;
  let hi = m.y ^ FINAL.y;
  if (hi != d.y) {
    return hi > d.y;
  }
  return (m.x ^ FINAL.x) >= d.x;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn search_main(@builtin(global_invocation_id) gid: vec3<u32>) {
  // Another invocation already won: skip the prepare work too.
  if (atomicLoad(&result.found) != 0u) {
    return;
  }
  let p = prepare();
  let first = (gid.y * params.row_width + gid.x) * NONCES_PER_INVOCATION;
  for (var k = 0u; k < NONCES_PER_INVOCATION; k++) {
    let nonce = nonce_at(first + k);
    if (meets(mixed(nonce, p))) {
      // Exactly one winner writes the nonce; later finders only bump the counter.
      if (atomicAdd(&result.found, 1u) == 0u) {
        result.nonce = nonce;
      }
      return;
    }
    // Stop once someone has won. Not every nonce: an atomic load is a read-modify-write on some
    // backends (atomicOr(x, 0) in GLSL) and costs ~20% on llvmpipe when done per nonce.
    if ((k & (STOP_CHECK_INTERVAL - 1u)) == STOP_CHECK_INTERVAL - 1u && atomicLoad(&result.found) != 0u) {
      return;
    }
  }
}

/** Tests only: the work value of nonce base + i for each i < count. */
@compute @workgroup_size(WORKGROUP_SIZE)
fn values_main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = gid.y * params.row_width + gid.x;
  if (i >= params.count) {
    return;
  }
  values[i] = work_value(nonce_at(i), prepare());
}
`;
}

/** Every generated file: name under shaders/ and its text. */
export function generatedShaders() {
  return [
    ...Object.entries(KERNEL_SOURCES).map(([kind, file]) => ({ file, text: kernelSource(kind) })),
    { file: YARDSTICK_FILE, text: kernelSource('yardstick') },
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const { file, text } of generatedShaders()) {
    const target = fileURLToPath(new URL(`../shaders/${file}`, import.meta.url));
    if (check) {
      let current = '';
      try {
        current = readFileSync(target, 'utf8');
      } catch {}
      if (current !== text) {
        process.stderr.write(`shaders/${file} is stale: run node kernels/gen-wgsl.mjs\n`);
        stale++;
      }
    } else {
      writeFileSync(target, text);
      process.stdout.write(`wrote shaders/${file}\n`);
    }
  }
  if (stale) process.exit(1);
}
