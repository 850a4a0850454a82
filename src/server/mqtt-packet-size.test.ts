import { describe, expect, it } from 'vitest';
import { OversizePacketError, PACKET_TYPES, PacketSizeCheck } from './mqtt-packet-size.ts';
import { encode, firstByte, fixedHeader, MAX_REMAINING_LENGTH } from '../testkit/mqtt-attack.ts';

const LIMITS = { publish: 200, other: 50 };

/** Feeds the chunks in order; the first error, and how many chunks were taken before it. */
function feed(chunks: Uint8Array[]): { error?: Error; taken: number } {
  const check = new PacketSizeCheck(LIMITS);
  for (const [i, chunk] of chunks.entries()) {
    const error = check.feed(chunk);
    if (error) return { error, taken: i };
  }
  return { taken: chunks.length };
}

describe('PacketSizeCheck', () => {
  it('takes real packets, however the bytes are split', () => {
    const stream = Buffer.concat([
      encode({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: 'w1', keepalive: 60, username: 'client', password: Buffer.from('client') }),
      encode({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'work/#', qos: 0 }] }),
      encode({ cmd: 'publish', topic: 'result/precache', payload: Buffer.alloc(150, 0x61), qos: 1, messageId: 2, retain: false, dup: false }),
      encode({ cmd: 'pingreq' }),
      encode({ cmd: 'disconnect' }),
    ]);
    for (const size of [1, 2, 3, 7, stream.length]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < stream.length; i += size) chunks.push(stream.subarray(i, i + size));
      expect(feed(chunks), `chunks of ${size}`).toEqual({ taken: chunks.length });
    }
  });

  it('takes a packet of exactly the limit and refuses one byte more, by type', () => {
    // Whole packet = 1 type byte + the length bytes + the body.
    expect(feed([fixedHeader(0x82, 48), Buffer.alloc(48)]).error).toBeUndefined();
    expect(feed([fixedHeader(0x82, 49)]).error).toMatchObject({ type: 'subscribe', size: 51, limit: 50 });
    expect(feed([fixedHeader(0x30, 197), Buffer.alloc(197)]).error).toBeUndefined();
    expect(feed([fixedHeader(0x30, 198)]).error).toMatchObject({ type: 'publish', size: 201, limit: 200 });
  });

  it('refuses at the header, before any of the body, for every packet type', () => {
    for (const [n, type] of PACKET_TYPES.entries()) {
      const { error } = feed([fixedHeader(firstByte(n), MAX_REMAINING_LENGTH)]);
      expect(error, type).toBeInstanceOf(OversizePacketError);
      expect(error, type).toMatchObject({ type, size: 1 + 4 + MAX_REMAINING_LENGTH });
    }
  });

  it('reads a length split across chunks, after a good packet in the same chunk', () => {
    const big = fixedHeader(0x10, 100_000);
    const { error, taken } = feed([Buffer.concat([encode({ cmd: 'pingreq' }), big.subarray(0, 2)]), big.subarray(2)]);
    expect(taken).toBe(1);
    expect(error).toMatchObject({ type: 'connect', size: 1 + 3 + 100_000 });
  });

  it('refuses a remaining length longer than four bytes', () => {
    const { error } = feed([Buffer.from([0x30, 0x80, 0x80, 0x80, 0x80, 0x01])]);
    expect(error).not.toBeInstanceOf(OversizePacketError);
    expect(error?.message).toMatch(/malformed MQTT remaining length/);
  });
});
