/**
 * The node RPC client against the Nano node double over real HTTP: what each action answers,
 * the node's error texts as refusals, and the faults (down, a held answer, garbage) as
 * unreachable. The double's own book is checked here too: a test that trusts it must be able to.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { encodeAddress } from '../../dpow/address.ts';
import { RAW_PER_NANO } from '../../dpow/nano-amount.ts';
import { breakChecksum } from '../../testkit/address.ts';
import { cleanupsAfterEach, closeAfter } from '../../testkit/cleanups.ts';
import { NanoNodeDouble } from '../../testkit/nano-node.ts';
import { NanoNodeRpc } from './node-rpc.ts';

const cleanups = cleanupsAfterEach();

async function setup() {
  const node = closeAfter(cleanups, await NanoNodeDouble.start());
  const source = node.openAccount(10n * RAW_PER_NANO);
  const wallet = node.createWallet([source]);
  const rpc = new NanoNodeRpc(node.url, { timeoutMs: 2000 });
  return { node, source, wallet, rpc };
}

describe('the node RPC against the node double', () => {
  it('reads balances, accounts and addresses as the node answers them', async () => {
    const { node, source, rpc } = await setup();
    const fresh = encodeAddress('ab'.repeat(32));
    expect(await rpc.accountBalance(source)).toEqual({ ok: true, value: { balance: 10n * RAW_PER_NANO, receivable: 0n } });
    expect(await rpc.accountBalance(fresh)).toEqual({ ok: true, value: { balance: 0n, receivable: 0n } });
    expect(await rpc.isOpened(source)).toEqual({ ok: true, value: true });
    expect(await rpc.isOpened(fresh)).toEqual({ ok: true, value: false });
    expect(await rpc.isValidAccount(fresh)).toEqual({ ok: true, value: true });
    expect(await rpc.isValidAccount(breakChecksum(fresh))).toEqual({ ok: true, value: false });
    expect(await rpc.accountBalance(breakChecksum(fresh))).toEqual({ ok: false, unreachable: false, message: 'Bad account number' });
    expect(await rpc.call({ action: 'work_dance' })).toEqual({ ok: false, unreachable: false, message: 'Unknown command' });
    expect(node.requests.map((r) => r.action)).toContain('validate_account_number');
  });

  it('sends once per id: the same id answers the same block and moves no funds again', async () => {
    const { node, source, wallet, rpc } = await setup();
    const to = encodeAddress('cd'.repeat(32));
    const request = { wallet, source, destination: to, amount: 3n * RAW_PER_NANO, id: 'run-1:to' };
    const first = await rpc.send(request);
    const again = await rpc.send(request);
    expect(first.ok && again.ok && first.value === again.value).toBe(true);
    expect(node.balance(source)).toBe(7n * RAW_PER_NANO);
    expect(node.receivable(to)).toBe(3n * RAW_PER_NANO);
    expect(node.paidTo(to)).toHaveLength(1);
    // A new id is a new payment.
    expect((await rpc.send({ ...request, id: 'run-2:to' })).ok).toBe(true);
    expect(node.balance(source)).toBe(4n * RAW_PER_NANO);
    const block = first.ok ? first.value : '';
    expect(await rpc.blockInfo(block)).toEqual({ ok: true, value: { confirmed: true, amount: 3n * RAW_PER_NANO } });
    node.autoConfirm = false;
    const late = await rpc.send({ ...request, id: 'run-3:to', amount: 1n });
    expect(await rpc.blockInfo(late.ok ? late.value : '')).toEqual({ ok: true, value: { confirmed: false, amount: 1n } });
    expect(await rpc.blockInfo('00'.repeat(32))).toEqual({ ok: false, unreachable: false, message: 'Block not found' });
  });

  it('refuses a send with the node’s own error texts, in the node’s order, moving nothing', async () => {
    const { node, source, wallet, rpc } = await setup();
    const to = encodeAddress('ef'.repeat(32));
    const ok = { wallet, source, destination: to, amount: RAW_PER_NANO, id: 'x' };
    const refusal = async (request: typeof ok) => {
      const result = await rpc.send(request);
      return result.ok ? 'sent' : `${result.unreachable ? 'unreachable' : 'refused'}: ${result.message}`;
    };
    expect(await refusal({ ...ok, wallet: 'nope' })).toBe('refused: Bad wallet number');
    expect(await refusal({ ...ok, wallet: '0'.repeat(64) })).toBe('refused: Wallet not found');
    expect(await refusal({ ...ok, amount: 0n })).toBe('refused: Invalid amount number');
    expect(await refusal({ ...ok, source: breakChecksum(source) })).toBe('refused: Bad source');
    expect(await refusal({ ...ok, destination: breakChecksum(to) })).toBe('refused: Bad destination account');
    expect(await refusal({ ...ok, source: to })).toBe('refused: Account not found in wallet');
    expect(await refusal({ ...ok, amount: 11n * RAW_PER_NANO })).toBe('refused: Insufficient balance');
    const unopened = encodeAddress('12'.repeat(32));
    const other = node.createWallet([unopened]);
    expect(await refusal({ ...ok, wallet: other, source: unopened })).toBe('refused: Account not found');
    node.lockWallet(wallet, true);
    expect(await refusal(ok)).toBe('refused: Wallet is locked');
    node.lockWallet(wallet, false);
    expect(node.balance(source)).toBe(10n * RAW_PER_NANO);
    expect(node.blocks.size).toBe(0);
    expect(await refusal(ok)).toBe('sent');
  });

  it('calls a node that is down, slow after sending, or talking nonsense unreachable', async () => {
    const { node, source, wallet, rpc } = await setup();
    const to = encodeAddress('34'.repeat(32));
    await node.down();
    expect(await rpc.accountBalance(source)).toMatchObject({ ok: false, unreachable: true, message: 'ECONNREFUSED' });
    await node.up();
    // The node books the send but its answer never comes: a timeout after sending.
    const quick = new NanoNodeRpc(node.url, { timeoutMs: 300 });
    node.holdSends(1);
    const held = await quick.send({ wallet, source, destination: to, amount: 5n, id: 'held' });
    expect(held).toMatchObject({ ok: false, unreachable: true, message: 'no answer within 300 ms' });
    expect(node.balance(source)).toBe(10n * RAW_PER_NANO - 5n);
    // Asked again with the same id: the block it made, and no second debit.
    const retry = await quick.send({ wallet, source, destination: to, amount: 5n, id: 'held' });
    expect(retry).toEqual({ ok: true, value: node.blockForId('held')!.hash });
    expect(node.balance(source)).toBe(10n * RAW_PER_NANO - 5n);

    const garbage = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => (req.url === '/500' ? res.writeHead(500).end('{}') : res.writeHead(200).end(req.url === '/array' ? '[1]' : '<html>')));
    });
    await new Promise<void>((r) => garbage.listen(0, '127.0.0.1', r));
    cleanups.push(() => new Promise((r) => garbage.close(r)));
    const base = `http://127.0.0.1:${(garbage.address() as AddressInfo).port}`;
    expect(await new NanoNodeRpc(`${base}/`, { timeoutMs: 2000 }).accountBalance(source)).toMatchObject({ unreachable: true, message: 'a reply that is not JSON' });
    expect(await new NanoNodeRpc(`${base}/500`, { timeoutMs: 2000 }).accountBalance(source)).toMatchObject({ unreachable: true, message: 'HTTP 500' });
    expect(await new NanoNodeRpc(`${base}/array`, { timeoutMs: 2000 }).accountBalance(source)).toMatchObject({ unreachable: true });
  });
});
