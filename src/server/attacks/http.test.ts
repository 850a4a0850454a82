/**
 * The HTTP half of the attack suite (issue 18): what a hostile client does with shapes and
 * volumes, not values, against a real `dpow-web start` process (SQLite state, the embedded
 * broker, a registered service, and precache feeds from two fake nodes this test runs):
 *
 * - deep nesting in every field of every surface: POST /service/, /service_ws/ frames, the work
 *   RPC on POST / and /rpc, and the frames a go-qlc node and a Nano node send the feeds. Nothing
 *   ends the process, nothing gets a 500, every refusal is specific and counted;
 * - cross-origin and foreign-Host requests to the RPC and /metrics, from raw HTTP and from a web
 *   page in headless Chromium (another origin, and DNS rebinding);
 * - the log volume of each attack: bounded by count, whatever the flood's size.
 *
 * The process's RSS before, at its peak (VmHWM) and after is printed for the issue's note.
 */
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from '@playwright/test';
import WebSocket, { WebSocketServer } from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumArgs, chromiumPath } from '../../../playwright.config.ts';
import { CliProcess } from '../../testkit/cli-process.ts';
import { waitFor, waitForAsync } from '../../testkit/wait.ts';

const ROOT = '718CC2121C3E641059BC1C2CFC45666C99E8AE922F7A807B7D07B62C995D79E2';
const WORK = '2b3d689bbcb21dca';
const ACCOUNT = 'nano_1111111111111111111111111111111111111111111111111111hifc8npp';
/** The issue's frame: 6,000 arrays deep, about 12 KB, under every size limit. */
const DEEP = 6000;
/** The deepest nesting the parser lets through (MAX_JSON_DEPTH is 32; the request object is one). */
const NEAR = 31;
const PUBLIC_NAME = 'dpow.example';
const METRICS_PASSWORD = 'operator-only-metrics-password';

