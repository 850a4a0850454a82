import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from './main.ts';
import { formatEvent, formatPaidLine, formatRateLine, formatSummary, parseWorkerOptions, payoutsOrigin } from './worker.ts';
import { CliError } from './args.ts';
import { validateWork } from '../pow/work.ts';
import type { ClientState } from '../dpow/state.ts';
import { cleanupsAfterEach, closeAfter } from '../testkit/cleanups.ts';
import { waitFor } from '../testkit/wait.ts';
import { startPublisher, startWsBroker } from '../testkit/ws-broker.ts';
import { recordPayoutRun } from '../testkit/payouts.ts';
import { createServer } from '../server/create-server.ts';
import { MemoryStore } from '../server/store/memory-store.ts';

const ADDRESS = 'nano_1ik4ab366ik4ab366ik4ab366ik4ab366ik4ab366ik4ab366ik4myzudyzq';
const BIN = fileURLToPath(new URL('../../bin/dpow-web.mjs', import.meta.url));
const EASY = 'fff0000000000000';

const cleanups = cleanupsAfterEach();
afterEach(() => vi.restoreAllMocks());

function collect(child: ChildProcess) {
  const lines: string[] = [];
  let buf = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buf += chunk.toString();
    const parts = buf.split('\n');
    buf = parts.pop()!;
    lines.push(...parts);
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { lines, stderr: () => stderr, exit, rest: () => buf };
}

describe('dpow-web worker options', () => {
  it('refuses a payout address with a bad checksum: exit 2 with the reason, nothing started', async () => {
    const stderr: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => (stderr.push(String(chunk)), true));
    const typo = `${ADDRESS.slice(0, -1)}r`;
    expect(await main(['worker', '--broker', 'ws://127.0.0.1:1', '--address', typo])).toBe(2);
    expect(stderr.join('')).toMatch(/^dpow-web worker: --address: address checksum does not match/);
  });

  it('names the option at fault', () => {
    const base = ['--broker', 'ws://127.0.0.1:1/mqtt', '--address', ADDRESS];
    expect(() => parseWorkerOptions(['--address', ADDRESS])).toThrow(/--broker .* is required/);
    expect(() => parseWorkerOptions(['--broker', 'http//nope', '--address', ADDRESS])).toThrow(CliError);
    expect(() => parseWorkerOptions(['--broker', 'ftp://x', '--address', ADDRESS])).toThrow(/--broker: broker URL must be/);
    expect(() => parseWorkerOptions([...base, '--work', 'some'])).toThrow(/--work must be one of/);
    expect(() => parseWorkerOptions([...base, '--backend', 'cuda'])).toThrow(/--backend/);
    expect(() => parseWorkerOptions([...base, '--threads', '0'])).toThrow(/--threads/);
    expect(() => parseWorkerOptions([...base, '--max-multiplier', 'lots'])).toThrow(/--max-multiplier/);
    expect(() => parseWorkerOptions([...base, '--heartbeat-timeout', '-1'])).toThrow(/--heartbeat-timeout/);
    expect(() => parseWorkerOptions([...base, '--address', `qlc_${ADDRESS.slice(5)}`])).toThrow(/nano_, xrb_/);
    expect(parseWorkerOptions([...base, '--address', `qlc_${ADDRESS.slice(5)}`, '--address-prefixes', 'qlc_'])).toMatchObject({
      address: `qlc_${ADDRESS.slice(5)}`,
      addressPrefixes: ['qlc'],
    });
    expect(parseWorkerOptions([...base, '--work', 'ondemand', '--threads', '2', '--max-multiplier', '8', '--heartbeat-timeout', '2.5'])).toEqual({
      brokerUrl: 'ws://127.0.0.1:1/mqtt',
      username: 'client',
      password: 'client',
      address: ADDRESS,
      addressPrefixes: ['nano', 'xrb'],
      work: 'ondemand',
      backend: 'auto',
      threads: 2,
      intensity: undefined,
      maxMultiplier: 8,
      heartbeatTimeoutS: 2.5,
      jobTimeoutS: undefined,
      queueLimit: undefined,
    });
  });

  it('takes the nodes of a clustered broker, repeated or comma-separated, the first one first', () => {
    const many = parseWorkerOptions(['--broker', 'ws://a:1/mqtt,ws://b:2/mqtt', '--broker', ' mqtt://c:3 ', '--address', ADDRESS]);
    expect(many).toMatchObject({ brokerUrl: 'ws://a:1/mqtt', failoverBrokerUrls: ['ws://b:2/mqtt', 'mqtt://c:3'] });
    expect(parseWorkerOptions(['--broker', 'ws://a:1/mqtt', '--address', ADDRESS])).not.toHaveProperty('failoverBrokerUrls');
    expect(() => parseWorkerOptions(['--broker', 'ws://a:1,ftp://b', '--address', ADDRESS])).toThrow(/--broker: broker URL must be ws:\/\/, wss:\/\/ or mqtt:\/\/, got "ftp:\/\/b"/);
    expect(() => parseWorkerOptions(['--broker', ',', '--address', ADDRESS])).toThrow(/--broker .* is required/);
    const seventeen = Array.from({ length: 17 }, (_, i) => `ws://n${i}:1`).join(',');
    expect(() => parseWorkerOptions(['--broker', seventeen, '--address', ADDRESS])).toThrow('--broker names at most 16 brokers, got 17');
  });

  it('prints one line per job event and a summary', () => {
    const line = formatEvent({
      at: Date.UTC(2026, 0, 2, 3, 4, 5, 6),
      level: 'info',
      kind: 'job',
      message: 'Computed …',
      job: { event: 'computed', hash: 'BFEB8AA91D346E6EFBB41D11FD247E48E0BC0DBC183DDEB9F26F3A98AA17522F', workType: 'ondemand', multiplier: 1, ms: 812, backend: 'webgpu' },
    });
    expect(line).toBe('2026-01-02T03:04:05.006Z computed   ondemand BFEB8AA91D346E6E    1.000×    812 ms webgpu');
    expect(formatEvent({ at: 0, level: 'warn', kind: 'heartbeat', message: 'Server is back online' })).toBe(
      '1970-01-01T00:00:00.000Z heartbeat  Server is back online',
    );
    const state = {
      counters: { received: 5, rejected: { 'bad-hash': 2, duplicate: 1 }, computed: 3, published: 3, cancelled: 1, accepted: 2, addressAccepted: 5, expired: 0 },
      backend: 'wasm',
      backendLabel: 'WASM SIMD x1',
    } as unknown as ClientState;
    const summary = formatSummary(state, 3_723_000, 6_900_000);
    expect(summary).toContain('uptime 1h02m03s');
    expect(summary).toContain('received 5, computed 3, published 3, accepted 2, cancelled 1, expired 0');
    expect(summary).toContain('expired 0, address total 5');
    expect(summary).toContain('rejected: bad-hash 2, duplicate 1');
    expect(summary).toContain('hashrate: 6.90 MH/s while computing on wasm (WASM SIMD x1)');
  });
});

