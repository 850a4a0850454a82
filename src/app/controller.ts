/**
 * The one place the page is wired: the worker client's state as signals, the volunteer's
 * settings, and the commands (start, stop, apply settings, take over). Components read signals
 * and call these methods; none of them talks to MQTT or WebGPU.
 *
 * It also owns what the page adds to the client: the headline (a rate that is never a false
 * zero, and a word for what the worker does), the chart's per-interval rates, the history kept in
 * IndexedDB, and the kind-worker policies that pause the client (on battery, another tab, page
 * hidden) and the alerts that notify.
 *
 * The compute loop lives in the engine worker and the MQTT session in the client, so nothing
 * here depends on the tab being visible: timers below only feed the view and the history.
 */
import { batch, computed, effect, signal, type ReadonlySignal } from '@preact/signals';
import { checkAddress, type AddressCheck } from '../dpow/address.ts';
import { workerActivity, type Activity } from '../dpow/activity.ts';
import type { DeploymentConfig } from '../dpow/deployment.ts';
import {
  NO_SUSTAINED_RATES,
  type ClientCounters,
  type ClientState,
  type PauseReason,
  type WorkerClient,
} from '../dpow/state.ts';
import { AlertPolicy, type Alert } from './alerts.ts';
import type { PowerSource } from './battery.ts';
import { addDeltas, record, type AddressHistory, type HistoryDelta } from './history.ts';
import type { HistoryStore } from './history-store.ts';
import {
  defaultSettings,
  loadSettings,
  saveSettings,
  settingsFromQuery,
  toClientSettings,
  type AppSettings,
  type LaunchOptions,
} from './settings.ts';
import type { TabLockState } from './tab-lock.ts';

/** Set while the volunteer wants work, so a reload (or a browser restart) picks it up again. */
export const WORKING_KEY = 'dpow-web.working';

/** The chart: the rate while computing per interval, over five minutes. */
export const CHART_INTERVAL_MS = 10_000;
export const CHART_POINTS = 30;
/** Counts reach storage within this; uptime alone is written less often. */
const HISTORY_FLUSH_MS = 1_000;
const UPTIME_FLUSH_MS = 15_000;
/** A longer gap between ticks is a sleeping machine, not uptime. */
const MAX_TICK_GAP_MS = 120_000;

const NO_COUNTERS: ClientCounters = { received: 0, rejected: {}, computed: 0, published: 0, cancelled: 0, accepted: 0, addressAccepted: 0, expired: 0 };

export function idleState(): ClientState {
  return {
    connection: 'idle',
    heartbeatAgeMs: null,
    lastHeartbeatAt: null,
    queue: [],
    current: null,
    hashrate: 0,
    sustained: NO_SUSTAINED_RATES,
    backend: null,
    backendLabel: '',
    counters: NO_COUNTERS,
    paused: null,
    lastClientMessage: null,
    lastStatistics: null,
    events: [],
    error: null,
  };
}

/** Two sessions' counters as one. */
export function addCounters(a: ClientCounters, b: ClientCounters): ClientCounters {
  const rejected = { ...a.rejected };
  for (const [code, n] of Object.entries(b.rejected)) rejected[code] = (rejected[code] ?? 0) + n;
  return {
    received: a.received + b.received,
    rejected,
    computed: a.computed + b.computed,
    published: a.published + b.published,
    cancelled: a.cancelled + b.cancelled,
    accepted: a.accepted + b.accepted,
    addressAccepted: a.addressAccepted + b.addressAccepted,
    expired: a.expired + b.expired,
  };
}

/** What the headline shows: a rate (null before anything was computed) and whether it is live. */
export interface Headline {
  rate: number | null;
  /** true: the job in flight's live rate; false: the rate sustained while computing. */
  live: boolean;
}

/** The tab lock as the controller uses it (tab-lock.ts). */
export interface TabLockLike {
  readonly state: ReadonlySignal<TabLockState>;
  want(): void;
  release(): void;
  takeOver(): void;
}

