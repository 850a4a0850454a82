/** Test-only: a registered service with a fresh API key, as `dpow-web service add` would make it. */
import { generateApiKey, hashApiKey } from '../server/http/api-keys.ts';
import type { DispatcherStore, ServiceRecord } from '../server/store/store.ts';

export async function addTestService(
  store: DispatcherStore,
  fields: Partial<Omit<ServiceRecord, 'apiKeyHash'>> = {},
  /** Cheaper scrypt parameters keep key checks fast in tests that make many requests. */
  hashParams?: Parameters<typeof hashApiKey>[1],
): Promise<{ user: string; key: string }> {
  const key = generateApiKey();
  const user = fields.user ?? 'wallet';
  await store.addService({
    display: 'Wallet',
    website: 'wallet.example',
    public: true,
    precache: 0,
    ondemand: 0,
    rateLimit: 0,
    createdAt: Date.now(),
    ...fields,
    user,
    apiKeyHash: await hashApiKey(key, hashParams),
  });
  return { user, key };
}
