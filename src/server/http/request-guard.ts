/**
 * Who is asking, for the endpoints that must not be driven from another web page (the work RPC,
 * /metrics, and any operator endpoint added later):
 *
 * - `Host` must be a name this server answers to: an IP address (no DNS involved, so no DNS
 *   rebinding; a Nano node's work_peers even sends a bare `::1`), `localhost`, the `--host` it
 *   binds, or a public name it is given (`--public-name`, the name a proxy such as the shipped
 *   nginx passes on). A page on `attacker.example` whose name was rebound to 127.0.0.1 sends
 *   `Host: attacker.example`, and is refused.
 * - A request that carries `Origin` (every browser POST, and a cross-origin fetch) must come from
 *   this server's own origin; `Sec-Fetch-Site` (browsers since 2020) must say the same. Nodes,
 *   wallets and curl send neither, and pass.
 *
 * The guard answers nothing itself: it returns why a request is refused, or undefined.
 */
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

const LOOPBACK_V4 = /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/;

/** True for 127.0.0.0/8 and ::1 (also v4-mapped). */
export function isLoopback(address: string | undefined): boolean {
  return address === '::1' || (address !== undefined && LOOPBACK_V4.test(address));
}

/** A reverse proxy on loopback makes every caller look local; these headers give it away. */
export function isProxied(req: IncomingMessage): boolean {
  return ['forwarded', 'x-forwarded-for', 'x-real-ip'].some((h) => req.headers[h] !== undefined);
}

/** Whether a peer is a proxy whose X-Forwarded-For this server believes. */
export type TrustedProxy = (peer: string) => boolean;

/**
 * Loopback, and the addresses given: the proxies of a deployment whose TLS proxy runs on another
 * host (deploy/rabbitmq: nginx in front of each node's MQTT front). A bad address throws.
 */
export function trustedProxies(addresses: readonly string[]): TrustedProxy {
  const trusted = new Set(addresses.map((a) => {
    if (!ipaddr.isValid(a)) throw new Error(`a trusted proxy must be an IP address, got "${a}"`);
    return ipaddr.process(a).toString();
  }));
  return (peer) => isLoopback(peer) || (ipaddr.isValid(peer) && trusted.has(ipaddr.process(peer).toString()));
}

/**
 * The caller's address as far as this server can trust it: the socket's peer, or, when the peer
 * is a trusted proxy (by default one on loopback, the shipped nginx), the address that proxy
 * appended last to X-Forwarded-For. Anyone else's X-Forwarded-For is ignored: it is theirs to forge.
 */
export function callerAddress(req: IncomingMessage, trusted: TrustedProxy = isLoopback): string {
  const peer = req.socket.remoteAddress ?? '?';
  const forwarded = req.headers['x-forwarded-for'];
  if (!trusted(peer) || forwarded === undefined) return peer;
  const last = (Array.isArray(forwarded) ? forwarded.join(',') : forwarded).split(',').pop()!.trim();
  return ipaddr.isValid(last) ? last : peer;
}

/**
 * The key a caller's failures are counted under: its IPv4 address, or its IPv6 /64 (one
 * subscriber's allocation; counting single v6 addresses would give an attacker 2^64 allowances).
 */
export function sourceKey(address: string): string {
  if (!ipaddr.isValid(address)) return address;
  const ip = ipaddr.process(address);
  if (ip.kind() === 'ipv4') return ip.toString();
  const parts = (ip as ipaddr.IPv6).parts.slice(0, 4).map((p) => p.toString(16));
  return `${parts.join(':')}::/64`;
}

export interface RequestGuardOptions {
  /** The address or name the server binds (`--host`). */
  host?: string;
  /** Names the server is reached by besides its addresses, e.g. behind a TLS proxy. */
  publicNames?: readonly string[];
}

/** Why a request was refused: a counted reason and a line for the log. */
export interface GuardRefusal {
  reason: 'foreign-host' | 'foreign-origin';
  detail: string;
}

export type RequestGuard = (req: IncomingMessage) => GuardRefusal | undefined;

const WILDCARDS = new Set(['0.0.0.0', '::', '']);

/** `host[:port]` or `[v6][:port]` (or a bare v6, as the Nano node sends) to its lower-case name. */
function hostName(hostHeader: string): string {
  const h = hostHeader.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') === -1 ? undefined : h.indexOf(']'));
  if (isIP(h) === 6) return h;
  const colon = h.lastIndexOf(':');
  return colon === -1 ? h : h.slice(0, colon);
}

export function createRequestGuard(options: RequestGuardOptions = {}): RequestGuard {
  const names = new Set<string>(['localhost']);
  const host = options.host?.toLowerCase();
  if (host !== undefined && !WILDCARDS.has(host)) names.add(host);
  for (const name of options.publicNames ?? []) names.add(name.toLowerCase());
  const known = (name: string) => names.has(name) || isIP(name) !== 0 || name.endsWith('.localhost');

  return (req) => {
    const hostHeader = req.headers.host;
    // HTTP/1.0 without Host: no browser sends that, so it is no page's request.
    if (hostHeader !== undefined && !known(hostName(hostHeader))) {
      return { reason: 'foreign-host', detail: `Host ${hostHeader}` };
    }
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') {
      return { reason: 'foreign-origin', detail: `Sec-Fetch-Site ${site}` };
    }
    const origin = req.headers.origin;
    if (origin !== undefined) {
      let originHost: string | undefined;
      try {
        originHost = new URL(origin).host;
      } catch {
        // "null" (a sandboxed frame, a file:// page) or garbage: not this server's page.
      }
      if (originHost === undefined || hostHeader === undefined || originHost !== hostHeader.trim().toLowerCase()) {
        return { reason: 'foreign-origin', detail: `Origin ${origin}` };
      }
    }
    return undefined;
  };
}
