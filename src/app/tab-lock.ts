/**
 * One tab computes: the tab that works holds a Web Lock (navigator.locks) named for the page. A
 * second tab that wants work finds the lock taken and waits in the lock's queue, so it takes over
 * by itself when the first tab stops or closes; "Take over" steals the lock, and the tab it was
 * stolen from goes back to waiting in the queue. Browsers without Web Locks compute in every tab
 * (state 'unsupported').
 */
import { signal, type ReadonlySignal } from '@preact/signals';

export type TabLockState =
  /** Not wanted. */
  | 'idle'
  /** This tab computes. */
  | 'held'
  /** Another tab of this browser computes; this one waits for it. */
  | 'waiting'
  /** No Web Locks here: nothing stops two tabs computing. */
  | 'unsupported';

/** The part of a LockManager used here. */
export type Locks = Pick<LockManager, 'request'>;

export const COMPUTE_LOCK = 'dpow-web.compute';

export class TabLock {
  readonly #current = signal<TabLockState>('idle');
  /** The request of the current want(); a new object per request, so late callbacks know they are stale. */
  #attempt: { abort: AbortController; release: () => void } | null = null;

  readonly #locks: Locks | undefined;
  readonly #name: string;

  constructor(locks: Locks | undefined, name = COMPUTE_LOCK) {
    this.#locks = locks;
    this.#name = name;
  }

  get state(): ReadonlySignal<TabLockState> {
    return this.#current;
  }

  /** Asks to compute: held at once when no other tab computes, else waiting in line. */
  want(): void {
    if (!this.#locks) {
      this.#current.value = 'unsupported';
      return;
    }
    if (this.#attempt) return;
    const attempt = this.#begin();
    void this.#locks
      .request(this.#name, { ifAvailable: true }, (lock) => {
        if (this.#attempt !== attempt) return undefined;
        if (lock) return this.#hold(attempt);
        // Taken: another tab computes. Queue for it (outside this callback, which must end).
        this.#current.value = 'waiting';
        queueMicrotask(() => this.#queue(attempt));
        return undefined;
      })
      .catch((err: unknown) => this.#lost(attempt, err));
  }

  /** Stops wanting: the lock goes to the next tab in line. */
  release(): void {
    const attempt = this.#attempt;
    this.#attempt = null;
    attempt?.abort.abort();
    attempt?.release();
    if (this.#current.value !== 'unsupported') this.#current.value = 'idle';
  }

  /** Takes the lock from the tab that holds it; that tab goes back to waiting. */
  takeOver(): void {
    if (!this.#locks || this.#current.value !== 'waiting') return;
    this.#attempt?.abort.abort();
    const attempt = this.#begin();
    void this.#locks
      .request(this.#name, { steal: true }, () => this.#hold(attempt))
      .catch((err: unknown) => this.#lost(attempt, err));
  }

  #begin(): { abort: AbortController; release: () => void } {
    const attempt = { abort: new AbortController(), release: () => undefined };
    this.#attempt = attempt;
    return attempt;
  }

  #queue(attempt: { abort: AbortController; release: () => void }): void {
    if (this.#attempt !== attempt || !this.#locks) return;
    void this.#locks
      .request(this.#name, { signal: attempt.abort.signal }, () => this.#hold(attempt))
      .catch((err: unknown) => this.#lost(attempt, err));
  }

  /** The lock is ours until release(); the returned promise is what holds it. */
  #hold(attempt: { abort: AbortController; release: () => void }): Promise<void> | undefined {
    if (this.#attempt !== attempt) return undefined;
    this.#current.value = 'held';
    return new Promise<void>((resolve) => {
      attempt.release = resolve;
    });
  }

  /**
   * A request ended in an error: our own abort (release, take-over) is not news; a steal by
   * another tab is, and this tab waits in line again.
   */
  #lost(attempt: { abort: AbortController; release: () => void }, err: unknown): void {
    if (this.#attempt !== attempt || attempt.abort.signal.aborted) return;
    this.#attempt = null;
    if ((err as { name?: string })?.name === 'AbortError') {
      this.#current.value = 'waiting';
      const again = this.#begin();
      this.#queue(again);
      return;
    }
    // Web Locks refused (an opaque origin, a sandboxed frame): compute as if there were none.
    this.#current.value = 'unsupported';
  }
}
