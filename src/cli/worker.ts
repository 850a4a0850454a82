/**
 * `dpow-web worker --broker <url>[,<url>…] --address <addr> [--work any|precache|ondemand]
 *  [--backend auto|webgpu|wasm] [--threads N] [--intensity F] [--kernel NAME] [--username u --password p]
 *  [--max-multiplier M] [--heartbeat-timeout S] [--job-timeout S] [--queue-limit N]
 *  [--address-prefixes nano,xrb]`   (--help lists them)
 *
 * The headless volunteer worker: the same DpowClient as the page, over the Node engine (Dawn
 * WebGPU or WASM threads). One line per event on stdout: timestamp, event, then for jobs the
 * type, short hash, multiplier, search time and backend. A `state` line gives the page's word
 * (Waiting for work, Offline, ...) whenever it changes, and once a minute a `rate` line gives it
 * with the sustained rate. Ctrl-C (or SIGTERM) stops the client, prints a summary (with what the
 * server has paid the address, when its /api/payouts/ answers) and exits 0. A bad option or
 * payout address exits 2 with the reason.
 *
 * A rig runs the worker and little else, so it uses every core unless --threads says otherwise
 * (the page leaves one to the browser).
 */
import { availableParallelism } from 'node:os';
import { brokerList, CliError, collect, defineCommand, intOption, parseCommand } from './args.ts';
import { parseBackend } from './work.ts';
import { DpowClient, resolveBrokerUrl } from '../dpow/client.ts';
import { formatElapsed, formatHashrate, formatMultiplier, formatNano, logHashColumn } from '../format.ts';
import { checkAddress } from '../dpow/address.ts';
import { ACTIVITY_WORDS, busyText, workerActivity, type Activity } from '../dpow/activity.ts';
import { NO_SUSTAINED_RATES, type ClientEvent, type ClientSettings, type ClientState, type WorkChoice } from '../dpow/state.ts';
import { plainLogger } from '../log.ts';
import { difficultyPolicy } from '../pow/difficulty.ts';
import { requireVariant } from '../pow/kernel-family.ts';
import type { BackendChoice } from '../pow/types.ts';
import { loadPayouts, type PayoutsView } from '../dpow/payouts.ts';

const WORK_CHOICES: readonly WorkChoice[] = ['any', 'precache', 'ondemand'];

function positiveNumber(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new CliError(`--${name} must be a positive number, got "${value}"`);
  return n;
}

export function command() {
  return defineCommand('worker')
    .option('--broker <url>', 'the DPoW broker: ws://host:port/path, wss://… or mqtt://… (required); the nodes of a clustered broker, repeated or comma-separated, are tried in turn', collect)
    .option('-a, --address <address>', 'payout address, checksum checked (required)')
    .option('-w, --work <choice>', 'any, precache or ondemand', 'any')
    .option('-b, --backend <backend>', 'auto, webgpu or wasm', 'auto')
    .option('-t, --threads <n>', `WASM threads (default: every core, ${availableParallelism()} here: a rig is for work)`)
    .option('--intensity <f>', 'share of time to compute, in (0, 1]: the GPU idles between dispatches, the CPU threads between kernel calls')
    .option('-k, --kernel <name>', 'the WebGPU kernel variant to use instead of the tuner\'s choice')
    .option('-u, --username <user>', 'broker login', 'client')
    .option('-p, --password <password>', 'broker password (or $DPOW_WORKER_PASSWORD; client when neither is set)')
    .option('--max-multiplier <m>', 'refuse jobs above this multiplier of the Nano send threshold')
    .option('--heartbeat-timeout <s>', 'seconds without a heartbeat before the server counts as offline')
    .option('--job-timeout <s>', 'seconds a job may run before it is given up')
    .option('--queue-limit <n>', 'jobs kept waiting at most')
    .option('--address-prefixes <list>', 'accepted address prefixes, comma-separated', 'nano,xrb')
    .addHelpText('after', '\nOne line per event on stdout; Ctrl-C or SIGTERM prints a summary and exits 0.');
}

/** The options as commander parses them (strings until checked below). */
interface WorkerFlags {
  broker?: string[];
  address?: string;
  work: string;
  backend: string;
  threads?: string;
  intensity?: string;
  kernel?: string;
  username: string;
  password?: string;
  maxMultiplier?: string;
  heartbeatTimeout?: string;
  jobTimeout?: string;
  queueLimit?: string;
  addressPrefixes: string;
}

/** The client settings plus the difficulty ceiling, from which run() builds the one policy. */
export interface WorkerOptions extends ClientSettings {
  /** Work above this multiplier (vs the Nano send threshold) is refused. Default 64. */
  maxMultiplier?: number;
  /** A WebGPU kernel variant to use without tuning (--kernel). */
  kernel?: string;
}

