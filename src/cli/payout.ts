/**
 * `dpow-web payout`: pays volunteers in Nano for the work since the last payout, exactly once.
 *
 *   payout --source <account> (--amount <NANO> | --fraction <0..1>) [--wallet <id>] [--node <url>]
 *          [--min <NANO>] [--weight work|difficulty] [--dry-run] [--json] [--data DIR | --store URL]
 *   payout --resume [RUN]          finish an interrupted or stopped run (or re-check a done run's confirmations)
 *   payout list [--json]           the runs, newest first
 *   payout show RUN [--json]       one run and its payments
 *
 * The wallet id comes from --wallet or $DPOW_PAYOUT_WALLET and is never printed. What a run does,
 * and why it pays each address exactly once, is in server/payout/payout-run.ts. Exit codes: 0
 * done (or a dry run, or nothing to do), 1 the run stopped (node error or unreachable: what was
 * sent is recorded, `--resume` goes on), 2 bad options or a run that may not start.
 */
import type { Command } from 'commander';
import { CliError, defineCommand, defineSubcommand, intOption, parseCommandAsync } from './args.ts';
import { DATA_OPTION, openCliStore, STORE_OPTION } from './store-option.ts';
import { formatTable } from './table.ts';
import { parseNano } from '../dpow/nano-amount.ts';
import { formatNano, formatNanoAmount, logHash } from '../format.ts';
import { scrub } from '../server/log.ts';
import { NanoNodeRpc } from '../server/payout/node-rpc.ts';
import { nothingToPay, preparePayout, PayoutRefused, resumePayout, startPayout, type PayoutDeps, type PayoutEvent, type PoolRule, type RunOutcome } from '../server/payout/payout-run.ts';
import { percentOf, type PayoutPlan } from '../server/payout/plan.ts';
import type { PayoutPayment, PayoutRun } from '../server/store/payout-ledger.ts';

export const DEFAULT_NODE = 'http://[::1]:7076';
/** Many wallets leave receivables below 10^24 raw (0.000001 NANO) unreceived: pay no less by default. */
export const DEFAULT_MIN = '0.000001';
const WALLET_ID = /^[0-9A-Fa-f]{64}$/;

interface StoreFlags {
  data: string;
  store?: string;
  json?: boolean;
}

interface PayFlags extends StoreFlags {
  node: string;
  wallet?: string;
  source?: string;
  amount?: string;
  fraction?: string;
  min: string;
  weight: string;
  resume?: string | true;
  dryRun?: boolean;
  nodeTimeout: string;
  retryFor: string;
}

const out = (line: string) => process.stdout.write(`${line}\n`);

function nanoOption(value: string, name: string): bigint {
  const parsed = parseNano(value);
  if (!parsed.ok) throw new CliError(`--${name}: ${parsed.reason}`);
  return parsed.raw;
}

/** "0.25" as 25/100, exactly; in (0, 1]. */
function fractionOption(value: string): { numerator: bigint; denominator: bigint } {
  const m = /^(0|1)(?:\.(\d{1,18}))?$/.exec(value);
  const digits = m?.[2] ?? '';
  const numerator = m ? BigInt(m[1] + digits) : 0n;
  const denominator = 10n ** BigInt(digits.length);
  if (!m || numerator === 0n || numerator > denominator) throw new CliError(`--fraction must be a decimal in (0, 1], e.g. 0.25, got "${value.slice(0, 40)}"`);
  return { numerator, denominator };
}

const jsonLine = (value: unknown) => out(JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));

