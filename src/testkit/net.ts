/** Test helper, never imported by the product: loopback ports for servers that tests start. */
import { connect, createServer } from 'node:net';
import { readFileSync } from 'node:fs';

/** A TCP port on 127.0.0.1 that was free a moment ago (the OS picked it). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/**
 * A loopback address other than 127.0.0.1 (127.0.0.2, 127.0.0.3, …): a client bound to it
 * (`localAddress`) reaches a server on 127.0.0.1 as a stranger would, and no packet leaves
 * loopback. Linux routes the whole of 127/8 to lo.
 */
export function strangerAddress(n = 0): string {
  return `127.0.0.${2 + n}`;
}

/**
 * The local addresses TCP sockets listen on at `port`, from /proc/net/tcp and tcp6 (Linux): how a
 * test checks that a server binds loopback only without sending anything to another address.
 */
export function listeningAddresses(port: number): string[] {
  const found: string[] = [];
  for (const [file, v6] of [['/proc/net/tcp', false], ['/proc/net/tcp6', true]] as const) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (state !== '0A' || !local) continue; // 0A: LISTEN
      const [hex, portHex] = local.split(':');
      if (parseInt(portHex, 16) !== port) continue;
      found.push(v6 ? procIpv6(hex) : procIpv4(hex));
    }
  }
  return found;
}

/** /proc/net/tcp writes an IPv4 address as one little-endian 32-bit word in hex. */
function procIpv4(hex: string): string {
  return [3, 2, 1, 0].map((i) => parseInt(hex.slice(i * 2, i * 2 + 2), 16)).join('.');
}

/** …and an IPv6 address as four such words; written here in full, without :: shortening. */
function procIpv6(hex: string): string {
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) for (const i of [3, 2, 1, 0]) bytes.push(parseInt(hex.slice(w * 8 + i * 2, w * 8 + i * 2 + 2), 16));
  const groups: string[] = [];
  for (let g = 0; g < 8; g++) groups.push(((bytes[2 * g] << 8) | bytes[2 * g + 1]).toString(16));
  return groups.join(':');
}

/** True when something accepts a TCP connection on host:port within a second. */
export function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
    socket.setTimeout(1000, () => (socket.destroy(), resolve(false)));
  });
}

/**
 * A port on 127.0.0.1 that is free now and below the kernel's ephemeral range (32768 and up on
 * Linux), so no outgoing connection can be given it in the meantime: for a server that binds it
 * only after a long start (an Erlang VM opens many connections while it boots).
 */
export async function freeQuietPort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const s = createServer();
    const ok = await new Promise<boolean>((resolve) => {
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (ok) {
      await new Promise<void>((resolve) => s.close(() => resolve()));
      return port;
    }
  }
}
