/**
 * The payout ledger of the in-memory store. Each method runs without an await inside, so no
 * other call interleaves with it: createRun's checks and writes are one step, as a transaction
 * is in SQLite and a script in Redis. Records handed out are copies.
 */
import type { ClientRecord } from './store.ts';
import {
  PayoutConflict,
  sendConflict,
  summarizeAddress,
  type AddressPayouts,
  type NewPayoutRun,
  type PayoutLedger,
  type PayoutPayment,
  type PayoutRun,
  type PayoutRunStatus,
} from './payout-ledger.ts';

/** What the ledger needs of the store it belongs to. */
export interface MemoryLedgerHost {
  /** The live client record (the ledger moves its snapshot counters), or undefined. */
  client(address: string): ClientRecord | undefined;
  /** Throws when the store is closed. */
  check(): void;
}

export class MemoryPayoutLedger implements PayoutLedger {
  readonly #runs = new Map<string, PayoutRun>();
  /** Run id -> address -> payment. */
  readonly #payments = new Map<string, Map<string, PayoutPayment>>();
  readonly #carry = new Map<string, bigint>();

  readonly #host: MemoryLedgerHost;

  constructor(host: MemoryLedgerHost) {
    this.#host = host;
  }

  async createRun({ run, payments, snapshot, carries }: NewPayoutRun): Promise<void> {
    this.#host.check();
    const open = [...this.#runs.values()].find((r) => r.status !== 'done');
    if (open) throw new PayoutConflict('unfinished', `run ${open.id} is not finished`, open.id);
    if (this.#runs.has(run.id)) throw new PayoutConflict('exists', `run ${run.id} exists`);
    for (const { entry, previous } of snapshot) {
      const c = this.#host.client(entry.address);
      if (!c || c.snapshot_precache !== previous.precache || c.snapshot_ondemand !== previous.ondemand) {
        throw new PayoutConflict('snapshot-moved', `the snapshot of ${entry.address} moved since the plan`);
      }
    }
    for (const c of carries) {
      if ((this.#carry.get(c.address) ?? 0n) !== c.previous) throw new PayoutConflict('carry-moved', `the carry of ${c.address} moved since the plan`);
    }
    for (const { entry } of snapshot) {
      const c = this.#host.client(entry.address)!;
      if (entry.precache !== undefined) c.snapshot_precache = entry.precache;
      if (entry.ondemand !== undefined) c.snapshot_ondemand = entry.ondemand;
      if (entry.weighted_precache !== undefined) c.snapshot_weighted_precache = entry.weighted_precache;
      if (entry.weighted_ondemand !== undefined) c.snapshot_weighted_ondemand = entry.weighted_ondemand;
    }
    for (const c of carries) {
      if (c.next > 0n) this.#carry.set(c.address, c.next);
      else this.#carry.delete(c.address);
    }
    this.#runs.set(run.id, { ...run, status: 'sending' });
    this.#payments.set(run.id, new Map(payments.map((p) => [p.address, { ...p, runId: run.id }])));
  }

  async getRun(id: string): Promise<{ run: PayoutRun; payments: PayoutPayment[] } | undefined> {
    this.#host.check();
    const run = this.#runs.get(id);
    if (!run) return undefined;
    const payments = [...this.#payments.get(id)!.values()].sort((a, b) => a.seq - b.seq).map((p) => ({ ...p }));
    return { run: { ...run }, payments };
  }

  async listRuns(limit: number): Promise<PayoutRun[]> {
    this.#host.check();
    return [...this.#runs.values()]
      .sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1))
      .slice(0, limit)
      .map((r) => ({ ...r }));
  }

  async unfinishedRun(): Promise<PayoutRun | undefined> {
    this.#host.check();
    const open = [...this.#runs.values()].find((r) => r.status !== 'done');
    return open && { ...open };
  }

  #payment(runId: string, address: string): PayoutPayment {
    const p = this.#payments.get(runId)?.get(address);
    if (!p) throw new Error(`run ${runId} has no payment to ${address}`);
    return p;
  }

  async markSent(runId: string, address: string, block: string, at: number): Promise<PayoutPayment> {
    this.#host.check();
    const p = this.#payment(runId, address);
    if (p.status === 'planned') Object.assign(p, { status: 'sent', block, sentAt: at });
    else if ((p.status !== 'sent' && p.status !== 'confirmed') || p.block !== block) throw sendConflict(runId, address, p.status, p.block, block);
    return { ...p };
  }

  async markConfirmed(runId: string, address: string, at: number): Promise<void> {
    this.#host.check();
    const p = this.#payment(runId, address);
    if (p.status === 'sent') Object.assign(p, { status: 'confirmed', confirmedAt: at });
    else if (p.status !== 'confirmed') throw new Error(`payment of run ${runId} to ${address} is ${p.status}, not sent`);
  }

  async carryPayment(runId: string, address: string, reason: string): Promise<void> {
    this.#host.check();
    const p = this.#payment(runId, address);
    if (p.status !== 'planned') throw new Error(`payment of run ${runId} to ${address} is ${p.status}, not planned`);
    Object.assign(p, { status: 'carried', reason });
    this.#carry.set(address, (this.#carry.get(address) ?? 0n) + p.amount);
  }

  async setRunStatus(runId: string, status: PayoutRunStatus, detail: { error?: string; at?: number } = {}): Promise<void> {
    this.#host.check();
    const run = this.#runs.get(runId);
    if (!run) throw new Error(`no payout run ${runId}`);
    run.status = status;
    if (status === 'stopped' && detail.error !== undefined) run.error = detail.error;
    else delete run.error;
    if (status === 'done' && detail.at !== undefined) run.finishedAt = detail.at;
  }

  async carries(): Promise<Map<string, bigint>> {
    this.#host.check();
    return new Map(this.#carry);
  }

  async forAddress(address: string, limit: number): Promise<AddressPayouts> {
    this.#host.check();
    const lines = [...this.#payments.entries()].flatMap(([runId, byAddress]) => {
      const p = byAddress.get(address);
      return p ? [{ payment: { ...p }, runAt: this.#runs.get(runId)!.createdAt }] : [];
    });
    return summarizeAddress(lines, this.#carry.get(address) ?? 0n, this.#runs.size, limit);
  }
}
