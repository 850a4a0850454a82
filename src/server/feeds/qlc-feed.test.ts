import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encodeAddress } from '../../dpow/address.ts';
import { QlcFeed, validateQlcBlock } from './qlc-feed.ts';
import type { QlcAccountInfo, QlcBlock, QlcPending, QlcPovHeader } from './qlc-wire.ts';
import { QlcSim } from '../sim/qlc-sim.ts';
import { cleanupsAfterEach, closeAfter } from '../../testkit/cleanups.ts';
import { quietLogger as quiet } from '../../testkit/log.ts';
import { waitFor } from '../../testkit/wait.ts';
import { breakChecksum } from '../../testkit/address.ts';

const TOKEN = 'a7e8fa30c063e96a489a47bc43909505bd86735da4a109dca28be936118a8582';
const A = encodeAddress('41'.repeat(32), 'qlc');
const B = encodeAddress('42'.repeat(32), 'qlc');
const hex = () => randomBytes(32).toString('hex');
const block = (address: string, extra: Partial<QlcBlock> = {}): QlcBlock => ({
  type: 'State',
  token: TOKEN,
  address,
  balance: '12180',
  previous: hex(),
  link: hex(),
  representative: address,
  work: '0000000000000000',
  timestamp: 0,
  povHeight: 0,
  hash: hex(),
  ...extra,
});

const cleanups = cleanupsAfterEach();
async function setup(): Promise<{ sim: QlcSim; feed: QlcFeed }> {
  const sim = closeAfter(cleanups, await QlcSim.start());
  const feed = closeAfter(cleanups, new QlcFeed(sim.url, { log: quiet, reconnectDelayMs: 20, maxReconnectDelayMs: 100 }));
  await feed.connect();
  return { sim, feed };
}

describe('validateQlcBlock', () => {
  it('accepts the documented newBlock shape and computes nothing', () => {
    const b = block(A);
    const checked = validateQlcBlock({ ...b, vote: '0', network: '0', storage: '0', oracle: '0', message: '0'.repeat(64), extra: '0'.repeat(64), signature: 'c9'.repeat(64) });
    expect(checked).toEqual({ ok: true, value: b });
    const noHash = { ...b };
    delete noHash.hash;
    expect(validateQlcBlock(noHash)).toEqual({ ok: true, value: noHash });
  });

  it.each([
    ['not an object', 'x', 'not-an-object'],
    ['unknown type', { type: 'Weird' }, 'bad-type'],
    ['bad token', { token: 'zz' }, 'bad-token'],
    ['bad checksum', { address: breakChecksum(A) }, 'bad-address'],
    ['nano address', { address: encodeAddress('41'.repeat(32), 'nano') }, 'bad-address'],
    ['short previous', { previous: 'ab' }, 'bad-previous'],
    ['bad link', { link: 5 }, 'bad-link'],
    ['bad hash', { hash: 'xyz' }, 'bad-hash'],
    ['numeric balance', { balance: 5 }, 'bad-field'],
  ])('%s -> %s', (_name, patch, code) => {
    const raw = typeof patch === 'string' ? patch : { ...block(A), ...patch };
    const checked = validateQlcBlock(raw);
    expect(checked.ok).toBe(false);
    expect(!checked.ok && checked.code).toBe(code);
  });
});

