import { describe, expect, it } from 'vitest';
import { encodeAddress } from '../../dpow/address.ts';
import { NanoFeed } from './nano-feed.ts';
import type { NanoConfirmation } from './nano-wire.ts';
import { nanoConfirmation, NanoSim, type NanoSimOptions } from '../sim/nano-sim.ts';
import { cleanupsAfterEach, closeAfter } from '../../testkit/cleanups.ts';
import { quietLogger as quiet } from '../../testkit/log.ts';
import { openRawSocket } from '../../testkit/raw-socket.ts';
import { waitFor } from '../../testkit/wait.ts';
import { breakChecksum } from '../../testkit/address.ts';

const A = encodeAddress('11'.repeat(32), 'nano');
const B = encodeAddress('22'.repeat(32), 'nano');
const C = encodeAddress('33'.repeat(32), 'nano');
const BAD = breakChecksum(A);
const H1 = 'AB'.repeat(32);
const H2 = 'CD'.repeat(32);

const cleanups = cleanupsAfterEach();
async function sim(options: NanoSimOptions = {}): Promise<NanoSim> {
  return closeAfter(cleanups, await NanoSim.start(options));
}
function feed(url: string, options: ConstructorParameters<typeof NanoFeed>[1] = {}): NanoFeed {
  return closeAfter(cleanups, new NanoFeed(url, { log: quiet, reconnectDelayMs: 20, maxReconnectDelayMs: 100, pingIntervalMs: 0, replyTimeoutMs: 300, ...options }));
}
const block = (account: string, previous: string, subtype = 'receive', dest?: string) =>
  nanoConfirmation(
    { account, previous, representative: account, balance: '1', link: '00'.repeat(32), ...(dest ? { link_as_account: dest } : {}), work: '0123456789abcdef', subtype },
    previous === H1 ? H2 : H1,
  );

describe('NanoFeed against the Nano test node', () => {
  it('subscribes with the account filter, waits for the ack, and emits confirmations', async () => {
    const s = await sim();
    const f = feed(s.url, { accounts: [A] });
    const subscribed = new Promise((r) => f.once('subscribed', r));
    await f.connect();
    await subscribed;
    expect(s.received[0]).toEqual({ action: 'subscribe', topic: 'confirmation', ack: true, options: { accounts: [A] } });
    const got: NanoConfirmation[] = [];
    f.on('confirmation', (c) => got.push(c));
    expect(s.confirm(block(A, H1))).toBe(1);
    expect(s.confirm(block(B, H1))).toBe(0);
    await waitFor('the confirmation', () => got.length === 1);
    expect(got[0]).toMatchObject({ account: A, hash: H2, confirmationType: 'active_quorum', block: { previous: H1, subtype: 'receive' } });
  });

  it('does not subscribe without accounts, then subscribes and updates as accounts are added', async () => {
    const s = await sim();
    const f = feed(s.url);
    await f.connect();
    await new Promise((r) => setTimeout(r, 30));
    expect(s.sessions()).toEqual([{ subscribed: false, accounts: 'all', deaf: false }]);
    const subscribed = new Promise((r) => f.once('subscribed', r));
    expect(await f.addAccounts([A, BAD])).toEqual([BAD]);
    await subscribed;
    const updated = new Promise<void>((r) => f.once('updated', () => r()));
    await f.addAccounts([B, A]);
    await updated;
    expect(s.received.at(-1)).toEqual({ action: 'update', topic: 'confirmation', ack: true, options: { accounts_add: [B] } });
    expect(s.sessions()[0].accounts).toEqual([A, B]);
    await f.removeAccounts([A]);
    expect(s.sessions()[0].accounts).toEqual([B]);
  });

  it('answers ping with pong, and a node that stops answering is reconnected', async () => {
    const s = await sim();
    const f = feed(s.url, { accounts: [A] });
    await f.connect();
    expect(await f.ping()).toBe(true);
    expect(f.stats.pongs).toBe(1);
    s.setSilent(true);
    const disconnected = new Promise((r) => f.once('disconnect', r));
    expect(await f.ping()).toBe(false);
    await disconnected;
    expect(f.stats.livenessFailures).toBe(1);
    s.setSilent(false);
    await waitFor('the subscribe ack', () => f.subscribed);
    expect(f.stats.connects).toBe(2);
  });

  it('reconnects after a drop and subscribes again with every account', async () => {
    const s = await sim();
    const f = feed(s.url, { accounts: [A] });
    await f.connect();
    await waitFor('the subscribe ack', () => f.subscribed);
    await f.addAccounts([C]);
    s.dropConnections();
    await waitFor('the second subscribe', () => f.stats.subscribes === 2);
    const subscribes = s.received.filter((r) => (r as { action?: string }).action === 'subscribe');
    expect(subscribes.at(-1)).toEqual({ action: 'subscribe', topic: 'confirmation', ack: true, options: { accounts: [A, C] } });
    const got: NanoConfirmation[] = [];
    f.on('confirmation', (c) => got.push(c));
    s.confirm(block(C, H2));
    await waitFor('the confirmation', () => got.length === 1);
  });

  it('matches sends to a tracked destination, as the node does', async () => {
    const s = await sim();
    const f = feed(s.url, { accounts: [B] });
    await f.connect();
    await waitFor('the subscribe ack', () => f.subscribed);
    const got: NanoConfirmation[] = [];
    f.on('confirmation', (c) => got.push(c));
    expect(s.confirm(block(A, H1, 'send', B))).toBe(1);
    await waitFor('the confirmation', () => got.length === 1);
    expect(got[0].account).toBe(A);
  });

  it('counts malformed messages by reason and keeps going', async () => {
    const s = await sim();
    const f = feed(s.url, { accounts: [A] });
    await f.connect();
    await waitFor('the subscribe ack', () => f.subscribed);
    const good = block(A, H1);
    const frame = (message: unknown, time: unknown = '1') => JSON.stringify({ topic: 'confirmation', time, message });
    s.sendRaw('garbage');
    s.sendRaw('[1,2]');
    s.sendRaw(frame({ ...good, hash: good.hash.toLowerCase() }));
    s.sendRaw(frame({ ...good, amount: 1000 }));
    s.sendRaw(frame({ ...good, account: BAD, block: { ...good.block, account: BAD } }));
    s.sendRaw(frame({ ...good, block: { ...good.block, balance: 5 } }));
    s.sendRaw(frame(good, 12));
    s.sendRaw(frame('nope'));
    s.sendRaw(JSON.stringify({ ack: 'pong' }));
    const got: NanoConfirmation[] = [];
    f.on('confirmation', (c) => got.push(c));
    s.confirm(good);
    await waitFor('the confirmation', () => got.length === 1);
    expect(f.stats.rejected).toEqual({ 'not-json': 1, 'not-an-object': 1, 'bad-hash': 1, 'not-a-string': 3, 'bad-account': 1, 'bad-shape': 1, unexpected: 1 });
    expect(f.connected).toBe(true);
  });
});

describe('the Nano test node', () => {
  it('stops reading a session after bad JSON, as the node does', async () => {
    const s = await sim();
    const { ws, replies } = await openRawSocket(s.url, cleanups);
    ws.send(JSON.stringify({ action: 'ping' }));
    await waitFor('the pong', () => replies.length === 1);
    ws.send('{oops');
    ws.send(JSON.stringify({ action: 'ping' }));
    await waitFor('all three frames at the node', () => s.received.length === 3);
    await new Promise((r) => setTimeout(r, 50));
    expect(replies).toHaveLength(1);
    expect(s.sessions()[0].deaf).toBe(true);
  });
});
