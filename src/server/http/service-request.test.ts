/** The service request on its own: no HTTP, no sockets, a parsed body in and a reply out. */
import { describe, expect, it } from 'vitest';
import { encodeAddress } from '../../dpow/address.ts';
import { validateWork } from '../../pow/work.ts';
import { MemoryStore } from '../store/memory-store.ts';
import { difficultyPolicy } from '../../pow/difficulty.ts';
import {
  readServiceLogin,
  Rejection,
  ServiceRequestHandler,
  validateServiceWork,
} from './service-request.ts';
import { breakChecksum } from '../../testkit/address.ts';
import { TestDispatcher } from '../../testkit/dispatcher.ts';
import { addTestService } from '../../testkit/services.ts';

const ROOT = '718CC2121C3E641059BC1C2CFC45666C99E8AE922F7A807B7D07B62C995D79E2';
const EASY = 'ff00000000000000';
const policy = difficultyPolicy({ minDifficulty: 0xfe00000000000000n });

/** A handler over a test dispatcher and a store with one service, "wallet". */
async function setup() {
  const dispatcher = new TestDispatcher();
  const store = new MemoryStore();
  const { key } = await addTestService(store, { createdAt: 0 }, { N: 1024, r: 8, p: 1 });
  const logs: string[] = [];
  const clock = { now: 1_000_000 };
  const handler = new ServiceRequestHandler({
    dispatcher,
    store,
    policy,
    now: () => clock.now,
    log: { info: (m) => logs.push(`info ${m}`), warn: (m) => logs.push(`warn ${m}`), error: (m) => logs.push(`error ${m}`) },
  });
  const ask = (fields: Record<string, unknown>) => handler.handle({ user: 'wallet', api_key: key, ...fields }, '192.0.2.7');
  return { dispatcher, store, key, logs, clock, handler, ask };
}

describe('ServiceRequestHandler', () => {
  it('answers with real work as an ondemand request, echoing hash and id', async () => {
    const { ask, dispatcher, handler } = await setup();
    const account = encodeAddress(ROOT);
    const reply = await ask({ hash: ROOT, difficulty: EASY, id: 9, account, timeout: '7' });
    expect(reply.status).toBe(200);
    expect(Object.keys(reply.body).sort()).toEqual(['hash', 'id', 'work']);
    expect(validateWork(ROOT, reply.body.work as string, EASY).valid).toBe(true);
    expect(dispatcher.requests).toEqual([
      { hash: ROOT, difficulty: 0xff00000000000000n, workType: 'ondemand', timeoutMs: 7_000, service: 'wallet', account, requester: 'service:wallet' },
    ]);
    expect(handler.counters).toEqual({ requests: 1, work: 1, errors: {}, byService: { wallet: { work: 1 } } });
  });

  it('checks the key before the other fields, and the fields before the dispatcher', async () => {
    const { ask, dispatcher, handler, logs } = await setup();
    // Incomplete: refused before any key check.
    expect(await handler.handle({ user: 'wallet', hash: ROOT }, 'x')).toMatchObject({ status: 400, body: { error: 'Incorrect submission. Required information: user, api_key, hash' } });
    // A wrong key with a bad hash learns only that the key is wrong.
    expect(await ask({ api_key: 'wrong', hash: 'abc' })).toMatchObject({ status: 401, body: { error: 'Invalid credentials' } });
    expect(await ask({ hash: 'abc' })).toMatchObject({ status: 400, body: { error: 'Invalid hash' } });
    expect(dispatcher.requests).toHaveLength(0);
    expect(handler.counters.errors).toEqual({ 'missing-fields': 1, 'invalid-credentials': 1, 'bad-hash': 1 });
    expect(logs).toContain('info service: bad-hash from 192.0.2.7');
  });

  it('never throws: whatever was parsed gets a reply, and a failing dispatcher an internal error', async () => {
    const { ask, dispatcher, handler, logs } = await setup();
    for (const parsed of [undefined, null, 42, 'text', [1], {}]) {
      expect(await handler.handle(parsed, 'x')).toMatchObject({ status: 400, body: { error: 'Incorrect submission. Required information: user, api_key, hash' } });
    }
    dispatcher.behaviour = 'throw';
    expect(await ask({ hash: ROOT, difficulty: EASY, id: 'a' })).toEqual({ status: 500, body: { error: 'Internal error', id: 'a' } });
    expect(logs.some((l) => l.startsWith('error service: request from 192.0.2.7 failed') && l.includes('store exploded'))).toBe(true);
  });

  it('rate-limits with Retry-After, and answers "shutting down" once closed', async () => {
    const { ask, dispatcher, handler, store, clock } = await setup();
    await store.addService({ ...(await store.getService('wallet'))!, rateLimit: 1 });
    expect((await ask({ hash: ROOT, difficulty: EASY })).status).toBe(200);
    expect(await ask({ hash: ROOT, difficulty: EASY })).toMatchObject({ status: 429, body: { error: 'Rate limit exceeded' }, headers: { 'Retry-After': '60' } });
    clock.now += 60_000;
    handler.close();
    expect(await ask({ hash: ROOT, difficulty: EASY })).toEqual({ status: 503, body: { error: 'Service shutting down' } });
    expect(dispatcher.requests).toHaveLength(1);
  });

  it('counts what the transport refuses as requests, by reason', async () => {
    const { handler } = await setup();
    expect(handler.refuse('bad-json', 400, 'Bad request (not json)', 'x')).toEqual({ status: 400, body: { error: 'Bad request (not json)' } });
    handler.refuseUncounted('bad-method', 405, 'Method not allowed', 'x');
    expect(handler.counters).toEqual({ requests: 1, work: 0, errors: { 'bad-json': 1, 'bad-method': 1 }, byService: { '-': { 'bad-json': 1, 'bad-method': 1 } } });
  });
});