describe('QlcFeed against the go-qlc test node', () => {
  it('emits typed events for every subscription', async () => {
    const { sim, feed } = await setup();
    const blocks: [QlcBlock, string][] = [];
    const pendings: [string, QlcPending][] = [];
    const balances: QlcAccountInfo[] = [];
    const pov: QlcPovHeader[] = [];
    feed.on('block', (b, source) => blocks.push([b, source]));
    feed.on('pending', (a, p) => pendings.push([a, p]));
    feed.on('balance', (i) => balances.push(i));
    feed.on('pov-block', (h) => pov.push(h));
    await feed.subscribeNewBlocks();
    await feed.subscribeAccountBlocks(A);
    await feed.subscribeBalanceChange(A);
    await feed.subscribeNewPending(B);
    await feed.subscribePovBlocks();
    expect(sim.subscriptions().map((s) => `${s.ns}:${s.name}`).sort()).toEqual(
      ['ledger:balanceChange', 'ledger:newAccountBlock', 'ledger:newBlock', 'ledger:newPending', 'pov:newBlock'],
    );

    const ba = block(A);
    const bb = block(B);
    sim.emitBlock(ba);
    sim.emitBlock(bb);
    const pending: QlcPending = { source: A, amount: '30000000000', type: TOKEN, tokenName: 'QLC', hash: hex(), timestamp: 1553225891 };
    sim.emitPending(B, pending);
    const povHash = hex();
    sim.emitPovBlock({ hash: povHash, previous: hex(), height: 78 });
    await waitFor('every kind of notification', () => blocks.length === 3 && pendings.length === 1 && balances.length === 1 && pov.length === 1);
    expect(blocks.map(([b, s]) => `${b.address === A ? 'A' : 'B'}:${s}`).sort()).toEqual(['A:newAccountBlock', 'A:newBlock', 'B:newBlock']);
    expect(blocks.find(([, s]) => s === 'newAccountBlock')![0]).toEqual(ba);
    expect(pendings).toEqual([[B, pending]]);
    expect(balances[0]).toMatchObject({ account: A, balance: '12180', tokens: [{ type: TOKEN }] });
    expect(pov[0]).toEqual({ hash: povHash, previous: expect.any(String), height: 78 });
  });

  it('counts and drops malformed notifications without stopping', async () => {
    const { sim, feed } = await setup();
    const blocks: QlcBlock[] = [];
    feed.on('block', (b) => blocks.push(b));
    await feed.subscribeNewBlocks();
    sim.emitRaw('ledger', 'newBlock', { ...block(A), type: 7 });
    sim.emitRaw('ledger', 'newBlock', { ...block(A), address: 'qlc_nope' });
    sim.emitRaw('ledger', 'newBlock', null);
    const { hash: _omit, ...noHash } = block(A);
    sim.emitRaw('ledger', 'newBlock', noHash);
    sim.emitBlock(block(A));
    await waitFor('two blocks', () => blocks.length === 2);
    expect(feed.stats.rejected).toEqual({ 'bad-type': 1, 'bad-address': 1, 'not-an-object': 1 });
    expect(feed.stats.blocksWithoutHash).toBe(1);
  });

  it('watchAccount is idempotent, refuses a bad checksum, and unwatch unsubscribes', async () => {
    const { sim, feed } = await setup();
    await feed.watchAccount(A, { pending: true });
    await feed.watchAccount(A, { pending: true });
    expect(sim.subscriptions().map((s) => s.name).sort()).toEqual(['newAccountBlock', 'newPending']);
    await expect(feed.watchAccount(breakChecksum(A))).rejects.toMatchObject({ code: -32602 });
    expect(feed.watched).toEqual([A]);
    await feed.unwatchAccount(A);
    expect(sim.subscriptions()).toEqual([]);
  });

  it('repeats events the node replays (de-duplication is the policy’s job)', async () => {
    const { sim, feed } = await setup();
    const blocks: QlcBlock[] = [];
    feed.on('block', (b) => blocks.push(b));
    await feed.subscribeAccountBlocks(A);
    sim.emitBlock(block(A));
    expect(sim.replay(1)).toBe(1);
    await waitFor('two blocks', () => blocks.length === 2);
    expect(blocks[0]).toEqual(blocks[1]);
  });
});

describe('qlc-sim event buffers', () => {
  it('drops the tail of a burst bigger than a subscription’s buffer, as a busy node does', async () => {
    const sim = closeAfter(cleanups, await QlcSim.start({ bufferLimit: 5 }));
    const feed = closeAfter(cleanups, new QlcFeed(sim.url, { log: quiet }));
    await feed.connect();
    const blocks: QlcBlock[] = [];
    feed.on('block', (b) => blocks.push(b));
    await feed.subscribeNewBlocks();
    const burst = Array.from({ length: 8 }, () => block(A));
    const queued = burst.map((b) => sim.emitBlock(b));
    expect(queued).toEqual([1, 1, 1, 1, 1, 0, 0, 0]);
    expect(sim.dropped()).toBe(3);
    await waitFor('five blocks', () => blocks.length === 5);
    expect(blocks).toEqual(burst.slice(0, 5));
  });
});

describe('qlc-sim demo mode', () => {
  it('makes chained blocks: each block’s previous is its chain’s last hash', async () => {
    const sim = closeAfter(cleanups, await QlcSim.start({ demo: { accounts: 3, intervalMs: 30 } }));
    const feed = closeAfter(cleanups, new QlcFeed(sim.url, { log: quiet }));
    await feed.connect();
    const blocks: QlcBlock[] = [];
    feed.on('block', (b) => blocks.push(b));
    await feed.subscribeNewBlocks();
    await waitFor('eight blocks', () => blocks.length >= 8);
    const last = new Map<string, string>();
    let linked = 0;
    for (const b of blocks) {
      const prev = last.get(b.address);
      if (prev !== undefined) {
        expect(b.previous).toBe(prev);
        linked++;
      }
      last.set(b.address, b.hash!);
    }
    expect(linked).toBeGreaterThan(0);
    expect(sim.demoChains().every((c) => c.address.startsWith('qlc_'))).toBe(true);
  });
});
