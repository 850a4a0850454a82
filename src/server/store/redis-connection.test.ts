/** The `--store` URL forms and what is refused, without a server. */
import { describe, expect, it } from 'vitest';
import { DEFAULT_WAIT_MS, parseRedisTarget, redactStoreUrl } from './redis-connection.ts';

describe('parseRedisTarget', () => {
  it('reads one server, with no replicas to wait for unless asked', () => {
    expect(parseRedisTarget('redis://127.0.0.1:6379/2')).toEqual({ ok: true, target: { kind: 'server', url: 'redis://127.0.0.1:6379/2', replicas: 0, waitMs: DEFAULT_WAIT_MS } });
    expect(parseRedisTarget('rediss://cache.example:6380?replicas=1&wait=250')).toEqual({
      ok: true,
      target: { kind: 'server', url: 'rediss://cache.example:6380', replicas: 1, waitMs: 250 },
    });
  });

  it('reads every sentinel, the master name and the database, waiting for one replica by default', () => {
    expect(parseRedisTarget('redis+sentinel://10.0.0.1:26379,sentinel-b:26380,[::1]:26381/dpow/3')).toEqual({
      ok: true,
      target: {
        kind: 'sentinel',
        sentinels: [
          { host: '10.0.0.1', port: 26379 },
          { host: 'sentinel-b', port: 26380 },
          { host: '::1', port: 26381 },
        ],
        masterName: 'dpow',
        db: 3,
        replicas: 1,
        waitMs: DEFAULT_WAIT_MS,
      },
    });
    expect(parseRedisTarget('redis+sentinel://127.0.0.1:1/my-primary.1?replicas=2&wait=5000')).toMatchObject({
      ok: true,
      target: { masterName: 'my-primary.1', db: 0, replicas: 2, waitMs: 5000 },
    });
    expect(parseRedisTarget('redis+sentinel://127.0.0.1:1/dpow/0?replicas=0')).toMatchObject({ ok: true, target: { replicas: 0 } });
  });

  it.each([
    ['postgres://x/1', 'must be redis://host:port/db or redis+sentinel://host:port,host:port/<master name>/<db>'],
    ['redis+sentinel://127.0.0.1:26379', 'must be redis://host:port/db or redis+sentinel'],
    ['redis+sentinel://a:1,b/dpow/0', 'sentinel "b" is not host:port'],
    ['redis+sentinel://a:99999/dpow/0', 'sentinel "a:99999" is not host:port'],
    ['redis+sentinel://a:1/dp$ow/0', 'master name "dp$ow" may hold only'],
    ['redis+sentinel://a:1/dpow/16', 'database must be a number from 0 to 15, got "16"'],
    ['redis+sentinel://a:1/dpow/x', 'database must be a number from 0 to 15, got "x"'],
    ['redis+sentinel://user:secret@a:1/dpow/0', 'put Redis credentials in DPOW_REDIS_PASSWORD and DPOW_SENTINEL_PASSWORD, not in the URL'],
    ['redis+sentinel://a:1/dpow/0?replicas=17', 'replicas must be a whole number from 0 to 16, got "17"'],
    ['redis+sentinel://a:1/dpow/0?wait=0', 'wait must be a whole number of ms from 1 to 60000, got "0"'],
    ['redis+sentinel://a:1/dpow/0?wait=1.5', 'wait must be a whole number of ms from 1 to 60000, got "1.5"'],
    ['redis+sentinel://a:1/dpow/0?timeout=5', 'unknown store URL parameter "timeout" (replicas and wait are known)'],
    [`redis+sentinel://${Array.from({ length: 17 }, (_, i) => `h:${i + 1}`).join(',')}/dpow/0`, 'name at most 16 sentinels'],
  ])('refuses %j, saying why', (spec, reason) => {
    const parsed = parseRedisTarget(spec);
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.reason).toContain(reason);
  });
});

describe('redactStoreUrl', () => {
  it('blanks a password written into a URL and leaves the rest', () => {
    expect(redactStoreUrl('redis://default:hunter2@127.0.0.1:6379/0')).toBe('redis://default:***@127.0.0.1:6379/0');
    expect(redactStoreUrl('redis://:hunter2@127.0.0.1:6379/0')).toBe('redis://:***@127.0.0.1:6379/0');
    expect(redactStoreUrl('rediss://hunter2@host:1')).toBe('rediss://***@host:1');
    expect(redactStoreUrl('redis+sentinel://a:1,b:2/dpow/0')).toBe('redis+sentinel://a:1,b:2/dpow/0');
  });
});
