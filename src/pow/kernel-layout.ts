/**
 * The buffers the WGSL kernel and the host share, written down once. The host derives every
 * offset and size it uses from these tables (webgpu.ts), and kernel-layout.test.ts checks that
 * each generated kernel's `struct Params` / `struct SearchResult` and its header lay the fields
 * out at the same offsets.
 */

export interface LayoutField {
  /** The field's name in the WGSL struct. */
  readonly name: string;
  /** Its WGSL type. */
  readonly type: string;
  /** Byte offset in the buffer. */
  readonly offset: number;
  /** Byte size. */
  readonly size: number;
}

/** @group(0) @binding(0) var<uniform> params: Params */
export const PARAMS_FIELDS = [
  // offset  0: the root as message words m1..m4 (4 little-endian u64s, as (lo, hi) u32 pairs):
  //            root[0] = (m1.lo, m1.hi, m2.lo, m2.hi), root[1] = (m3.lo, m3.hi, m4.lo, m4.hi)
  { name: 'root', type: 'array<vec4<u32>, 2>', offset: 0, size: 32 },
  // offset 32: the difficulty (lo, hi); a value qualifies when value >= difficulty
  { name: 'difficulty', type: 'vec2<u32>', offset: 32, size: 8 },
  // offset 40: the first nonce of this dispatch (lo, hi)
  { name: 'base', type: 'vec2<u32>', offset: 40, size: 8 },
  // offset 48: invocations per row of the 2-D grid (workgroups in x * workgroup size)
  { name: 'row_width', type: 'u32', offset: 48, size: 4 },
  // offset 52: values_main only: how many nonces to evaluate
  { name: 'count', type: 'u32', offset: 52, size: 4 },
  // offset 56: padding up to PARAMS_BYTES (a uniform buffer's size is a multiple of 16)
] as const satisfies readonly LayoutField[];

/** Size of the Params uniform buffer. */
export const PARAMS_BYTES = 64;

/** @group(0) @binding(1) var<storage, read_write> result: SearchResult (search_main) */
export const RESULT_FIELDS = [
  // offset 0: 0 until a nonce qualifies; the invocation whose atomicAdd returns 0 writes nonce
  { name: 'found', type: 'atomic<u32>', offset: 0, size: 4 },
  // offset 4: padding, so nonce is 8-byte aligned
  { name: 'pad', type: 'u32', offset: 4, size: 4 },
  // offset 8: the winning nonce (lo, hi)
  { name: 'nonce', type: 'vec2<u32>', offset: 8, size: 8 },
] as const satisfies readonly LayoutField[];

/** Size of the SearchResult storage buffer. */
export const RESULT_BYTES = 16;

/** @group(0) @binding(2) var<storage, read_write> values: array<vec2<u32>> (values_main, tests) */
export const VALUE_BYTES = 8;

export const BINDING = { params: 0, result: 1, values: 2 } as const;

type FieldName<T extends readonly LayoutField[]> = T[number]['name'];

/** The field `name` of a layout (a typo is a type error). */
export function field<T extends readonly LayoutField[]>(fields: T, name: FieldName<T>): LayoutField {
  return fields.find((f) => f.name === name)!;
}

/** Index of `name` in a Uint32Array over the buffer. */
export function wordIndex<T extends readonly LayoutField[]>(fields: T, name: FieldName<T>): number {
  return field(fields, name).offset / 4;
}

const U32 = 0xffffffffn;

/** The Params buffer's contents for one dispatch. */
export function encodeParams(
  root: Uint8Array,
  difficulty: bigint,
  base: bigint,
  rowWidth: number,
  count: number,
): Uint32Array<ArrayBuffer> {
  const words = new Uint32Array(PARAMS_BYTES / 4);
  const view = new DataView(root.buffer, root.byteOffset, root.byteLength);
  const rootAt = wordIndex(PARAMS_FIELDS, 'root');
  for (let i = 0; i < 8; i++) words[rootAt + i] = view.getUint32(i * 4, true);
  const difficultyAt = wordIndex(PARAMS_FIELDS, 'difficulty');
  words[difficultyAt] = Number(difficulty & U32);
  words[difficultyAt + 1] = Number((difficulty >> 32n) & U32);
  const baseAt = wordIndex(PARAMS_FIELDS, 'base');
  words[baseAt] = Number(base & U32);
  words[baseAt + 1] = Number((base >> 32n) & U32);
  words[wordIndex(PARAMS_FIELDS, 'row_width')] = rowWidth;
  words[wordIndex(PARAMS_FIELDS, 'count')] = count;
  return words;
}

/** Reads a SearchResult buffer back. */
export function decodeResult(bytes: ArrayBuffer): { found: boolean; nonce: bigint } {
  const words = new Uint32Array(bytes, 0, RESULT_BYTES / 4);
  const nonceAt = wordIndex(RESULT_FIELDS, 'nonce');
  return {
    found: words[wordIndex(RESULT_FIELDS, 'found')] !== 0,
    nonce: (BigInt(words[nonceAt + 1]) << 32n) | BigInt(words[nonceAt]),
  };
}
