import { describe, expect, it } from 'vitest';
import { fromMultiplier, toU64Hex, workValue } from '../../pow/work.ts';
import { difficultyPolicy } from '../../pow/difficulty.ts';
import { DispatchError, type DispatcherApi, type Requester, type WorkRequest } from '../types.ts';
import { formatRpcMultiplier, WorkRpc } from './work-rpc.ts';
import { findWork } from '../../testkit/work.ts';

const ROOT = '718CC2121C3E641059BC1C2CFC45666C99E8AE922F7A807B7D07B62C995D79E2';

function dispatcher(answer: (r: WorkRequest) => Promise<string>): DispatcherApi & { seen: WorkRequest[]; cancelled: Array<[string, Requester]> } {
  const seen: WorkRequest[] = [];
  const cancelled: Array<[string, Requester]> = [];
  return {
    seen,
    cancelled,
    async requestWork(r) {
      seen.push(r);
      const work = await answer(r);
      return { hash: r.hash, work, value: toU64Hex(workValue(r.hash, work)), cached: false };
    },
    async precache() {},
    async withdraw() {
      throw new Error('the RPC never withdraws a job: it cancels its own requests');
    },
    async cancel(hash, requester) {
      cancelled.push([hash, requester]);
      return 0;
    },
    async track() {},
  };
}