export interface ControllerOptions {
  config: DeploymentConfig;
  /** Creates the worker client (and its engine) on the first start. */
  createClient: () => WorkerClient;
  pageUrl: string;
  storage?: Storage;
  /** The cores the thread default is planned for: the browser's claim, or what was measured. */
  hardwareConcurrency?: number;
  /** Starts as online unless told otherwise (navigator.onLine). */
  online?: boolean;
  /**
   * Pins the engine's WebGPU kernel variant, or null for the tuner's choice (the engine's
   * setKernel). Called with the settings' kernel before every start, after createClient.
   */
  setKernel?: (variant: string | null) => Promise<void>;
  /** One tab computes (Web Locks); absent, every tab does. */
  tabLock?: TabLockLike;
  /** Shows an alert (a Notification); called only while the notify setting is on. */
  notify?: (alert: Alert) => void;
}

export class AppController {
  readonly config: DeploymentConfig;
  readonly defaults: AppSettings;
  readonly launch: LaunchOptions;
  /** The settings form's values, edited live. */
  readonly settings = signal<AppSettings>(undefined as unknown as AppSettings);
  /** The settings in force: saved, started or applied (the kind-worker policies follow these). */
  readonly applied = signal<AppSettings>(undefined as unknown as AppSettings);
  readonly state = signal<ClientState>(idleState());
  /** The volunteer asked for work (Start pressed or autostart) and has not pressed Stop. */
  readonly wanted = signal(false);
  /** A start or stop is in progress. */
  readonly busy = signal(false);
  /** Why the last start failed, for the view. */
  readonly startError = signal<string | null>(null);
  readonly online = signal(true);
  /** Updated once a second, so ages ("heartbeat 3 s ago") stay current between client events. */
  readonly now = signal(Date.now());
  readonly addressCheck: ReadonlySignal<AddressCheck>;
  /** True when settings came from a share link the volunteer has not saved yet. */
  readonly settingsFromUrl: boolean;
  /**
   * Stored or linked settings that could not be used (an unknown kernel name, a corrupt entry),
   * each with what was used instead. Cleared when the volunteer applies settings.
   */
  readonly settingsNotices = signal<string[]>([]);

  /** true on battery, false on AC, null where the browser cannot say (battery.ts). */
  readonly onBattery = signal<PowerSource>(null);
  /** The page is hidden (document.visibilityState). */
  readonly pageHidden = signal(false);
  /** Why the worker takes no work although the volunteer wants it, or null. */
  readonly pauseReason: ReadonlySignal<PauseReason | null>;
  /** What the worker does, in the words the headline, the kiosk and the headless worker use. */
  readonly activity: ReadonlySignal<Activity>;
  readonly headline: ReadonlySignal<Headline>;
  /** The chart: the rate while computing in each CHART_INTERVAL_MS, null where nothing was computed. */
  readonly rateSamples = signal<(number | null)[]>([]);
  /** Counters since this page opened: a restart (Apply, Stop and Start) carries them on. */
  readonly session: ReadonlySignal<ClientCounters>;
  /** Time spent taking work since this page opened, ms. */
  readonly sessionUptimeMs = signal(0);
  /** The applied address's history as stored, or null before it is loaded. */
  readonly history = signal<AddressHistory | null>(null);
  /** Uptime counted but not yet written (it is written every UPTIME_FLUSH_MS). */
  readonly #unsavedUptimeMs = signal(0);
  /** What the history card and the kiosk show: as stored, with the uptime not yet written. */
  readonly historyShown: ReadonlySignal<AddressHistory | null>;
  /** Why the history will not survive a reload (no IndexedDB), or null. */
  readonly historyProblem = signal<string | null>(null);

  #client: WorkerClient | null = null;
  #unsubscribe: (() => void) | null = null;
  readonly #options: ControllerOptions;
  #timer: ReturnType<typeof setInterval> | null = null;
  readonly #stopEffects: (() => void)[] = [];
  readonly #carried = signal<ClientCounters>(NO_COUNTERS);
  /** The address the running session pays, for its history. */
  #workingFor: string | null = null;
  #lastCounts = { published: 0, accepted: 0 };
  #lastTick: number | null = null;
  #chartBase: { at: number; backend: string | null; hashes: number; busyMs: number } | null = null;
  #historyStore: HistoryStore | null = null;
  #pendingHistory: { address: string; delta: HistoryDelta } | null = null;
  #flushTimer: ReturnType<typeof setTimeout> | null = null;
  #flushDue = Infinity;
  readonly #alerts = new AlertPolicy();