/** The dry-run table: one row per address, then the totals. */
export function planTable(plan: PayoutPlan): string[] {
  const rows = [
    ['ADDRESS', 'PRECACHE', 'ONDEMAND', 'SHARE %', 'AMOUNT NANO', 'AMOUNT RAW', 'CARRIED NANO', 'NOTE'],
    ...plan.lines.map((l) => [
      l.address,
      String(l.precache),
      String(l.ondemand),
      percentOf(l.weight, plan.totalWeight),
      formatNano(l.amount),
      l.amount.toString(),
      formatNano(l.carried),
      [l.carriedIn > 0n ? `${formatNano(l.carriedIn)} carried in` : '', l.carry ? `carried: ${l.carry.detail}` : ''].filter(Boolean).join('; '),
    ]),
    [
      'TOTAL',
      String(plan.totals.precache),
      String(plan.totals.ondemand),
      percentOf(plan.totalWeight, plan.totalWeight),
      formatNano(plan.totals.amount),
      plan.totals.amount.toString(),
      formatNano(plan.totals.carried),
      plan.totals.carriedIn > 0n ? `${formatNano(plan.totals.carriedIn)} carried in` : '',
    ],
  ];
  return [...formatTable(rows, [1, 2, 3, 4, 5, 6]), ...plan.skipped.map((s) => `skipped  ${s.address.slice(0, 80)}: ${s.reason} (its work stays counted)`)];
}

function describePlan(plan: PayoutPlan, source: string, balance: bigint): string {
  return `pool ${formatNanoAmount(plan.pool)} (${plan.pool} raw) by ${plan.weight} from ${source} (balance ${formatNanoAmount(balance)}), minimum ${formatNanoAmount(plan.min)}`;
}

function eventLine(event: PayoutEvent, secrets: string[]): string {
  switch (event.kind) {
    case 'recorded':
      return `payout run ${event.run.id} recorded: ${event.plan.totals.payments} payments, ${formatNanoAmount(event.plan.totals.amount)}; ${formatNanoAmount(event.plan.totals.carried)} carried to the next run`;
    case 'sent':
      return `sent       ${event.payment.address}  ${formatNanoAmount(event.payment.amount)}  block ${event.payment.block}`;
    case 'carried':
      return `carried    ${event.payment.address}  ${formatNanoAmount(event.payment.amount)}: ${event.reason}`;
    case 'confirmed':
      return `confirmed  ${event.payment.address}  block ${logHash(event.payment.block ?? '')}`;
    case 'waiting':
      return scrub(`waiting    ${event.what}: ${event.message}; trying again in ${(event.retryInMs / 1000).toFixed(1)} s`, secrets);
  }
}

function summary(outcome: RunOutcome): { sent: number; planned: number; confirmed: number; amount: bigint; carried: bigint } {
  const paying = outcome.payments.filter((p) => p.status !== 'carried');
  const sent = paying.filter((p) => p.status === 'sent' || p.status === 'confirmed');
  return {
    sent: sent.length,
    planned: paying.length,
    confirmed: paying.filter((p) => p.status === 'confirmed').length,
    amount: sent.reduce((a, p) => a + p.amount, 0n),
    carried: outcome.payments.filter((p) => p.status === 'carried').reduce((a, p) => a + p.amount, 0n),
  };
}

function finish(outcome: RunOutcome, json: boolean, secrets: string[]): number {
  const s = summary(outcome);
  const stopped = outcome.stopped !== undefined ? scrub(outcome.stopped, secrets) : undefined;
  if (json) {
    jsonLine({ run: outcome.run.id, status: outcome.run.status, ...s, ...(stopped ? { stopped } : {}) });
  } else if (stopped) {
    out(`stopped: ${stopped}`);
    out(`${s.sent} of ${s.planned} payments sent and recorded (${formatNanoAmount(s.amount)}); nothing is sent twice. Once fixed: dpow-web payout --resume ${outcome.run.id}`);
  } else {
    out(`done: ${s.sent} of ${s.planned} payments sent (${formatNanoAmount(s.amount)}), ${s.confirmed} confirmed; ${formatNanoAmount(s.carried)} carried to the next run`);
  }
  return stopped ? 1 : 0;
}

