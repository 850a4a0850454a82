/**
 * A payout run, exactly once whatever happens:
 *
 *   prepare   read the clients and carries, take the snapshot (snapshot-plan.ts), find the pool
 *             (an amount, or a fraction of the source's balance), ask the node which addresses
 *             can receive, plan (plan.ts). Nothing written: a dry run stops here.
 *   record    the whole plan in the store in one step (ledger createRun), before the first send:
 *             the run, every payment with its node `id` (`dpow-web:<run>:<address>`), the snapshot
 *             it pays and the carries it moves. Refused while another run is unfinished or when
 *             the snapshot moved (the same snapshot paid twice).
 *   send      each planned payment in plan order with `send`; the block hash is recorded as it
 *             comes back. Then block_info marks the confirmed ones.
 *
 * Where it can break, and what covers it:
 *   - killed before the plan is recorded: nothing was written; the next run plans again.
 *   - killed between the node making a block and the ledger recording it: the payment is still
 *     planned; resuming sends it again with the same id, the node answers the block it made
 *     (moving nothing), and that block is recorded.
 *   - the node times out after sending, or a reply is lost: the same, within this process.
 *   - the node is down: each call is retried with backoff for `retryForMs`; then the run stops
 *     cleanly and a resume goes on where it stopped.
 *   - the node refuses (Insufficient balance, Wallet is locked, Account not found, …): the run
 *     stops with that message; what was sent stays recorded; a resume goes on once fixed. A
 *     destination the node calls bad is carried instead, so one address cannot hold up the rest.
 */
import { randomBytes } from 'node:crypto';
import { checkAddress, NANO_PREFIXES } from '../../dpow/address.ts';
import { backoffDelay } from '../../dpow/backoff.ts';
import { formatNano } from '../../format.ts';
import type { DispatcherStore } from '../store/store.ts';
import { PayoutConflict, type NewPayoutRun, type PayoutPayment, type PayoutRun, type PayoutWeight } from '../store/payout-ledger.ts';
import type { NanoNodeRpc, NodeResult } from './node-rpc.ts';
import { planPayout, type PayoutPlan } from './plan.ts';
import { planSnapshot } from './snapshot-plan.ts';

/** The pool: a fixed amount, or a fraction (numerator / denominator) of the source's balance. */
export type PoolRule = { amount: bigint } | { fraction: { numerator: bigint; denominator: bigint } };

export interface PayoutRequest {
  source: string;
  pool: PoolRule;
  /** Dues below this many raw are carried. */
  min: bigint;
  weight: PayoutWeight;
}

export type PayoutEvent =
  | { kind: 'recorded'; run: PayoutRun; plan: PayoutPlan }
  | { kind: 'sent'; payment: PayoutPayment }
  | { kind: 'carried'; payment: PayoutPayment; reason: string }
  | { kind: 'confirmed'; payment: PayoutPayment }
  | { kind: 'waiting'; what: string; message: string; retryInMs: number };

export interface PayoutDeps {
  store: DispatcherStore;
  node: NanoNodeRpc;
  /** The node wallet that holds the source account. Never written anywhere. */
  wallet: string;
  /** How long an unreachable node is retried, per call, before the run stops. */
  retryForMs: number;
  report: (event: PayoutEvent) => void;
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
}

/** Not started (nothing written), with the reason in words. */
export class PayoutRefused extends Error {
  constructor(
    message: string,
    /** The unfinished run that blocks a new one, if that is why. */
    readonly unfinishedRun?: string,
    /** Refused only because there is nothing to pay: not an error. */
    readonly nothingToPay = false,
  ) {
    super(message);
  }
}

export interface PreparedPayout {
  request: PayoutRequest;
  plan: PayoutPlan;
  /** The source's balance, raw, as account_balance reported it. */
  balance: bigint;
  /** What the ledger would record (unused by a dry run). */
  record: NewPayoutRun;
}

export interface RunOutcome {
  run: PayoutRun;
  payments: PayoutPayment[];
  /** Set when the run stopped before every payment was sent: why, in words. */
  stopped?: string;
}

/** `<yyyymmdd>-<hhmmss>-<6 hex>`: sortable, readable, and never the same twice on one node. */
export function newRunId(at: number): string {
  const iso = new Date(at).toISOString();
  return `${iso.slice(0, 10).replace(/-/g, '')}-${iso.slice(11, 19).replace(/:/g, '')}-${randomBytes(3).toString('hex')}`;
}