  constructor(options: ControllerOptions) {
    this.#options = options;
    this.config = options.config;
    this.defaults = defaultSettings(options.config, options.hardwareConcurrency);
    const notices: string[] = [];
    const saved = loadSettings(options.storage, this.defaults, (message) => notices.push(message));
    const fromQuery = settingsFromQuery(new URL(options.pageUrl).searchParams, saved, (message) =>
      notices.push(`Link: ${message}`),
    );
    this.settingsNotices.value = notices;
    this.settings.value = fromQuery.settings;
    this.applied.value = fromQuery.settings;
    this.launch = fromQuery.launch;
    this.settingsFromUrl = fromQuery.fromUrl;
    this.online.value = options.online ?? true;
    this.addressCheck = computed(() => checkAddress(this.settings.value.address, this.config.addressPrefixes));
    this.pauseReason = computed(() => {
      const s = this.applied.value;
      if (s.pauseOnBattery && this.onBattery.value === true) return 'battery';
      if (s.oneTab && this.#options.tabLock?.state.value === 'waiting') return 'another-tab';
      if (s.pauseWhenHidden && this.pageHidden.value) return 'hidden';
      return null;
    });
    this.activity = computed<Activity>(() => {
      const s = this.state.value;
      if (!this.wanted.value) return s.connection === 'idle' ? 'not-started' : 'stopped';
      // Between Start and the client's first state (or during a restart): it is on its way.
      if (s.connection === 'idle' || s.connection === 'stopped') {
        const reason = this.pauseReason.value;
        return reason ? workerActivity({ connection: 'online', paused: reason, current: null }) : 'connecting';
      }
      return workerActivity(s, this.online.value);
    });
    this.headline = computed(() => {
      const s = this.state.value;
      if (s.current && s.hashrate > 0) return { rate: s.hashrate, live: true };
      if (s.sustained.hashrate > 0) return { rate: s.sustained.hashrate, live: false };
      return { rate: null, live: false };
    });
    this.session = computed(() => addCounters(this.#carried.value, this.state.value.counters));
    this.historyShown = computed(() => {
      const stored = this.history.value;
      const unsaved = this.#unsavedUptimeMs.value;
      return stored && unsaved > 0 && this.#workingFor === stored.address ? record(stored, this.now.value, { uptimeMs: unsaved }) : stored;
    });
  }

  /** Starts the 1 Hz view clock and the kind-worker policies. */
  attach(): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => this.tick(), 1000);
    // The pause follows its reasons; the client keeps it across restarts.
    this.#stopEffects.push(
      effect(() => {
        const reason = this.pauseReason.value; // read first: the effect must depend on it
        this.#client?.pause(reason);
      }),
    );
    const lock = this.#options.tabLock;
    if (lock) {
      this.#stopEffects.push(
        effect(() => {
          if (this.wanted.value && this.applied.value.oneTab) lock.want();
          else lock.release();
        }),
      );
    }
  }

  detach(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    for (const stop of this.#stopEffects.splice(0)) stop();
  }

  /** Once a second: the view's clock, uptime, the chart's samples and the alerts. */
  tick(at = Date.now()): void {
    const s = this.state.value;
    const activity = this.activity.value;
    const elapsed = this.#lastTick === null ? 0 : at - this.#lastTick;
    this.#lastTick = at;
    const taking = activity === 'working' || activity === 'waiting';
    batch(() => {
      this.now.value = at;
      if (taking && elapsed > 0 && elapsed <= MAX_TICK_GAP_MS) {
        this.sessionUptimeMs.value += elapsed;
        this.#recordHistory({ uptimeMs: elapsed });
      }
      this.#sampleChart(at, s);
    });
    if (this.applied.value.notify && this.#options.notify) {
      for (const alert of this.#alerts.observe({ now: at, wanted: this.wanted.value, activity, lastClientMessage: s.lastClientMessage })) {
        this.#options.notify(alert);
      }
    }
  }

  /**
   * One chart point per interval: the hashes over the computing time the engine spent in it, so
   * a GPU whose jobs take milliseconds draws its rate, not a line along zero.
   */
  #sampleChart(at: number, s: ClientState): void {
    const base = this.#chartBase;
    if (base && at - base.at < CHART_INTERVAL_MS) return;
    const totals = s.sustained.totals;
    this.#chartBase = { at, backend: s.backend, hashes: totals.hashes, busyMs: totals.busyMs };
    if (!base) return;
    const busyMs = totals.busyMs - base.busyMs;
    const hashes = totals.hashes - base.hashes;
    // Nothing computed, or another backend (its totals are its own): no point.
    const rate = base.backend === s.backend && busyMs > 0 && hashes >= 0 ? (hashes * 1000) / busyMs : null;
    const next = this.rateSamples.value.length >= CHART_POINTS ? this.rateSamples.value.slice(1) : this.rateSamples.value.slice();
    next.push(rate);
    this.rateSamples.value = next;
  }

  /** Saves settings; when working, restarts the client with them. */
  async apply(next: AppSettings): Promise<void> {
    batch(() => {
      this.settings.value = next;
      this.applied.value = next;
      this.settingsNotices.value = [];
    });
    saveSettings(this.#options.storage, next);
    void this.#loadHistory();
    if (this.wanted.value) await this.restart();
  }

  /** Updates the form's settings without saving or restarting (live address check). */
  edit(patch: Partial<AppSettings>): void {
    this.settings.value = { ...this.settings.value, ...patch };
  }

  async start(): Promise<boolean> {
    const check = this.addressCheck.value;
    if (!check.ok) {
      this.startError.value = `Payout address: ${check.reason}`;
      return false;
    }
    saveSettings(this.#options.storage, this.settings.value);
    this.#remember(true);
    batch(() => {
      this.applied.value = this.settings.value;
      this.wanted.value = true;
      this.busy.value = true;
      this.startError.value = null;
    });
    void this.#loadHistory();
    try {
      const client = this.#ensureClient();
      await this.#options.setKernel?.(this.settings.value.kernel);
      const before = this.state.value.counters;
      await client.start(toClientSettings(this.settings.value, this.config, this.#options.pageUrl));
      // The client starts its counters from zero: this page's session carries the last ones on.
      this.#carried.value = addCounters(this.#carried.value, before);
      this.#workingFor = this.settings.value.address;
      return true;
    } catch (err) {
      batch(() => {
        this.startError.value = err instanceof Error ? err.message : String(err);
        this.wanted.value = false;
      });
      this.#remember(false);
      return false;
    } finally {
      this.busy.value = false;
    }
  }

  async stop(): Promise<void> {
    this.#remember(false);
    batch(() => {
      this.wanted.value = false;
      this.busy.value = true;
    });
    try {
      await this.#client?.stop();
    } finally {
      this.busy.value = false;
      void this.flushHistory();
    }
  }

  /** Takes the work over from the tab of this browser that computes now. */
  takeOver(): void {
    this.#options.tabLock?.takeOver();
  }

  /** True when the page was closed or reloaded while working with a valid address. */
  shouldResume(): boolean {
    try {
      return this.#options.storage?.getItem(WORKING_KEY) === '1' && this.addressCheck.value.ok;
    } catch {
      return false;
    }
  }

  #remember(working: boolean): void {
    try {
      if (working) this.#options.storage?.setItem(WORKING_KEY, '1');
      else this.#options.storage?.removeItem(WORKING_KEY);
    } catch {
      // No storage: nothing is resumed after a reload.
    }
  }

  async restart(): Promise<void> {
    await this.#client?.stop();
    await this.start();
  }

  /**
   * The network came back. The client reconnects on its own while it runs; if it gave up
   * (stopped with an error) and the volunteer still wants work, start it again.
   */
  async networkOnline(): Promise<void> {
    this.online.value = true;
    const s = this.state.value;
    if (!this.wanted.value || this.busy.value) return;
    if (s.connection === 'stopped' || s.connection === 'idle') {
      await this.start();
    } else if (s.connection === 'reconnecting') {
      // The client's backoff may have grown while offline; a client that can retry at once
      // is asked to, instead of waiting out a delay for a network that is already back.
      (this.#client as { reconnectNow?: () => void } | null)?.reconnectNow?.();
    }
  }

  networkOffline(): void {
    this.online.value = false;
  }

  // ---- history ---------------------------------------------------------------------------------

  /** Keeps the history in `store` from now on (writing what was counted before it opened). */
  attachHistory(store: HistoryStore): void {
    this.#historyStore = store;
    this.historyProblem.value = store.problem;
    void this.#loadHistory();
    if (this.#pendingHistory) this.#scheduleFlush(0);
  }

  /** Loads the applied address's history for the card. */
  async #loadHistory(): Promise<void> {
    const store = this.#historyStore;
    const address = this.applied.value.address;
    if (!store || !checkAddress(address, this.config.addressPrefixes).ok) return;
    const loaded = await store.load(address);
    if (this.applied.value.address === address) this.history.value = loaded;
    this.historyProblem.value = store.problem;
  }

  /** Results published and accepted since the last state: counted in the history. */
  #noteCounters(counters: ClientCounters): void {
    const last = this.#lastCounts;
    // A client session that started since (its counters begin at zero again).
    const base = counters.published < last.published || counters.accepted < last.accepted ? { published: 0, accepted: 0 } : last;
    this.#lastCounts = { published: counters.published, accepted: counters.accepted };
    const delta = { published: counters.published - base.published, accepted: counters.accepted - base.accepted };
    if (delta.published > 0 || delta.accepted > 0) this.#recordHistory(delta);
  }

  #recordHistory(delta: HistoryDelta): void {
    const address = this.#workingFor;
    if (!address) return;
    const pending = this.#pendingHistory;
    if (pending && pending.address !== address) void this.flushHistory();
    this.#pendingHistory = { address, delta: addDeltas(this.#pendingHistory?.delta ?? {}, delta) };
    if (delta.uptimeMs) this.#unsavedUptimeMs.value += delta.uptimeMs;
    this.#scheduleFlush(delta.published || delta.accepted ? HISTORY_FLUSH_MS : UPTIME_FLUSH_MS);
  }

  #scheduleFlush(inMs: number): void {
    const due = Date.now() + inMs;
    if (this.#flushTimer !== null && due >= this.#flushDue) return;
    if (this.#flushTimer !== null) clearTimeout(this.#flushTimer);
    this.#flushDue = due;
    this.#flushTimer = setTimeout(() => void this.flushHistory(), inMs);
  }

  /** Writes what was counted since the last write; the card then shows what is stored. */
  async flushHistory(): Promise<void> {
    if (this.#flushTimer !== null) clearTimeout(this.#flushTimer);
    this.#flushTimer = null;
    this.#flushDue = Infinity;
    const store = this.#historyStore;
    const pending = this.#pendingHistory;
    if (!store || !pending) return;
    this.#pendingHistory = null;
    const stored = await store.add(pending.address, Date.now(), pending.delta);
    batch(() => {
      this.#unsavedUptimeMs.value = Math.max(0, this.#unsavedUptimeMs.value - (pending.delta.uptimeMs ?? 0));
      if (this.applied.value.address === pending.address) this.history.value = stored;
    });
    this.historyProblem.value = store.problem;
  }

  // ---- client ----------------------------------------------------------------------------------

  #ensureClient(): WorkerClient {
    if (!this.#client) {
      this.#client = this.#options.createClient();
      this.#client.pause(this.pauseReason.value);
      this.state.value = this.#client.getState();
      this.#unsubscribe = this.#client.subscribe((state) => {
        this.state.value = state;
        this.#noteCounters(state.counters);
      });
    }
    return this.#client;
  }

  dispose(): void {
    this.detach();
    this.#unsubscribe?.();
    this.#unsubscribe = null;
  }
}
