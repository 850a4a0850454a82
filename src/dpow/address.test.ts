import { describe, expect, it } from 'vitest';
import vectors from '../../test/vectors/nano-work.json' with { type: 'json' };
import { checkAddress, encodeAddress } from './address.ts';

describe('addresses', () => {
  it.each(vectors.addresses)('checks $address', (v) => {
    const check = checkAddress(v.address);
    expect(check.ok).toBe(v.valid);
    if (check.ok && 'public_key' in v) expect(check.publicKeyHex).toBe(v.public_key);
    if (!check.ok && 'why' in v) expect(check.code).toBe('bad-checksum');
  });
  it('round-trips a public key', () => {
    const key = vectors.addresses[0].public_key!;
    expect(encodeAddress(key, 'nano')).toBe(vectors.addresses[0].address);
    expect(encodeAddress(key, 'qlc')).toBe(vectors.addresses[1].address);
  });
  it('gives a specific reason for each kind of mistake', () => {
    const good = vectors.addresses[0].address;
    expect(checkAddress(good.replace('nano_', 'nan_'))).toMatchObject({ code: 'bad-prefix' });
    expect(checkAddress(good.slice(0, -1))).toMatchObject({ code: 'bad-length' });
    expect(checkAddress(good.slice(0, -1) + '0')).toMatchObject({ code: 'bad-character' });
    expect(checkAddress(good.replace('nano_3', 'nano_4'))).toMatchObject({ code: 'bad-first-char' });
    expect(checkAddress(good, ['qlc'])).toMatchObject({ code: 'bad-prefix' });
    expect(checkAddress(undefined)).toMatchObject({ code: 'not-a-string' });
  });
});
