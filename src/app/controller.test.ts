import { describe, expect, it } from 'vitest';
import { DEFAULT_DEPLOYMENT } from '../dpow/deployment.ts';
import { encodeAddress } from '../dpow/address.ts';
import type { ClientSettings, ClientState, PauseReason, WorkerClient } from '../dpow/state.ts';
import { signal } from '@preact/signals';
import { NO_SUSTAINED_RATES } from '../dpow/state.ts';
import { AppController, CHART_INTERVAL_MS, CHART_POINTS, idleState } from './controller.ts';
import { LOST_ALERT_MS, type Alert } from './alerts.ts';
import { summarize } from './history.ts';
import { historyStore } from './history-store.ts';
import { openLocalStore } from './local-store.ts';
import type { TabLockState } from './tab-lock.ts';
import { STORAGE_KEY } from './settings.ts';
import { breakChecksum } from '../testkit/address.ts';

const ADDRESS = encodeAddress('22'.repeat(32));

/** A recording stand-in for the DPoW client: the controller's commands and state flow only. */
class RecordingClient implements WorkerClient {
  starts: ClientSettings[] = [];
  stops = 0;
  failNextStart: string | null = null;
  #state: ClientState = idleState();
  #listeners = new Set<(s: ClientState) => void>();
  getState() {
    return this.#state;
  }
  subscribe(listener: (s: ClientState) => void) {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
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
    this.#state = { ...this.#state, ...patch };
    for (const l of this.#listeners) l(this.#state);
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

  it('plots the rate while computing per interval, from the engine totals, so millisecond jobs draw a line', async () => {
    const { app, client } = make();
    app.edit({ address: ADDRESS });
    await app.start();
    const totals = (hashes: number, busyMs: number) => ({ ...NO_SUSTAINED_RATES, hashrate: 1, totals: { hashes, busyMs } });
    client.emit({ connection: 'online', backend: 'webgpu', sustained: totals(0, 0) });
    app.tick(0);
    // Ten 1 ms jobs of 2e6 hashes in the interval: 2e9 H/s while computing, although the live
    // rate never left 0 (no status arrives while a job that short runs).
    client.emit({ hashrate: 0, sustained: totals(2e7, 10) });
    app.tick(CHART_INTERVAL_MS);
    expect(app.rateSamples.value).toEqual([2e9]);
    // An interval with no computing is a gap, not a zero.
    app.tick(2 * CHART_INTERVAL_MS);
    expect(app.rateSamples.value).toEqual([2e9, null]);
    for (let i = 3; i < CHART_POINTS + 10; i++) app.tick(i * CHART_INTERVAL_MS);
    expect(app.rateSamples.value).toHaveLength(CHART_POINTS);
  });

  it('shows the live rate while a job runs and the sustained rate between jobs, never a false zero', async () => {
    const { app, client } = make();
    expect(app.headline.value).toEqual({ rate: null, live: false });
    app.edit({ address: ADDRESS });
    await app.start();
    const job = { hash: 'A'.repeat(64), difficulty: 'fffffff800000000', workType: 'ondemand' as const, receivedAt: 0, startedAt: 0, multiplier: 1 };
    client.emit({ connection: 'online', current: job, hashrate: 3e6, sustained: { ...NO_SUSTAINED_RATES, hashrate: 2.5e6, busyShare: 0.4 } });
    expect(app.headline.value).toEqual({ rate: 3e6, live: true });
    expect(app.activity.value).toBe('working');
    client.emit({ current: null, hashrate: 0 });
    expect(app.headline.value).toEqual({ rate: 2.5e6, live: false });
    expect(app.activity.value).toBe('waiting');
  });

  it('pauses the client on battery, and not when the setting is off', async () => {
    const { app, client } = make();
    app.attach();
    try {
      app.edit({ address: ADDRESS });
      await app.start();
      client.emit({ connection: 'online' });
      app.onBattery.value = true;
      expect(client.pauses.at(-1)).toBe('battery');
      expect(app.activity.value).toBe('paused-battery');
      app.onBattery.value = false;
      expect(client.pauses.at(-1)).toBeNull();
      expect(app.activity.value).toBe('waiting');
      await app.apply({ ...app.settings.value, pauseOnBattery: false });
      app.onBattery.value = true;
      expect(client.pauses.at(-1)).toBeNull();
      // Hidden pages pause only when asked to.
      app.pageHidden.value = true;
      expect(client.pauses.at(-1)).toBeNull();
      await app.apply({ ...app.settings.value, pauseWhenHidden: true });
      expect(client.pauses.at(-1)).toBe('hidden');
    } finally {
      app.detach();
    }
  });

  it('waits for another tab through the tab lock, and takes over on request', async () => {
    const lockState = signal<TabLockState>('idle');
    const calls: string[] = [];
    const tabLock = {
      state: lockState,
      want: () => void calls.push('want'),
      release: () => void calls.push('release'),
      takeOver: () => void calls.push('takeOver'),
    };
    const client = new RecordingClient();
    const app = new AppController({ config: DEFAULT_DEPLOYMENT, pageUrl: 'https://dpow.example/', storage: memoryStorage(), createClient: () => client, tabLock });
    app.attach();
    try {
      app.edit({ address: ADDRESS });
      await app.start();
      expect(calls).toEqual(['release', 'want']);
      lockState.value = 'waiting';
      expect(client.pauses.at(-1)).toBe('another-tab');
      app.takeOver();
      expect(calls.at(-1)).toBe('takeOver');
      lockState.value = 'held';
      expect(client.pauses.at(-1)).toBeNull();
      await app.stop();
      expect(calls.at(-1)).toBe('release');
    } finally {
      app.detach();
    }
  });

  it("carries this page's counters across a restart (Apply, or Stop and Start)", async () => {
    const { app, client } = make();
    app.edit({ address: ADDRESS });
    await app.start();
    client.emit({ counters: { ...idleState().counters, published: 3, accepted: 2 } });
    await app.apply({ ...app.settings.value, work: 'precache' });
    // The new client session starts from zero; the page's session does not.
    client.emit({ counters: { ...idleState().counters, published: 1, accepted: 1 } });
    expect(app.session.value).toMatchObject({ published: 4, accepted: 3 });
  });

  it('counts published and accepted results and uptime in the history, which a new page reads back', async () => {
    const store = historyStore(await openLocalStore<unknown>('test'));
    const { app, client } = make();
    app.attachHistory(store);
    app.edit({ address: ADDRESS });
    await app.start();
    client.emit({ connection: 'online', counters: { ...idleState().counters, published: 2, accepted: 1 } });
    app.tick(Date.now());
    app.tick(Date.now() + 5_000); // five seconds taking work
    await app.flushHistory();
    const stored = summarize(await store.load(ADDRESS), Date.now());
    expect(stored).toMatchObject({ published24h: 2, accepted24h: 1, acceptRate24h: 0.5 });
    expect(stored.uptime24hMs).toBe(5_000);
    expect(summarize(app.history.value!, Date.now()).accepted24h).toBe(1);
    // A restarted client's counters begin at zero: only what is new is added.
    await app.apply({ ...app.settings.value, work: 'precache' });
    client.emit({ counters: { ...idleState().counters, published: 1, accepted: 1 } });
    await app.flushHistory();
    expect(summarize(await store.load(ADDRESS), Date.now())).toMatchObject({ published24h: 3, accepted24h: 2 });
  });

  it('notifies, when asked to, once the connection has been lost for minutes', async () => {
    const alerts: Alert[] = [];
    const client = new RecordingClient();
    const app = new AppController({ config: DEFAULT_DEPLOYMENT, pageUrl: 'https://dpow.example/', storage: memoryStorage(), createClient: () => client, notify: (a) => void alerts.push(a) });
    app.edit({ address: ADDRESS });
    await app.start();
    client.emit({ connection: 'reconnecting' });
    app.tick(0);
    app.tick(LOST_ALERT_MS + 1000);
    expect(alerts).toEqual([]); // not asked to
    await app.apply({ ...app.settings.value, notify: true });
    client.emit({ connection: 'reconnecting' });
    app.tick(2 * LOST_ALERT_MS);
    app.tick(3 * LOST_ALERT_MS + 1000);
    expect(alerts.map((a) => a.tag)).toEqual(['connection-lost']);
    app.tick(4 * LOST_ALERT_MS);
    expect(alerts).toHaveLength(1); // once per outage
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