async function pay(flags: PayFlags): Promise<number> {
  if (flags.weight !== 'work' && flags.weight !== 'difficulty') throw new CliError(`--weight must be work or difficulty, got "${flags.weight}"`);
  const min = nanoOption(flags.min, 'min');
  const nodeTimeoutMs = intOption(flags.nodeTimeout, 'node-timeout', 30) * 1000;
  const retryForMs = intOption(flags.retryFor, 'retry-for', 300, 0) * 1000;
  if (!/^https?:\/\//.test(flags.node)) throw new CliError(`--node must be an http:// or https:// URL, got "${scrub(flags.node).slice(0, 80)}"`);
  const resuming = flags.resume !== undefined;
  let pool: PoolRule | undefined;
  if (!resuming) {
    if (!flags.source) throw new CliError('--source <account> is required: the account the payments are sent from');
    if ((flags.amount === undefined) === (flags.fraction === undefined)) throw new CliError('give the pool as one of --amount <NANO> or --fraction <0..1>');
    pool = flags.amount !== undefined ? { amount: nanoOption(flags.amount, 'amount') } : { fraction: fractionOption(flags.fraction!) };
  }
  const wallet = flags.wallet ?? process.env.DPOW_PAYOUT_WALLET ?? '';
  if (!flags.dryRun && !WALLET_ID.test(wallet)) throw new CliError('a real run needs the node wallet id (64 hex) in --wallet or $DPOW_PAYOUT_WALLET');
  const secrets = wallet ? [wallet] : [];

  const store = await openCliStore(flags);
  try {
    const json = flags.json === true;
    const deps: PayoutDeps = {
      store,
      node: new NanoNodeRpc(flags.node, { timeoutMs: nodeTimeoutMs }),
      wallet,
      retryForMs,
      // The JSON form is one line at the end; progress lines are for people.
      report: (event) => json || out(eventLine(event, secrets)),
    };
    if (resuming) {
      const outcome = await resumePayout(deps, flags.resume === true ? undefined : flags.resume);
      if (!outcome) {
        if (json) jsonLine({ run: null, status: 'nothing to resume' });
        else out('nothing to resume: every payout run is done');
        return 0;
      }
      return finish(outcome, json, secrets);
    }
    const prepared = await preparePayout(deps, { source: flags.source!, pool: pool!, min, weight: flags.weight });
    if (flags.dryRun) {
      const { plan, balance } = prepared;
      if (json) jsonLine({ dryRun: true, source: flags.source, balance, pool: plan.pool, weight: plan.weight, min: plan.min, lines: plan.lines, skipped: plan.skipped, totals: plan.totals });
      else {
        out(`payout plan (dry run): ${describePlan(plan, flags.source!, balance)}`);
        for (const line of planTable(plan)) out(line);
        out('dry run: nothing recorded, nothing sent');
      }
      return 0;
    }
    const idle = nothingToPay(prepared);
    if (idle) {
      if (json) jsonLine({ run: null, status: idle });
      else out(idle);
      return 0;
    }
    if (!json) out(`payout plan: ${describePlan(prepared.plan, flags.source!, prepared.balance)}`);
    return finish(await startPayout(deps, prepared), json, secrets);
  } catch (err) {
    if (err instanceof PayoutRefused) throw new CliError(scrub(err.message, secrets));
    throw err;
  } finally {
    await store.close();
  }
}

function runRow(run: PayoutRun, payments: PayoutPayment[]): string[] {
  const s = summary({ run, payments });
  return [run.id, new Date(run.createdAt).toISOString().replace('T', ' ').slice(0, 19), run.status, `${s.sent}/${s.planned}`, formatNano(s.amount), formatNano(s.carried), run.error ?? ''];
}

async function list(flags: StoreFlags & { limit: string }): Promise<number> {
  const limit = intOption(flags.limit, 'limit', 20);
  const store = await openCliStore(flags);
  try {
    const runs = await Promise.all((await store.payouts.listRuns(limit)).map(async (r) => (await store.payouts.getRun(r.id))!));
    if (flags.json) {
      jsonLine(runs.map(({ run, payments }) => ({ ...run, ...summary({ run, payments }) })));
      return 0;
    }
    if (runs.length === 0) {
      out('No payout runs yet. See dpow-web payout --help.');
      return 0;
    }
    const rows = [['RUN', 'CREATED (UTC)', 'STATUS', 'SENT', 'NANO SENT', 'NANO CARRIED', 'STOPPED BECAUSE'], ...runs.map(({ run, payments }) => runRow(run, payments))];
    for (const line of formatTable(rows, [4, 5])) out(line);
    return 0;
  } finally {
    await store.close();
  }
}

async function show(runId: string, flags: StoreFlags): Promise<number> {
  const store = await openCliStore(flags);
  try {
    const found = await store.payouts.getRun(runId);
    if (!found) throw new CliError(`no payout run "${runId.slice(0, 40)}" (dpow-web payout list shows them)`);
    const { run, payments } = found;
    if (flags.json) {
      jsonLine({ run, payments });
      return 0;
    }
    out(`payout run ${run.id}: ${run.status}${run.error ? ` (stopped: ${run.error})` : ''}`);
    out(`created ${new Date(run.createdAt).toISOString()}, from ${run.source}, pool ${formatNanoAmount(run.pool)} by ${run.weight}, minimum ${formatNanoAmount(run.min)}`);
    const rows = [
      ['ADDRESS', 'PRECACHE', 'ONDEMAND', 'AMOUNT NANO', 'STATUS', 'BLOCK OR REASON'],
      ...payments.map((p) => [p.address, String(p.precache), String(p.ondemand), formatNano(p.amount), p.status, p.block ?? p.reason ?? '']),
    ];
    for (const line of formatTable(rows, [1, 2, 3])) out(line);
    return 0;
  } finally {
    await store.close();
  }
}

/** `payout` and its two subcommands; each action reports its exit code through `done`. */
export function command(done: (code: number) => void = () => {}): Command {
  const payout = defineCommand('payout')
    .option('--source <account>', 'the account the payments are sent from (in --wallet)')
    .option('--amount <NANO>', 'the pool: this many NANO, split by the work since the last payout')
    .option('--fraction <f>', 'the pool: this fraction, in (0, 1], of the source balance (account_balance)')
    .option('--min <NANO>', 'a share below this is carried to the next payout, not sent', DEFAULT_MIN)
    .option('--weight <rule>', 'work (one work, one share) or difficulty (each work weighs its multiplier)', 'work')
    .option('--node <url>', 'the Nano node RPC', DEFAULT_NODE)
    .option('--wallet <id>', 'the node wallet holding --source (default $DPOW_PAYOUT_WALLET); never printed')
    .option('--resume [run]', 'finish an interrupted or stopped run (the unfinished one, or RUN); a done RUN has its confirmations checked again')
    .option('--dry-run', 'print the table of what would be paid; record nothing, send nothing')
    .option('--json', 'one JSON line instead of the text')
    .option('--node-timeout <s>', 'seconds one node call may take before it is asked again', '30')
    .option('--retry-for <s>', 'seconds to keep asking a node that does not answer before the run stops (resume it later)', '300')
    .option(...DATA_OPTION)
    .option(...STORE_OPTION)
    .addHelpText(
      'after',
      [
        '',
        'Each run takes a snapshot (as dpow-web snapshot does), splits the pool in raw by largest remainder,',
        'records the whole plan, then sends each payment with the node\'s send and an id derived from the run',
        'and the address, so a retry or a resume never pays twice. Exit 0: done; 1: stopped (resume it); 2: refused.',
      ].join('\n'),
    )
    .action(async (flags: PayFlags) => done(await pay(flags)));
  // --data, --store and --json are the payout command's, and count before or after list and show.
  defineSubcommand(payout, 'list', 'list payout runs, newest first (takes --data, --store, --json)')
    .option('--limit <n>', 'runs shown at most', '20')
    .action(async (_flags: unknown, cmd: Command) => done(await list(cmd.optsWithGlobals<StoreFlags & { limit: string }>())));
  defineSubcommand(payout, 'show', 'one payout run and its payments (takes --data, --store, --json)')
    .argument('<run>', 'the run id, as payout list prints it')
    .action(async (runId: string, _flags: unknown, cmd: Command) => done(await show(runId, cmd.optsWithGlobals<StoreFlags>())));
  return payout;
}

export async function run(argv: string[]): Promise<number> {
  let code = 0;
  await parseCommandAsync(command((c) => (code = c)), argv);
  return code;
}
