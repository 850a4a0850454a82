/**
 * The host's buffer layout (kernel-layout.ts) against what the generated kernels declare: their
 * `struct Params` / `struct SearchResult` (offsets by WGSL's alignment rules) and the offsets
 * their header comment documents.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodeResult, encodeParams, type LayoutField, PARAMS_BYTES, PARAMS_FIELDS, RESULT_BYTES, RESULT_FIELDS } from './kernel-layout.ts';

const SHADER_DIR = new URL('../../shaders/', import.meta.url);
const shaders = readdirSync(SHADER_DIR)
  .filter((name) => name.endsWith('.wgsl'))
  .map((name) => ({ name, code: readFileSync(new URL(name, SHADER_DIR), 'utf8') }));

/** Alignment and size of the few WGSL types the shared structs use. */
function typeLayout(type: string): { align: number; size: number } {
  if (type === 'u32' || type === 'atomic<u32>') return { align: 4, size: 4 };
  if (type === 'vec2<u32>') return { align: 8, size: 8 };
  if (type === 'vec4<u32>') return { align: 16, size: 16 };
  const array = /^array<(.+), (\d+)>$/.exec(type);
  if (array) {
    const element = typeLayout(array[1]);
    return { align: element.align, size: Math.ceil(element.size / element.align) * element.align * Number(array[2]) };
  }
  throw new Error(`no layout rule for ${type}`);
}

/** The fields of `struct name` in WGSL source, laid out as WGSL does. */
function structLayout(code: string, name: string): { fields: LayoutField[]; size: number } {
  const body = new RegExp(`struct ${name} \\{([^}]*)\\}`).exec(code)?.[1];
  if (!body) throw new Error(`no struct ${name}`);
  let offset = 0;
  let align = 1;
  const fields: LayoutField[] = [];
  for (const line of body.split('\n')) {
    const match = /^\s*(\w+): (.+),\s*$/.exec(line);
    if (!match) continue;
    const layout = typeLayout(match[2]);
    offset = Math.ceil(offset / layout.align) * layout.align;
    fields.push({ name: match[1], type: match[2], offset, size: layout.size });
    offset += layout.size;
    align = Math.max(align, layout.align);
  }
  return { fields, size: Math.ceil(offset / align) * align };
}

/** The `offset N  name` lines of the header between two markers. */
function headerOffsets(code: string, from: string, to: string): { name: string; offset: number }[] {
  const start = code.indexOf(from);
  const end = code.indexOf(to, start);
  return [...code.slice(start, end).matchAll(/^\/\/\s+offset\s+(\d+)\s+(\w+)/gm)].map((m) => ({
    offset: Number(m[1]),
    name: m[2],
  }));
}

describe('kernel buffer layout', () => {
  it('has at least one generated kernel to check', () => {
    expect(shaders.length).toBeGreaterThan(0);
  });

  for (const { name, code } of shaders) {
    it(`${name}: struct Params and struct SearchResult match the host layout`, () => {
      const params = structLayout(code, 'Params');
      expect(params.fields).toEqual(PARAMS_FIELDS);
      expect(params.size).toBeLessThanOrEqual(PARAMS_BYTES);
      const result = structLayout(code, 'SearchResult');
      expect(result.fields).toEqual(RESULT_FIELDS);
      expect(result.size).toBe(RESULT_BYTES);
    });

    it(`${name}: the header documents the same offsets`, () => {
      const pick = (fields: readonly LayoutField[]) => fields.map(({ name, offset }) => ({ name, offset }));
      expect(headerOffsets(code, '@binding(0) params', '@binding(1)')).toEqual(pick(PARAMS_FIELDS));
      // The header lists the result's padding as "(padding)", not by name.
      expect(headerOffsets(code, '@binding(1) result', '@binding(2)')).toEqual(
        pick(RESULT_FIELDS.filter((f) => f.name !== 'pad')),
      );
      expect(code).toContain(`params: uniform Params, ${PARAMS_BYTES} bytes`);
      expect(code).toContain(`${RESULT_BYTES} bytes (search_main)`);
    });
  }

  it('encodes params and decodes results at those offsets', () => {
    const root = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
    const words = encodeParams(root, 0xfedcba9876543210n, 0x1122334455667788n, 4096, 77);
    expect(words.byteLength).toBe(PARAMS_BYTES);
    expect(words[0]).toBe(0x04030201);
    expect(words[7]).toBe(0x201f1e1d);
    expect([words[8], words[9]]).toEqual([0x76543210, 0xfedcba98]);
    expect([words[10], words[11]]).toEqual([0x55667788, 0x11223344]);
    expect([words[12], words[13]]).toEqual([4096, 77]);
    const result = new Uint32Array([1, 0, 0x9abcdef0, 0x12345678]);
    expect(decodeResult(result.buffer)).toEqual({ found: true, nonce: 0x123456789abcdef0n });
  });
});
