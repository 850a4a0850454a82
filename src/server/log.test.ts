import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { difficultyPolicy } from '../pow/difficulty.ts';
import { cleanupsAfterEach } from '../testkit/cleanups.ts';
import { addTestService } from '../testkit/services.ts';
import { createServer } from './create-server.ts';
import { createLogger, REDACTED, scrub } from './log.ts';
import { MemoryStore } from './store/memory-store.ts';

const cleanups = cleanupsAfterEach();

/** A destination that keeps what was written; `isTTY` as asked. */
function capture(isTTY = false): Writable & { isTTY: boolean; text(): string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return Object.assign(stream, { isTTY, text: () => chunks.join('') });
}

describe('createLogger', () => {
  it('writes one JSON object per line, with level names and the component split off, when not on a TTY', () => {
    const out = capture(false);
    const log = createLogger({ destination: out });
    log.info('dispatcher: accepted ondemand 0123 from nano_1abc', { hash: '0123' });
    log.warn('plain message');
    log.debug?.('not shown without verbose');
    const lines = out.text().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ level: 'info', component: 'dispatcher', msg: 'accepted ondemand 0123 from nano_1abc', hash: '0123' });
    expect(typeof lines[0].time).toBe('string');
    expect(lines[1]).toMatchObject({ level: 'warn', msg: 'plain message' });
    expect(log.debug).toBeUndefined();
  });

  it('writes the readable timestamped line on a TTY, debug only when verbose', () => {
    const out = capture(true);
    const log = createLogger({ destination: out, verbose: true, now: () => new Date('2026-01-01T00:00:00Z') });
    log.info('broker: listening');
    log.debug!('detail');
    expect(out.text()).toBe('2026-01-01T00:00:00.000Z info  broker: listening\n2026-01-01T00:00:00.000Z debug detail\n');
  });

  it('masks URL passwords, known secrets and secret-named fields in both formats', () => {
    for (const tty of [false, true]) {
      const out = capture(tty);
      const log = createLogger({ destination: out, secrets: ['hunter2-long-secret'] });
      log.info('dispatcher: connected to mqtt://server:pa55word@broker.example:1883');
      log.warn('someone typed hunter2-long-secret into a topic');
      log.error('login failed', { password: 'p-field', nested: { api_key: 'k-field' } });
      const text = out.text();
      expect(text).not.toContain('pa55word');
      expect(text).not.toContain('hunter2-long-secret');
      expect(text).not.toContain('p-field');
      expect(text).not.toContain('k-field');
      expect(text).toContain('mqtt://server:');
      expect(text).toContain(REDACTED);
    }
    expect(scrub('ws://u:p@h/mqtt and wss://h/mqtt')).toBe(`ws://u:${REDACTED}@h/mqtt and wss://h/mqtt`);
  });
});

describe('the server logs no secrets', () => {
  const dist = mkdtempSync(path.join(tmpdir(), 'dpow-log-'));
  writeFileSync(path.join(dist, 'index.html'), '<!doctype html><title>dpow-web</title>');
  afterAll(() => rmSync(dist, { recursive: true, force: true }));

  it('never writes the broker password or a service key, even for failed logins and requests', async () => {
    const password = 'server-pw-Zq81xT0vBn';
    const dashboard = 'dashboard-pw-Lk29Qe';
    const out = capture(false);
    // No `secrets` here: the server must not write them in the first place (the CLI's masking
    // of known secrets is a second line, tested above).
    const log = createLogger({ destination: out, verbose: true });
    const store = new MemoryStore();
    const { user, key } = await addTestService(store, {}, { N: 16, r: 1, p: 1 });
    const app = await createServer({
      kind: 'app',
      http: { port: 0, staticDir: dist },
      store: { kind: 'given', store },
      log,
      broker: { kind: 'embedded', users: { server: { username: 'server', password }, dashboard: { username: 'dashboard', password: dashboard } } },
      policy: difficultyPolicy({ minDifficulty: 0n }),
    });
    cleanups.push(() => app.close());
    const post = (body: unknown) =>
      fetch(new URL('/service/', app.url), { method: 'POST', body: JSON.stringify(body) }).then((r) => r.json());
    // A wrong key, a right key with a bad hash, and a right key that times out.
    await post({ user, api_key: `${key}x`, hash: '00'.repeat(32) });
    await post({ user, api_key: key, hash: 'zz' });
    await post({ user, api_key: key, hash: '11'.repeat(32), timeout: 1 });
    // A worker that tries the server's password on the client user.
    const mqtt = (await import('mqtt')).default;
    const c = mqtt.connect(app.brokerWsUrl, { username: 'client', password, protocolVersion: 4, reconnectPeriod: 0 });
    await new Promise<void>((resolve) => {
      c.once('error', () => resolve());
      c.once('close', () => resolve());
    });
    c.end(true);
    await app.close();
    const text = out.text();
    expect(text).toContain('"component":"service"');
    expect(text).toContain('refused login');
    for (const secret of [password, dashboard, key]) expect(text).not.toContain(secret);
  });
});
