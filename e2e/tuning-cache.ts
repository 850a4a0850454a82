/**
 * The page's kernel-tuning cache (IndexedDB dpow-web / kernel-tuning, src/pow-browser/tuning-store.ts)
 * as the browser tests read it: Playwright's specs and the engine specs (e2e-engines/) alike.
 */

export interface StoredTuning {
  /** The tuner's cache key (src/pow/tuner.ts tuningKey), parsed. */
  key: { vendor: string; architecture: string; device: string; description: string; fallback: boolean; featureLevel: string; runtime: string; family: number };
  variant: string;
  rate: number;
  at: string;
  table: { variant: string; rate: number }[];
}

export interface TuningCacheRow {
  key: string;
  value: Record<string, unknown>;
}

/** Runs in the page (hand it to the driver's evaluate): every entry, key as stored. */
export async function readTuningCache(): Promise<TuningCacheRow[]> {
  // Opening a database that is not there would create it without its store: look first.
  if (!(await indexedDB.databases()).some((d) => d.name === 'dpow-web')) return [];
  const db = await new Promise<IDBDatabase>((resolve, reject) => {
    const request = indexedDB.open('dpow-web');
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  try {
    if (!db.objectStoreNames.contains('kernel-tuning')) return [];
    const store = db.transaction('kernel-tuning', 'readonly').objectStore('kernel-tuning');
    const read = <T,>(request: IDBRequest<T>) =>
      new Promise<T>((resolve, reject) => {
        request.onsuccess = () => resolve(request.result);
        request.onerror = () => reject(request.error);
      });
    const [keys, values] = await Promise.all([read(store.getAllKeys()), read(store.getAll())]);
    return keys.map((key, i) => ({ key: String(key), value: values[i] as Record<string, unknown> }));
  } finally {
    db.close();
  }
}

/** The rows readTuningCache gave, with their keys parsed. */
export function parseTuningCache(rows: TuningCacheRow[]): StoredTuning[] {
  return rows.map(({ key, value }) => ({ ...(value as Omit<StoredTuning, 'key'>), key: JSON.parse(key) }));
}
