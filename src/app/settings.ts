/**
 * The volunteer's settings: defaults from the deployment, persisted in localStorage, shareable
 * as a URL. Plain functions over plain values (no DOM globals) so they test without a browser.
 */
import type { DeploymentConfig } from '../dpow/deployment.ts';
import type { ClientSettings, WorkChoice } from '../dpow/state.ts';
import { KERNEL_VARIANTS } from '../pow/kernel-family.ts';
import type { BackendChoice } from '../pow/types.ts';
import { defaultThreads } from '../pow/threads.ts';

/**
 * What the settings form edits: the client's settings the volunteer chooses, with threads and
 * intensity always set. The broker URL may be relative ("/mqtt") until start.
 */
export interface AppSettings
  extends Pick<ClientSettings, 'brokerUrl' | 'username' | 'password' | 'address' | 'work' | 'backend'>,
    Required<Pick<ClientSettings, 'intensity' | 'threads'>> {
  /**
   * A WebGPU kernel variant to use instead of the tuner's choice (one of KERNEL_CHOICES), or null
   * for Automatic (tuned). An engine setting, not the client's: it goes to the engine's setKernel.
   */
  kernel: string | null;
  /** Pause while the machine runs on battery (where the browser can tell); on by default. */
  pauseOnBattery: boolean;
  /** Only one tab of this browser computes; on by default. */
  oneTab: boolean;
  /** Pause while the page is hidden (another tab in front, minimised); opt-in. */
  pauseWhenHidden: boolean;
  /** Notify when the connection is lost for minutes or results are refused; opt-in. */
  notify: boolean;
}

/** The settings that make the worker kind to its machine, each a switch. */
export const KINDNESS_SWITCHES = ['pauseOnBattery', 'oneTab', 'pauseWhenHidden', 'notify'] as const;

/** Where a settings problem is told (a stored or linked value that cannot be used). */
export type SettingsNotice = (message: string) => void;

/** How the page was opened: kiosk mode and autostart come only from the URL. */
export interface LaunchOptions {
  kiosk: boolean;
  autostart: boolean;
}

export const STORAGE_KEY = 'dpow-web.settings.v1';

const WORK_CHOICES: readonly WorkChoice[] = ['any', 'precache', 'ondemand'];
const BACKEND_CHOICES: readonly BackendChoice[] = ['auto', 'webgpu', 'wasm'];
export const MIN_INTENSITY = 0.1;
/** The kernel variants a volunteer can pin (the tuner's candidates). */
export const KERNEL_CHOICES: readonly string[] = KERNEL_VARIANTS.map((v) => v.name);

export function defaultSettings(config: DeploymentConfig, cores?: number): AppSettings {
  return {
    brokerUrl: config.brokerUrl,
    username: config.username,
    password: config.password,
    address: '',
    work: config.defaultWork,
    backend: 'auto',
    intensity: 1,
    threads: defaultThreads(cores),
    kernel: null,
    pauseOnBattery: true,
    oneTab: true,
    pauseWhenHidden: false,
    notify: false,
  };
}

const clampIntensity = (v: number) => Math.min(1, Math.max(MIN_INTENSITY, v));

/**
 * A kernel setting: null (or "auto") is the tuner's choice; a name this version does not offer
 * (a removed variant, a typo in a link) is told to `notice` and falls back to the tuner's choice.
 */
function kernelSetting(value: unknown, notice: SettingsNotice): string | null {
  if (value === null || value === 'auto') return null;
  if (typeof value === 'string' && KERNEL_CHOICES.includes(value)) return value;
  notice(
    `Kernel setting ${JSON.stringify(value)} is not a kernel this version has (${KERNEL_CHOICES.join(', ')}): using Automatic (tuned) instead.`,
  );
  return null;
}

/**
 * Takes the well-typed fields of `input` over `base`; anything else keeps the base value. A
 * kernel name that does not exist is told to `notice` (it would otherwise vanish silently).
 */
export function mergeSettings(base: AppSettings, input: unknown, notice: SettingsNotice = () => {}): AppSettings {
  const out = { ...base };
  if (typeof input !== 'object' || input === null) return out;
  const v = input as Record<string, unknown>;
  for (const key of ['brokerUrl', 'username', 'password', 'address'] as const) {
    if (typeof v[key] === 'string') out[key] = (v[key] as string).trim();
  }
  if (WORK_CHOICES.includes(v.work as WorkChoice)) out.work = v.work as WorkChoice;
  if (BACKEND_CHOICES.includes(v.backend as BackendChoice)) out.backend = v.backend as BackendChoice;
  if (typeof v.intensity === 'number' && Number.isFinite(v.intensity)) out.intensity = clampIntensity(v.intensity);
  if (typeof v.threads === 'number' && Number.isInteger(v.threads) && v.threads >= 1) out.threads = Math.min(v.threads, 256);
  if ('kernel' in v) out.kernel = kernelSetting(v.kernel, notice);
  for (const key of KINDNESS_SWITCHES) if (typeof v[key] === 'boolean') out[key] = v[key] as boolean;
  if (out.brokerUrl === '') out.brokerUrl = base.brokerUrl;
  return out;
}

type KeyValueStore = Pick<Storage, 'getItem' | 'setItem'>;

/**
 * Saved settings over the defaults. A corrupt entry is ignored (the defaults win) and, like an
 * unknown kernel name in it, told to `notice`.
 */
