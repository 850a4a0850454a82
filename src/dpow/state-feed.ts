/**
 * A state snapshot and its change notification: the one way views learn about the client.
 * The snapshot is built lazily and kept until the next change; listeners hear once per
 * microtask burst, so a message that touches ten fields costs one render.
 */
export class StateFeed<T> {
  readonly #build: () => T;
  readonly #listeners = new Set<(state: T) => void>();
  #snapshot: T | null = null;
  #queued = false;

  constructor(build: () => T) {
    this.#build = build;
  }

  get(): T {
    this.#snapshot ??= this.#build();
    return this.#snapshot;
  }

  subscribe(listener: (state: T) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Marks the state changed; listeners hear about it once the current burst of changes is over. */
  changed(): void {
    this.#snapshot = null;
    if (this.#queued || this.#listeners.size === 0) return;
    this.#queued = true;
    queueMicrotask(() => {
      this.#queued = false;
      const state = this.get();
      for (const listener of [...this.#listeners]) {
        try {
          listener(state);
        } catch {
          // A view's bug must not stop the worker.
        }
      }
    });
  }
}
