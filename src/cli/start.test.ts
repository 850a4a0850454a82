import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanupsAfterEach } from '../testkit/cleanups.ts';
import { connectAs, loginCodeFrom } from '../testkit/mqtt.ts';
import { RawMqtt } from '../testkit/mqtt-attack.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = path.join(ROOT, 'bin', 'dpow-web.mjs');

const children: ChildProcess[] = [];
const dirs: string[] = [];
const cleanups = cleanupsAfterEach();
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function startCli(args: string[]) {
  const child = spawn(process.execPath, [BIN, 'start', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const banner = new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no banner; stderr: ${stderr}`)), 30_000);
    child.stdout!.on('data', () => {
      const m = /running at (http:\/\/\S+)/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    void exited.then((code) => reject(new Error(`exited ${code}; stderr: ${stderr}`)));
  });
  return { child, banner, exited, output: () => ({ stdout, stderr }) };
}

describe('dpow-web start', () => {
  it('serves the app and the broker on one port with a SQLite store, and stops cleanly on SIGTERM', async () => {
    const data = mkdtempSync(path.join(tmpdir(), 'dpow-start-'));
    dirs.push(data);
    const run = startCli(['--port', '0', '--no-build', '--no-demo', '--data', data, '--dashboard-password', 'dash-pw']);
    const url = await run.banner;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(run.output().stdout).toContain(`(broker ${url.replace('http', 'ws')}mqtt)`);

    const config = (await (await fetch(new URL('/config.json', url))).json()) as Record<string, string>;
    expect(config).toMatchObject({ brokerUrl: '/mqtt', username: 'client', password: 'client' });
    const worker = await connectAs(new URL(config.brokerUrl, url.replace('http', 'ws')).href, { username: config.username, password: config.password }, cleanups);
    const beat = new Promise<string>((resolve) => worker.on('message', (topic) => resolve(topic)));
    await worker.subscribeAsync('heartbeat');
    expect(await beat).toBe('heartbeat');
    await worker.endAsync(true);

    // The read-only dashboard login sees everything.
    const dashboard = await connectAs(url.replace('http', 'ws') + 'mqtt', { username: 'dashboard', password: 'dash-pw' }, cleanups);
    // The retained statistics come first, then the live heartbeat.
    const topics: string[] = [];
    const heartbeat = new Promise<void>((resolve) =>
      dashboard.on('message', (topic) => {
        topics.push(topic);
        if (topic === 'heartbeat') resolve();
      }),
    );
    await dashboard.subscribeAsync('#');
    await heartbeat;
    expect(topics[0]).toBe('statistics');
    await dashboard.endAsync(true);

    // The work-server RPC answers loopback callers by default.
    const validate = { action: 'work_validate', hash: '718CC2121C3E641059BC1C2CFC45666C99E8AE922F7A807B7D07B62C995D79E2', work: '2b3d689bbcb21dca' };
    const rpc = await fetch(url, { method: 'POST', body: JSON.stringify(validate) });
    expect(await rpc.json()).toMatchObject({ valid_all: '1', difficulty: 'fffffff93c41ec94' });

    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    expect(existsSync(path.join(data, 'dpow.sqlite'))).toBe(true);
  });

  it('--rpc off leaves POST / to the app, and the demo rates are taken from the options', async () => {
    const run = startCli(['--port', '0', '--no-build', '--memory', '--rpc', 'off', '--demo-precache-every', '0.2', '--demo-ondemand-every', '0']);
    const url = await run.banner;
    const rpc = await fetch(url, { method: 'POST', body: JSON.stringify({ action: 'work_validate' }) });
    expect(rpc.headers.get('content-type') ?? '').not.toMatch(/json/);
    await rpc.arrayBuffer();
    // Demo precache jobs every 200 ms, no ondemand ones.
    const worker = await connectAs(url.replace('http', 'ws') + 'mqtt', 'client', cleanups);
    const seen: string[] = [];
    worker.on('message', (topic) => seen.push(topic));
    await worker.subscribeAsync('work/#');
    await new Promise((r) => setTimeout(r, 1500));
    await worker.endAsync(true);
    expect(seen.filter((t) => t === 'work/precache').length).toBeGreaterThanOrEqual(3);
    expect(seen).not.toContain('work/ondemand');
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  });

  it('--nano-difficulty sets the difficulty of Nano precache jobs from a feed', async () => {
    const run = startCli(['--port', '0', '--no-build', '--memory', '--no-demo', '--feed', 'nano-sim', '--nano-difficulty', 'fff8000000000000']);
    const url = await run.banner;
    const worker = await connectAs(url.replace('http', 'ws') + 'mqtt', 'client', cleanups);
    const job = new Promise<string>((resolve) => worker.on('message', (_topic, payload) => resolve(String(payload))));
    await worker.subscribeAsync('work/precache');
    expect((await job).split(',')[1]).toBe('fff8000000000000');
    await worker.endAsync(true);
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  }, 30_000);

  it('--qlc-difficulty sets the difficulty of QLC precache jobs from a feed', async () => {
    const run = startCli(['--port', '0', '--no-build', '--memory', '--no-demo', '--feed', 'qlc-sim', '--qlc-difficulty', 'ffe0000000000000']);
    const url = await run.banner;
    const worker = await connectAs(url.replace('http', 'ws') + 'mqtt', 'client', cleanups);
    const job = new Promise<string>((resolve) => worker.on('message', (_topic, payload) => resolve(String(payload))));
    await worker.subscribeAsync('work/precache');
    expect((await job).split(',')[1]).toBe('ffe0000000000000');
    await worker.endAsync(true);
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  }, 30_000);

  it('--dashboard-user names the monitoring login (the original ACL calls it dpowinterface)', async () => {
    const run = startCli(['--port', '0', '--no-build', '--memory', '--no-demo', '--dashboard-user', 'dpowinterface', '--dashboard-password', 'dash-pw']);
    const url = await run.banner;
    const login = (username: string) => connectAs(url.replace('http', 'ws') + 'mqtt', { username, password: 'dash-pw' }, cleanups);
    const monitor = await login('dpowinterface');
    const any = new Promise<string>((resolve) => monitor.on('message', (topic) => resolve(topic)));
    await monitor.subscribeAsync('#');
    // The retained statistics arrive first, or the next heartbeat: either proves the login reads.
    expect(['heartbeat', 'statistics']).toContain(await any);
    await monitor.endAsync(true);
    await expect(login('dashboard')).rejects.toThrow();
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  });

  it('--mqtt-max-* set the embedded broker limits', async () => {
    const run = startCli(['--port', '0', '--no-build', '--memory', '--no-demo', '--mqtt-max-subscriptions', '2', '--mqtt-max-refusals', '0', '--mqtt-max-connections-per-source', '1']);
    const url = await run.banner;
    // A second connection from one address behind the proxy is refused before it is taken.
    const proxied = { headers: { 'X-Forwarded-For': '198.51.100.7' } };
    await RawMqtt.open(`${url.replace('http', 'ws')}mqtt`, cleanups, proxied);
    await expect(RawMqtt.open(`${url.replace('http', 'ws')}mqtt`, cleanups, proxied)).rejects.toMatchObject({ status: 429 });
    const worker = await connectAs(`${url.replace('http', 'ws')}mqtt`, { username: 'client', password: 'client' }, cleanups);
    await worker.subscribeAsync(['heartbeat', 'statistics']);
    // A third subscription is refused, and with no refusal allowed the connection is closed.
    const closed = new Promise<void>((resolve) => worker.once('close', () => resolve()));
    worker.subscribe('work/#');
    await closed;
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
  });

  it('--mqtt-max-failed-logins sets how many failed logins one source may make a minute', async () => {
    const run = startCli(['--port', '0', '--no-build', '--memory', '--no-demo', '--dashboard-password', 'dash-pw', '--mqtt-max-failed-logins', '1']);
    const url = `${(await run.banner).replace('http', 'ws')}mqtt`;
    // One wrong password through the proxy from 198.51.100.7, and its next login is refused unchecked.
    const guesser = '198.51.100.7';
    expect(await loginCodeFrom(url, { username: 'dashboard', password: 'guess' }, guesser, cleanups)).toBe(4);
    expect(await loginCodeFrom(url, { username: 'dashboard', password: 'dash-pw' }, guesser, cleanups)).toBe(5);
    // The operator's own, on loopback, is not.
    expect((await connectAs(url, { username: 'dashboard', password: 'dash-pw' }, cleanups)).connected).toBe(true);
    run.child.kill('SIGTERM');
    expect(await run.exited).toBe(0);
    // At least one failed login must be allowed, or no one could ever retry a typo.
    const none = startCli(['--mqtt-max-failed-logins', '0', '--no-build', '--memory']);
    none.banner.catch(() => {});
    expect(await none.exited).toBe(2);
    expect(none.output().stderr).toMatch(/^dpow-web start: --mqtt-max-failed-logins must be /);
  });

  // Each case is a process of its own (2 s each on a quiet machine): four at a time, so the list
  // ends well inside the deadline on a loaded one.
  it('refuses contradictory or incomplete options with exit 2', { timeout: 180_000 }, async () => {
    const cases = [['--dispatcher-only'], ['--broker', 'ws://127.0.0.1:1/mqtt'], ['--port', 'abc'], ['--demo', '--no-demo'], ['--feed', 'bogus'], ['--rpc', 'bogus'], ['--demo-precache-every', '-1'], ['--demo-ondemand-every', 'x'], ['--nano-difficulty', 'fffff'], ['--qlc-difficulty', 'x'], ['--dashboard-user', 'dpowinterface'], ['--dashboard-user', 'client', '--dashboard-password', 'x'], ['--public-name', 'not a name'], ['--public-name', 'https://example.org'], ['--mqtt-max-packet', '100'], ['--mqtt-max-inflight', '0'], ['--mqtt-max-subscriptions', 'x'], ['--mqtt-max-connections', '0'], ['--mqtt-max-connections-per-source', '1.5'], ['--broker', 'mqtt://127.0.0.1:1,ws://127.0.0.1:2/mqtt', '--dispatcher-only', '--broker-username', 'server', '--broker-password', 'x'], ['--broker', 'ws://127.0.0.1:1/mqtt,ws://127.0.0.1:2/mqtt', '--broker-username', 'server', '--broker-password', 'x'], ['--broker', 'mqtt://127.0.0.1:1,mqtt://127.0.0.1:1', '--dispatcher-only', '--broker-username', 'server', '--broker-password', 'x'], ['--broker', Array.from({ length: 17 }, (_, i) => `mqtt://127.0.0.1:${i + 1}`).join(','), '--dispatcher-only', '--broker-username', 'server', '--broker-password', 'x']];
    const lane = async () => {
      for (let args = cases.shift(); args; args = cases.shift()) {
        const run = startCli([...args, '--no-build', '--memory']);
        run.banner.catch(() => {});
        expect(await run.exited, args.join(' ')).toBe(2);
        expect(run.output().stderr, args.join(' ')).toMatch(/^dpow-web start: /);
      }
    };
    await Promise.all(Array.from({ length: 4 }, lane));
  });
});
