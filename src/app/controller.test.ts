import { describe, expect, it } from 'vitest';
import { DEFAULT_DEPLOYMENT } from '../dpow/deployment.ts';
import { encodeAddress } from '../dpow/address.ts';
import type { ClientSettings, ClientState, PauseReason, WorkerClient } from '../dpow/state.ts';
import { AppController, HISTORY_SAMPLES, idleState } from './controller.ts';
import { STORAGE_KEY } from './settings.ts';
import { breakChecksum } from '../testkit/address.ts';

const ADDRESS = encodeAddress('22'.repeat(32));

/** A recording stand-in for the DPoW client: the controller's commands and state flow only. */
class RecordingClient implements WorkerClient {
  starts: ClientSettings[] = [];
  stops = 0;
  failNextStart: string | null = null;
  private state: ClientState = idleState();
  private listeners = new Set<(s: ClientState) => void>();
  getState() {
    return this.state;
  }
  subscribe(listener: (s: ClientState) => void) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  async start(settings: ClientSettings) {
    if (this.failNextStart) {
      const why = this.failNextStart;
      this.failNextStart = null;
      throw new Error(why);
    }
    this.starts.push(settings);
    this.emit({ connection: 'connecting' });
  }
  async stop() {
    this.stops++;
    this.emit({ connection: 'stopped' });
  }
  pauses: (PauseReason | null)[] = [];
  pause(reason: PauseReason | null) {
    this.pauses.push(reason);
    this.emit({ paused: reason });
  }
  emit(patch: Partial<ClientState>) {
    this.state = { ...this.state, ...patch };
    for (const l of this.listeners) l(this.state);
  }
}

function memoryStorage() {
  const data = new Map<string, string>();
  return {
    getItem: (k: string) => data.get(k) ?? null,
    setItem: (k: string, v: string) => void data.set(k, v),
    removeItem: (k: string) => void data.delete(k),
    data,
  } as unknown as Storage & { data: Map<string, string> };
}

function make(pageUrl = 'https://dpow.example/', storage = memoryStorage()) {
  const client = new RecordingClient();
  let created = 0;
  /** The engine's setKernel calls, each with how many client starts came before it. */
  const kernels: { variant: string | null; afterStarts: number }[] = [];
  const app = new AppController({
    config: DEFAULT_DEPLOYMENT,
    pageUrl,
    storage,
    hardwareConcurrency: 4,
    createClient: () => {
      created++;
      return client;
    },
    setKernel: async (variant) => void kernels.push({ variant, afterStarts: client.starts.length }),
  });
  return { app, client, storage, created: () => created, kernels };
}

