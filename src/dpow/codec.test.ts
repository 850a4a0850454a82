import { describe, expect, it } from 'vitest';
import { cancelCodec, clientCodec, parseTopic, resultCodec, statisticsCodec, workCodec } from './codec.ts';

const HASH = 'BFEB8AA91D346E6EFBB41D11FD247E48E0BC0DBC183DDEB9F26F3A98AA17522F';
const ADDR = 'nano_1dpowzkw9u6annz4z48aixw6oegeqicpozaajtcnjom3tqa3nwrkgsk6twj7';
const enc = (s: string) => new TextEncoder().encode(s);

describe('topics', () => {
  it('routes on the first segment, not substrings', () => {
    expect(parseTopic('work/precache')).toEqual({ ok: true, value: { kind: 'work', workType: 'precache' } });
    expect(parseTopic('client/nano_1work')).toEqual({ ok: true, value: { kind: 'client', address: 'nano_1work' } });
    expect(parseTopic('heartbeat')).toEqual({ ok: true, value: { kind: 'heartbeat' } });
    for (const t of ['work/other', 'work', 'foo/work/precache', 'heartbeat/x', 'client/']) {
      expect(parseTopic(t)).toMatchObject({ ok: false, code: 'bad-topic' });
    }
  });
});

describe('work codec', () => {
  it('decodes the spec example and keeps the hash as it arrived', () => {
    const d = workCodec.decode(enc(`${HASH.toLowerCase()},ffffffc000000000`));
    expect(d).toEqual({ ok: true, value: { hash: HASH.toLowerCase(), difficulty: 0xffffffc000000000n } });
    expect(workCodec.encode({ hash: HASH, difficulty: 0xffffffc000000000n })).toBe(`${HASH},ffffffc000000000`);
  });
  it.each([
    ['', 'bad-field-count'],
    [HASH, 'bad-field-count'],
    [`${HASH},ffffffc000000000,x`, 'bad-field-count'],
    [`${HASH.slice(1)},ffffffc000000000`, 'bad-hash'],
    [`${HASH},fffffc000000000`, 'bad-difficulty'],
    [`${HASH},zzzzzzzzzzzzzzzz`, 'bad-difficulty'],
  ])('rejects %j with %s', (payload, code) => {
    expect(workCodec.decode(payload)).toMatchObject({ ok: false, code });
  });
  it.each([
    ['a UTF-8 byte-order mark before the hash', [0xef, 0xbb, 0xbf], [], 'bad-hash'],
    ['a trailing newline', [], [0x0a], 'bad-difficulty'],
    ['a leading space', [0x20], [], 'bad-hash'],
    ['a trailing NUL', [], [0x00], 'bad-difficulty'],
  ])('refuses %s: nothing outside the grammar is stripped', (_what, before, after, code) => {
    const bytes = new Uint8Array([...before, ...enc(`${HASH},ffffffc000000000`), ...after]);
    const d = workCodec.decode(bytes);
    expect(d).toMatchObject({ ok: false, code });
    // The reason shows the invisible byte so a log reader can see why.
    if (!d.ok) expect(d.reason).toMatch(/\\u\{[0-9a-f]+\}/);
  });
  it('refuses a byte-order mark in every CSV payload and in JSON ones', () => {
    const bom = (text: string) => new Uint8Array([0xef, 0xbb, 0xbf, ...enc(text)]);
    expect(cancelCodec.decode(bom(HASH))).toMatchObject({ ok: false, code: 'bad-hash' });
    expect(resultCodec.decode(bom(`${HASH},3108a2891093ce9e,${ADDR}`))).toMatchObject({ ok: false, code: 'bad-hash' });
    expect(resultCodec.decode(enc(`${HASH},3108a2891093ce9e,${ADDR}\u00a0`))).toMatchObject({ ok: false, code: 'bad-address' });
    expect(clientCodec.decode(bom('{"ondemand":1}'))).toMatchObject({ ok: false, code: 'bad-json' });
  });
  it('rejects bytes that are not UTF-8', () => {
    expect(workCodec.decode(new Uint8Array([0xff, 0xfe]))).toMatchObject({ ok: false, code: 'bad-encoding' });
  });
});

