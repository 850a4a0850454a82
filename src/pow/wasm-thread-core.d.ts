/** Types for wasm-thread-core.js (plain JS so a Node worker needs no TypeScript loader). */
export interface ThreadRuntime {
  /** Feeds one message from the backend (init / search / stop). */
  handle(message: unknown): void;
}

/** Creates the search loop of one WASM thread; `post` sends messages back to the backend. */
export function createThreadRuntime(post: (message: unknown) => void): ThreadRuntime;
