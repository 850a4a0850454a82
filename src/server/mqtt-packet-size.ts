/**
 * MQTT packet sizes checked while the bytes arrive, in front of the embedded broker. aedes'
 * parser (mqtt-packet) keeps a packet's whole body before it looks at it, so a CONNECT that
 * declares 256 MB was kept byte by byte, before any login, until the connection died.
 *
 * `limitPacketSize` reads only each packet's fixed header (MQTT 3.1.1 §2.2: the type in the high
 * nibble of the first byte, then a remaining length of 1-4 bytes, 7 bits each). When the size it
 * declares is over the limit for that type, the connection is destroyed at once, before its body
 * is read. Every byte otherwise passes through unchanged, and nothing but the header state is
 * kept. Sizes are of the whole packet, header included, as Mosquitto's `max_packet_size` counts.
 */
import { Duplex, pipeline, Transform, type TransformCallback } from 'node:stream';

/** Control packet types by their number (MQTT 3.1.1 §2.2.1; 0 is reserved, 15 is MQTT 5's AUTH). */
export const PACKET_TYPES = [
  'reserved',
  'connect',
  'connack',
  'publish',
  'puback',
  'pubrec',
  'pubrel',
  'pubcomp',
  'subscribe',
  'suback',
  'unsubscribe',
  'unsuback',
  'pingreq',
  'pingresp',
  'disconnect',
  'auth',
] as const;
export type PacketType = (typeof PACKET_TYPES)[number];

const PUBLISH = PACKET_TYPES.indexOf('publish');

export interface PacketSizeLimits {
  /** Largest PUBLISH: the payload limit plus room for the topic and headers. */
  publish: number;
  /** Largest packet of every other type: CONNECT, SUBSCRIBE, UNSUBSCRIBE, acknowledgements. */
  other: number;
}

export class OversizePacketError extends Error {
  constructor(
    readonly type: PacketType,
    readonly size: number,
    readonly limit: number,
  ) {
    super(`${type.toUpperCase()} of ${size} bytes is over the limit of ${limit}`);
  }
}

/** Reads fixed headers as bytes pass; fails on the first one that declares too much. */
class PacketSizeCheck extends Transform {
  readonly #limits: PacketSizeLimits;
  /** Body bytes of the current packet still to pass. */
  #body = 0;
  /** The current packet's type, or -1 while waiting for the next packet's first byte. */
  #type = -1;
  #length = 0;
  #lengthBytes = 0;

  constructor(limits: PacketSizeLimits) {
    super();
    this.#limits = limits;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.#body > 0) {
        const skip = Math.min(this.#body, chunk.length - i);
        this.#body -= skip;
        i += skip;
        continue;
      }
      const byte = chunk[i++];
      if (this.#type < 0) {
        this.#type = byte >> 4;
        this.#length = 0;
        this.#lengthBytes = 0;
        continue;
      }
      this.#length += (byte & 0x7f) * 128 ** this.#lengthBytes++;
      if (byte & 0x80) {
        if (this.#lengthBytes === 4) return done(new Error('malformed MQTT remaining length'));
        continue;
      }
      const size = 1 + this.#lengthBytes + this.#length;
      const limit = this.#type === PUBLISH ? this.#limits.publish : this.#limits.other;
      if (size > limit) return done(new OversizePacketError(PACKET_TYPES[this.#type], size, limit));
      this.#body = this.#length;
      this.#type = -1;
    }
    done(null, chunk);
  }
}

/**
 * The connection as aedes should read it: writes go to `connection`, reads come through the size
 * check. A packet over its limit destroys both with an OversizePacketError, which `onOversize`
 * sees first (to count and log it).
 */
export function limitPacketSize(connection: Duplex, limits: PacketSizeLimits, onOversize: (err: OversizePacketError) => void): Duplex {
  const check = new PacketSizeCheck(limits);
  // The pipeline destroys the connection when the check fails; the guarded stream's own destroy
  // (aedes closing a client) destroys both.
  pipeline(connection, check, (err) => {
    if (err instanceof OversizePacketError) onOversize(err);
  });
  return Duplex.from({ readable: check, writable: connection });
}
