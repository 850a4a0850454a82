/**
 * The payout ledger of the SQLite store, on the store's own connection. createRun is one
 * IMMEDIATE transaction: two `dpow-web payout` processes on one file cannot both pass the
 * checks, and a crash leaves the whole run recorded or none of it. Raw amounts are decimal TEXT
 * (an INTEGER holds 64 bits, a raw amount up to 128); sums are taken in BigInt, never by SQL.
 */
import type Database from 'better-sqlite3';
import {
  PayoutConflict,
  sendConflict,
  summarizeAddress,
  type AddressPayouts,
  type NewPayoutRun,
  type PaymentStatus,
  type PayoutLedger,
  type PayoutPayment,
  type PayoutRun,
  type PayoutRunStatus,
  type PayoutWeight,
} from './payout-ledger.ts';

/** Schema version 3 -> 4 of sqlite-store.ts's MIGRATIONS. Released: never edit, append a new migration. */
export const PAYOUT_LEDGER_MIGRATION = `
  CREATE TABLE payout_runs (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    source TEXT NOT NULL,
    weight TEXT NOT NULL CHECK (weight IN ('work', 'difficulty')),
    pool TEXT NOT NULL,
    min TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('sending', 'stopped', 'done')),
    error TEXT,
    finished_at INTEGER
  );
  CREATE INDEX payout_runs_created ON payout_runs (created_at);
  CREATE TABLE payout_payments (
    run_id TEXT NOT NULL REFERENCES payout_runs (id),
    seq INTEGER NOT NULL,
    address TEXT NOT NULL,
    precache INTEGER NOT NULL,
    ondemand INTEGER NOT NULL,
    amount TEXT NOT NULL,
    carried_in TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('carried', 'planned', 'sent', 'confirmed')),
    send_id TEXT UNIQUE,
    reason TEXT,
    block TEXT,
    sent_at INTEGER,
    confirmed_at INTEGER,
    PRIMARY KEY (run_id, address)
  );
  CREATE INDEX payout_payments_address ON payout_payments (address);
  CREATE TABLE payout_carry (
    address TEXT PRIMARY KEY,
    amount TEXT NOT NULL
  );
`;

interface RunRow {
  id: string;
  created_at: number;
  source: string;
  weight: PayoutWeight;
  pool: string;
  min: string;
  status: PayoutRunStatus;
  error: string | null;
  finished_at: number | null;
}

interface PaymentRow {
  run_id: string;
  seq: number;
  address: string;
  precache: number;
  ondemand: number;
  amount: string;
  carried_in: string;
  status: PaymentStatus;
  send_id: string | null;
  reason: string | null;
  block: string | null;
  sent_at: number | null;
  confirmed_at: number | null;
}

function toRun(row: RunRow): PayoutRun {
  const run: PayoutRun = { id: row.id, createdAt: row.created_at, source: row.source, weight: row.weight, pool: BigInt(row.pool), min: BigInt(row.min), status: row.status };
  if (row.error !== null) run.error = row.error;
  if (row.finished_at !== null) run.finishedAt = row.finished_at;
  return run;
}

function toPayment(row: PaymentRow): PayoutPayment {
  const p: PayoutPayment = {
    runId: row.run_id,
    seq: row.seq,
    address: row.address,
    precache: row.precache,
    ondemand: row.ondemand,
    amount: BigInt(row.amount),
    carriedIn: BigInt(row.carried_in),
    status: row.status,
  };
  if (row.send_id !== null) p.sendId = row.send_id;
  if (row.reason !== null) p.reason = row.reason;
  if (row.block !== null) p.block = row.block;
  if (row.sent_at !== null) p.sentAt = row.sent_at;
  if (row.confirmed_at !== null) p.confirmedAt = row.confirmed_at;
  return p;
}

export class SqlitePayoutLedger implements PayoutLedger {
  readonly #db: Database.Database;
  /** Throws when the store is closed. */
  readonly #check: () => void;

  constructor(
    db: Database.Database,
    /** Throws when the store is closed. */
    check: () => void,
  ) {
    this.#db = db;
    this.#check = check;
  }

