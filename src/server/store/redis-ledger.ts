/**
 * The payout ledger of the Redis store. Keys, under the store's prefix:
 *
 *   payout:runs                sorted set: run ids by created_at
 *   payout:run:<id>            hash: id, created_at, source, weight, pool, min, status, error, finished_at
 *   payout:run:<id>:payments   hash: address -> the payment as JSON, every value a string
 *   payout:open                string: the id of the run that is not done (at most one)
 *   payout:carry               hash: address -> raw carried to it
 *   payout:to:<address>        list: ids of the runs with a line for the address
 *
 * Every change that has a check in it is one Lua script (create a run, mark a payment, carry
 * one, set a status), so no other dispatcher or payout process sees it half done. Lua numbers
 * are doubles, so raw amounts stay strings there: a sum of amounts (a carry grown by a refused
 * payment) is taken in BigInt here and written by a script that checks the value it grew from.
 */
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

/** What the ledger needs of the store it belongs to. */
export interface RedisLedgerHost {
  /** The store's prefix joined with the parts by ':'. */
  key(...parts: string[]): string;
  /** Runs a Lua script (EVALSHA, EVAL after a server restart); throws when the store is closed. */
  script(script: string, keys: string[], args: string[]): Promise<unknown>;
  /** One plain command; throws when the store is closed. */
  command(args: string[]): Promise<unknown>;
}

/**
 * KEYS: open, runs, run:<id>, run:<id>:payments, carry, then client:<address> per snapshot
 * entry, then to:<address> per payment. ARGV: the plan as JSON (strings only).
 * Returns {1} when recorded, {0, reason, detail} when refused (nothing written).
 */
const CREATE_RUN = `
local plan = cjson.decode(ARGV[1])
local open = redis.call('GET', KEYS[1])
if open then return {0, 'unfinished', open} end
if redis.call('EXISTS', KEYS[3]) == 1 then return {0, 'exists', plan.id} end
local snapshots = #plan.snapshot
for i, s in ipairs(plan.snapshot) do
  local key = KEYS[5 + i]
  if redis.call('EXISTS', key) == 0
    or tonumber(redis.call('HGET', key, 'snapshot_precache') or '0') ~= tonumber(s.previous[1])
    or tonumber(redis.call('HGET', key, 'snapshot_ondemand') or '0') ~= tonumber(s.previous[2]) then
    return {0, 'snapshot-moved', s.address}
  end
end
for _, c in ipairs(plan.carries) do
  if (redis.call('HGET', KEYS[5], c[1]) or '0') ~= c[2] then return {0, 'carry-moved', c[1]} end
end
for i, s in ipairs(plan.snapshot) do
  if #s.set > 0 then redis.call('HSET', KEYS[5 + i], unpack(s.set)) end
end
for _, c in ipairs(plan.carries) do
  if c[3] == '0' then redis.call('HDEL', KEYS[5], c[1]) else redis.call('HSET', KEYS[5], c[1], c[3]) end
end
redis.call('HSET', KEYS[3], unpack(plan.run))
for i, p in ipairs(plan.payments) do
  redis.call('HSET', KEYS[4], p[1], p[2])
  redis.call('RPUSH', KEYS[5 + snapshots + i], plan.id)
end
redis.call('ZADD', KEYS[2], plan.created_at, plan.id)
redis.call('SET', KEYS[1], plan.id)
return {1}
`;

/**
 * KEYS: run:<id>:payments. ARGV: address, the status it must have, the new status, then
 * field/value pairs to set. A payment already in the new status with equal fields is left as
 * it is. Returns {1, json} changed, {2, json} unchanged, {0, json or ''} refused.
 */
const MOVE_PAYMENT = `
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {0, ''} end
local p = cjson.decode(raw)
if p.status == ARGV[3] then
  for i = 4, #ARGV, 2 do
    if ARGV[i] == 'block' and p.block ~= ARGV[i + 1] then return {0, raw} end
  end
  return {2, raw}
end
if p.status ~= ARGV[2] then return {0, raw} end
p.status = ARGV[3]
for i = 4, #ARGV, 2 do p[ARGV[i]] = ARGV[i + 1] end
local json = cjson.encode(p)
redis.call('HSET', KEYS[1], ARGV[1], json)
return {1, json}
`;

/**
 * KEYS: run:<id>:payments, carry. ARGV: address, reason, the carry read, the carry to write.
 * planned -> carried and the carry grown, or {0, why} with nothing written.
 */
const CARRY_PAYMENT = `
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {0, 'missing'} end
local p = cjson.decode(raw)
if p.status ~= 'planned' then return {0, p.status} end
if (redis.call('HGET', KEYS[2], ARGV[1]) or '0') ~= ARGV[3] then return {0, 'carry-moved'} end
p.status = 'carried'
p.reason = ARGV[2]
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(p))
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
return {1}
`;