/** The node's idempotency id of a run's payment to an address: the same on every retry. */
export function sendId(runId: string, address: string): string {
  return `dpow-web:${runId}:${address}`;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Calls the node until it answers (or refuses), retrying an unreachable node for retryForMs. */
async function ask<T>(deps: PayoutDeps, what: string, call: () => Promise<NodeResult<T>>): Promise<NodeResult<T>> {
  const now = deps.now ?? Date.now;
  const started = now();
  for (let attempt = 0; ; attempt++) {
    const result = await call();
    if (result.ok || !result.unreachable) return result;
    const retryInMs = backoffDelay(attempt, 250, 5000);
    if (now() + retryInMs - started > deps.retryForMs) {
      return { ok: false, unreachable: true, message: `the node at ${deps.node.url} gave no answer for ${Math.round((now() - started) / 1000)} s (${result.message})` };
    }
    deps.report({ kind: 'waiting', what, message: result.message, retryInMs });
    await (deps.sleep ?? sleep)(retryInMs);
  }
}

/** Reads everything and plans; writes nothing. Throws PayoutRefused when there is nothing to do or it may not start. */
export async function preparePayout(deps: PayoutDeps, request: PayoutRequest): Promise<PreparedPayout> {
  const { store } = deps;
  const open = await store.payouts.unfinishedRun();
  if (open) throw new PayoutRefused(`payout run ${open.id} is not finished: finish it first with dpow-web payout --resume ${open.id}`, open.id);
  const source = checkAddress(request.source, NANO_PREFIXES);
  if (!source.ok) throw new PayoutRefused(`--source: ${source.reason}`);

  const [clients, carried] = await Promise.all([store.listClients(), store.payouts.carries()]);
  const snapshot = planSnapshot(clients, { minPrecache: 1, minOndemand: 1, prefixes: NANO_PREFIXES, weight: request.weight });

  const balance = await ask(deps, 'the source balance', () => deps.node.accountBalance(request.source));
  if (!balance.ok) throw new PayoutRefused(`account_balance of the source: ${balance.message}`);
  const pool = 'amount' in request.pool ? request.pool.amount : (balance.value.balance * request.pool.fraction.numerator) / request.pool.fraction.denominator;

  // Who can receive: the node's own check of each address, and whether its account is opened.
  const unpayable = new Map<string, string>();
  for (const address of new Set([...snapshot.shares.map((s) => s.address), ...carried.keys()])) {
    const local = checkAddress(address, NANO_PREFIXES);
    if (!local.ok) {
      unpayable.set(address, local.reason);
      continue;
    }
    const valid = await ask(deps, `validate_account_number ${address}`, () => deps.node.isValidAccount(address));
    if (!valid.ok) throw new PayoutRefused(`validate_account_number ${address}: ${valid.message}`);
    if (!valid.value) {
      unpayable.set(address, 'the node finds the address invalid');
      continue;
    }
    const opened = await ask(deps, `account_info ${address}`, () => deps.node.isOpened(address));
    if (!opened.ok) throw new PayoutRefused(`account_info ${address}: ${opened.message}`);
    if (!opened.value) unpayable.set(address, 'the account is not opened yet (it has never received a block)');
  }

  const plan = planPayout({ snapshot, weight: request.weight, pool, min: request.min, carried, unpayable });
  const now = (deps.now ?? Date.now)();
  const runId = newRunId(now);
  const previous = new Map(clients.map((c) => [c.address, { precache: c.snapshot_precache, ondemand: c.snapshot_ondemand }]));
  const record: NewPayoutRun = {
    run: { id: runId, createdAt: now, source: request.source, weight: request.weight, pool: plan.pool, min: request.min },
    payments: plan.lines.map((l, seq) => ({
      seq,
      address: l.address,
      precache: l.precache,
      ondemand: l.ondemand,
      amount: l.amount > 0n ? l.amount : l.carried,
      carriedIn: l.carriedIn,
      ...(l.amount > 0n ? { status: 'planned' as const, sendId: sendId(runId, l.address) } : { status: 'carried' as const, reason: l.carry?.detail ?? 'below the minimum' }),
    })),
    snapshot: snapshot.entries.map((entry) => ({ entry, previous: previous.get(entry.address)! })),
    carries: plan.lines.filter((l) => l.carriedIn !== l.carried).map((l) => ({ address: l.address, previous: l.carriedIn, next: l.carried })),
  };
  return { request, plan, balance: balance.value.balance, record };
}

/** Why a prepared run would record nothing of use, or undefined when it pays or snapshots something. */
export function nothingToPay({ plan, record }: PreparedPayout): string | undefined {
  if (plan.lines.length === 0) return 'nothing to pay: no new work since the last payout and nothing carried';
  if (plan.totals.payments === 0 && record.snapshot.length === 0) return 'nothing to pay: every amount due is still carried';
  return undefined;
}

/** Records a prepared run and sends it. Throws PayoutRefused when the ledger refuses it. */
export async function startPayout(deps: PayoutDeps, prepared: PreparedPayout): Promise<RunOutcome> {
  const { plan, balance, record } = prepared;
  const idle = nothingToPay(prepared);
  if (idle) throw new PayoutRefused(idle, undefined, true);
  if (plan.totals.amount > balance) {
    throw new PayoutRefused(`the source holds ${formatNano(balance)} NANO and the payments need ${formatNano(plan.totals.amount)} NANO`);
  }
  try {
    await deps.store.payouts.createRun(record);
  } catch (err) {
    if (!(err instanceof PayoutConflict)) throw err;
    if (err.reason === 'unfinished') throw new PayoutRefused(`payout run ${err.runId} is not finished: finish it first with dpow-web payout --resume ${err.runId}`, err.runId);
    throw new PayoutRefused(`this snapshot is already being paid (${err.message}): nothing recorded`);
  }
  const recorded = (await deps.store.payouts.getRun(record.run.id))!;
  deps.report({ kind: 'recorded', run: recorded.run, plan });
  return sendRun(deps, record.run.id);
}

/** Goes on with an unfinished run (or re-checks a done run's confirmations). */
export async function resumePayout(deps: PayoutDeps, runId?: string): Promise<RunOutcome | undefined> {
  const id = runId ?? (await deps.store.payouts.unfinishedRun())?.id;
  if (id === undefined) return undefined;
  if (!(await deps.store.payouts.getRun(id))) throw new PayoutRefused(`no payout run ${id}`);
  return sendRun(deps, id);
}

/** Sends every planned payment of the run, in order, then checks confirmations. */
async function sendRun(deps: PayoutDeps, runId: string): Promise<RunOutcome> {
  const { store } = deps;
  const now = deps.now ?? Date.now;
  const { run, payments } = (await store.payouts.getRun(runId))!;
  if (run.status !== 'done') await store.payouts.setRunStatus(runId, 'sending');
  for (const payment of payments) {
    if (payment.status !== 'planned') continue;
    let error: string | undefined;
    try {
      error = await sendOne(deps, run, payment);
    } catch (err) {
      // The store failed to record (or refused a block the node's id should have repeated): what
      // the node sent is safe, its id answers the same block when the run is resumed.
      error = `recording the payment to ${payment.address} failed: ${(err as Error).message}`;
    }
    if (error === undefined) continue;
    await store.payouts.setRunStatus(runId, 'stopped', { error }).catch(() => undefined);
    const stopped = await store.payouts.getRun(runId).catch(() => undefined);
    return { ...(stopped ?? { run: { ...run, status: 'stopped', error }, payments }), stopped: error };
  }
  if (run.status !== 'done') await store.payouts.setRunStatus(runId, 'done', { at: now() });
  await checkConfirmations(deps, runId);
  return (await store.payouts.getRun(runId))!;
}

/** Sends one planned payment and records what came of it; the reason the run must stop, if it must. */
async function sendOne(deps: PayoutDeps, run: PayoutRun, payment: PayoutPayment): Promise<string | undefined> {
  const { store, node } = deps;
  const request = { wallet: deps.wallet, source: run.source, destination: payment.address, amount: payment.amount, id: payment.sendId! };
  const sent = await ask(deps, `send to ${payment.address}`, () => node.send(request));
  if (sent.ok) {
    deps.report({ kind: 'sent', payment: await store.payouts.markSent(run.id, payment.address, sent.value, (deps.now ?? Date.now)()) });
    return undefined;
  }
  if (!sent.unreachable && sent.message === 'Bad destination account') {
    const reason = `the node refused the address: ${sent.message}`;
    await store.payouts.carryPayment(run.id, payment.address, reason);
    deps.report({ kind: 'carried', payment: { ...payment, status: 'carried', reason }, reason });
    return undefined;
  }
  return sent.unreachable ? sent.message : `the node answered "${sent.message}" to the payment to ${payment.address}`;
}

/** One block_info per sent payment; confirmed ones are marked. A node that does not answer leaves them as sent. */
async function checkConfirmations(deps: PayoutDeps, runId: string): Promise<void> {
  const { payments } = (await deps.store.payouts.getRun(runId))!;
  for (const payment of payments) {
    if (payment.status !== 'sent' || !payment.block) continue;
    const info = await deps.node.blockInfo(payment.block);
    if (info.ok && info.value.confirmed) {
      await deps.store.payouts.markConfirmed(runId, payment.address, (deps.now ?? Date.now)());
      deps.report({ kind: 'confirmed', payment: { ...payment, status: 'confirmed' } });
    }
  }
}
