/**
 * One codec per DPoW payload, shared by the worker client and the dispatcher.
 *
 * Topics (seed spec): work/<type>, result/<type>, cancel/<type>, client/<address>, heartbeat,
 * statistics, with <type> one of precache | ondemand. Decoders never throw: a bad payload is a
 * value with a stable `code` (for counters) and a `reason` (for logs and people).
 */
import { logHash, printable } from '../format.ts';
import { checkAddress } from './address.ts';
import { isRootHex, isU64Hex, toU64Hex } from '../pow/work.ts';

export const WORK_TYPES = ['precache', 'ondemand'] as const;
export type WorkType = (typeof WORK_TYPES)[number];

export type RejectCode =
  | 'bad-topic'
  | 'bad-encoding'
  | 'bad-field-count'
  | 'bad-hash'
  | 'bad-difficulty'
  | 'bad-work'
  | 'bad-address'
  | 'bad-json'
  | 'bad-shape'
  | 'unexpected-payload';

export type Decoded<T> = { ok: true; value: T } | { ok: false; code: RejectCode; reason: string };

const reject = <T>(code: RejectCode, reason: string): Decoded<T> => ({ ok: false, code, reason });

/** Longest payload any DPoW message legitimately needs; bigger ones are refused unread. */
export const MAX_PAYLOAD_BYTES = 64 * 1024;

// ---------------------------------------------------------------- topics

export type Topic =
  | { kind: 'work' | 'result' | 'cancel'; workType: WorkType }
  | { kind: 'client'; address: string }
  | { kind: 'heartbeat' }
  | { kind: 'statistics' };

export const topics = {
  work: (t: WorkType) => `work/${t}`,
  result: (t: WorkType) => `result/${t}`,
  cancel: (t: WorkType) => `cancel/${t}`,
  client: (address: string) => `client/${address}`,
  heartbeat: 'heartbeat',
  statistics: 'statistics',
} as const;

/** Routes on the first topic segment (never on substrings: addresses may contain "work"). */
export function parseTopic(topic: string): Decoded<Topic> {
  const parts = topic.split('/');
  const head = parts[0];
  if (head === 'heartbeat' || head === 'statistics') {
    return parts.length === 1 ? { ok: true, value: { kind: head } } : reject('bad-topic', `unexpected topic "${topic}"`);
  }
  if (head === 'work' || head === 'result' || head === 'cancel') {
    const t = parts[1];
    if (parts.length !== 2 || !(WORK_TYPES as readonly string[]).includes(t)) {
      return reject('bad-topic', `unknown work type in topic "${topic}"`);
    }
    return { ok: true, value: { kind: head, workType: t as WorkType } };
  }
  if (head === 'client' && parts.length === 2 && parts[1] !== '') {
    return { ok: true, value: { kind: 'client', address: parts[1] } };
  }
  return reject('bad-topic', `unknown topic "${topic}"`);
}

// ---------------------------------------------------------------- text helpers

function asText(payload: Uint8Array | string): Decoded<string> {
  if (typeof payload === 'string') return { ok: true, value: payload };
  if (payload.byteLength > MAX_PAYLOAD_BYTES) {
    return reject('bad-encoding', `payload of ${payload.byteLength} bytes is too large`);
  }
  try {
    // ignoreBOM keeps a byte-order mark in the text, where the field checks refuse it: a payload
    // is answered only if every byte of it is in the message grammar.
    return { ok: true, value: new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(payload) };
  } catch {
    return reject('bad-encoding', 'payload is not valid UTF-8');
  }
}

function fields(payload: Uint8Array | string, count: number, what: string): Decoded<string[]> {
  const text = asText(payload);
  if (!text.ok) return text;
  const parts = text.value.split(',');
  if (parts.length !== count) {
    return reject(
      'bad-field-count',
      `${what} must have ${count} comma-separated field${count === 1 ? '' : 's'}, got ${parts.length}`,
    );
  }
  return { ok: true, value: parts };
}