/** Parses the options; throws CliError with the reason for anything bad. */
export function parseWorkerOptions(argv: string[]): WorkerOptions {
  const { options: values } = parseCommand<WorkerFlags>(command(), argv);
  const brokers = brokerList(values.broker);
  if (!brokers.length) throw new CliError('--broker <ws://host:port/path | wss://… | mqtt://…> is required');
  const urls = brokers.map((b) => {
    const url = resolveBrokerUrl(b);
    if (!url.ok) throw new CliError(`--broker: ${url.reason}`);
    return url.url;
  });
  if (!values.address) throw new CliError('--address <payout address> is required');
  const prefixes = values.addressPrefixes.split(',').map((p) => p.trim().replace(/_$/, '')).filter(Boolean);
  const address = checkAddress(values.address, prefixes);
  if (!address.ok) throw new CliError(`--address: ${address.reason}`);
  const work = values.work as WorkChoice;
  if (!WORK_CHOICES.includes(work)) throw new CliError(`--work must be one of ${WORK_CHOICES.join('|')}, got "${values.work}"`);
  const intensity = positiveNumber(values.intensity, 'intensity');
  if (intensity !== undefined && intensity > 1) throw new CliError(`--intensity must be in (0, 1], got "${values.intensity}"`);
  if (values.kernel !== undefined) {
    try {
      requireVariant(values.kernel);
    } catch (err) {
      throw new CliError(`--kernel: ${(err as Error).message}`);
    }
  }
  return {
    kernel: values.kernel,
    brokerUrl: urls[0],
    ...(urls.length > 1 ? { failoverBrokerUrls: urls.slice(1) } : {}),
    username: values.username,
    password: values.password ?? process.env.DPOW_WORKER_PASSWORD ?? 'client',
    address: values.address,
    addressPrefixes: prefixes,
    work,
    backend: parseBackend(values.backend) as BackendChoice,
    threads: intOption(values.threads, 'threads', availableParallelism()),
    intensity,
    maxMultiplier: positiveNumber(values.maxMultiplier, 'max-multiplier'),
    heartbeatTimeoutS: positiveNumber(values.heartbeatTimeout, 'heartbeat-timeout'),
    jobTimeoutS: positiveNumber(values.jobTimeout, 'job-timeout'),
    queueLimit: values.queueLimit === undefined ? undefined : intOption(values.queueLimit, 'queue-limit', 1),
  };
}

/** One log line for one client event. */
export function formatEvent(event: ClientEvent): string {
  const at = new Date(event.at).toISOString();
  const job = event.job;
  if (!job) return `${at} ${event.kind.padEnd(10)} ${event.message}`;
  const fields = [at, job.event.padEnd(10), job.workType.padEnd(8), logHashColumn(job.hash), formatMultiplier(job.multiplier).padStart(9)];
  if (job.ms !== undefined) fields.push(`${job.ms} ms`.padStart(9));
  if (job.backend) fields.push(job.backend);
  return fields.join(' ');
}

const RATE_LINE_MS = 60_000;

/** The capacity and, on WebGPU, the tuned kernel behind it: ", capacity 3.50 GH/s (kernel plain-n8-w256, calibrated 3.41 GH/s)". */
function capacityText(state: ClientState): string {
  const sustained = state.sustained ?? NO_SUSTAINED_RATES;
  if (sustained.capacity === null) return '';
  const calibrated = sustained.calibratedRate !== null ? `, calibrated ${formatHashrate(sustained.calibratedRate)}` : '';
  const kernel = sustained.kernel ? ` (kernel ${sustained.kernel}${calibrated})` : '';
  return `, capacity ${formatHashrate(sustained.capacity)}${kernel}`;
}

/**
 * The worker's periodic rate line, with the page's word for what it is doing, or null when
 * nothing was computed in the last minute.
 */
export function formatRateLine(state: ClientState): string | null {
  const sustained = state.sustained ?? NO_SUSTAINED_RATES;
  if (!(sustained.busyShare > 0 && sustained.hashrate > 0)) return null;
  const on = state.backend ? ` on ${state.backend}` : '';
  return `${ACTIVITY_WORDS[workerActivity(state)]}: ${formatHashrate(sustained.hashrate)} sustained while computing${on}, ${busyText(sustained)}${capacityText(state)}`;
}

/** Activities a `state` line is printed for: Working and Waiting for work alternate every job, so they are one. */
function stateClass(activity: Activity): Activity {
  return activity === 'working' ? 'waiting' : activity;
}

/** The exit summary: counters, hashrate, uptime. */
export function formatSummary(state: ClientState, uptimeMs: number, hashrate: number): string {
  const sustained = state.sustained ?? NO_SUSTAINED_RATES;
  const capacity = capacityText(state);
  const c = state.counters;
  const rejected = Object.entries(c.rejected)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([code, n]) => `${code} ${n}`)
    .join(', ');
  const backend = state.backend ? ` on ${state.backend}${state.backendLabel ? ` (${state.backendLabel})` : ''}` : '';
  return [
    `summary: uptime ${formatElapsed(uptimeMs)}`,
    `  jobs: received ${c.received}, computed ${c.computed}, published ${c.published}, accepted ${c.accepted}, cancelled ${c.cancelled}, expired ${c.expired}, address total ${c.addressAccepted}`,
    `  rejected: ${rejected || 'none'}`,
    `  hashrate: ${formatHashrate(hashrate)} while computing${backend}`,
    `  last minute of computing: ${formatHashrate(sustained.hashrate)} sustained, ${busyText(sustained)}${capacity}`,
  ].join('\n');
}