export function loadSettings(storage: KeyValueStore | undefined, defaults: AppSettings, notice: SettingsNotice = () => {}): AppSettings {
  let raw: string | null | undefined;
  try {
    raw = storage?.getItem(STORAGE_KEY);
  } catch {
    return { ...defaults }; // no storage (private mode): nothing was saved
  }
  if (!raw) return { ...defaults };
  let saved: unknown;
  try {
    saved = JSON.parse(raw);
  } catch (err) {
    notice(`Saved settings could not be read (${(err as Error).message}): using the defaults.`);
    return { ...defaults };
  }
  return mergeSettings(defaults, saved, notice);
}

/** Returns false when storage is unavailable or full (private mode): the settings still apply. */
export function saveSettings(storage: KeyValueStore | undefined, settings: AppSettings): boolean {
  try {
    storage?.setItem(STORAGE_KEY, JSON.stringify(settings));
    return storage !== undefined;
  } catch {
    return false;
  }
}

const TRUE_VALUES = new Set(['1', 'true', 'yes', 'on']);
const WORK_ALIASES: Record<string, WorkChoice> = { any: 'any', both: 'any', precache: 'precache', ondemand: 'ondemand' };
const BACKEND_ALIASES: Record<string, BackendChoice> = {
  auto: 'auto',
  webgpu: 'webgpu',
  gpu: 'webgpu',
  wasm: 'wasm',
  cpu: 'wasm',
};

/**
 * Settings and launch options from a share or kiosk URL's query. The password is never read
 * from a URL (it would sit in history and logs); it comes from storage or the deployment.
 */
export function settingsFromQuery(
  params: URLSearchParams,
  base: AppSettings,
  notice: SettingsNotice = () => {},
): { settings: AppSettings; launch: LaunchOptions; fromUrl: boolean } {
  const patch: Record<string, unknown> = {};
  const address = params.get('address');
  if (address) patch.address = address;
  const work = WORK_ALIASES[params.get('work') ?? ''];
  if (work) patch.work = work;
  const backend = BACKEND_ALIASES[params.get('backend') ?? ''];
  if (backend) patch.backend = backend;
  const broker = params.get('broker');
  if (broker) patch.brokerUrl = broker;
  const user = params.get('user');
  if (user) patch.username = user;
  const intensity = Number(params.get('intensity'));
  if (params.has('intensity') && Number.isFinite(intensity)) {
    // Accept both 0.5 and 50 (percent).
    patch.intensity = intensity > 1 ? intensity / 100 : intensity;
  }
  const threads = Number(params.get('threads'));
  if (params.has('threads') && Number.isInteger(threads)) patch.threads = threads;
  const kernel = params.get('kernel');
  if (kernel) patch.kernel = kernel;
  const flag = (name: string) => TRUE_VALUES.has((params.get(name) ?? '').toLowerCase());
  return {
    settings: mergeSettings(base, patch, notice),
    launch: { kiosk: flag('kiosk'), autostart: flag('autostart') },
    fromUrl: Object.keys(patch).length > 0,
  };
}

/**
 * A link that opens the app with these settings. Only what differs from the deployment's
 * defaults goes in, and never the password.
 */
export function shareUrl(
  settings: AppSettings,
  defaults: AppSettings,
  pageUrl: string,
  launch: Partial<LaunchOptions> = {},
): string {
  const url = new URL(pageUrl);
  url.search = '';
  url.hash = '';
  const q = url.searchParams;
  if (settings.address) q.set('address', settings.address);
  if (settings.work !== defaults.work) q.set('work', settings.work);
  if (settings.backend !== defaults.backend) q.set('backend', settings.backend);
  if (settings.brokerUrl !== defaults.brokerUrl) q.set('broker', settings.brokerUrl);
  if (settings.username !== defaults.username) q.set('user', settings.username);
  if (settings.intensity !== defaults.intensity) q.set('intensity', String(Math.round(settings.intensity * 100)));
  if (settings.threads !== defaults.threads) q.set('threads', String(settings.threads));
  if (settings.kernel !== defaults.kernel) q.set('kernel', settings.kernel ?? 'auto');
  if (launch.kiosk) q.set('kiosk', '1');
  if (launch.autostart) q.set('autostart', '1');
  return url.toString();
}

/**
 * Resolves a broker URL against the page: "/mqtt" on https://host/ becomes wss://host/mqtt, on
 * http:// it becomes ws://. Absolute ws(s):// (and mqtt(s)://) URLs pass through; http(s) ones
 * are mapped to ws(s). Returns null for anything that is not a broker URL.
 */
export function resolveBrokerUrl(brokerUrl: string, pageUrl: string): string | null {
  let url: URL;
  try {
    url = new URL(brokerUrl, pageUrl);
  } catch {
    return null;
  }
  if (url.protocol === 'http:') url.protocol = 'ws:';
  else if (url.protocol === 'https:') url.protocol = 'wss:';
  if (!['ws:', 'wss:', 'mqtt:', 'mqtts:'].includes(url.protocol)) return null;
  return url.toString();
}

/** The client's settings for a start. */
export function toClientSettings(
  settings: AppSettings,
  config: DeploymentConfig,
  pageUrl: string,
): ClientSettings {
  // The kernel is the engine's setting; the switches are the page's own policies.
  const { kernel: _kernel, pauseOnBattery: _battery, oneTab: _tabs, pauseWhenHidden: _hidden, notify: _notify, ...client } = settings;
  return {
    ...client,
    brokerUrl: resolveBrokerUrl(settings.brokerUrl, pageUrl) ?? settings.brokerUrl,
    addressPrefixes: config.addressPrefixes,
  };
}
