/**
 * The payout ledger: runs and their payments, part of every DispatcherStore (`store.payouts`),
 * so the record of what was paid lives beside the counters it was paid for.
 *
 * A run is recorded whole before its first send (createRun): the run, every payment (planned,
 * or carried to the next run), the snapshot it pays and the carry balances it moves, in one
 * atomic step that is refused if another run is unfinished or if the snapshot or a carry moved
 * since the plan read them. A payment then goes planned -> sent (with the node's block hash) ->
 * confirmed. Each planned payment has its node `send` id, fixed at planning, so every retry of a
 * send (after a timeout, a crash, a resume) asks the node for the same payment.
 *
 * Amounts are raw BigInts here and decimal strings in storage: no store's own numbers hold 128
 * bits (SQLite integers are 64-bit, Lua numbers are doubles).
 */
/** A client's snapshot counters as a payout (or `dpow-web snapshot`) records them. */
export interface SnapshotEntry {
  address: string;
  precache?: number;
  ondemand?: number;
  /** The weighted sums the payout was computed from (set beside the counters they go with). */
  weighted_precache?: number;
  weighted_ondemand?: number;
}

export type PayoutWeight = 'work' | 'difficulty';
/** sending: recorded, payments going out; stopped: halted on an error, to be resumed; done: nothing left to send. */
export type PayoutRunStatus = 'sending' | 'stopped' | 'done';
/** carried: not sent this run (its amount moved to the address's carry balance). */
export type PaymentStatus = 'carried' | 'planned' | 'sent' | 'confirmed';

export interface PayoutRun {
  id: string;
  createdAt: number;
  /** The account the payments are sent from. */
  source: string;
  weight: PayoutWeight;
  /** Raw split among this run's shares (0 when only carries were paid). */
  pool: bigint;
  /** Raw: dues below it were carried. */
  min: bigint;
  status: PayoutRunStatus;
  /** Why it last stopped; absent unless stopped. */
  error?: string;
  finishedAt?: number;
}

export interface PayoutPayment {
  runId: string;
  /** Its place in the plan; payments are sent in this order. */
  seq: number;
  address: string;
  /** Works this payment pays for. */
  precache: number;
  ondemand: number;
  /** Raw sent (planned, sent, confirmed) or carried to the next run (carried). */
  amount: bigint;
  /** Of the amount, raw that earlier runs had carried to the address. */
  carriedIn: bigint;
  status: PaymentStatus;
  /** The node's idempotency id for this send (planned and later only). */
  sendId?: string;
  /** Why it was carried. */
  reason?: string;
  /** The send block's hash, once the node answered. */
  block?: string;
  sentAt?: number;
  confirmedAt?: number;
}

export interface NewPayoutRun {
  run: Omit<PayoutRun, 'status' | 'error' | 'finishedAt'>;
  /** Every line of the plan, each 'planned' (with its sendId) or 'carried' (with its reason). */
  payments: Omit<PayoutPayment, 'runId' | 'block' | 'sentAt' | 'confirmedAt'>[];
  /** The snapshot this run pays: each client's snapshot counters set to `entry`, provided they still read `previous`. */
  snapshot: { entry: SnapshotEntry; previous: { precache: number; ondemand: number } }[];
  /** Carry balances this run changes: from `previous` (what the plan read) to `next`. */
  carries: { address: string; previous: bigint; next: bigint }[];
}

/** createRun refused the run; nothing was written. */
export class PayoutConflict extends Error {
  constructor(
    readonly reason: 'unfinished' | 'snapshot-moved' | 'carry-moved' | 'exists',
    message: string,
    /** For 'unfinished': the run that must be finished first. */
    readonly runId?: string,
  ) {
    super(message);
  }
}

/** What one address was paid: for GET /api/payouts/<address>. */
export interface AddressPayouts {
  /** Newest run first, at most the limit asked for: planned (in progress), sent and confirmed payments. */
  payments: PayoutPayment[];
  /** When each listed payment's run was made, by run id. */
  runTimes: Record<string, number>;
  /** Raw of every sent or confirmed payment to the address, ever. */
  paid: bigint;
  /** Raw carried to the address now, and the latest reason a run gave for carrying. */
  carried: bigint;
  carriedReason?: string;
  /** Runs this server has recorded, to anyone: 0 means it has not paid yet. */
  serverRuns: number;
}

export interface PayoutLedger {
  /** Records a run whole (see the file comment); throws PayoutConflict when refused. */
  createRun(plan: NewPayoutRun): Promise<void>;
  getRun(id: string): Promise<{ run: PayoutRun; payments: PayoutPayment[] } | undefined>;
  /** Newest first. */
  listRuns(limit: number): Promise<PayoutRun[]>;
  /** The run that is not done, if any (there is at most one). */
  unfinishedRun(): Promise<PayoutRun | undefined>;
  /**
   * planned -> sent with `block`. Marking it again with the same block changes nothing (a retry
   * that got the same answer); a different block, or a payment that is not planned or sent,
   * throws: the node's id did not hold, and a person must look.
   */
  markSent(runId: string, address: string, block: string, at: number): Promise<PayoutPayment>;
  /** sent -> confirmed (block_info said so); a confirmed payment stays as it is. */
  markConfirmed(runId: string, address: string, at: number): Promise<void>;
  /**
   * planned -> carried with `reason`, its amount added to the address's carry balance, in one
   * step: for a destination the node refuses, so the run goes on without it and nothing is lost.
   */
  carryPayment(runId: string, address: string, reason: string): Promise<void>;
  /** Sets the run's status; 'stopped' takes the error, 'done' the time it finished. */
  setRunStatus(runId: string, status: PayoutRunStatus, detail?: { error?: string; at?: number }): Promise<void>;
  /** Every carry balance above zero. */
  carries(): Promise<Map<string, bigint>>;
  forAddress(address: string, limit: number): Promise<AddressPayouts>;
}

/** The refusal when a payment cannot be marked sent with this block. */
export function sendConflict(runId: string, address: string, status: string, block: string | undefined, offered: string): Error {
  return new Error(
    block && block !== offered
      ? `payment of run ${runId} to ${address} is already sent in block ${block}, not ${offered}: the node's send id did not hold`
      : `payment of run ${runId} to ${address} is ${status}, not planned`,
  );
}

/** A run's payments, newest run first, summed as forAddress answers (shared by the stores). */
export function summarizeAddress(lines: { payment: PayoutPayment; runAt: number }[], carried: bigint, serverRuns: number, limit: number): AddressPayouts {
  const sorted = [...lines].sort((a, b) => b.runAt - a.runAt || (a.payment.runId < b.payment.runId ? 1 : -1));
  const paidLines = sorted.filter((l) => l.payment.status !== 'carried');
  const shown = paidLines.slice(0, limit);
  const latestCarry = sorted.find((l) => l.payment.status === 'carried');
  return {
    payments: shown.map((l) => l.payment),
    runTimes: Object.fromEntries(shown.map((l) => [l.payment.runId, l.runAt])),
    paid: paidLines.reduce((sum, l) => (l.payment.status === 'sent' || l.payment.status === 'confirmed' ? sum + l.payment.amount : sum), 0n),
    carried,
    ...(carried > 0n && latestCarry?.payment.reason ? { carriedReason: latestCarry.payment.reason } : {}),
    serverRuns,
  };
}
