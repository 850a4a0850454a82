import { describe, expect, it } from 'vitest';
import { ApiKeyVerifier, generateApiKey, hashApiKey, parseKeyHash, SCRYPT_DEFAULTS, verifyApiKey } from './api-keys.ts';

// Cheap scrypt parameters keep the suite fast; the format and checks are the same.
const FAST = { N: 1 << 10, r: 8, p: 1 };

describe('api keys', () => {
  it('generates distinct 256-bit base64url keys', () => {
    const a = generateApiKey();
    const b = generateApiKey();
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(a).not.toBe(b);
  });

  it('stores a salted scrypt hash that verifies only the right key', async () => {
    const key = generateApiKey();
    const stored = await hashApiKey(key, FAST);
    expect(stored).toMatch(/^scrypt\$1024\$8\$1\$[A-Za-z0-9_-]+\$[A-Za-z0-9_-]+$/);
    expect(stored).not.toContain(key);
    expect(await verifyApiKey(key, stored)).toBe(true);
    expect(await verifyApiKey(`${key}x`, stored)).toBe(false);
    expect(await verifyApiKey('', stored)).toBe(false);
    // Same key, new salt: a different record that still verifies.
    const again = await hashApiKey(key, FAST);
    expect(again).not.toBe(stored);
    expect(await verifyApiKey(key, again)).toBe(true);
  });

  it('uses the default cost when none is given', async () => {
    const stored = await hashApiKey('k');
    expect(stored.startsWith('scrypt$16384$8$1$')).toBe(true);
    expect(await verifyApiKey('k', stored)).toBe(true);
  });

  it('refuses malformed or absurd stored hashes instead of throwing', async () => {
    const good = await hashApiKey('k', FAST);
    const parts = good.split('$');
    for (const bad of [
      '',
      'plain-text-key',
      good.replace('scrypt', 'bcrypt'),
      [...parts.slice(0, 1), '1000', ...parts.slice(2)].join('$'), // N not a power of two
      [...parts.slice(0, 1), String(1 << 24), ...parts.slice(2)].join('$'), // too costly
      [...parts.slice(0, 4), 'not base64!', parts[5]].join('$'),
      parts.slice(0, 5).join('$'),
    ]) {
      expect(parseKeyHash(bad)).toBeUndefined();
      expect(await verifyApiKey('k', bad)).toBe(false);
    }
  });

  it('remembers checks briefly, per stored hash', async () => {
    let now = 1_000;
    const verifier = new ApiKeyVerifier({ now: () => now, positiveTtlMs: 60_000, negativeTtlMs: 5_000 });
    const stored = await hashApiKey('secret', FAST);
    expect(await verifier.verify('svc', 'secret', stored, 'caller')).toBe(true);
    expect(await verifier.verify('svc', 'secret', stored, 'caller')).toBe(true);
    expect(verifier.stats).toEqual({ computed: 1, cached: 1, throttled: 0 });

    expect(await verifier.verify('svc', 'wrong', stored, 'caller')).toBe(false);
    expect(await verifier.verify('svc', 'wrong', stored, 'caller')).toBe(false);
    expect(verifier.stats).toEqual({ computed: 2, cached: 2, throttled: 0 });

    // The same key under another user is a separate check.
    expect(await verifier.verify('other', 'secret', stored, 'caller')).toBe(true);
    expect(verifier.stats.computed).toBe(3);

    // Re-keying the service (new stored hash) invalidates the remembered success at once.
    const rekeyed = await hashApiKey('new-secret', FAST);
    expect(await verifier.verify('svc', 'secret', rekeyed, 'caller')).toBe(false);
    expect(verifier.stats.computed).toBe(4);

    // Expiry: after the TTL the key is checked again.
    now += 61_000;
    expect(await verifier.verify('other', 'secret', stored, 'caller')).toBe(true);
    expect(verifier.stats.computed).toBe(5);
  });

  it('bounds its memory', async () => {
    const verifier = new ApiKeyVerifier({ maxEntries: 2 });
    const stored = await hashApiKey('secret', FAST);
    await verifier.verify('a', 'secret', stored, 'caller');
    await verifier.verify('b', 'secret', stored, 'caller');
    await verifier.verify('c', 'secret', stored, 'caller');
    await verifier.verify('a', 'secret', stored, 'caller'); // evicted first, so computed again
    expect(verifier.stats).toEqual({ computed: 4, cached: 0, throttled: 0 });
  });

  it('throttles the source that guesses, not the service: a valid key keeps working after its memory expires', async () => {
    let now = 0;
    const verifier = new ApiKeyVerifier({ now: () => now, maxFailuresPerMinute: 3, positiveTtlMs: 60_000 });
    const stored = await hashApiKey('secret', FAST);
    expect(await verifier.verify('svc', 'secret', stored, 'service-host')).toBe(true); // remembered
    for (let i = 0; i < 3; i++) expect(await verifier.verify('svc', `guess-${i}`, stored, 'attacker')).toBe(false);
    expect(verifier.stats.computed).toBe(4);
    // Guessing further from that source costs no scrypt.
    for (let i = 3; i < 10; i++) expect(await verifier.verify('svc', `guess-${i}`, stored, 'attacker')).toBe(false);
    expect(verifier.stats).toMatchObject({ computed: 4, throttled: 7 });
    // The attacker keeps guessing at 3 a minute while the service's remembered success expires:
    // the service's own key is checked again, from its own source, and still works.
    for (let minute = 0; minute < 10; minute++) {
      now += 60_000;
      for (let i = 0; i < 5; i++) expect(await verifier.verify('svc', `late-guess-${minute}-${i}`, stored, 'attacker')).toBe(false);
      expect(await verifier.verify('svc', 'secret', stored, 'service-host')).toBe(true);
    }
    // Even the right key is not checked for the throttled source until its failures drain.
    expect(await verifier.verify('other', 'secret', stored, 'attacker')).toBe(false);
    now += 20_000;
    expect(await verifier.verify('other', 'secret', stored, 'attacker')).toBe(true);
  });

  it('checks an unknown user against a dummy record at the default scrypt cost', async () => {
    const verifier = new ApiKeyVerifier();
    // No key can match the dummy, so the refusal is the same as a wrong key's, and as costly:
    // scrypt runs (computed), at the parameters every stored key uses.
    expect(await verifier.verify('nobody', 'secret', undefined, 'caller')).toBe(false);
    expect(verifier.stats).toEqual({ computed: 1, cached: 0, throttled: 0 });
    const dummy = verifier.dummyHash;
    expect(parseKeyHash(dummy)?.params).toEqual(SCRYPT_DEFAULTS);
    // And an unknown user is refused even for the key that "matches" a known user's hash.
    const stored = await hashApiKey('secret', FAST);
    expect(await verifier.verify('svc', 'secret', stored, 'caller')).toBe(true);
    expect(await verifier.verify('svc', 'secret', undefined, 'caller')).toBe(false);
  });
});