describe('WorkRpc', () => {
  it('prints multipliers as the node does (15 decimals, relative to base)', () => {
    // The example reply in the node's documentation.
    expect(formatRpcMultiplier(0xfffffff93c41ec94n, 0xfffffff800000000n)).toBe('1.182623871097636');
    expect(formatRpcMultiplier(0xfffffff800000000n, 0xfffffff800000000n)).toBe('1.000000000000000');
    expect(formatRpcMultiplier(0xfffffe0000000000n, 0xfffffff800000000n)).toBe('0.015625000000000');
  });

  it('work_generate asks the dispatcher for ondemand work at the base by default, with its timeout', async () => {
    const d = dispatcher(async (r) => findWork(r.hash, r.difficulty));
    const rpc = new WorkRpc({ dispatcher: d, policy: difficultyPolicy({ base: 0xff00000000000000n, minDifficulty: 0xf000000000000000n }), timeoutMs: 7_000 });
    const reply = await rpc.handle({ action: 'work_generate', hash: ROOT });
    expect(reply.status).toBe(200);
    expect(d.seen).toEqual([{ hash: ROOT, difficulty: 0xff00000000000000n, workType: 'ondemand', timeoutMs: 7_000, requester: 'rpc' }]);
    const value = workValue(ROOT, reply.body.work as string);
    expect(reply.body).toEqual({ hash: ROOT, work: reply.body.work, difficulty: toU64Hex(value), multiplier: formatRpcMultiplier(value, 0xff00000000000000n) });
    expect(rpc.counters).toEqual({ requests: 1, actions: { work_generate: 1 }, errors: {} });
  });

  it('maps dispatcher failures and counts them', async () => {
    const policy = difficultyPolicy({ minDifficulty: 0n });
    for (const [code, status, error] of [
      ['timeout', 504, 'Timeout reached without work'],
      ['cancelled', 200, 'Cancelled'], // as nano-work-server and the node: callers read errors only on 200
      ['shutting-down', 503, 'Shutting down'],
    ] as const) {
      const rpc = new WorkRpc({ dispatcher: dispatcher(async () => { throw new DispatchError(code, code); }), policy });
      expect(await rpc.handle({ action: 'work_generate', hash: ROOT, difficulty: 'ff00000000000000' })).toEqual({ status, body: { error } });
      expect(rpc.counters.errors).toEqual({ [code]: 1 });
    }
  });

  it("work_cancel cancels the caller's own requests (answering {} even when it had none) and checks the hash", async () => {
    const d = dispatcher(async (r) => findWork(r.hash, r.difficulty));
    const rpc = new WorkRpc({ dispatcher: d, policy: difficultyPolicy({ minDifficulty: 0n }) });
    expect(await rpc.handle({ action: 'work_cancel', hash: ROOT })).toEqual({ status: 200, body: {} });
    expect(await rpc.handle({ action: 'work_cancel', hash: 42 })).toEqual({ status: 400, body: { error: 'Invalid block hash' } });
    // In API-key mode the service is the requester, for its work_generate and its work_cancel alike.
    await rpc.handle({ action: 'work_generate', hash: ROOT, difficulty: 'ff00000000000000' }, 'service:wallet');
    expect(await rpc.handle({ action: 'work_cancel', hash: ROOT }, 'service:wallet')).toEqual({ status: 200, body: {} });
    expect(d.seen.map((r) => r.requester)).toEqual(['service:wallet']);
    expect(d.cancelled).toEqual([[ROOT, 'rpc'], [ROOT, 'service:wallet']]);
  });

  it('work_validate uses the asked multiplier when given', async () => {
    const rpc = new WorkRpc({ dispatcher: dispatcher(async () => '0'), policy: difficultyPolicy({ base: 0xff00000000000000n }) });
    const work = findWork(ROOT, 0xff00000000000000n);
    const value = workValue(ROOT, work);
    const easy = await rpc.handle({ action: 'work_validate', hash: ROOT, work, multiplier: 0.5 });
    expect(easy.body.valid).toBe('1');
    const hard = await rpc.handle({ action: 'work_validate', hash: ROOT, work, multiplier: 1e6 });
    expect(hard.body.valid).toBe(value >= fromMultiplier(1e6, 0xff00000000000000n) ? '1' : '0');
    expect(hard.body.valid).toBe('0'); // ~2^56 hashes' worth: a ~256-hash find cannot meet it
    expect((await rpc.handle({ action: 'work_validate', hash: ROOT, work, multiplier: -1 })).body).toEqual({ error: 'Bad multiplier' });
  });

  it('work_validate has "valid" only when a difficulty or multiplier was given', async () => {
    const rpc = new WorkRpc({ dispatcher: dispatcher(async () => '0'), policy: difficultyPolicy({ base: 0xff00000000000000n }) });
    const work = findWork(ROOT, 0xff00000000000000n);
    const plain = await rpc.handle({ action: 'work_validate', hash: ROOT, work });
    expect(plain.status).toBe(200);
    expect(Object.keys(plain.body).sort()).toEqual(['difficulty', 'multiplier', 'valid_all', 'valid_receive']);
    const asked = await rpc.handle({ action: 'work_validate', hash: ROOT, work, difficulty: 'ff00000000000000' });
    expect(asked.body).toMatchObject({ valid: '1', valid_all: '1' });
  });

  it('status says whether work is being generated and how many requests wait for it', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const rpc = new WorkRpc({
      dispatcher: dispatcher(async (r) => { await gate; return findWork(r.hash, r.difficulty); }),
      policy: difficultyPolicy({ base: 0xff00000000000000n, minDifficulty: 0n }),
    });
    expect(await rpc.handle({ action: 'status' })).toEqual({ status: 200, body: { generating: '0', queue_size: '0' } });
    const waiting = [rpc.handle({ action: 'work_generate', hash: ROOT }), rpc.handle({ action: 'work_generate', hash: ROOT.toLowerCase() })];
    expect(await rpc.handle({ action: 'status' })).toEqual({ status: 200, body: { generating: '1', queue_size: '2' } });
    release();
    for (const reply of await Promise.all(waiting)) expect(reply.status).toBe(200);
    expect((await rpc.handle({ action: 'status' })).body).toEqual({ generating: '0', queue_size: '0' });
  });

  it('benchmark runs count jobs for fresh random roots on the network and reports in milliseconds', async () => {
    const d = dispatcher(async (r) => findWork(r.hash, r.difficulty));
    const base = 0xff00000000000000n;
    const rpc = new WorkRpc({ dispatcher: d, policy: difficultyPolicy({ base, minDifficulty: 0n }), timeoutMs: 3_000 });
    const reply = await rpc.handle({ action: 'benchmark', count: '3', difficulty: 'fe00000000000000' });
    expect(reply.status).toBe(200);
    expect(Object.keys(reply.body).sort()).toEqual(['average', 'count', 'difficulty', 'duration', 'hint', 'multiplier']);
    expect(reply.body).toMatchObject({ count: '3', difficulty: 'fe00000000000000', hint: 'Times in milliseconds', multiplier: formatRpcMultiplier(0xfe00000000000000n, base) });
    expect(Number(reply.body.duration)).toBeGreaterThanOrEqual(Number(reply.body.average));
    expect(d.seen.map((r) => [r.difficulty, r.workType, r.timeoutMs])).toEqual(Array(3).fill([0xfe00000000000000n, 'ondemand', 3_000]));
    expect(new Set(d.seen.map((r) => r.hash)).size).toBe(3);
    for (const r of d.seen) expect(r.hash).toMatch(/^[0-9A-F]{64}$/);
    // A multiplier works as in work_generate; the base is the default.
    expect((await rpc.handle({ action: 'benchmark', count: 1, multiplier: '2' })).body.multiplier).toBe('2.000000000000000');
    expect((await rpc.handle({ action: 'benchmark', count: 1 })).body.difficulty).toBe('ff00000000000000');
    for (const count of [undefined, 0, -1, 1.5, '', ' 2', '101', 101, 'ten']) {
      expect(await rpc.handle({ action: 'benchmark', count })).toEqual({ status: 400, body: { error: 'Bad count: an integer from 1 to 100' } });
    }
  });
});