/** A refused field as the log line quotes it: cut short, and escaped so it says what it held. */
const clip = (s: string) => printable(String(s).slice(0, 20));

// ---------------------------------------------------------------- work/<type>: hash,difficulty

export interface WorkMessage {
  /** The root exactly as it arrived (case preserved, echoed back in the result). */
  hash: string;
  difficulty: bigint;
}

export const workCodec = {
  encode(msg: WorkMessage): string {
    return `${msg.hash},${toU64Hex(msg.difficulty)}`;
  },
  decode(payload: Uint8Array | string): Decoded<WorkMessage> {
    const f = fields(payload, 2, 'work message');
    if (!f.ok) return f;
    const [hash, difficulty] = f.value;
    if (!isRootHex(hash)) return reject('bad-hash', `work hash "${logHash(hash)}" is not 64 hex characters`);
    if (!isU64Hex(difficulty)) {
      return reject('bad-difficulty', `work difficulty "${clip(difficulty)}" is not 16 hex characters`);
    }
    return { ok: true, value: { hash, difficulty: BigInt(`0x${difficulty}`) } };
  },
};

// ---------------------------------------------------------------- result/<type>: hash,work,address

export interface ResultMessage {
  hash: string;
  /** 16 hex digits, as found (big-endian text of the u64). */
  work: string;
  address: string;
}

export const resultCodec = {
  encode(msg: ResultMessage): string {
    return `${msg.hash},${msg.work},${msg.address}`;
  },
  /**
   * The address is checked for form and checksum only if `checkAddressChecksum` is set: the
   * dispatcher must still accept work from an invalid address (and say so on client/<address>),
   * as the old server did, so it decodes leniently and checks separately.
   */
  decode(
    payload: Uint8Array | string,
    options: { checkAddressChecksum?: boolean } = {},
  ): Decoded<ResultMessage> {
    const f = fields(payload, 3, 'result message');
    if (!f.ok) return f;
    const [hash, work, address] = f.value;
    if (!isRootHex(hash)) return reject('bad-hash', `result hash "${logHash(hash)}" is not 64 hex characters`);
    if (!isU64Hex(work)) return reject('bad-work', `result work "${clip(work)}" is not 16 hex characters`);
    // Lenient about the checksum (see above), never about the alphabet: <prefix>_<base32>.
    if (!/^[0-9A-Za-z_]{1,128}$/.test(address)) {
      return reject('bad-address', `result address "${clip(address)}" is empty or has characters outside an address`);
    }
    if (options.checkAddressChecksum) {
      const check = checkAddress(address);
      if (!check.ok) return reject('bad-address', check.reason);
    }
    return { ok: true, value: { hash, work, address } };
  },
};

// ---------------------------------------------------------------- cancel/<type>: hash

export const cancelCodec = {
  encode(hash: string): string {
    return hash;
  },
  decode(payload: Uint8Array | string): Decoded<string> {
    const f = fields(payload, 1, 'cancel message');
    if (!f.ok) return f;
    const [hash] = f.value;
    if (!isRootHex(hash)) return reject('bad-hash', `cancel hash "${logHash(hash)}" is not 64 hex characters`);
    return { ok: true, value: hash };
  },
};

// ---------------------------------------------------------------- heartbeat: empty

export const heartbeatCodec = {
  encode(): string {
    return '';
  },
  decode(payload: Uint8Array | string): Decoded<null> {
    const len = typeof payload === 'string' ? payload.length : payload.byteLength;
    return len === 0 ? { ok: true, value: null } : reject('unexpected-payload', 'heartbeat must be empty');
  },
};

// ---------------------------------------------------------------- JSON helpers

