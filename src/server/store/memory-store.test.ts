/** The shared store suite on the in-memory store, plus what is particular to it. */
import { describe, expect, it } from 'vitest';
import { MemoryStore } from './memory-store.ts';
import { describeDispatcherStore } from './store-suite.ts';
import type { ServiceRecord } from './store.ts';

const HASH = 'AB'.repeat(32);
const ADDR = 'nano_1111111111111111111111111111111111111111111111111111hifc8npp';

const service = (user: string, extra: Partial<ServiceRecord> = {}): ServiceRecord => ({
  user,
  apiKeyHash: 'h',
  display: user,
  website: `${user}.example`,
  public: true,
  precache: 0,
  ondemand: 0,
  rateLimit: 0,
  createdAt: 1,
  ...extra,
});

describeDispatcherStore('MemoryStore', (options) => new MemoryStore(options));

describe('MemoryStore', () => {
  it('hands out copies, so callers cannot change what is stored', async () => {
    const store = new MemoryStore();
    await store.addService(service('a'));
    const s = await store.getService('a');
    s!.ondemand = 99;
    expect((await store.getService('a'))!.ondemand).toBe(0);
    const c = await store.creditClient(ADDR, 'precache', HASH);
    c.precache = 42;
    expect((await store.getClient(ADDR))!.precache).toBe(1);
  });
});
