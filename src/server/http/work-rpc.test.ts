import { describe, expect, it } from 'vitest';
import { fromMultiplier, toU64Hex, workValue } from '../../pow/work.ts';
import { difficultyPolicy } from '../../pow/difficulty.ts';
import { DispatchError, type DispatcherApi, type WorkRequest } from '../types.ts';
import { formatMultiplier, WorkRpc } from './work-rpc.ts';

const ROOT = '718CC2121C3E641059BC1C2CFC45666C99E8AE922F7A807B7D07B62C995D79E2';

function dispatcher(answer: (r: WorkRequest) => Promise<string>): DispatcherApi & { seen: WorkRequest[]; withdrawn: string[] } {
  const seen: WorkRequest[] = [];
  const withdrawn: string[] = [];
  return {
    seen,
    withdrawn,
    async requestWork(r) {
      seen.push(r);
      const work = await answer(r);
      return { hash: r.hash, work, value: toU64Hex(workValue(r.hash, work)), cached: false };
    },
    async precache() {},
    async withdraw(hash) {
      withdrawn.push(hash);
      return false;
    },
    async track() {},
  };
}

function solve(hash: string, difficulty: bigint): string {
  for (let n = 0n; ; n++) if (workValue(hash, n) >= difficulty) return toU64Hex(n);
}

describe('WorkRpc', () => {
  it('prints multipliers as the node does (15 decimals, relative to base)', () => {
    // The example reply in the node's documentation.
    expect(formatMultiplier(0xfffffff93c41ec94n, 0xfffffff800000000n)).toBe('1.182623871097636');
    expect(formatMultiplier(0xfffffff800000000n, 0xfffffff800000000n)).toBe('1.000000000000000');
    expect(formatMultiplier(0xfffffe0000000000n, 0xfffffff800000000n)).toBe('0.015625000000000');
  });

  it('work_generate asks the dispatcher for ondemand work at the base by default, with its timeout', async () => {
    const d = dispatcher(async (r) => solve(r.hash, r.difficulty));
    const rpc = new WorkRpc({ dispatcher: d, policy: difficultyPolicy({ base: 0xff00000000000000n, minDifficulty: 0xf000000000000000n }), timeoutMs: 7_000 });
    const reply = await rpc.handle({ action: 'work_generate', hash: ROOT });
    expect(reply.status).toBe(200);
    expect(d.seen).toEqual([{ hash: ROOT, difficulty: 0xff00000000000000n, workType: 'ondemand', timeoutMs: 7_000 }]);
    const value = workValue(ROOT, reply.body.work as string);
    expect(reply.body).toEqual({ hash: ROOT, work: reply.body.work, difficulty: toU64Hex(value), multiplier: formatMultiplier(value, 0xff00000000000000n) });
    expect(rpc.counters).toEqual({ requests: 1, actions: { work_generate: 1 }, errors: {} });
  });

  it('maps dispatcher failures and counts them', async () => {
    const policy = difficultyPolicy({ minDifficulty: 0n });
    for (const [code, status, error] of [
      ['timeout', 504, 'Timeout reached without work'],
      ['cancelled', 409, 'Cancelled'],
      ['shutting-down', 503, 'Shutting down'],
    ] as const) {
      const rpc = new WorkRpc({ dispatcher: dispatcher(async () => { throw new DispatchError(code, code); }), policy });
      expect(await rpc.handle({ action: 'work_generate', hash: ROOT, difficulty: 'ff00000000000000' })).toEqual({ status, body: { error } });
      expect(rpc.counters.errors).toEqual({ [code]: 1 });
    }
  });

  it('work_cancel withdraws (answering {} even when nothing was pending) and checks the hash', async () => {
    const d = dispatcher(async () => '0');
    const rpc = new WorkRpc({ dispatcher: d, policy: difficultyPolicy() });
    expect(await rpc.handle({ action: 'work_cancel', hash: ROOT })).toEqual({ status: 200, body: {} });
    expect(await rpc.handle({ action: 'work_cancel', hash: 42 })).toEqual({ status: 400, body: { error: 'Invalid block hash' } });
    expect(d.withdrawn).toEqual([ROOT]);
  });

  it('work_validate uses the asked multiplier when given', async () => {
    const rpc = new WorkRpc({ dispatcher: dispatcher(async () => '0'), policy: difficultyPolicy({ base: 0xff00000000000000n }) });
    const work = solve(ROOT, 0xff00000000000000n);
    const value = workValue(ROOT, work);
    const easy = await rpc.handle({ action: 'work_validate', hash: ROOT, work, multiplier: 0.5 });
    expect(easy.body.valid).toBe('1');
    const hard = await rpc.handle({ action: 'work_validate', hash: ROOT, work, multiplier: 1e6 });
    expect(hard.body.valid).toBe(value >= fromMultiplier(1e6, 0xff00000000000000n) ? '1' : '0');
    expect(hard.body.valid).toBe('0'); // ~2^56 hashes' worth: a ~256-hash find cannot meet it
    expect((await rpc.handle({ action: 'work_validate', hash: ROOT, work, multiplier: -1 })).body).toEqual({ error: 'Bad multiplier' });
  });
});