describe('dpow-web worker process', () => {
  it('computes and publishes work, logs one line per job, and prints a summary on SIGINT', async () => {
    const { url } = closeAfter(cleanups, await startWsBroker());
    const pub = closeAfter(cleanups, await startPublisher(url));

    const child = spawn(process.execPath, [BIN, 'worker', '--broker', url, '--address', ADDRESS, '--backend', 'wasm', '--threads', '1'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanups.push(() => child.exitCode === null && child.kill('SIGKILL'));
    const out = collect(child);
    await waitFor('connected line', () => out.lines.find((l) => / connection +Connected to /.test(l)), 30_000);

    const hash = 'A'.repeat(32) + 'b'.repeat(32);
    await pub.publish('heartbeat', '');
    await pub.publish('work/ondemand', `${hash},${EASY}`);
    await pub.publish('work/ondemand', 'garbage');
    const result = await waitFor('result', () => pub.results.find((r) => r.payload.startsWith(hash))?.payload, 30_000);
    expect(validateWork(hash, result.split(',')[1], EASY).valid).toBe(true);
    await waitFor('published line', () => out.lines.find((l) => / published +ondemand AAAAAAAAAAAAAAAA /.test(l)), 30_000);
    expect(out.lines.some((l) => / queued +ondemand AAAAAAAAAAAAAAAA +[\d.]+×/.test(l))).toBe(true);
    expect(out.lines.some((l) => / computed +ondemand AAAAAAAAAAAAAAAA +[\d.]+× +\d+ ms wasm$/.test(l))).toBe(true);
    expect(out.lines.some((l) => / reject +Rejected \(bad-field-count\)/.test(l))).toBe(true);

    child.kill('SIGINT');
    expect(await out.exit).toBe(0);
    const all = [...out.lines, out.rest()].join('\n');
    expect(all).toMatch(/summary: uptime \d+s/);
    expect(all).toContain('received 2, computed 1, published 1');
    expect(all).toContain('rejected: bad-field-count 1');
    // The average over the time spent computing, not the idle rate at shutdown.
    expect(all).toMatch(/hashrate: [1-9][\d.]* [kM]?H\/s while computing on wasm/);
    // A broker with no payouts endpoint behind it: no payout line.
    expect(all).not.toContain('paid:');
    // The page's words for what it is doing, as they change.
    expect(out.lines.some((l) => / state +Waiting for work$/.test(l))).toBe(true);
    expect(out.stderr()).toBe('');
  });

  it('prints the page\'s word, the sustained rate, busy share and capacity in its rate lines and summary', () => {
    const state = {
      connection: 'online',
      paused: null,
      current: null,
      counters: { received: 1, rejected: {}, computed: 1, published: 1, cancelled: 0, accepted: 1, expired: 0 },
      backend: 'webgpu',
      backendLabel: 'NVIDIA H200',
      sustained: { hashrate: 3.2e9, busyShare: 0.04, busyOverMs: 60_000, kernel: 'plain-n8-w256', calibratedRate: 3.4e9, capacity: 3.5e9 },
    } as unknown as ClientState;
    expect(formatSummary(state, 1000, 3.1e9)).toContain(
      'last minute of computing: 3.20 GH/s sustained, busy 4% of the last minute, capacity 3.50 GH/s (kernel plain-n8-w256, calibrated 3.40 GH/s)',
    );
    expect(formatRateLine(state)).toBe(
      'Waiting for work: 3.20 GH/s sustained while computing on webgpu, busy 4% of the last minute, capacity 3.50 GH/s (kernel plain-n8-w256, calibrated 3.40 GH/s)',
    );
    const working = { ...state, current: { hash: 'A'.repeat(64) } } as unknown as ClientState;
    expect(formatRateLine(working)).toMatch(/^Working: 3\.20 GH\/s sustained/);
    // Nothing computed in the last minute: no rate line (the rate itself is kept, not zeroed).
    expect(formatRateLine({ ...state, sustained: { ...state.sustained, busyShare: 0 } })).toBeNull();
  });

  it('uses every core by default, and says so in its help', async () => {
    const { availableParallelism } = await import('node:os');
    const base = ['--broker', 'ws://127.0.0.1:1/mqtt', '--address', ADDRESS];
    expect(parseWorkerOptions(base).threads).toBe(availableParallelism());
    const help: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => (help.push(String(chunk)), true));
    expect(await main(['worker', '--help'])).toBe(0);
    expect(help.join('')).toMatch(new RegExp(`--threads <n> +WASM threads \\(default: every core, ${availableParallelism()} here`));
  });

  it('ends its summary with what the server has paid the address, read from the app server behind its broker', async () => {
    const store = new MemoryStore();
    const block = 'C0FFEE'.padEnd(64, '0');
    await recordPayoutRun(store, 'r1', Date.UTC(2026, 0, 2), [{ address: ADDRESS, amount: 12_345n * 10n ** 24n, block, confirmed: true }]);
    const app = closeAfter(cleanups, await createServer({ kind: 'app', http: { port: 0 }, store: { kind: 'given', store } }));
    const child = spawn(process.execPath, [BIN, 'worker', '--broker', app.brokerWsUrl, '--address', ADDRESS, '--backend', 'wasm', '--threads', '1'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanups.push(() => child.exitCode === null && child.kill('SIGKILL'));
    const out = collect(child);
    await waitFor('connected line', () => out.lines.find((l) => / connection +Connected to /.test(l)), 30_000);
    child.kill('SIGINT');
    expect(await out.exit).toBe(0);
    expect([...out.lines, out.rest()].join('\n')).toContain('  paid: 0.012345 NANO in total to this address, last on 2026-01-02\n');
  });

  it('says what the payouts endpoint answered, and nothing when it could not be read', () => {
    const report = { address: ADDRESS, paid: '1500000000000000000000000000000', carried: '0', payouts: [], serverHasPaid: true };
    expect(formatPaidLine({ kind: 'report', report })).toBe('  paid: 1.5 NANO in total to this address');
    expect(formatPaidLine({ kind: 'report', report: { ...report, carried: '4000000000000000000000000', payouts: [{ at: 0, amount: '1', status: 'sending' }] } })).toBe(
      '  paid: 1.5 NANO in total to this address; 0.000004 NANO waiting for the next payout',
    );
    expect(formatPaidLine({ kind: 'none', endpoint: true })).toBe('  paid: this server has not paid yet');
    expect(formatPaidLine({ kind: 'none', endpoint: false })).toBeNull();
    expect(formatPaidLine({ kind: 'unavailable' })).toBeNull();
    expect(payoutsOrigin('wss://dpow.example/mqtt')).toBe('https://dpow.example/');
    expect(payoutsOrigin('ws://127.0.0.1:8787/mqtt')).toBe('http://127.0.0.1:8787/');
    expect(payoutsOrigin('mqtt://broker.example:1883')).toBeUndefined();
  });
});
