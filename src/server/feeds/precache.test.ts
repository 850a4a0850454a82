import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { encodeAddress } from '../../dpow/address.ts';
import { THRESHOLDS } from '../../pow/work.ts';
import type { NanoConfirmation } from './nano-wire.ts';
import { PrecachePolicy } from './precache.ts';
import { qlcChainKey } from './qlc-feed.ts';
import { ZERO_HASH, type QlcBlock } from './qlc-wire.ts';
import { SqliteStore } from '../store/sqlite-store.ts';
import { MemoryStore } from '../store/memory-store.ts';
import type { DispatcherStore } from '../store/store.ts';
import { cleanupsAfterEach } from '../../testkit/cleanups.ts';
import { breakChecksum } from '../../testkit/address.ts';

const cleanups = cleanupsAfterEach();

/** Records what the policy asks of the dispatcher; withdraw answers true for a precached root. */
function recordingDispatcher() {
  const calls: string[] = [];
  const live = new Set<string>();
  const tracked = new EventEmitter<{ tracked: [string] }>();
  return {
    calls,
    tracked,
    onTracked(listener: (account: string) => void) {
      tracked.on('tracked', listener);
      return () => tracked.off('tracked', listener);
    },
    async precache(hash: string, difficulty: bigint, account?: string) {
      calls.push(`precache ${hash} ${difficulty.toString(16)} ${account ?? '-'}`);
      live.add(hash.toLowerCase());
    },
    async withdraw(hash: string) {
      calls.push(`withdraw ${hash}`);
      return live.delete(hash.toLowerCase());
    },
  };
}

const hex = () => randomBytes(32).toString('hex');
const NANO_KEY = '5a'.repeat(32);
const NANO = encodeAddress(NANO_KEY, 'nano');
const XRB = NANO.replace('nano_', 'xrb_');
const OTHER_NANO = encodeAddress('6b'.repeat(32), 'nano');
const QLC_KEY = '7c'.repeat(32);
const QLC = encodeAddress(QLC_KEY, 'qlc');
const QLC_OTHER = encodeAddress('8d'.repeat(32), 'qlc');
const TOKEN = 'a7e8fa30c063e96a489a47bc43909505bd86735da4a109dca28be936118a8582';

function nanoBlock(account: string, previous: string, hash: string): NanoConfirmation {
  return {
    account,
    amount: '1',
    hash: hash.toUpperCase(),
    confirmationType: 'active_quorum',
    time: '1',
    block: { type: 'state', account, previous: previous.toUpperCase(), representative: account, balance: '1', link: '0'.repeat(64), subtype: 'send' },
  };
}
function qlcBlock(address: string, previous: string, hash: string | undefined, extra: Partial<QlcBlock> = {}): QlcBlock {
  return { type: 'State', token: TOKEN, address, previous, link: '0'.repeat(64), ...(hash ? { hash } : {}), ...extra };
}

async function setup(options: Partial<ConstructorParameters<typeof PrecachePolicy>[0]> = {}, store: DispatcherStore = new SqliteStore(':memory:')) {
  const dispatcher = recordingDispatcher();
  const policy = new PrecachePolicy({ dispatcher, store, refreshMs: 0, ...options });
  cleanups.push(() => policy.stop());
  await policy.start();
  return { dispatcher, policy, store };
}

