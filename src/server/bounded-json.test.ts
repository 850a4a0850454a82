import { describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH, parseBoundedJson } from './bounded-json.ts';

const arrays = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

describe('parseBoundedJson', () => {
  it('parses JSON within the limits', () => {
    expect(parseBoundedJson('{"a":[1,{"b":"c"}]}', { maxBytes: 100 })).toEqual({ ok: true, value: { a: [1, { b: 'c' }] } });
    expect(parseBoundedJson(arrays(MAX_JSON_DEPTH), { maxBytes: 1000 })).toMatchObject({ ok: true });
  });

  it('refuses nesting past the limit before parsing, however deep', () => {
    expect(parseBoundedJson(arrays(MAX_JSON_DEPTH + 1), { maxBytes: 1000 })).toEqual({ ok: false, reason: 'too-deep' });
    expect(parseBoundedJson(`{"id":${arrays(6000)}}`, { maxBytes: 16_384 })).toEqual({ ok: false, reason: 'too-deep' });
    expect(parseBoundedJson(`${'{"a":'.repeat(40)}1${'}'.repeat(40)}`, { maxBytes: 1000 })).toEqual({ ok: false, reason: 'too-deep' });
    expect(parseBoundedJson(arrays(4), { maxBytes: 100, maxDepth: 3 })).toEqual({ ok: false, reason: 'too-deep' });
  });

  it('does not count brackets inside strings, escaped quotes included', () => {
    const text = JSON.stringify({ s: '['.repeat(100), t: '\\"[[[[', u: '"{{{{' });
    expect(parseBoundedJson(text, { maxBytes: 1000, maxDepth: 1 })).toMatchObject({ ok: true });
  });

  it('bounds the size in UTF-8 bytes', () => {
    expect(parseBoundedJson('"é"', { maxBytes: 4 })).toEqual({ ok: true, value: 'é' });
    expect(parseBoundedJson('"éé"', { maxBytes: 5 })).toEqual({ ok: false, reason: 'too-large' });
  });

  it('says not-json for anything JSON.parse refuses', () => {
    for (const text of ['', '{', 'nope', '[1,]', '{"a":1}}']) expect(parseBoundedJson(text, { maxBytes: 100 })).toEqual({ ok: false, reason: 'not-json' });
  });
});
