/** Starts a server listening; resolves with its origin, `http://host:port` (IPv6 in brackets). */
import type { AddressInfo, Server } from 'node:net';

export async function listen(server: Server, port: number, host: string): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return `http://${urlHost(address.address)}:${address.port}`;
}

/** An address as the host of a URL: an IPv6 one in brackets. */
export function urlHost(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}