describe('AppController', () => {
  it('refuses to start with an invalid address and says why, without creating the client', async () => {
    const { app, created } = make();
    app.edit({ address: breakChecksum(ADDRESS) });
    expect(await app.start()).toBe(false);
    expect(app.startError.value).toMatch(/checksum/);
    expect(app.wanted.value).toBe(false);
    expect(created()).toBe(0);
  });

  it('starts the client with resolved settings, saves them and mirrors its state', async () => {
    const { app, client, storage } = make('https://dpow.example/app/');
    app.edit({ address: ADDRESS, backend: 'wasm' });
    expect(await app.start()).toBe(true);
    expect(client.starts[0]).toMatchObject({ brokerUrl: 'wss://dpow.example/mqtt', address: ADDRESS, backend: 'wasm', threads: 3 });
    expect(JSON.parse(storage.data.get(STORAGE_KEY)!)).toMatchObject({ address: ADDRESS, backend: 'wasm' });
    expect(app.state.value.connection).toBe('connecting');
    client.emit({ connection: 'online', hashrate: 1234 });
    expect(app.state.value.hashrate).toBe(1234);
    await app.stop();
    expect(app.wanted.value).toBe(false);
    expect(app.state.value.connection).toBe('stopped');
  });

  it('shows a failed start and drops the intent to work', async () => {
    const { app, client } = make();
    app.edit({ address: ADDRESS });
    client.failNextStart = 'broker URL must be ws://';
    expect(await app.start()).toBe(false);
    expect(app.startError.value).toBe('broker URL must be ws://');
    expect(app.wanted.value).toBe(false);
  });

  it('restarts a client that stopped on failure when the network returns, but not one the volunteer stopped', async () => {
    const { app, client } = make();
    app.edit({ address: ADDRESS });
    await app.start();
    app.networkOffline();
    expect(app.online.value).toBe(false);
    client.emit({ connection: 'stopped', error: 'connection refused' });
    await app.networkOnline();
    expect(client.starts).toHaveLength(2);
    await app.stop();
    await app.networkOnline();
    expect(client.starts).toHaveLength(2);
  });

  it('applies new settings by restarting only while working', async () => {
    const { app, client } = make();
    await app.apply({ ...app.settings.value, address: ADDRESS });
    expect(client.starts).toHaveLength(0);
    await app.start();
    await app.apply({ ...app.settings.value, work: 'precache' });
    expect(client.stops).toBe(1);
    expect(client.starts.map((s) => s.work)).toEqual(['any', 'precache']);
  });

  it('samples the hashrate once per tick while working, keeping a bounded window', async () => {
    const { app, client } = make();
    app.tick();
    expect(app.history.value).toEqual([0]);
    app.edit({ address: ADDRESS });
    await app.start();
    client.emit({ connection: 'online', hashrate: 5e6 });
    for (let i = 0; i < HISTORY_SAMPLES + 10; i++) app.tick(1000 * i);
    expect(app.history.value).toHaveLength(HISTORY_SAMPLES);
    expect(app.history.value.at(-1)).toBe(5e6);
    expect(app.now.value).toBe(1000 * (HISTORY_SAMPLES + 9));
  });

  it('remembers working across a reload until the volunteer stops', async () => {
    const storage = memoryStorage();
    const first = make('https://dpow.example/', storage);
    expect(first.app.shouldResume()).toBe(false);
    first.app.edit({ address: ADDRESS });
    await first.app.start();
    const second = make('https://dpow.example/', storage);
    expect(second.app.shouldResume()).toBe(true);
    await second.app.start();
    await second.app.stop();
    expect(make('https://dpow.example/', storage).app.shouldResume()).toBe(false);
  });

  it('pins the kernel setting in the engine before every start, Automatic as null', async () => {
    const { app, client, kernels, storage } = make();
    app.edit({ address: ADDRESS });
    await app.start();
    expect(kernels).toEqual([{ variant: null, afterStarts: 0 }]);
    await app.apply({ ...app.settings.value, kernel: 'plain-n8-w256' });
    expect(client.stops).toBe(1);
    expect(kernels.at(-1)).toEqual({ variant: 'plain-n8-w256', afterStarts: 1 });
    expect(JSON.parse(storage.data.get(STORAGE_KEY)!).kernel).toBe('plain-n8-w256');
    // Persisted: the next page load starts with it.
    const next = make('https://dpow.example/', storage);
    expect(next.app.settings.value.kernel).toBe('plain-n8-w256');
    expect(next.app.settingsNotices.value).toEqual([]);
    await next.app.start();
    expect(next.kernels).toEqual([{ variant: 'plain-n8-w256', afterStarts: 0 }]);
  });

  it('an unknown stored kernel says so, falls back to Automatic and still starts', async () => {
    const storage = memoryStorage();
    storage.setItem(STORAGE_KEY, JSON.stringify({ address: ADDRESS, work: 'ondemand', kernel: 'plain-n999-w7' }));
    const { app, client, kernels } = make('https://dpow.example/', storage);
    expect(app.settings.value).toMatchObject({ address: ADDRESS, work: 'ondemand', kernel: null });
    expect(app.settingsNotices.value).toHaveLength(1);
    expect(app.settingsNotices.value[0]).toContain('"plain-n999-w7"');
    expect(app.settingsNotices.value[0]).toContain('Automatic (tuned)');
    expect(await app.start()).toBe(true);
    expect(kernels).toEqual([{ variant: null, afterStarts: 0 }]);
    expect(client.starts).toHaveLength(1);
    // Saving the settings replaces the bad entry and clears the notice.
    await app.apply(app.settings.value);
    expect(app.settingsNotices.value).toEqual([]);
    expect(JSON.parse(storage.data.get(STORAGE_KEY)!).kernel).toBeNull();
  });

  it('a share link with an unknown kernel says so too', () => {
    const { app } = make(`https://dpow.example/?address=${ADDRESS}&kernel=fastest`);
    expect(app.settings.value.kernel).toBeNull();
    expect(app.settingsNotices.value).toEqual([expect.stringMatching(/^Link: Kernel setting "fastest" is not a kernel/)]);
  });

  it('takes settings and kiosk options from the URL', () => {
    const { app } = make(`https://dpow.example/?kiosk=1&autostart=1&address=${ADDRESS}&backend=cpu`);
    expect(app.launch).toEqual({ kiosk: true, autostart: true });
    expect(app.settings.value.backend).toBe('wasm');
    expect(app.addressCheck.value.ok).toBe(true);
  });
});