describe('service request validation', () => {
  const work = (fields: Record<string, unknown>) => validateServiceWork({ hash: ROOT, ...fields }, policy);
  const error = (fields: Record<string, unknown>) => {
    const r = work(fields);
    return r instanceof Rejection ? [r.reason, r.status, r.body.error] : r;
  };

  it('needs user, api_key and hash before anything else', () => {
    expect(readServiceLogin({ user: 'w', api_key: 'k', hash: 'h' })).toEqual({ user: 'w', apiKey: 'k' });
    expect(readServiceLogin({ user: 'w', api_key: '', hash: 'h' })).toBeInstanceOf(Rejection);
    expect(readServiceLogin({ user: 'w', api_key: 'k', hash: null })).toBeInstanceOf(Rejection);
  });

  it('takes difficulty over multiplier, the base by default, and a 5 s default timeout', () => {
    expect(work({})).toEqual({ hash: ROOT, difficulty: 0xfffffff800000000n, timeoutS: 5, account: undefined });
    expect(work({ multiplier: 4, difficulty: 'ff10000000000000' })).toMatchObject({ difficulty: 0xff10000000000000n });
    expect(work({ multiplier: '0.125' })).toMatchObject({ difficulty: 0xffffffc000000000n });
  });

  it('refuses each bad field with its reason, status and text', () => {
    const account = encodeAddress(ROOT);
    expect(error({ hash: ROOT.slice(1) })).toEqual(['bad-hash', 400, 'Invalid hash']);
    expect(error({ account: breakChecksum(account) })).toEqual(['bad-account', 400, 'Invalid account']);
    expect(error({ timeout: '31' })).toEqual(['bad-timeout', 400, 'Timeout must be an integer between 1 and 30']);
    expect(error({ multiplier: 'fast' })).toEqual(['bad-multiplier', 400, 'Multiplier must be a float']);
    expect(error({ difficulty: 'xyz' })).toEqual(['bad-difficulty', 400, 'Invalid difficulty']);
    expect(error({ difficulty: 'fd00000000000000' })).toEqual(['difficulty-too-low', 400, 'Difficulty too low']);
    expect(error({ multiplier: 65 })).toEqual(['difficulty-too-high', 400, 'Difficulty too high. Maximum: ffffffffe0000000 (multiplier 64)']);
  });
});