function parseJson(payload: Uint8Array | string, what: string): Decoded<unknown> {
  const text = asText(payload);
  if (!text.ok) return text;
  try {
    return { ok: true, value: JSON.parse(text.value) };
  } catch {
    return reject('bad-json', `${what} is not JSON`);
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

// ---------------------------------------------------------------- client/<address>

export interface ClientStats {
  precache: number;
  ondemand: number;
  snapshot_precache: number;
  snapshot_ondemand: number;
  /** The latest block for which this client's work was accepted. */
  block_rewarded?: string;
}

export type ClientMessage = { kind: 'stats'; stats: ClientStats } | { kind: 'error'; error: string };

export const clientCodec = {
  encode(msg: ClientMessage): string {
    return JSON.stringify(msg.kind === 'stats' ? msg.stats : { error: msg.error });
  },
  decode(payload: Uint8Array | string): Decoded<ClientMessage> {
    const parsed = parseJson(payload, 'client message');
    if (!parsed.ok) return parsed;
    const v = parsed.value;
    if (!isRecord(v)) return reject('bad-shape', 'client message must be a JSON object');
    if (typeof v.error === 'string') return { ok: true, value: { kind: 'error', error: v.error } };
    // The original server sends only the counters that exist for an address (a new volunteer
    // gets {"ondemand":1,"block_rewarded":…}; snapshots only after a payout): absent means 0.
    const stats: ClientStats = { precache: 0, ondemand: 0, snapshot_precache: 0, snapshot_ondemand: 0 };
    for (const key of ['precache', 'ondemand', 'snapshot_precache', 'snapshot_ondemand'] as const) {
      const count = v[key];
      if (count === undefined) continue;
      if (!isCount(count)) return reject('bad-shape', `client message field "${key}" must be a count`);
      stats[key] = count;
    }
    if (v.block_rewarded !== undefined && !isRootHex(v.block_rewarded)) {
      return reject('bad-shape', 'client message field "block_rewarded" must be a block hash');
    }
    if (typeof v.block_rewarded === 'string') stats.block_rewarded = v.block_rewarded;
    return { ok: true, value: { kind: 'stats', stats } };
  },
};

// ---------------------------------------------------------------- statistics

export interface PublicService {
  display: string;
  website: string;
  precache: number;
  ondemand: number;
}

export interface Statistics {
  services: {
    public: PublicService[];
    private: { count: number; precache: number; ondemand: number };
  };
  work: { precache: number; ondemand: number };
}

export const statisticsCodec = {
  encode(stats: Statistics): string {
    return JSON.stringify(stats);
  },
  decode(payload: Uint8Array | string): Decoded<Statistics> {
    const parsed = parseJson(payload, 'statistics');
    if (!parsed.ok) return parsed;
    const v = parsed.value;
    const bad = (why: string) => reject<Statistics>('bad-shape', `statistics ${why}`);
    if (!isRecord(v) || !isRecord(v.services) || !isRecord(v.work)) return bad('must have "services" and "work" objects');
    const { services, work } = v;
    if (!Array.isArray(services.public)) return bad('"services.public" must be a list');
    if (!isRecord(services.private)) return bad('"services.private" must be an object');
    const pub: PublicService[] = [];
    for (const s of services.public) {
      if (!isRecord(s) || typeof s.display !== 'string' || typeof s.website !== 'string' || !isCount(s.precache) || !isCount(s.ondemand)) {
        return bad('has a public service without display, website, precache and ondemand');
      }
      pub.push({ display: s.display, website: s.website, precache: s.precache, ondemand: s.ondemand });
    }
    const p = services.private;
    if (!isCount(p.count) || !isCount(p.precache) || !isCount(p.ondemand)) {
      return bad('"services.private" needs count, precache and ondemand');
    }
    if (!isCount(work.precache) || !isCount(work.ondemand)) return bad('"work" needs precache and ondemand counts');
    return {
      ok: true,
      value: {
        services: { public: pub, private: { count: p.count, precache: p.precache, ondemand: p.ondemand } },
        work: { precache: work.precache, ondemand: work.ondemand },
      },
    };
  },
};
