/**
 * The simulated nodes read frames as the real surfaces do (parseBoundedJson): a deep frame is
 * refused before anything walks it, so an id qlc-sim echoes (as go-qlc does) is a bounded one.
 */
import { once } from 'node:events';
import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { cleanupsAfterEach, closeAfter } from '../../testkit/cleanups.ts';
import { waitFor } from '../../testkit/wait.ts';
import { KEPT_FRAMES } from './sim-socket.ts';
import { NanoSim } from './nano-sim.ts';
import { QlcSim } from './qlc-sim.ts';

const cleanups = cleanupsAfterEach();
/** The shape: 6,000 arrays deep, about 12 KB. */
const deep = (depth = 6000) => `${'['.repeat(depth)}1${']'.repeat(depth)}`;

async function socket(url: string): Promise<{ ws: WebSocket; replies: unknown[] }> {
  const ws = new WebSocket(url);
  cleanups.push(() => ws.terminate());
  const replies: unknown[] = [];
  ws.on('message', (data) => replies.push(JSON.parse(String(data))));
  await once(ws, 'open');
  return { ws, replies };
}

describe('the simulated nodes', () => {
  it('qlc-sim answers a deep frame with a parse error and ends the connection, as go-qlc does with bad JSON', async () => {
    const sim = closeAfter(cleanups, await QlcSim.start());
    const { ws, replies } = await socket(sim.url);
    const closed = once(ws, 'close');
    ws.send(`{"jsonrpc":"2.0","id":${deep()},"method":"ledger_subscribe","params":["newBlock"]}`);
    await closed;
    expect(replies).toEqual([{ jsonrpc: '2.0', id: null, error: { code: -32700, message: "invalid character '{' looking for beginning of value" } }]);
  });

  it('qlc-sim echoes an id as go-qlc does, as given, but only one the bounded parse let through', async () => {
    const sim = closeAfter(cleanups, await QlcSim.start());
    const { ws, replies } = await socket(sim.url);
    ws.send(JSON.stringify({ jsonrpc: '2.0', id: { nested: [1, 2] }, method: 'ledger_unknown' }));
    await waitFor('the reply', () => replies.length === 1);
    expect(replies[0]).toMatchObject({ id: { nested: [1, 2] }, error: { code: -32601 } });
    // 33 levels: one past the bound, refused before it is walked, and never echoed.
    const closed = once(ws, 'close');
    ws.send(`{"jsonrpc":"2.0","id":${deep(33)},"method":"ledger_unknown"}`);
    await closed;
    expect(replies[1]).toMatchObject({ id: null, error: { code: -32700 } });
  });

  it('nano-sim stops answering a session that sent a deep frame, as the node stops on bad JSON', async () => {
    const sim = closeAfter(cleanups, await NanoSim.start());
    const { ws, replies } = await socket(sim.url);
    ws.send(JSON.stringify({ action: 'ping' }));
    await waitFor('the pong', () => replies.length === 1);
    ws.send(`{"action":${deep()}}`);
    ws.send(JSON.stringify({ action: 'ping' }));
    await waitFor('both frames received', () => sim.received.length === 3);
    expect(typeof sim.received[1]).toBe('string');
    expect(replies).toHaveLength(1);
  });

  it('keeps only the latest frames a connection sends, however many it sends', async () => {
    const sim = closeAfter(cleanups, await NanoSim.start());
    const { ws, replies } = await socket(sim.url);
    for (let i = 0; i < 3000; i++) ws.send(JSON.stringify({ action: 'ping', n: i }));
    await waitFor('every pong', () => replies.length === 3000);
    expect(sim.received).toHaveLength(KEPT_FRAMES);
    expect(sim.received.at(-1)).toEqual({ action: 'ping', n: 2999 });
  });
});