describe('PrecachePolicy (recording dispatcher)', () => {
  it('precaches the confirmed hash of a tracked Nano chain at the send threshold', async () => {
    const { dispatcher, policy, store } = await setup({ accounts: [NANO] });
    const h1 = hex();
    await policy.onNanoConfirmation(nanoBlock(NANO, hex(), h1));
    expect(dispatcher.calls).toEqual([`precache ${h1.toUpperCase()} ${THRESHOLDS.nanoSend.toString(16)} ${NANO}`]);
    expect(await store.getTracked(NANO)).toMatchObject({ account: NANO, frontier: h1 });
  });

  it('follows accounts the dispatcher tracks, at once and without a store refresh', async () => {
    const { dispatcher, policy, store } = await setup();
    expect(policy.accounts).toEqual([]);
    dispatcher.tracked.emit('tracked', NANO);
    await new Promise((r) => setTimeout(r, 10));
    expect(policy.accounts).toEqual([NANO]);
    const h1 = hex();
    await policy.onNanoConfirmation(nanoBlock(NANO, hex(), h1));
    expect(dispatcher.calls).toEqual([`precache ${h1.toUpperCase()} ${THRESHOLDS.nanoSend.toString(16)} ${NANO}`]);
    expect(await store.getTracked(NANO)).toMatchObject({ frontier: h1 });
    await policy.stop();
    dispatcher.tracked.emit('tracked', OTHER_NANO);
    expect(policy.accounts).toEqual([NANO]);
  });

  it('ignores untracked accounts and tracks legacy xrb_ addresses as nano_', async () => {
    const { dispatcher, policy } = await setup({ accounts: [XRB] });
    await policy.onNanoConfirmation(nanoBlock(OTHER_NANO, hex(), hex()));
    expect(dispatcher.calls).toEqual([]);
    expect(policy.stats.skipped.untracked).toBe(1);
    await policy.onNanoConfirmation(nanoBlock(NANO, hex(), hex()));
    expect(dispatcher.calls).toHaveLength(1);
  });

  it('withdraws the old frontier when the chain moves, and drops duplicates and late replays', async () => {
    const { dispatcher, policy } = await setup({ accounts: [NANO], nanoDifficulty: 0xfffffe0000000000n });
    const [h0, h1, h2] = [hex(), hex(), hex()];
    await policy.onNanoConfirmation(nanoBlock(NANO, h0, h1));
    await policy.onNanoConfirmation(nanoBlock(NANO, h1, h2));
    await policy.onNanoConfirmation(nanoBlock(NANO, h1, h2)); // repeated
    await policy.onNanoConfirmation(nanoBlock(NANO, h0, h1)); // replayed older block
    expect(dispatcher.calls).toEqual([
      `precache ${h1.toUpperCase()} fffffe0000000000 ${NANO}`,
      `withdraw ${h1}`,
      `precache ${h2.toUpperCase()} fffffe0000000000 ${NANO}`,
    ]);
    expect(policy.stats).toMatchObject({ precached: 2, withdrawn: 1, skipped: { duplicate: 2 } });
  });

  it('drops a block older than one already seen (its hash is a later block’s previous)', async () => {
    const { dispatcher, policy } = await setup({ accounts: [NANO] });
    const [h0, h1, h2] = [hex(), hex(), hex()];
    await policy.onNanoConfirmation(nanoBlock(NANO, h1, h2));
    await policy.onNanoConfirmation(nanoBlock(NANO, h0, h1)); // arrives late
    expect(dispatcher.calls).toEqual([`precache ${h2.toUpperCase()} ${THRESHOLDS.nanoSend.toString(16)} ${NANO}`]);
    expect(policy.stats.skipped.stale).toBe(1);
  });

  it('a gap (missed blocks) still withdraws the known frontier and precaches the newest', async () => {
    const { dispatcher, policy } = await setup({ accounts: [NANO] });
    const [h1, missed, h3] = [hex(), hex(), hex()];
    await policy.onNanoConfirmation(nanoBlock(NANO, hex(), h1));
    await policy.onNanoConfirmation(nanoBlock(NANO, missed, h3));
    expect(dispatcher.calls.slice(1)).toEqual([`withdraw ${h1}`, `precache ${h3.toUpperCase()} ${THRESHOLDS.nanoSend.toString(16)} ${NANO}`]);
  });

  it('keys QLC chains by address and token, at the QLC threshold', async () => {
    const { dispatcher, policy, store } = await setup({ accounts: [QLC] });
    const other = 'b'.repeat(64);
    const [a1, b1, a2] = [hex(), hex(), hex()];
    await policy.onQlcBlock(qlcBlock(QLC, hex(), a1));
    await policy.onQlcBlock(qlcBlock(QLC, hex(), b1, { token: other }));
    await policy.onQlcBlock(qlcBlock(QLC, a1, a2));
    expect(dispatcher.calls).toEqual([
      `precache ${a1} fffffe0000000000 ${QLC}`,
      `precache ${b1} fffffe0000000000 ${QLC}`,
      `withdraw ${a1}`,
      `precache ${a2} fffffe0000000000 ${QLC}`,
    ]);
    expect(policy.frontier(qlcChainKey(QLC, TOKEN))).toBe(a2);
    expect((await store.getTracked(qlcChainKey(QLC, other)))?.frontier).toBe(b1);
  });

  it('a QLC block without a hash withdraws its previous frontier and precaches nothing', async () => {
    const { dispatcher, policy } = await setup({ accounts: [QLC] });
    const a1 = hex();
    await policy.onQlcBlock(qlcBlock(QLC, hex(), a1));
    await policy.onQlcBlock(qlcBlock(QLC, a1, undefined));
    expect(dispatcher.calls).toEqual([`precache ${a1} fffffe0000000000 ${QLC}`, `withdraw ${a1}`]);
    expect(policy.stats.skipped['no-hash']).toBe(1);
  });

  it('with qlcOpenBlocks, a send to a tracked account without a chain precaches its open block once', async () => {
    const { dispatcher, policy } = await setup({ accounts: [QLC], qlcOpenBlocks: true });
    await policy.onQlcBlock(qlcBlock(QLC_OTHER, hex(), hex(), { link: QLC_KEY }));
    await policy.onQlcBlock(qlcBlock(QLC_OTHER, hex(), hex(), { link: QLC_KEY }));
    expect(dispatcher.calls).toEqual([`precache ${QLC_KEY} fffffe0000000000 ${QLC}`]);
    // The open block is confirmed: the open root is withdrawn and the open's hash precached.
    const open = hex();
    await policy.onQlcBlock(qlcBlock(QLC, ZERO_HASH, open, { link: hex() }));
    expect(dispatcher.calls.slice(1)).toEqual([`withdraw ${QLC_KEY}`, `precache ${open} fffffe0000000000 ${QLC}`]);
    expect(policy.stats.opens).toBe(1);
  });

  it('without qlcOpenBlocks, sends to tracked accounts precache nothing', async () => {
    const { dispatcher, policy } = await setup({ accounts: [QLC] });
    await policy.onQlcBlock(qlcBlock(QLC_OTHER, hex(), hex(), { link: QLC_KEY }));
    expect(dispatcher.calls).toEqual([]);
  });

  it('tracks accounts from the store and from track(), refusing bad checksums', async () => {
    const store = new SqliteStore(':memory:');
    await store.trackAccount({ account: NANO, chain: NANO, frontier: 'AA'.repeat(32), updatedAt: 1 });
    const { dispatcher, policy } = await setup({}, store);
    expect(policy.accounts).toEqual([NANO]);
    expect(policy.frontier(NANO)).toBe('aa'.repeat(32));
    expect(await policy.track(QLC)).toBe(true);
    expect(await policy.track(breakChecksum(QLC))).toBe(false);
    expect((await store.listTracked()).map((t) => t.account).sort()).toEqual([NANO, QLC].sort());
    // The stored frontier is the old one: the next block withdraws it.
    const h = hex();
    await policy.onNanoConfirmation(nanoBlock(NANO, 'aa'.repeat(32), h));
    expect(dispatcher.calls).toEqual([`withdraw ${'aa'.repeat(32)}`, `precache ${h.toUpperCase()} ${THRESHOLDS.nanoSend.toString(16)} ${NANO}`]);
    // A replay of the stored frontier block after a restart is a duplicate.
    const again = await setup({}, store);
    await again.policy.onNanoConfirmation(nanoBlock(NANO, 'aa'.repeat(32), h));
    expect(again.dispatcher.calls).toEqual([]);
  });

  it.each([
    ['memory', () => new MemoryStore()],
    ['sqlite', () => new SqliteStore(':memory:')],
  ])('ignores replays of old blocks after a restart on the same %s store', async (_kind, makeStore) => {
    // Real nodes repeat old blocks: Nano during a confirmation-height upgrade, go-qlc when it
    // re-processes a block. A restarted dispatcher must not move the frontier back for them.
    const store = makeStore();
    cleanups.push(() => store.close());
    const first = await setup({ accounts: [NANO, QLC] }, store);
    const [h0, h1, h2, h3] = [hex(), hex(), hex(), hex()];
    await first.policy.onNanoConfirmation(nanoBlock(NANO, h0, h1));
    await first.policy.onNanoConfirmation(nanoBlock(NANO, h1, h2));
    await first.policy.onNanoConfirmation(nanoBlock(NANO, h2, h3));
    const [q1, q2] = [hex(), hex()];
    await first.policy.onQlcBlock(qlcBlock(QLC, ZERO_HASH, q1));
    await first.policy.onQlcBlock(qlcBlock(QLC, q1, q2));
    await first.policy.stop();

    const again = await setup({ accounts: [NANO, QLC] }, store);
    await again.policy.onNanoConfirmation(nanoBlock(NANO, h0, h1)); // an old block, seen before
    await again.policy.onNanoConfirmation(nanoBlock(NANO, h1, h2)); // and the one after it
    await again.policy.onNanoConfirmation(nanoBlock(NANO, h2, h3)); // the frontier itself
    await again.policy.onQlcBlock(qlcBlock(QLC, ZERO_HASH, q1));
    expect(again.dispatcher.calls).toEqual([]);
    expect(again.policy.frontier(NANO)).toBe(h3);
    expect(again.policy.frontier(qlcChainKey(QLC, TOKEN))).toBe(q2);
    expect(await store.getTracked(NANO)).toMatchObject({ frontier: h3 });
    // A block the first run only knew as a `previous` is old news too.
    await again.policy.onNanoConfirmation(nanoBlock(NANO, hex(), h0));
    expect(again.dispatcher.calls).toEqual([]);
    // And the chain still moves forward.
    const h4 = hex();
    await again.policy.onNanoConfirmation(nanoBlock(NANO, h3, h4));
    expect(again.dispatcher.calls).toEqual([`withdraw ${h3}`, `precache ${h4.toUpperCase()} ${THRESHOLDS.nanoSend.toString(16)} ${NANO}`]);
  });

  it('with persist off, writes nothing to the store', async () => {
    const { dispatcher, policy, store } = await setup({ accounts: [NANO], persist: false });
    await policy.onNanoConfirmation(nanoBlock(NANO, hex(), hex()));
    expect(dispatcher.calls).toHaveLength(1);
    expect(await store.listTracked()).toEqual([]);
  });

  it('picks up accounts the dispatcher tracked in the store on refresh', async () => {
    const { policy, store } = await setup();
    expect(policy.accounts).toEqual([]);
    await store.trackAccount({ account: OTHER_NANO, chain: OTHER_NANO, updatedAt: 1 });
    await policy.refresh();
    expect(policy.accounts).toEqual([OTHER_NANO]);
  });
});