/** KEYS: run:<id>, open. ARGV: id, status, error ('' = none), finished_at ('' = keep). */
const SET_STATUS = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'error', ARGV[3]) else redis.call('HDEL', KEYS[1], 'error') end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'finished_at', ARGV[4]) end
if ARGV[2] == 'done' and redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
`;

/** An HGETALL reply as a record (the client maps it already; a script's reply is a flat list). */
function fields(reply: unknown): Record<string, string> {
  if (!Array.isArray(reply)) return (reply ?? {}) as Record<string, string>;
  const items = reply as string[];
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < items.length; i += 2) out[items[i]] = items[i + 1];
  return out;
}

function toRun(h: Record<string, string>): PayoutRun {
  const run: PayoutRun = {
    id: h.id,
    createdAt: Number(h.created_at),
    source: h.source,
    weight: h.weight as PayoutWeight,
    pool: BigInt(h.pool),
    min: BigInt(h.min),
    status: h.status as PayoutRunStatus,
  };
  if (h.error) run.error = h.error;
  if (h.finished_at) run.finishedAt = Number(h.finished_at);
  return run;
}

interface PaymentJson {
  seq: string;
  address: string;
  precache: string;
  ondemand: string;
  amount: string;
  carried_in: string;
  status: PaymentStatus;
  send_id?: string;
  reason?: string;
  block?: string;
  sent_at?: string;
  confirmed_at?: string;
}

function toPayment(runId: string, json: string): PayoutPayment {
  const j = JSON.parse(json) as PaymentJson;
  const p: PayoutPayment = {
    runId,
    seq: Number(j.seq),
    address: j.address,
    precache: Number(j.precache),
    ondemand: Number(j.ondemand),
    amount: BigInt(j.amount),
    carriedIn: BigInt(j.carried_in),
    status: j.status,
  };
  if (j.send_id) p.sendId = j.send_id;
  if (j.reason) p.reason = j.reason;
  if (j.block) p.block = j.block;
  if (j.sent_at) p.sentAt = Number(j.sent_at);
  if (j.confirmed_at) p.confirmedAt = Number(j.confirmed_at);
  return p;
}

export class RedisPayoutLedger implements PayoutLedger {
  readonly #host: RedisLedgerHost;

  constructor(host: RedisLedgerHost) {
    this.#host = host;
  }

  #run(id: string): string {
    return this.#host.key('payout', 'run', id);
  }

  #payments(id: string): string {
    return this.#host.key('payout', 'run', id, 'payments');
  }

  async createRun({ run, payments, snapshot, carries }: NewPayoutRun): Promise<void> {
    const k = this.#host.key;
    const plan = {
      id: run.id,
      created_at: String(run.createdAt),
      run: ['id', run.id, 'created_at', String(run.createdAt), 'source', run.source, 'weight', run.weight, 'pool', run.pool.toString(), 'min', run.min.toString(), 'status', 'sending'],
      snapshot: snapshot.map(({ entry: e, previous }) => ({
        address: e.address,
        previous: [String(previous.precache), String(previous.ondemand)],
        set: [
          ...(e.precache !== undefined ? ['snapshot_precache', String(e.precache)] : []),
          ...(e.ondemand !== undefined ? ['snapshot_ondemand', String(e.ondemand)] : []),
          ...(e.weighted_precache !== undefined ? ['snapshot_weighted_precache', String(e.weighted_precache)] : []),
          ...(e.weighted_ondemand !== undefined ? ['snapshot_weighted_ondemand', String(e.weighted_ondemand)] : []),
        ],
      })),
      carries: carries.map((c) => [c.address, c.previous.toString(), c.next.toString()]),
      payments: payments.map((p) => {
        const json: PaymentJson = {
          seq: String(p.seq),
          address: p.address,
          precache: String(p.precache),
          ondemand: String(p.ondemand),
          amount: p.amount.toString(),
          carried_in: p.carriedIn.toString(),
          status: p.status,
          ...(p.sendId !== undefined ? { send_id: p.sendId } : {}),
          ...(p.reason !== undefined ? { reason: p.reason } : {}),
        };
        return [p.address, JSON.stringify(json)];
      }),
    };
    const keys = [
      k('payout', 'open'),
      k('payout', 'runs'),
      this.#run(run.id),
      this.#payments(run.id),
      k('payout', 'carry'),
      ...snapshot.map((s) => k('client', s.entry.address)),
      ...payments.map((p) => k('payout', 'to', p.address)),
    ];
    // cjson turns an empty array into an empty object; Lua's ipairs reads both as nothing.
    const reply = (await this.#host.script(CREATE_RUN, keys, [JSON.stringify(plan)])) as [number, string?, string?];
    if (reply[0] === 1) return;
    const [, reason, detail] = reply;
    if (reason === 'unfinished') throw new PayoutConflict('unfinished', `run ${detail} is not finished`, detail);
    if (reason === 'exists') throw new PayoutConflict('exists', `run ${detail} exists`);
    if (reason === 'carry-moved') throw new PayoutConflict('carry-moved', `the carry of ${detail} moved since the plan`);
    throw new PayoutConflict('snapshot-moved', `the snapshot of ${detail} moved since the plan`);
  }

  async getRun(id: string): Promise<{ run: PayoutRun; payments: PayoutPayment[] } | undefined> {
    const [h, values] = await Promise.all([this.#host.command(['HGETALL', this.#run(id)]), this.#host.command(['HVALS', this.#payments(id)])]);
    const record = fields(h);
    if (!record.id) return undefined;
    const payments = (values as string[]).map((json) => toPayment(id, json)).sort((a, b) => a.seq - b.seq);
    return { run: toRun(record), payments };
  }

  async listRuns(limit: number): Promise<PayoutRun[]> {
    const ids = (await this.#host.command(['ZREVRANGE', this.#host.key('payout', 'runs'), '0', String(limit - 1)])) as string[];
    const runs = await Promise.all(ids.map((id) => this.#host.command(['HGETALL', this.#run(id)])));
    return runs.map((h) => toRun(fields(h))).sort((a, b) => b.createdAt - a.createdAt || (a.id < b.id ? 1 : -1));
  }

  async unfinishedRun(): Promise<PayoutRun | undefined> {
    const id = (await this.#host.command(['GET', this.#host.key('payout', 'open')])) as string | null;
    if (!id) return undefined;
    const h = fields(await this.#host.command(['HGETALL', this.#run(id)]));
    return h.id ? toRun(h) : undefined;
  }

  async markSent(runId: string, address: string, block: string, at: number): Promise<PayoutPayment> {
    const [code, json] = (await this.#host.script(MOVE_PAYMENT, [this.#payments(runId)], [address, 'planned', 'sent', 'block', block, 'sent_at', String(at)])) as [number, string];
    if (!json) throw new Error(`run ${runId} has no payment to ${address}`);
    const payment = toPayment(runId, json);
    // A retry after the node answered: unchanged when sent or confirmed in this same block.
    if (code === 0 && !(payment.status === 'confirmed' && payment.block === block)) throw sendConflict(runId, address, payment.status, payment.block, block);
    return payment;
  }

  async markConfirmed(runId: string, address: string, at: number): Promise<void> {
    const [code, json] = (await this.#host.script(MOVE_PAYMENT, [this.#payments(runId)], [address, 'sent', 'confirmed', 'confirmed_at', String(at)])) as [number, string];
    if (!json) throw new Error(`run ${runId} has no payment to ${address}`);
    if (code === 0) throw new Error(`payment of run ${runId} to ${address} is ${toPayment(runId, json).status}, not sent`);
  }

  async carryPayment(runId: string, address: string, reason: string): Promise<void> {
    const carryKey = this.#host.key('payout', 'carry');
    for (;;) {
      const json = (await this.#host.command(['HGET', this.#payments(runId), address])) as string | null;
      if (!json) throw new Error(`run ${runId} has no payment to ${address}`);
      const previous = ((await this.#host.command(['HGET', carryKey, address])) as string | null) ?? '0';
      const next = (BigInt(previous) + toPayment(runId, json).amount).toString();
      const [code, why] = (await this.#host.script(CARRY_PAYMENT, [this.#payments(runId), carryKey], [address, reason, previous, next])) as [number, string?];
      if (code === 1) return;
      // Another writer grew the carry between the read and the script: read it again.
      if (why !== 'carry-moved') throw new Error(`payment of run ${runId} to ${address} is ${why}, not planned`);
    }
  }

  async setRunStatus(runId: string, status: PayoutRunStatus, detail: { error?: string; at?: number } = {}): Promise<void> {
    const error = status === 'stopped' ? (detail.error ?? '') : '';
    const at = status === 'done' && detail.at !== undefined ? String(detail.at) : '';
    const found = await this.#host.script(SET_STATUS, [this.#run(runId), this.#host.key('payout', 'open')], [runId, status, error, at]);
    if (Number(found) !== 1) throw new Error(`no payout run ${runId}`);
  }

  async carries(): Promise<Map<string, bigint>> {
    const h = fields(await this.#host.command(['HGETALL', this.#host.key('payout', 'carry')]));
    return new Map(Object.entries(h).map(([a, raw]) => [a, BigInt(raw)] as const).filter(([, raw]) => raw > 0n));
  }

  async forAddress(address: string, limit: number): Promise<AddressPayouts> {
    const [ids, carry, runs] = await Promise.all([
      this.#host.command(['LRANGE', this.#host.key('payout', 'to', address), '0', '-1']) as Promise<string[]>,
      this.#host.command(['HGET', this.#host.key('payout', 'carry'), address]) as Promise<string | null>,
      this.#host.command(['ZCARD', this.#host.key('payout', 'runs')]),
    ]);
    const lines = await Promise.all(
      [...new Set(ids)].map(async (id) => {
        const [json, at] = await Promise.all([this.#host.command(['HGET', this.#payments(id), address]), this.#host.command(['HGET', this.#run(id), 'created_at'])]);
        return json ? [{ payment: toPayment(id, json as string), runAt: Number(at) }] : [];
      }),
    );
    return summarizeAddress(lines.flat(), BigInt(carry ?? '0'), Number(runs), limit);
  }
}