/** The app server behind a ws:// or wss:// broker URL (the embedded broker lives at its /mqtt); none for mqtt://. */
export function payoutsOrigin(brokerUrl: string): string | undefined {
  const url = new URL(brokerUrl);
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') return undefined;
  return `${url.protocol === 'wss:' ? 'https' : 'http'}://${url.host}/`;
}

/** The summary's payout line, or null when no payouts endpoint answered. */
export function formatPaidLine(view: PayoutsView): string | null {
  if (view.kind === 'unavailable' || (view.kind === 'none' && !view.endpoint)) return null;
  if (view.kind === 'none') return '  paid: this server has not paid yet';
  const { paid, carried, payouts } = view.report;
  const last = payouts.find((p) => p.status !== 'sending');
  const when = last ? `, last on ${new Date(last.at).toISOString().slice(0, 10)}` : '';
  const waiting = carried !== '0' ? `; ${formatNano(BigInt(carried))} NANO waiting for the next payout` : '';
  return `  paid: ${formatNano(BigInt(paid))} NANO in total to this address${when}${waiting}`;
}

export async function run(argv: string[]): Promise<number> {
  const { maxMultiplier, ...settings } = parseWorkerOptions(argv);
  // One policy for the queue and the engine, so both refuse the same work.
  const policy = difficultyPolicy({ maxMultiplier });
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const startedAt = Date.now();

  const { createNodeEngine } = await import('../pow-node/engine.ts');
  const engine = await createNodeEngine({
    backend: settings.backend,
    threads: settings.threads,
    kernel: settings.kernel,
    policy,
    log: plainLogger((message) => out(`${new Date().toISOString()} ${'engine'.padEnd(10)} ${message}`)),
  });

  // Hashrate for the summary: the engine's hashes over the time spent computing. (Its smoothed
  // rate is 0 once idle, and jobs at low difficulty end before the first status sample.)
  let computingMs = 0;
  let lastLabel = '';
  const client = new DpowClient({
    engine,
    policy,
    onEvent: (event) => {
      if (event.job?.event === 'computed' && event.job.ms !== undefined) computingMs += event.job.ms;
      out(formatEvent(event));
    },
  });
  let lastState: Activity | null = null;
  client.subscribe((state) => {
    const label = state.backend ? `${state.backend}${state.backendLabel ? ` (${state.backendLabel})` : ''}` : '';
    if (label && label !== lastLabel) {
      lastLabel = label;
      out(`${new Date().toISOString()} ${'engine'.padEnd(10)} computing on ${label}`);
    }
    // The page's word for what the worker does, when it changes (see stateClass).
    const activity = stateClass(workerActivity(state));
    if (activity !== lastState && activity !== 'not-started') {
      lastState = activity;
      out(`${new Date().toISOString()} ${'state'.padEnd(10)} ${ACTIVITY_WORDS[activity]}`);
    }
  });

  // Once a minute while work was done: the sustained rate, the busy share and the tuned capacity
  // (a GPU finishes most jobs in milliseconds, so a live rate alone would read 0).
  const rateLines = setInterval(() => {
    const line = formatRateLine(client.getState());
    if (line) out(`${new Date().toISOString()} ${'rate'.padEnd(10)} ${line}`);
  }, RATE_LINE_MS);
  rateLines.unref();

  const stopped = new Promise<string>((resolve) => {
    const onInt = () => onSignal('SIGINT');
    const onTerm = () => onSignal('SIGTERM');
    const onSignal = (signal: string) => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      // A second Ctrl-C while shutting down leaves at once.
      process.once('SIGINT', () => process.exit(130));
      resolve(signal);
    };
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
  });

  try {
    await client.start(settings);
  } catch (err) {
    engine.dispose();
    throw new CliError((err as Error).message);
  }
  const signal = await stopped;
  clearInterval(rateLines);
  out(`${new Date().toISOString()} ${'stop'.padEnd(10)} ${signal}: stopping`);
  await client.stop();
  const state = client.getState();
  const { totalHashes } = await engine.status();
  engine.dispose();
  out(formatSummary(state, Date.now() - startedAt, computingMs > 0 ? (totalHashes * 1000) / computingMs : 0));
  const origin = payoutsOrigin(settings.brokerUrl);
  const paid = origin ? formatPaidLine(await loadPayouts(settings.address, origin, fetch, AbortSignal.timeout(3000))) : null;
  if (paid) out(paid);
  return 0;
}
