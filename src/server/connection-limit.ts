/**
 * How many connections (MQTT, and the service API's WebSockets) the network may hold open: at most `perSource` from one source and
 * at most `total` in all. A source is an IPv4 address or an IPv6 /64 (sourceKey), so one
 * subscriber cannot multiply its allowance by its 2^64 addresses.
 *
 * The operator's own processes are exempt: a caller on loopback that no proxy forwarded (the
 * dispatcher, a dashboard or worker on the same machine). They are counted in `open` but never
 * refused, so strangers who fill the total cannot lock the dispatcher out. Anything a proxy
 * forwarded, the shipped nginx included, is counted under the address it names.
 *
 * The table holds one entry per source with a connection open, so it is bounded by `total`.
 */
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { callerAddress, isLoopback, isProxied, sourceKey, type TrustedProxy } from './http/request-guard.ts';

export interface ConnectionCaps {
  /** Connections one source (IPv4 address, IPv6 /64) may hold open. */
  perSource: number;
  /** Connections all sources together may hold open, exempt ones not counted. */
  total: number;
}

/**
 * Generous on purpose: a NAT'd office, a university behind one address or a GPU farm running a
 * worker per GPU all share one source, and the per-source cap must not lock them out. The total
 * is what bounds the memory (docs/operations.md, Hardening, with the trade-off).
 */
export const DEFAULT_CONNECTION_CAPS: ConnectionCaps = { perSource: 256, total: 10_000 };

export type RefusalReason = 'per-source' | 'total';

export type Admission =
  /** `operator`: the operator's own connection (exempt), which no limit past the gate refuses either. */
  | { ok: true; source: string; operator: boolean; release(): void }
  | { ok: false; source: string; reason: RefusalReason; why: string };

export interface ConnectionCounters {
  admitted: number;
  refused: Record<RefusalReason, number>;
}

export class ConnectionLimit {
  readonly caps: ConnectionCaps;
  readonly counters: ConnectionCounters = { admitted: 0, refused: { 'per-source': 0, total: 0 } };
  readonly #bySource = new Map<string, number>();
  #counted = 0;
  #exempt = 0;

  constructor(caps: Partial<ConnectionCaps> = {}) {
    this.caps = { perSource: caps.perSource ?? DEFAULT_CONNECTION_CAPS.perSource, total: caps.total ?? DEFAULT_CONNECTION_CAPS.total };
  }

  /**
   * Admits a connection from `address` (an IP address, possibly from X-Forwarded-For) or says
   * why not. `exempt` marks the operator's own: admitted whatever the counts.
   */
  admit(address: string, exempt = false): Admission {
    const source = sourceKey(address);
    if (exempt) {
      this.#exempt++;
      this.counters.admitted++;
      return { ok: true, source, operator: true, release: once(() => this.#exempt--) };
    }
    const held = this.#bySource.get(source) ?? 0;
    if (held >= this.caps.perSource) return this.#refuse(source, 'per-source', `${held} connections open from ${source}, the most one source may hold`);
    if (this.#counted >= this.caps.total) return this.#refuse(source, 'total', `${this.#counted} connections open, the most this server holds`);
    this.#bySource.set(source, held + 1);
    this.#counted++;
    this.counters.admitted++;
    return {
      ok: true,
      source,
      operator: false,
      release: once(() => {
        this.#counted--;
        const left = this.#bySource.get(source)! - 1;
        if (left === 0) this.#bySource.delete(source);
        else this.#bySource.set(source, left);
      }),
    };
  }

  /** Connections open now, exempt ones included. */
  get open(): number {
    return this.#counted + this.#exempt;
  }

  /** Distinct sources with a counted connection open now. */
  get sources(): number {
    return this.#bySource.size;
  }

  #refuse(source: string, reason: RefusalReason, why: string): Admission {
    this.counters.refused[reason]++;
    return { ok: false, source, reason, why };
  }
}

/** `fn` the first time only: a connection is released once however many close events it sees. */
function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}

/**
 * The operator's own processes (the dispatcher, a local dashboard or worker) connect from
 * 127.0.0.1 or ::1 and are counted but never refused. Any other address, the rest of 127/8
 * included, is a stranger's: a test or bench binds 127.0.0.2 to be one without leaving loopback.
 */
export function isOperatorHost(address: string | undefined): boolean {
  return address === '127.0.0.1' || address === '::1' || address === '::ffff:127.0.0.1';
}

const REFUSAL_STATUS = { 'per-source': 429, total: 503 } as const;

/**
 * Admits a WebSocket upgrade by its caller (behind the shipped nginx, or a proxy `trusted`
 * names, the last X-Forwarded-For hop; the operator's own, unproxied on 127.0.0.1 or ::1, never
 * refused). Over a cap it answers 429 (the source's) or 503 (the total) and closes the socket
 * before any WebSocket exists; admitted, its place is given back when the socket closes.
 */
export function admitUpgrade(admit: (address: string, exempt: boolean) => Admission, req: IncomingMessage, socket: Duplex, trusted: TrustedProxy = isLoopback): Admission {
  const admission = admit(callerAddress(req, trusted), isOperatorHost(req.socket.remoteAddress) && !isProxied(req));
  if (!admission.ok) {
    const status = REFUSAL_STATUS[admission.reason];
    const text = `${admission.why}\n`;
    socket.once('finish', () => socket.destroy());
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nRetry-After: 10\r\n` +
        `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
    );
    return admission;
  }
  socket.once('close', admission.release);
  return admission;
}