/** JSON text of `depth` nested arrays (built as text: the test must not overflow its own stack). */
const nestedArrays = (depth: number) => `${'['.repeat(depth)}1${']'.repeat(depth)}`;
const nestedObjects = (depth: number) => `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
const SHAPES: Record<string, string> = {
  'arrays 6000 deep': nestedArrays(DEEP),
  'objects 2500 deep': nestedObjects(2500),
  'arrays 31 deep': nestedArrays(NEAR - 1),
};

/** `{...fields, <name>: <raw JSON text>}` as JSON text. */
function withField(fields: Record<string, unknown>, name: string, raw: string): string {
  const rest = Object.entries(fields).filter(([k]) => k !== name);
  return `{${[...rest.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`), `${JSON.stringify(name)}:${raw}`].join(',')}}`;
}

let dir: string;
let app: CliProcess;
let base: string;
let port: number;
let key: string;
let nanoNode: FakeNode;
let qlcNode: FakeNode;

/** A node's WebSocket endpoint that answers the feed's handshake and sends what the test says. */
class FakeNode {
  readonly wss: WebSocketServer;
  socket?: WebSocket;
  constructor(kind: 'nano' | 'qlc') {
    this.wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    this.wss.on('connection', (ws) => {
      this.socket = ws;
      ws.on('message', (data) => {
        let msg: Record<string, unknown>;
        try {
          msg = JSON.parse(String(data)) as Record<string, unknown>;
        } catch {
          return;
        }
        if (kind === 'nano' && typeof msg.action === 'string') {
          ws.send(JSON.stringify({ ack: msg.action === 'ping' ? 'pong' : msg.action, time: String(Date.now()) }));
        }
        if (kind === 'qlc' && typeof msg.id === 'number') ws.send(JSON.stringify({ jsonrpc: '2.0', id: msg.id, result: `0x${msg.id}` }));
      });
    });
  }
  get url(): string {
    return `ws://127.0.0.1:${(this.wss.address() as AddressInfo).port}`;
  }
  close(): void {
    for (const ws of this.wss.clients) ws.terminate();
    this.wss.close();
  }
}

/** VmRSS and VmHWM of the server process, in MiB. */
function memory(): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${app.child.pid}/status`, 'utf8');
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: Math.round(kb('VmRSS') / 1024), peak: Math.round(kb('VmHWM') / 1024) };
}

/** What an attack wrote to the server's log: lines and bytes, and how long it took. */
async function logOf(attack: () => Promise<void>): Promise<{ lines: number; bytes: number; text: string; ms: number }> {
  const from = app.output.length;
  const started = Date.now();
  await attack();
  const text = app.output.slice(from);
  return { lines: text.split('\n').filter((l) => l.trim() !== '').length, bytes: Buffer.byteLength(text), text, ms: Date.now() - started };
}

/** The server's LogLimiter interval: one line per kind, then one counted summary, per interval. */
const LOG_INTERVAL_MS = 10_000;

/**
 * The log of a flood of `kinds` kinds of refusal that lasted `ms` stays a few lines: each kind
 * writes a line when its interval opens, however many requests come. The counted summaries
 * ("…: N more in 10 s, not logged one by one") close intervals, this attack's or an earlier
 * one's, so they are bounded apart: at most one per kind of the whole suite per interval.
 */
function expectFewLines(log: { text: string; ms: number }, kinds: number): void {
  const intervals = Math.ceil(log.ms / LOG_INTERVAL_MS) + 1;
  const lines = log.text.split('\n').filter((l) => l.trim() !== '');
  const summaries = lines.filter((l) => l.includes('not logged one by one'));
  expect(lines.length - summaries.length, log.text).toBeLessThanOrEqual(kinds * intervals);
  expect(summaries.length, log.text).toBeLessThanOrEqual(ALL_KINDS * intervals);
  for (const line of lines) expect(Buffer.byteLength(line), line).toBeLessThan(600);
}

/** The refusal kinds this suite provokes in all (service, RPC, /metrics and feed reasons). */
const ALL_KINDS = 30;

/** A raw HTTP request, headers exactly as given (fetch would add Origin rules of its own). */
function raw(method: string, path: string, headers: Record<string, string>, body?: string) {
  return new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, setHost: !('Host' in headers) }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function post(path: string, body: string, headers: Record<string, string> = {}) {
  const res = await raw('POST', path, { 'Content-Type': 'application/json', ...headers }, body);
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(res.body) as Record<string, unknown>;
  } catch {
    // asserted by the caller
  }
  return { ...res, json };
}

/** Frames a feed dropped from this node, all reasons (dpow_feed_dropped_frames_total). */
async function dropped(node: FakeNode): Promise<number> {
  const text = (await raw('GET', '/metrics', {})).body;
  const rows = text.split('\n').filter((l) => l.startsWith('dpow_feed_dropped_frames_total{') && l.includes(`${node.url}"`));
  return rows.reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

/** The value of one sample of /metrics, read the way an operator on the machine does. */
async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
  const text = (await raw('GET', '/metrics', {})).body;
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && want.every((w) => l.includes(w))) ?? text.split('\n').find((l) => want.length === 0 && l.startsWith(`${name} `));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

const before = { rss: 0, peak: 0 };
/** Per attack: its log lines and bytes, and the server's RSS and peak RSS (MiB) right after it. */
const logVolume: Record<string, { lines: number; bytes: number; rss: number; peak: number }> = {};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dpow-attacks-'));
  const add = CliProcess.start(['service', 'add', 'wallet', '--display', 'Wallet', '--json', '--data', dir]);
  expect((await add.exited).code, add.output).toBe(0);
  key = (JSON.parse(add.output.trim().split('\n').pop()!) as { api_key: string }).api_key;
  nanoNode = new FakeNode('nano');
  qlcNode = new FakeNode('qlc');
  await Promise.all([once(nanoNode.wss, 'listening'), once(qlcNode.wss, 'listening')]);
  app = CliProcess.start([
    'start', '--port', '0', '--no-build', '--no-demo', '--data', dir, '--public-name', PUBLIC_NAME,
    '--feed', `nano:${nanoNode.url}`, '--feed', `qlc:${qlcNode.url}`, '--account', ACCOUNT,
  ], { DPOW_METRICS_PASSWORD: METRICS_PASSWORD });
  base = (await app.waitForOutput(/running at (http:\/\/\S+?)\/\s/, 60_000))[1];
  port = Number(new URL(base).port);
  await waitFor('both feeds connected', () => nanoNode.socket && qlcNode.socket, 30_000);
  Object.assign(before, memory());
});

