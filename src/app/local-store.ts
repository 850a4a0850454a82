/**
 * A small key-value store for what the page keeps across reloads (the history, per payout
 * address): IndexedDB through idb where the browser has it, and a Map for this page's life where
 * it has not, or where IndexedDB fails (a private window, storage turned off, the disk full). It
 * never throws: on a failure it carries on in memory with what it had read or written, and says
 * why in `problem`, which the page shows as a short note.
 */
import { openDB, type IDBPDatabase } from 'idb';

export interface LocalStore<T> {
  /** Why records last only as long as this page (a note for the volunteer), or null. */
  readonly problem: string | null;
  get(key: string): Promise<T | undefined>;
  /**
   * Reads, changes and writes one record in one transaction, so two tabs writing the same record
   * never lose each other's change. Resolves with what was written.
   */
  update(key: string, change: (current: T | undefined) => T): Promise<T>;
}

const STORE = 'records';
/** An IndexedDB that does not open by then (some private modes hang) counts as missing. */
const OPEN_TIMEOUT_MS = 5_000;

class MemoryStore<T> implements LocalStore<T> {
  readonly #records: Map<string, T>;

  constructor(
    readonly problem: string,
    records = new Map<string, T>(),
  ) {
    this.#records = records;
  }

  async get(key: string): Promise<T | undefined> {
    return this.#records.get(key);
  }

  async update(key: string, change: (current: T | undefined) => T): Promise<T> {
    const next = change(this.#records.get(key));
    this.#records.set(key, next);
    return next;
  }
}

const describe = (err: unknown) => (err instanceof Error ? `${err.name}: ${err.message}` : String(err));

class IndexedDbStore<T> implements LocalStore<T> {
  /** Every record read or written, so a fall-back to memory keeps them. */
  readonly #seen = new Map<string, T>();
  #memory: MemoryStore<T> | null = null;

  readonly #db: IDBPDatabase;

  constructor(db: IDBPDatabase) {
    this.#db = db;
  }

  get problem(): string | null {
    return this.#memory?.problem ?? null;
  }

  async get(key: string): Promise<T | undefined> {
    if (this.#memory) return this.#memory.get(key);
    try {
      const value = (await this.#db.get(STORE, key)) as T | undefined;
      if (value !== undefined) this.#seen.set(key, value);
      return value;
    } catch (err) {
      return this.#fail(err).get(key);
    }
  }

  async update(key: string, change: (current: T | undefined) => T): Promise<T> {
    if (this.#memory) return this.#memory.update(key, change);
    try {
      const tx = this.#db.transaction(STORE, 'readwrite');
      const next = change((await tx.store.get(key)) as T | undefined);
      await tx.store.put(next, key);
      await tx.done;
      this.#seen.set(key, next);
      return next;
    } catch (err) {
      return this.#fail(err).update(key, change);
    }
  }

  #fail(err: unknown): MemoryStore<T> {
    this.#memory ??= new MemoryStore(`IndexedDB failed (${describe(err)})`, this.#seen);
    return this.#memory;
  }
}

/**
 * Opens (creating it the first time) the database `name` with one object store. Resolves with a
 * memory store, and the reason, where IndexedDB is missing or will not open.
 */
export async function openLocalStore<T>(name: string): Promise<LocalStore<T>> {
  try {
    if (typeof indexedDB === 'undefined') return new MemoryStore<T>('this browser has no IndexedDB');
  } catch (err) {
    return new MemoryStore<T>(`IndexedDB is not available (${describe(err)})`); // a getter that throws
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const opening: Promise<IDBPDatabase> = openDB(name, 1, {
      upgrade: (upgrading) => void upgrading.createObjectStore(STORE),
      // A tab of a later version wants to upgrade the database: let it.
      blocking: () => void opening.then((open) => open.close()),
    });
    const db = await Promise.race([
      opening,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`it did not open within ${OPEN_TIMEOUT_MS / 1000} s`)), OPEN_TIMEOUT_MS);
      }),
    ]);
    return new IndexedDbStore<T>(db);
  } catch (err) {
    return new MemoryStore<T>(`IndexedDB is not available (${describe(err)})`);
  } finally {
    clearTimeout(timer);
  }
}
