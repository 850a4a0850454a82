/**
 * MQTT packet sizes checked while the bytes arrive, before the embedded broker's parser keeps
 * them (or the front passes them to Mosquitto). aedes' parser (mqtt-packet) keeps a packet's whole
 * body before it looks at it, so a CONNECT that declares 256 MB was kept byte by byte, before any
 * login, until the connection died; Mosquitto's WebSocket listener does the same.
 *
 * A PacketSizeCheck is fed the bytes of one connection in order, as they are handed to that
 * parser. It reads only each packet's fixed header (MQTT 3.1.1 §2.2: the type in the high nibble
 * of the first byte, then a remaining length of 1-4 bytes, 7 bits each) and skips the body, so it
 * keeps nothing but the header state. When a header declares more than the limit for its type,
 * `feed` answers with an OversizePacketError and the caller closes the connection before the
 * body arrives. Sizes are of the whole packet, header included, as Mosquitto's
 * `max_packet_size` counts.
 */
import { MAX_PAYLOAD_BYTES } from '../dpow/codec.ts';

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

/** What a connection may send, in the terms an operator sets (`--mqtt-max-packet`). */
export interface PacketContentLimits {
  /** Largest PUBLISH payload. */
  maxPayloadBytes: number;
  /** Longest topic of a publish, or filter of a subscription, in bytes. */
  maxTopicBytes: number;
  /** Largest packet of every type but PUBLISH, whole. */
  maxPacketBytes: number;
}

/** The embedded broker's and the front's, unless told otherwise. */
export const DEFAULT_PACKET_LIMITS: PacketContentLimits = {
  maxPayloadBytes: MAX_PAYLOAD_BYTES,
  // The longest DPoW topic is client/<address>, 7 + 65 bytes.
  maxTopicBytes: 256,
  // A worker's CONNECT or SUBSCRIBE is about 100 bytes; the longest login still fits many times.
  maxPacketBytes: 1024,
};

/** PUBLISH bytes beyond its payload and topic: fixed header (at most 5), topic length (2), message id (2). */
const PUBLISH_OVERHEAD = 9;

/** The size of a whole packet that follows from those limits, by type. */
export function packetLimitsFor(limits: PacketContentLimits): PacketSizeLimits {
  return { publish: limits.maxPayloadBytes + limits.maxTopicBytes + PUBLISH_OVERHEAD, other: limits.maxPacketBytes };
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

export class PacketSizeCheck {
  readonly #limits: PacketSizeLimits;
  /** Body bytes of the current packet still to come. */
  #body = 0;
  /** The current packet's type while its length is read, or -1 before its first byte. */
  #type = -1;
  #length = 0;
  #lengthBytes = 0;

  constructor(limits: PacketSizeLimits) {
    this.#limits = limits;
  }

  /**
   * The next bytes of the connection. An error means the connection must be closed: a header
   * over its limit (OversizePacketError), or a remaining length longer than four bytes.
   */
  feed(chunk: Uint8Array): Error | undefined {
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
        if (this.#lengthBytes === 4) return new Error('malformed MQTT remaining length');
        continue;
      }
      const size = 1 + this.#lengthBytes + this.#length;
      const limit = this.#type === PUBLISH ? this.#limits.publish : this.#limits.other;
      if (size > limit) return new OversizePacketError(PACKET_TYPES[this.#type], size, limit);
      this.#body = this.#length;
      this.#type = -1;
    }
    return undefined;
  }
}
