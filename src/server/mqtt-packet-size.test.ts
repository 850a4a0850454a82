import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import mqttPacket from 'mqtt-packet';
import { limitPacketSize, OversizePacketError } from './mqtt-packet-size.ts';

const LIMITS = { publish: 200, other: 50 };
/** The largest length MQTT can declare (4 bytes of 7 bits): 256 MB less one byte. */
const MAX_REMAINING_LENGTH = 128 ** 4 - 1;

/** A fixed header: the type's first byte and a remaining length in MQTT's 7-bit groups. */
function header(first: number, length: number): Buffer {
  const bytes = [first];
  do {
    let b = length % 128;
    length = Math.floor(length / 128);
    if (length > 0) b |= 0x80;
    bytes.push(b);
  } while (length > 0);
  return Buffer.from(bytes);
}

/**
 * Loops bytes through the check (a PassThrough is the far end): resolves with what came out,
 * or with the oversize error the check reported.
 */
async function run(chunks: Buffer[]): Promise<{ out: Buffer; oversize?: OversizePacketError; error?: Error }> {
  const wire = new PassThrough();
  let oversize: OversizePacketError | undefined;
  const guarded = limitPacketSize(wire, LIMITS, (err) => (oversize = err));
  const out: Buffer[] = [];
  guarded.on('data', (d: Buffer) => out.push(d));
  const ended = new Promise<Error | undefined>((resolve) => {
    guarded.once('error', resolve);
    guarded.once('end', () => resolve(undefined));
  });
  for (const c of chunks) wire.write(c);
  wire.end();
  const error = await ended;
  return { out: Buffer.concat(out), oversize, error };
}

const packet = (p: object) => mqttPacket.generate(p as mqttPacket.Packet);

describe('limitPacketSize', () => {
  it('passes real packets through unchanged, however the bytes are split', async () => {
    const stream = Buffer.concat([
      packet({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'w1', keepalive: 60, username: 'client', password: Buffer.from('client') }),
      packet({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'work/#', qos: 0 }] }),
      packet({ cmd: 'publish', topic: 'result/precache', payload: Buffer.alloc(150, 0x61), qos: 1, messageId: 2, retain: false, dup: false }),
      packet({ cmd: 'pingreq' }),
      packet({ cmd: 'disconnect' }),
    ]);
    for (const size of [1, 2, 3, 7, stream.length]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < stream.length; i += size) chunks.push(stream.subarray(i, i + size));
      const { out, error } = await run(chunks);
      expect(error, `chunks of ${size}`).toBeUndefined();
      expect(out.equals(stream), `chunks of ${size}`).toBe(true);
    }
  });

  it('allows a packet of exactly the limit and refuses one byte more, by type', async () => {
    // Whole packet = 1 type byte + the length bytes + the body.
    expect((await run([header(0x82, 48), Buffer.alloc(48)])).error).toBeUndefined();
    const over = await run([header(0x82, 49)]);
    expect(over.oversize).toMatchObject({ type: 'subscribe', size: 51, limit: 50 });
    expect(over.error).toBe(over.oversize);
    expect((await run([header(0x30, 197), Buffer.alloc(197)])).error).toBeUndefined();
    expect((await run([header(0x30, 198)])).oversize).toMatchObject({ type: 'publish', size: 200 + 1, limit: 200 });
  });

  it('refuses at the header, before any of the body arrives, for every packet type', async () => {
    for (let type = 0; type < 16; type++) {
      // Reserved flag bits vary by type; the check reads only the type nibble.
      const { out, oversize } = await run([header(type << 4, MAX_REMAINING_LENGTH)]);
      expect(oversize, `type ${type}`).toBeInstanceOf(OversizePacketError);
      expect(out.length, `type ${type}`).toBe(0);
    }
  });

  it('reads a length split across chunks and checks the packet after a good one in the same chunk', async () => {
    const good = packet({ cmd: 'pingreq' });
    const big = header(0x10, 100_000);
    const { oversize, out } = await run([Buffer.concat([good, big.subarray(0, 2)]), big.subarray(2)]);
    expect(oversize).toMatchObject({ type: 'connect', size: 1 + 3 + 100_000 });
    // The first chunk passed before the second completed the header; the second did not.
    expect(out.equals(Buffer.concat([good, big.subarray(0, 2)]))).toBe(true);
  });

  it('refuses a remaining length longer than four bytes', async () => {
    const { error, oversize } = await run([Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01])]);
    expect(oversize).toBeUndefined();
    expect(error?.message).toMatch(/malformed MQTT remaining length/);
  });
});
