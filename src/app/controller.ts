/**
 * The one place the page is wired: the worker client's state as signals, the volunteer's
 * settings, and the commands (start, stop, apply settings). Components read signals and call
 * these methods; none of them talks to MQTT or WebGPU.
 *
 * The compute loop lives in the engine worker and the MQTT session in the client, so nothing
 * here depends on the tab being visible: timers below only feed the view.
 */
import { batch, computed, signal, type ReadonlySignal } from '@preact/signals';
import { checkAddress, type AddressCheck } from '../dpow/address.ts';
import type { DeploymentConfig } from '../dpow/deployment.ts';
import { NO_SUSTAINED_RATES, type ClientState, type WorkerClient } from '../dpow/state.ts';
import {
  defaultSettings,
  loadSettings,
  saveSettings,
  settingsFromQuery,
  toClientSettings,
  type AppSettings,
  type LaunchOptions,
} from './settings.ts';

/** Set while the volunteer wants work, so a reload (or a browser restart) picks it up again. */
export const WORKING_KEY = 'dpow-web.working';

/** Hashrate samples kept for the chart: one per second, five minutes. */
export const HISTORY_SAMPLES = 300;

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
    counters: { received: 0, rejected: {}, computed: 0, published: 0, cancelled: 0, accepted: 0, addressAccepted: 0, expired: 0 },
    lastClientMessage: null,
    lastStatistics: null,
    events: [],
    error: null,
  };
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
}

export class AppController {
  readonly config: DeploymentConfig;
  readonly defaults: AppSettings;
  readonly launch: LaunchOptions;
  readonly settings = signal<AppSettings>(undefined as unknown as AppSettings);
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
  readonly history = signal<number[]>([]);
  readonly addressCheck: ReadonlySignal<AddressCheck>;
  /** True when settings came from a share link the volunteer has not saved yet. */
  readonly settingsFromUrl: boolean;
  /**
   * Stored or linked settings that could not be used (an unknown kernel name, a corrupt entry),
   * each with what was used instead. Cleared when the volunteer applies settings.
   */
  readonly settingsNotices = signal<string[]>([]);

  private client: WorkerClient | null = null;
  private unsubscribe: (() => void) | null = null;
  private readonly options: ControllerOptions;
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(options: ControllerOptions) {
    this.options = options;
    this.config = options.config;
    this.defaults = defaultSettings(options.config, options.hardwareConcurrency);
    const notices: string[] = [];
    const saved = loadSettings(options.storage, this.defaults, (message) => notices.push(message));
    const fromQuery = settingsFromQuery(new URL(options.pageUrl).searchParams, saved, (message) =>
      notices.push(`Link: ${message}`),
    );
    this.settingsNotices.value = notices;
    this.settings.value = fromQuery.settings;
    this.launch = fromQuery.launch;
    this.settingsFromUrl = fromQuery.fromUrl;
    this.online.value = options.online ?? true;
    this.addressCheck = computed(() => checkAddress(this.settings.value.address, this.config.addressPrefixes));
  }

  /** Starts the 1 Hz view clock and the hashrate sampler. */
  attach(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), 1000);
  }

  detach(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One sample per second; a hidden tab's throttled timers only make the chart coarser. */
  tick(at = Date.now()): void {
    const s = this.state.value;
    const working = this.wanted.value && s.connection !== 'stopped' && s.connection !== 'idle';
    const sample = working ? s.hashrate : 0;
    const next = this.history.value.length >= HISTORY_SAMPLES ? this.history.value.slice(1) : this.history.value.slice();
    next.push(sample);
    batch(() => {
      this.now.value = at;
      this.history.value = next;
    });
  }

  /** Saves settings; when working, restarts the client with them. */
  async apply(next: AppSettings): Promise<void> {
    batch(() => {
      this.settings.value = next;
      this.settingsNotices.value = [];
    });
    saveSettings(this.options.storage, next);
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
    saveSettings(this.options.storage, this.settings.value);
    this.remember(true);
    batch(() => {
      this.wanted.value = true;
      this.busy.value = true;
      this.startError.value = null;
    });
    try {
      const client = this.ensureClient();
      await this.options.setKernel?.(this.settings.value.kernel);
      await client.start(toClientSettings(this.settings.value, this.config, this.options.pageUrl));
      return true;
    } catch (err) {
      batch(() => {
        this.startError.value = err instanceof Error ? err.message : String(err);
        this.wanted.value = false;
      });
      this.remember(false);
      return false;
    } finally {
      this.busy.value = false;
    }
  }

  async stop(): Promise<void> {
    this.remember(false);
    batch(() => {
      this.wanted.value = false;
      this.busy.value = true;
    });
    try {
      await this.client?.stop();
    } finally {
      this.busy.value = false;
    }
  }

  /** True when the page was closed or reloaded while working with a valid address. */
  shouldResume(): boolean {
    try {
      return this.options.storage?.getItem(WORKING_KEY) === '1' && this.addressCheck.value.ok;
    } catch {
      return false;
    }
  }

  private remember(working: boolean): void {
    try {
      if (working) this.options.storage?.setItem(WORKING_KEY, '1');
      else this.options.storage?.removeItem(WORKING_KEY);
    } catch {
      // No storage: nothing is resumed after a reload.
    }
  }

  async restart(): Promise<void> {
    await this.client?.stop();
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
      (this.client as { reconnectNow?: () => void } | null)?.reconnectNow?.();
    }
  }

  networkOffline(): void {
    this.online.value = false;
  }

  private ensureClient(): WorkerClient {
    if (!this.client) {
      this.client = this.options.createClient();
      this.state.value = this.client.getState();
      this.unsubscribe = this.client.subscribe((state) => {
        this.state.value = state;
      });
    }
    return this.client;
  }

  dispose(): void {
    this.detach();
    this.unsubscribe?.();
    this.unsubscribe = null;
  }
}