  async createRun({ run, payments, snapshot, carries }: NewPayoutRun): Promise<void> {
    this.#check();
    const db = this.#db;
    db.transaction(() => {
      const open = db.prepare(`SELECT id FROM payout_runs WHERE status != 'done' LIMIT 1`).get() as { id: string } | undefined;
      if (open) throw new PayoutConflict('unfinished', `run ${open.id} is not finished`, open.id);
      if (db.prepare('SELECT 1 FROM payout_runs WHERE id = ?').get(run.id)) throw new PayoutConflict('exists', `run ${run.id} exists`);
      const client = db.prepare('SELECT snapshot_precache, snapshot_ondemand FROM clients WHERE address = ?');
      for (const { entry, previous } of snapshot) {
        const row = client.get(entry.address) as { snapshot_precache: number; snapshot_ondemand: number } | undefined;
        if (!row || row.snapshot_precache !== previous.precache || row.snapshot_ondemand !== previous.ondemand) {
          throw new PayoutConflict('snapshot-moved', `the snapshot of ${entry.address} moved since the plan`);
        }
      }
      const carry = db.prepare('SELECT amount FROM payout_carry WHERE address = ?');
      for (const c of carries) {
        const row = carry.get(c.address) as { amount: string } | undefined;
        if (BigInt(row?.amount ?? '0') !== c.previous) throw new PayoutConflict('carry-moved', `the carry of ${c.address} moved since the plan`);
      }
      const record = db.prepare(
        `UPDATE clients SET snapshot_precache = COALESCE(?, snapshot_precache), snapshot_ondemand = COALESCE(?, snapshot_ondemand),
           snapshot_weighted_precache = COALESCE(?, snapshot_weighted_precache),
           snapshot_weighted_ondemand = COALESCE(?, snapshot_weighted_ondemand), updated_at = ? WHERE address = ?`,
      );
      for (const { entry: e } of snapshot) {
        record.run(e.precache ?? null, e.ondemand ?? null, e.weighted_precache ?? null, e.weighted_ondemand ?? null, run.createdAt, e.address);
      }
      const setCarry = db.prepare('INSERT INTO payout_carry (address, amount) VALUES (?, ?) ON CONFLICT (address) DO UPDATE SET amount = excluded.amount');
      const dropCarry = db.prepare('DELETE FROM payout_carry WHERE address = ?');
      for (const c of carries) {
        if (c.next > 0n) setCarry.run(c.address, c.next.toString());
        else dropCarry.run(c.address);
      }
      db.prepare(`INSERT INTO payout_runs (id, created_at, source, weight, pool, min, status) VALUES (?, ?, ?, ?, ?, ?, 'sending')`).run(
        run.id,
        run.createdAt,
        run.source,
        run.weight,
        run.pool.toString(),
        run.min.toString(),
      );
      const insert = db.prepare(
        `INSERT INTO payout_payments (run_id, seq, address, precache, ondemand, amount, carried_in, status, send_id, reason)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      );
      for (const p of payments) {
        insert.run(run.id, p.seq, p.address, p.precache, p.ondemand, p.amount.toString(), p.carriedIn.toString(), p.status, p.sendId ?? null, p.reason ?? null);
      }
    }).immediate();
  }

  async getRun(id: string): Promise<{ run: PayoutRun; payments: PayoutPayment[] } | undefined> {
    this.#check();
    const row = this.#db.prepare('SELECT * FROM payout_runs WHERE id = ?').get(id) as RunRow | undefined;
    if (!row) return undefined;
    const payments = this.#db.prepare('SELECT * FROM payout_payments WHERE run_id = ? ORDER BY seq').all(id) as PaymentRow[];
    return { run: toRun(row), payments: payments.map(toPayment) };
  }

  async listRuns(limit: number): Promise<PayoutRun[]> {
    this.#check();
    return (this.#db.prepare('SELECT * FROM payout_runs ORDER BY created_at DESC, id DESC LIMIT ?').all(limit) as RunRow[]).map(toRun);
  }

  async unfinishedRun(): Promise<PayoutRun | undefined> {
    this.#check();
    const row = this.#db.prepare(`SELECT * FROM payout_runs WHERE status != 'done' LIMIT 1`).get() as RunRow | undefined;
    return row && toRun(row);
  }

  #payment(runId: string, address: string): PaymentRow {
    const row = this.#db.prepare('SELECT * FROM payout_payments WHERE run_id = ? AND address = ?').get(runId, address) as PaymentRow | undefined;
    if (!row) throw new Error(`run ${runId} has no payment to ${address}`);
    return row;
  }

  async markSent(runId: string, address: string, block: string, at: number): Promise<PayoutPayment> {
    this.#check();
    return this.#db.transaction(() => {
      const row = this.#payment(runId, address);
      if (row.status === 'planned') {
        this.#db.prepare(`UPDATE payout_payments SET status = 'sent', block = ?, sent_at = ? WHERE run_id = ? AND address = ?`).run(block, at, runId, address);
        return toPayment({ ...row, status: 'sent', block, sent_at: at });
      }
      if ((row.status === 'sent' || row.status === 'confirmed') && row.block === block) return toPayment(row);
      throw sendConflict(runId, address, row.status, row.block ?? undefined, block);
    })();
  }

  async markConfirmed(runId: string, address: string, at: number): Promise<void> {
    this.#check();
    this.#db.transaction(() => {
      const row = this.#payment(runId, address);
      if (row.status === 'confirmed') return;
      if (row.status !== 'sent') throw new Error(`payment of run ${runId} to ${address} is ${row.status}, not sent`);
      this.#db.prepare(`UPDATE payout_payments SET status = 'confirmed', confirmed_at = ? WHERE run_id = ? AND address = ?`).run(at, runId, address);
    })();
  }

  async carryPayment(runId: string, address: string, reason: string): Promise<void> {
    this.#check();
    this.#db.transaction(() => {
      const row = this.#payment(runId, address);
      if (row.status !== 'planned') throw new Error(`payment of run ${runId} to ${address} is ${row.status}, not planned`);
      this.#db.prepare(`UPDATE payout_payments SET status = 'carried', reason = ? WHERE run_id = ? AND address = ?`).run(reason, runId, address);
      const carry = this.#db.prepare('SELECT amount FROM payout_carry WHERE address = ?').get(address) as { amount: string } | undefined;
      const next = BigInt(carry?.amount ?? '0') + BigInt(row.amount);
      this.#db
        .prepare('INSERT INTO payout_carry (address, amount) VALUES (?, ?) ON CONFLICT (address) DO UPDATE SET amount = excluded.amount')
        .run(address, next.toString());
    }).immediate();
  }

  async setRunStatus(runId: string, status: PayoutRunStatus, detail: { error?: string; at?: number } = {}): Promise<void> {
    this.#check();
    const changed = this.#db
      .prepare('UPDATE payout_runs SET status = ?, error = ?, finished_at = COALESCE(?, finished_at) WHERE id = ?')
      .run(status, status === 'stopped' ? (detail.error ?? null) : null, status === 'done' ? (detail.at ?? null) : null, runId).changes;
    if (changed === 0) throw new Error(`no payout run ${runId}`);
  }

  async carries(): Promise<Map<string, bigint>> {
    this.#check();
    const rows = this.#db.prepare('SELECT address, amount FROM payout_carry').all() as { address: string; amount: string }[];
    return new Map(rows.map((r) => [r.address, BigInt(r.amount)] as const).filter(([, raw]) => raw > 0n));
  }

  async forAddress(address: string, limit: number): Promise<AddressPayouts> {
    this.#check();
    const rows = this.#db
      .prepare('SELECT p.*, r.created_at AS run_at FROM payout_payments p JOIN payout_runs r ON r.id = p.run_id WHERE p.address = ?')
      .all(address) as (PaymentRow & { run_at: number })[];
    const carry = this.#db.prepare('SELECT amount FROM payout_carry WHERE address = ?').get(address) as { amount: string } | undefined;
    const runs = (this.#db.prepare('SELECT COUNT(*) AS n FROM payout_runs').get() as { n: number }).n;
    return summarizeAddress(rows.map((r) => ({ payment: toPayment(r), runAt: r.run_at })), BigInt(carry?.amount ?? '0'), runs, limit);
  }
}
