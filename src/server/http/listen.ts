/** Starts an http.Server listening; resolves with its origin, `http://host:port` (IPv6 in brackets). */
import type http from 'node:http';
import type { AddressInfo } from 'node:net';

export async function listen(server: http.Server, port: number, host: string): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return `http://${address.address.includes(':') ? `[${address.address}]` : address.address}:${address.port}`;
}
