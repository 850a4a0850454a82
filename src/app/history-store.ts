/**
 * Where the history lives: one record per payout address in this browser's IndexedDB
 * (local-store.ts), in memory for this page's life where that is not possible.
 */
import { emptyHistory, asHistory, record, type AddressHistory, type HistoryDelta } from './history.ts';
import { openLocalStore, type LocalStore } from './local-store.ts';

export const HISTORY_DATABASE = 'dpow-web-history';

export interface HistoryStore {
  /** Why the history will not survive a reload (a note for the volunteer), or null. */
  readonly problem: string | null;
  load(address: string): Promise<AddressHistory>;
  /** Counts `delta` at `at` for `address`; resolves with the address's history as stored. */
  add(address: string, at: number, delta: HistoryDelta): Promise<AddressHistory>;
}

export function historyStore(records: LocalStore<unknown>): HistoryStore {
  // A record that is not a history (written by a later version, or corrupt) starts afresh.
  const read = (address: string, value: unknown) => asHistory(value, address) ?? emptyHistory(address);
  return {
    get problem() {
      return records.problem;
    },
    load: async (address) => read(address, await records.get(address)),
    add: async (address, at, delta) =>
      (await records.update(address, (current) => record(read(address, current), at, delta))) as AddressHistory,
  };
}

export async function openHistoryStore(): Promise<HistoryStore> {
  return historyStore(await openLocalStore<unknown>(HISTORY_DATABASE));
}
