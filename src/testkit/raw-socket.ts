/** Test helper, never imported by the product: a bare WebSocket to a test node. */
import WebSocket from 'ws';

/**
 * Opens a plain WebSocket (for frames no feed would send) and collects every reply, parsed as
 * JSON. It is terminated through `cleanups` (cleanupsAfterEach).
 */
export async function openRawSocket(url: string, cleanups: (() => unknown)[]): Promise<{ ws: WebSocket; replies: unknown[] }> {
  const ws = new WebSocket(url);
  cleanups.push(() => ws.terminate());
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const replies: unknown[] = [];
  ws.on('message', (d) => replies.push(JSON.parse(d.toString())));
  return { ws, replies };
}
