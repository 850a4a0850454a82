/**
 * The runtime globals pure code (src/pow, src/dpow) may use, for tsconfig.pure.json only.
 *
 * Pure code runs in a page, a Web Worker and Node alike, so it may only touch what all three
 * provide with the same meaning. The pure config therefore has lib ES2022 and no DOM, WebWorker
 * or Node types, and this file declares the few shared globals it needs: timers, console,
 * TextEncoder/TextDecoder, URL, crypto.getRandomValues, AbortController/AbortSignal,
 * performance.now and MessageChannel, plus the Event/EventTarget/DOMException base types that
 * @webgpu/types builds on (WebAssembly is in webassembly.d.ts, which the Node config shares).
 * Anything else (document, window, navigator, location, localStorage, Worker, process, Buffer,
 * node: modules) fails the typecheck; such things are handed in from the edges (src/pow-browser,
 * src/pow-node, src/app, src/cli), as the GPU object is. Add a member here only when browsers
 * and Node 20 both have it.
 */

/** Opaque: a number in browsers, a Timeout object in Node. */
interface TimerHandle {
  readonly __brand: 'TimerHandle';
}
declare function setTimeout(handler: (...args: any[]) => void, timeout?: number, ...args: any[]): TimerHandle;
declare function clearTimeout(handle: TimerHandle | undefined): void;
declare function setInterval(handler: (...args: any[]) => void, timeout?: number, ...args: any[]): TimerHandle;
declare function clearInterval(handle: TimerHandle | undefined): void;
declare function queueMicrotask(callback: () => void): void;

interface Console {
  debug(...data: unknown[]): void;
  error(...data: unknown[]): void;
  info(...data: unknown[]): void;
  log(...data: unknown[]): void;
  warn(...data: unknown[]): void;
}
declare var console: Console;

declare var performance: { now(): number };

interface Crypto {
  getRandomValues<T extends ArrayBufferView | null>(array: T): T;
}
declare var crypto: Crypto;

type BufferSource = ArrayBufferView<ArrayBuffer> | ArrayBuffer;

declare class TextEncoder {
  readonly encoding: string;
  encode(input?: string): Uint8Array<ArrayBuffer>;
}
declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean; ignoreBOM?: boolean });
  readonly encoding: string;
  readonly fatal: boolean;
  decode(input?: ArrayBufferView | ArrayBuffer, options?: { stream?: boolean }): string;
}

declare class URL {
  constructor(url: string | URL, base?: string | URL);
  hash: string;
  host: string;
  hostname: string;
  href: string;
  readonly origin: string;
  password: string;
  pathname: string;
  port: string;
  protocol: string;
  search: string;
  username: string;
  toString(): string;
}

interface Event {
  readonly type: string;
}
interface EventInit {
  bubbles?: boolean;
  cancelable?: boolean;
  composed?: boolean;
}
interface EventListener {
  (event: Event): void;
}
interface EventListenerObject {
  handleEvent(event: Event): void;
}
type EventListenerOrEventListenerObject = EventListener | EventListenerObject;
interface EventListenerOptions {
  capture?: boolean;
}
interface AddEventListenerOptions extends EventListenerOptions {
  once?: boolean;
  passive?: boolean;
  signal?: AbortSignal;
}
interface EventTarget {
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
  dispatchEvent(event: Event): boolean;
}

declare class DOMException extends Error {
  constructor(message?: string, name?: string);
  readonly code: number;
}

interface AbortSignal extends EventTarget {
  readonly aborted: boolean;
  readonly reason: unknown;
  throwIfAborted(): void;
}
declare var AbortSignal: {
  prototype: AbortSignal;
  abort(reason?: unknown): AbortSignal;
  /** Node 20.3+, like the engines field. */
  any(signals: Iterable<AbortSignal>): AbortSignal;
  timeout(milliseconds: number): AbortSignal;
};
declare class AbortController {
  readonly signal: AbortSignal;
  abort(reason?: unknown): void;
}

/** A macrotask hop (Node has had the global since 15). */
interface MessagePort {
  onmessage: ((event: { readonly data: unknown }) => void) | null;
  postMessage(message: unknown): void;
  close(): void;
}
declare class MessageChannel {
  readonly port1: MessagePort;
  readonly port2: MessagePort;
}