describe('result codec', () => {
  it('round-trips the spec example', () => {
    const text = `${HASH},3108a2891093ce9e,${ADDR}`;
    const d = resultCodec.decode(text, { checkAddressChecksum: true });
    expect(d).toEqual({ ok: true, value: { hash: HASH, work: '3108a2891093ce9e', address: ADDR } });
    if (d.ok) expect(resultCodec.encode(d.value)).toBe(text);
  });
  it('rejects a bad address checksum when asked to check it', () => {
    const bad = `${HASH},3108a2891093ce9e,${ADDR.slice(0, -1)}8`;
    expect(resultCodec.decode(bad, { checkAddressChecksum: true })).toMatchObject({ ok: false, code: 'bad-address' });
    expect(resultCodec.decode(bad).ok).toBe(true);
    expect(resultCodec.decode(`${HASH},3108a2891093ce9e,a/b`)).toMatchObject({ ok: false, code: 'bad-address' });
    expect(resultCodec.decode(`${HASH},3108a2891093ce9,${ADDR}`)).toMatchObject({ ok: false, code: 'bad-work' });
  });
});

describe('cancel, client and statistics codecs', () => {
  it('decodes a cancel', () => {
    expect(cancelCodec.decode(HASH)).toEqual({ ok: true, value: HASH });
    expect(cancelCodec.decode('nope')).toMatchObject({ ok: false, code: 'bad-hash' });
  });
  it('decodes client stats and the error form', () => {
    const stats = { precache: 51230, ondemand: 11757, snapshot_precache: 33012, snapshot_ondemand: 7893, block_rewarded: HASH };
    expect(clientCodec.decode(JSON.stringify(stats))).toEqual({ ok: true, value: { kind: 'stats', stats } });
    const err = { error: `Work accepted but account x is invalid` };
    expect(clientCodec.decode(JSON.stringify(err))).toEqual({ ok: true, value: { kind: 'error', error: err.error } });
    expect(clientCodec.decode('{')).toMatchObject({ ok: false, code: 'bad-json' });
    expect(clientCodec.decode('{"precache":-1}')).toMatchObject({ ok: false, code: 'bad-shape' });
  });
  it("decodes the real server's message, which holds only the counters that exist", () => {
    // What the original DPoW server sends a new volunteer: no precache, no snapshots yet.
    expect(clientCodec.decode(`{"ondemand":1,"block_rewarded":"${HASH}"}`)).toEqual({
      ok: true,
      value: { kind: 'stats', stats: { precache: 0, ondemand: 1, snapshot_precache: 0, snapshot_ondemand: 0, block_rewarded: HASH } },
    });
    expect(clientCodec.decode('{}')).toEqual({
      ok: true,
      value: { kind: 'stats', stats: { precache: 0, ondemand: 0, snapshot_precache: 0, snapshot_ondemand: 0 } },
    });
  });
  it.each([
    ['{"ondemand":"1"}', 'ondemand'],
    ['{"precache":1.5}', 'precache'],
    ['{"ondemand":1,"snapshot_precache":null}', 'snapshot_precache'],
    ['{"snapshot_ondemand":true}', 'snapshot_ondemand'],
    ['{"ondemand":1,"block_rewarded":42}', 'block_rewarded'],
  ])('still refuses a counter of the wrong type: %s', (payload, field) => {
    const d = clientCodec.decode(payload);
    expect(d).toMatchObject({ ok: false, code: 'bad-shape' });
    if (!d.ok) expect(d.reason).toContain(`"${field}"`);
  });
  it('decodes statistics of the spec shape', () => {
    const s = {
      services: { public: [{ display: 'Test Service', website: 'test.dpow.org', precache: 213, ondemand: 1543 }], private: { count: 4, precache: 13494, ondemand: 11333 } },
      work: { precache: 93512, ondemand: 23351 },
    };
    expect(statisticsCodec.decode(statisticsCodec.encode(s))).toEqual({ ok: true, value: s });
    expect(statisticsCodec.decode('[]')).toMatchObject({ ok: false, code: 'bad-shape' });
    expect(statisticsCodec.decode('{"services":{"public":[{}],"private":{}},"work":{}}')).toMatchObject({ ok: false, code: 'bad-shape' });
  });
});
