/**
 * The kernel tuner's cache in the browser: an IndexedDB object store (available in the engine's
 * dedicated worker, where localStorage is not), one record per tuning key.
 */
import type { TuningResult, TuningStore } from '../pow/tuner.ts';

const DB = 'dpow-web';
const STORE = 'kernel-tuning';

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error ?? new Error('IndexedDB open failed'));
  });
}

function run<T>(mode: IDBTransactionMode, body: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  return open().then(
    (db) =>
      new Promise<T>((resolve, reject) => {
        const request = body(db.transaction(STORE, mode).objectStore(STORE));
        request.onsuccess = () => {
          resolve(request.result);
          db.close();
        };
        request.onerror = () => {
          reject(request.error ?? new Error('IndexedDB request failed'));
          db.close();
        };
      }),
  );
}

export function indexedDbTuningStore(): TuningStore {
  return {
    load: async (key) => ((await run('readonly', (s) => s.get(key))) as TuningResult | undefined) ?? null,
    save: async (key, result) => {
      await run('readwrite', (s) => s.put(result, key));
    },
  };
}