afterAll(async () => {
  const after = app?.running ? memory() : undefined;
  if (after) console.log(`attacks/http: server RSS before ${before.rss} MiB, peak (VmHWM) ${after.peak} MiB, after ${after.rss} MiB`);
  console.log(`attacks/http: log and memory per attack, in order ${JSON.stringify(logVolume)}`);
  await app?.kill('SIGTERM');
  nanoNode?.close();
  qlcNode?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('deep nesting in every field of every surface', () => {
  const service = { user: 'wallet', api_key: 'set-in-test', hash: ROOT, timeout: 1 };
  const serviceFields = ['id', 'user', 'api_key', 'hash', 'account', 'timeout', 'difficulty', 'multiplier'];

  it('POST /service/: a specific 4xx for each, never a 500, and the process lives', async () => {
    const log = await logOf(async () => {
      for (const field of serviceFields) {
        for (const [shape, value] of Object.entries(SHAPES)) {
          const r = await post('/service/', withField({ ...service, api_key: key }, field, value));
          const what = `${field} as ${shape}: ${r.status} ${r.body.slice(0, 120)}`;
          expect(r.status, what).toBeGreaterThanOrEqual(400);
          expect(r.status, what).toBeLessThan(500);
          expect(typeof r.json.error, what).toBe('string');
          // Nothing of the caller's structure comes back.
          expect(r.json.id, what).toBeUndefined();
          if (shape !== 'arrays 31 deep' || field === 'id') expect(r.json.error, what).toBe('Bad request (not json)');
        }
      }
      // The whole request nested, too.
      const whole = await post('/service/', nestedArrays(DEEP));
      expect([whole.status, whole.json.error]).toEqual([400, 'Bad request (not json)']);
    });
    logVolume['POST /service/ nesting'] = { lines: log.lines, bytes: log.bytes, ...memory() };
    expect(app.running).toBe(true);
    // Counted by reason: the metric says what happened, the log says it once.
    expect(await metric('dpow_service_requests_total', { outcome: 'too-deep' })).toBeGreaterThanOrEqual(2 * serviceFields.length + 1);
    expect(await metric('dpow_service_requests_total', { outcome: 'bad-id' })).toBeGreaterThanOrEqual(1);
    // too-deep, bad-id, and one reason per field validator.
    expectFewLines(log, 8);
  });

  it('/service_ws/: the issue\'s frame with no credentials, every field, and the too-many-in-flight branch', async () => {
    const ws = new WebSocket(`${base.replace(/^http/, 'ws')}/service_ws/`);
    await once(ws, 'open');
    const replies: Array<Record<string, unknown>> = [];
    ws.on('message', (data) => replies.push(JSON.parse(String(data)) as Record<string, unknown>));
    const log = await logOf(async () => {
      // The frame from the issue: `{"id":[[[…6000 deep…]]]}`, no credentials.
      ws.send(`{"id":${nestedArrays(DEEP)}}`);
      await waitFor('the reply to the issue\'s frame', () => replies.length === 1);
      expect(replies[0]).toEqual({ error: 'Bad request (not json)' });
      let sent = 1;
      for (const field of serviceFields) {
        for (const value of Object.values(SHAPES)) {
          ws.send(withField({ ...service, api_key: key }, field, value));
          sent++;
        }
      }
      await waitFor('a reply to every frame', () => replies.length === sent, 30_000);
      for (const reply of replies) {
        expect(typeof reply.error).toBe('string');
        expect(reply.id).toBeUndefined();
      }

      // 64 requests waiting for work (no volunteer is connected), then more: the refusal may
      // echo only an id that requestId() passed.
      for (let i = 0; i < 64; i++) ws.send(JSON.stringify({ ...service, api_key: key, hash: ROOT.slice(0, 60) + i.toString(16).padStart(4, '0'), timeout: 30, id: i }));
      await waitForAsync('64 requests in flight', async () => (await metric('dpow_jobs_pending', { type: 'ondemand' })) >= 64, 30_000);
      const mark = replies.length;
      ws.send(withField({ ...service, api_key: key }, 'id', nestedArrays(NEAR - 1)));
      ws.send(withField({ ...service, api_key: key }, 'id', JSON.stringify('x'.repeat(65))));
      ws.send(JSON.stringify({ ...service, api_key: key, id: 'match-me' }));
      await waitFor('three refusals', () => replies.length >= mark + 3, 30_000);
      expect(replies.slice(mark, mark + 3)).toEqual([
        { error: 'Rate limit exceeded' },
        { error: 'Rate limit exceeded' },
        { error: 'Rate limit exceeded', id: 'match-me' },
      ]);
    });
    logVolume['/service_ws/ nesting'] = { lines: log.lines, bytes: log.bytes, ...memory() };
    ws.terminate();
    expect(app.running).toBe(true);
    expectFewLines(log, 9);
  });

  it('the work RPC on POST / and /rpc: "Unable to parse JSON" or the field\'s own error, never a 500', async () => {
    const validate = { action: 'work_validate', hash: ROOT, work: WORK };
    const rpcFields = ['action', 'hash', 'work', 'difficulty', 'multiplier', 'count', 'account', 'user', 'api_key'];
    const log = await logOf(async () => {
      for (const path of ['/', '/rpc']) {
        for (const field of rpcFields) {
          for (const [shape, value] of Object.entries(SHAPES)) {
            const base = field === 'count' ? { action: 'benchmark', count: 1 } : validate;
            const r = await post(path, withField(base, field, value));
            const what = `${path} ${field} as ${shape}: ${r.status} ${r.body.slice(0, 120)}`;
            expect(r.status, what).not.toBe(500);
            if (shape !== 'arrays 31 deep') expect([r.status, r.json.error], what).toEqual([400, 'Unable to parse JSON']);
            else if (field !== 'account' && field !== 'user' && field !== 'api_key') expect(r.status, what).toBe(400);
          }
        }
      }
    });
    logVolume['RPC nesting'] = { lines: log.lines, bytes: log.bytes, ...memory() };
    expect(app.running).toBe(true);
    expect(await metric('dpow_rpc_requests_total', { outcome: 'error:too-deep' })).toBeGreaterThanOrEqual(2 * 2 * rpcFields.length);
    // too-deep and one per RPC error text.
    expectFewLines(log, 8);
  });

  it('the feeds: deep frames from the Nano node and from go-qlc are dropped as not JSON', async () => {
    const nanoFrames = [
      nestedArrays(DEEP),
      `{"topic":${nestedArrays(DEEP)}}`,
      `{"ack":${nestedArrays(DEEP)}}`,
      `{"topic":"confirmation","time":"1","message":${nestedObjects(2500)}}`,
      `{"topic":"confirmation","time":"1","message":{"account":"${ACCOUNT}","hash":"${ROOT}","block":${nestedArrays(DEEP)}}}`,
      `{"topic":"confirmation","time":"1","message":{"account":"${ACCOUNT}","hash":${nestedArrays(NEAR - 3)},"block":${nestedArrays(NEAR - 3)}}}`,
    ];
    const qlcFrames = [
      nestedArrays(DEEP),
      `{"jsonrpc":"2.0","id":${nestedArrays(DEEP)},"result":"0x1"}`,
      `{"jsonrpc":"2.0","id":${nestedArrays(NEAR - 1)},"result":"0x1"}`,
      `{"jsonrpc":"2.0","id":1,"result":${nestedArrays(DEEP)}}`,
      `{"jsonrpc":"2.0","method":"ledger_subscription","params":{"subscription":"0x1","result":${nestedObjects(2500)}}}`,
      `{"jsonrpc":"2.0","method":"ledger_subscription","params":{"subscription":"0x1","result":{"type":${nestedArrays(NEAR - 3)}}}}`,
      `{"jsonrpc":"2.0","id":null,"error":${nestedArrays(DEEP)}}`,
    ];
    const dropsBefore = { nano: await dropped(nanoNode), qlc: await dropped(qlcNode) };
    const log = await logOf(async () => {
      for (const frame of nanoFrames) nanoNode.socket!.send(frame);
      for (const frame of qlcFrames) qlcNode.socket!.send(frame);
      // A last frame each: once every frame and it are counted as dropped, all were read.
      nanoNode.socket!.send('end-of-nano-attack');
      qlcNode.socket!.send('end-of-qlc-attack');
      await waitForAsync('every frame dropped', async () =>
        (await dropped(nanoNode)) === dropsBefore.nano + nanoFrames.length + 1 && (await dropped(qlcNode)) === dropsBefore.qlc + qlcFrames.length + 1,
      30_000);
    });
    logVolume['feed nesting'] = { lines: log.lines, bytes: log.bytes, ...memory() };
    expect(app.running).toBe(true);
    // Both connections are the same ones: no frame broke a feed's socket either.
    expect(nanoNode.wss.clients.size).toBe(1);
    expect(qlcNode.wss.clients.size).toBe(1);
    // The feeds log dropped frames once per reason per interval with a count, cut to a few dozen characters.
    expectFewLines(log, 6);
  });
});

describe('cross-origin and foreign-Host requests to the RPC and /metrics', () => {
  const status = JSON.stringify({ action: 'status' });

  it('answers nodes, wallets and curl: no Origin, their Host, any Content-Type they send', async () => {
    // curl -d sends a form type; the Nano node sends application/json and its peer's bare address.
    const callers: Array<Record<string, string>> = [
      { 'Content-Type': 'application/x-www-form-urlencoded' },
      { 'Content-Type': 'application/json', Host: '127.0.0.1' },
      { 'Content-Type': 'application/json', Host: '::1' },
      { Host: `localhost:${port}` },
      { Host: `${PUBLIC_NAME}` },
    ];
    for (const headers of callers) {
      const r = await raw('POST', '/', headers, status);
      expect([r.status, JSON.parse(r.body)], JSON.stringify(headers)).toEqual([200, { generating: expect.any(String), queue_size: expect.any(String) }]);
      expect(r.headers['access-control-allow-origin']).toBeUndefined();
    }
    expect((await raw('GET', '/metrics', { Host: `127.0.0.1:${port}` })).status).toBe(200);
    // The page's own origin may ask too (a same-origin POST carries Origin).
    expect((await raw('POST', '/', { Origin: base, Host: `127.0.0.1:${port}` }, status)).status).toBe(200);
  });

  it('refuses a foreign Origin and a foreign Host, counted, with no CORS grant and a log that stays small', async () => {
    const foreign: Array<Record<string, string>> = [
      { Origin: 'http://attacker.example' },
      { Origin: 'null' },
      { Origin: `http://127.0.0.1:${port + 1}` },
      { 'Sec-Fetch-Site': 'cross-site' },
      { Host: 'attacker.example' },
      { Host: `rebind.example:${port}` },
      { Host: `rebind.example:${port}`, Origin: `http://rebind.example:${port}` },
    ];
    const refusedBefore = (await metric('dpow_rpc_requests_total', { outcome: 'error:foreign-origin' })) + (await metric('dpow_rpc_requests_total', { outcome: 'error:foreign-host' }));
    const log = await logOf(async () => {
      for (let round = 0; round < 50; round++) {
        for (const headers of foreign) {
          for (const path of ['/', '/rpc']) {
            const r = await raw('POST', path, { 'Content-Type': 'text/plain', ...headers }, status);
            expect([r.status, r.body], JSON.stringify(headers)).toEqual([403, '{"error":"Forbidden"}']);
            expect(r.headers['access-control-allow-origin']).toBeUndefined();
          }
          const m = await raw('GET', '/metrics', headers);
          expect([m.status, m.body], JSON.stringify(headers)).toEqual([403, 'Forbidden\n']);
          expect(m.headers['access-control-allow-origin']).toBeUndefined();
        }
      }
      // A preflight gets no grant either.
      const preflight = await raw('OPTIONS', '/', { Origin: 'http://attacker.example', 'Access-Control-Request-Method': 'POST' });
      expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
    });
    logVolume['foreign Origin/Host x700'] = { lines: log.lines, bytes: log.bytes, ...memory() };
    const refusedAfter = (await metric('dpow_rpc_requests_total', { outcome: 'error:foreign-origin' })) + (await metric('dpow_rpc_requests_total', { outcome: 'error:foreign-host' }));
    expect(refusedAfter - refusedBefore).toBe(50 * foreign.length * 2);
    // 700 refusals; the log has a line per kind: foreign Origin and Host, on the RPC and /metrics.
    expectFewLines(log, 4);
  });

  it('a page from another origin, and a DNS-rebound page, in headless Chromium cannot drive the RPC or read /metrics', async () => {
    const attackerPage = createServer((req, res) => res.writeHead(200, { 'Content-Type': 'text/html' }).end('<!doctype html><title>attacker</title>'));
    attackerPage.listen(0, '127.0.0.1');
    await once(attackerPage, 'listening');
    const attackerPort = (attackerPage.address() as AddressInfo).port;
    const browser = await chromium.launch({
      executablePath: chromiumPath,
      args: [
        ...chromiumArgs,
        '--host-resolver-rules=MAP attacker.example 127.0.0.1, MAP rebind.example 127.0.0.1',
        // Chromium's own Local/Private Network Access checks would stop some of these requests
        // before they leave the browser; Firefox and Safari have none. The server must hold alone.
        '--disable-features=LocalNetworkAccessChecks,BlockInsecurePrivateNetworkRequests,PrivateNetworkAccessSendPreflights,PrivateNetworkAccessRespectPreflightResults',
      ],
    });
    const actions = ['status', 'work_generate', 'benchmark', 'work_cancel'];
    const attack = async (pageUrl: string, target: string, rebound = false) => {
      const page = await browser.newPage();
      // The rebound page is the attacker's document, served before its name was pointed at 127.0.0.1.
      if (rebound) await page.route(pageUrl, (route) => route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>attacker</title>' }));
      await page.goto(pageUrl);
      const read = await page.evaluate(
        async ({ target, actions, root }) => {
          const bodies: Record<string, unknown> = {
            status: { action: 'status' },
            work_generate: { action: 'work_generate', hash: root, difficulty: 'fffffff800000000' },
            benchmark: { action: 'benchmark', count: 1 },
            work_cancel: { action: 'work_cancel', hash: root },
          };
          const out: Record<string, string> = {};
          for (const action of actions) {
            // A simple request (text/plain), as a page would send it to skip the preflight.
            for (const mode of ['cors', 'no-cors'] as const) {
              try {
                const res = await fetch(target, { method: 'POST', mode, body: JSON.stringify(bodies[action]), headers: { 'Content-Type': 'text/plain' } });
                out[`${action}/${mode}`] = `${res.status} ${await res.text()}`;
              } catch (err) {
                out[`${action}/${mode}`] = `failed: ${String(err)}`;
              }
            }
          }
          try {
            const res = await fetch(new URL('/metrics', target).href);
            out.metrics = `${res.status} ${(await res.text()).slice(0, 200)}`;
          } catch (err) {
            out.metrics = `failed: ${String(err)}`;
          }
          return out;
        },
        { target, actions, root: ROOT },
      );
      await page.close();
      return read;
    };
    const counted = async () => (await metric('dpow_rpc_requests_total', { outcome: 'error:foreign-origin' })) + (await metric('dpow_rpc_requests_total', { outcome: 'error:foreign-host' }));
    const actionsDone = async () => {
      let n = 0;
      for (const action of actions) n += await metric('dpow_rpc_requests_total', { outcome: action });
      return n + (await metric('dpow_jobs_cancelled_total', { type: 'ondemand' }));
    };
    try {
      const refusedBefore = await counted();
      const doneBefore = await actionsDone();
      const pendingBefore = await metric('dpow_jobs_pending', { type: 'ondemand' });
      const crossOrigin = await attack(`http://attacker.example:${attackerPort}/`, `http://127.0.0.1:${port}/`);
      const rebound = await attack(`http://rebind.example:${port}/attack.html`, `http://rebind.example:${port}/`, true);
      console.log(`attacks/http: what the pages read: ${JSON.stringify({ crossOrigin, rebound })}`);
      for (const [what, outcome] of Object.entries({ ...prefix('cross-origin', crossOrigin), ...prefix('rebound', rebound) })) {
        // Nothing readable: a refusal, an opaque answer, or a blocked fetch; never the RPC's reply or the metrics.
        expect(outcome, what).not.toMatch(/generating|queue_size|"work"|average|dpow_|process_cpu/);
      }
      // The requests reached the server and were refused there (counted), and none ran.
      expect(await counted()).toBeGreaterThan(refusedBefore);
      expect(await actionsDone()).toBe(doneBefore);
      expect(await metric('dpow_jobs_pending', { type: 'ondemand' })).toBe(pendingBefore);
      expect(rebound.metrics).toMatch(/^403 /);
    } finally {
      await browser.close();
      attackerPage.close();
    }
    expect(app.running).toBe(true);
  });
});

describe('logins: the source that guesses is throttled, not the service; /metrics is the operator\'s', () => {
  /** Through the loopback proxy (the shipped nginx appends the caller to X-Forwarded-For). */
  const from = (address: string) => ({ 'X-Forwarded-For': address });
  const login = (apiKey: string, user = 'wallet') => JSON.stringify({ user, api_key: apiKey, hash: ROOT, timeout: 1, difficulty: 'ffffffffffffffff' });

  it('a flood of wrong keys for a real service, with 15 KB user names too, leaves its key working and the log small', async () => {
    const log = await logOf(async () => {
      const guesses = [];
      for (let i = 0; i < 200; i++) guesses.push(post('/service/', login(`guess-${i}`), from('203.0.113.7')));
      for (let i = 0; i < 200; i++) guesses.push(post('/service/', login('guess', `${'u'.repeat(15_000)}${i}`), from('203.0.113.7')));
      for (const r of await Promise.all(guesses)) expect([r.status, r.json.error]).toEqual([401, 'Invalid credentials']);
      // The service, from its own address, with its key not remembered yet: checked, and let in
      // (its request then fails on the difficulty, after authentication).
      const ok = await post('/service/', login(key), from('198.51.100.2'));
      expect([ok.status, ok.json.error]).toEqual([400, 'Difficulty too high. Maximum: ffffffffe0000000 (multiplier 64)']);
    });
    logVolume['400 wrong logins'] = { lines: log.lines, bytes: log.bytes, ...memory() };
    // 400 refusals (15 KB names among them): invalid-credentials, then the service's own refusal.
    expectFewLines(log, 2);
    expect(log.text).not.toContain(key);
  });

  it('refuses a made-up service name with the same scrypt as a real one (times printed, not asserted)', async () => {
    // Fresh keys from fresh callers: no remembered check and no throttle, so every refusal runs scrypt.
    const refusalMs = async (user: string, net: string) => {
      const times: number[] = [];
      for (let i = 0; i < 15; i++) {
        const started = performance.now();
        const r = await post('/service/', login(`fresh-${net}-${i}`, user), from(`${net}.${i}`));
        times.push(performance.now() - started);
        expect([r.status, r.json.error]).toEqual([401, 'Invalid credentials']);
      }
      return times.sort((x, y) => x - y)[times.length >> 1];
    };
    const unknown = await refusalMs('no-such-service', '192.0.2');
    const known = await refusalMs('wallet', '198.51.100');
    console.log(`attacks/http: median refusal, unknown user ${unknown.toFixed(1)} ms, real user with a wrong key ${known.toFixed(1)} ms`);
  });

  it('/metrics: the operator\'s password from anywhere, never a service key, and the password never logged', async () => {
    const basic = (user: string, password: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });
    const proxied = from('203.0.113.9');
    expect((await raw('GET', '/metrics', proxied)).status).toBe(403);
    const asService = await raw('GET', '/metrics', { ...proxied, ...basic('wallet', key) });
    expect([asService.status, asService.headers['www-authenticate']]).toEqual([401, 'Basic realm="dpow-web metrics"']);
    expect((await raw('GET', '/metrics', { ...proxied, ...basic('metrics', 'wrong') })).status).toBe(401);
    const operator = await raw('GET', '/metrics', { ...proxied, ...basic('metrics', METRICS_PASSWORD) });
    expect(operator.status).toBe(200);
    expect(operator.body).toContain('dpow_service_requests_total');
    // Not from another page even with the password (a browser would send it with a stored login).
    expect((await raw('GET', '/metrics', { ...basic('metrics', METRICS_PASSWORD), Origin: 'http://attacker.example' })).status).toBe(403);
    expect(app.output).not.toContain(METRICS_PASSWORD);
  });
});

function prefix(name: string, record: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [`${name} ${k}`, v]));
}
