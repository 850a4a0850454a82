/**
 * The loopback WebSocket server a simulated node listens on (qlc-sim.ts, nano-sim.ts): plain HTTP
 * is refused, each connection is handed to the node.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

/** Largest frame a simulated node reads (a subscription with every account fits many times; the real nodes take far less). */
export const MAX_FRAME_BYTES = 1024 * 1024;

export class SimSocketServer {
  readonly #http: Server;
  readonly #wss: WebSocketServer;
  #port = 0;
  #closing: Promise<void> | undefined;

  constructor(onConnection: (socket: WebSocket) => void) {
    this.#http = createServer((_req, res) => res.writeHead(400).end('websocket only'));
    this.#wss = new WebSocketServer({ server: this.#http, maxPayload: MAX_FRAME_BYTES });
    this.#wss.on('connection', onConnection);
  }

  /** Resolves once it listens (port 0: a free one, read back by `port`). */
  async listen(options: { port?: number; host?: string }): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#http.once('error', reject);
      this.#http.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
    });
    this.#port = (this.#http.address() as AddressInfo).port;
  }

  get url(): string {
    return `ws://127.0.0.1:${this.#port}`;
  }

  get port(): number {
    return this.#port;
  }

  /** Ends every connection, then stops listening. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      for (const socket of this.#wss.clients) socket.terminate();
      await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
      await new Promise<void>((resolve) => this.#http.close(() => resolve()));
    })();
    return this.#closing;
  }
}

/** Frames a simulated node keeps for tests to read: the latest, so a long demo run does not grow. */
export const KEPT_FRAMES = 1000;

/** Appends `frame` to `frames`, dropping the oldest past KEPT_FRAMES. */
export function keepFrame(frames: unknown[], frame: unknown): void {
  frames.push(frame);
  if (frames.length > KEPT_FRAMES) frames.splice(0, frames.length - KEPT_FRAMES);
}
