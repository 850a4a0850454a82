import { describe, expect, it } from 'vitest';
import { DEFAULT_DEPLOYMENT } from '../dpow/deployment.ts';
import { encodeAddress } from '../dpow/address.ts';
import { KERNEL_VARIANTS } from '../pow/kernel-family.ts';
import { defaultThreads } from '../pow/threads.ts';
import {
  KERNEL_CHOICES,
  STORAGE_KEY,
  defaultSettings,
  loadSettings,
  resolveBrokerUrl,
  saveSettings,
  settingsFromQuery,
  shareUrl,
  toClientSettings,
} from './settings.ts';

const ADDRESS = encodeAddress('11'.repeat(32));
const defaults = defaultSettings({ ...DEFAULT_DEPLOYMENT, password: 'sekrit-pass' }, 8);

function memoryStorage(initial: Record<string, string> = {}) {
  const data = new Map(Object.entries(initial));
  return { getItem: (k: string) => data.get(k) ?? null, setItem: (k: string, v: string) => void data.set(k, v), data };
}

describe('settings', () => {
  it('defaults threads to cores minus one, at least one', () => {
    expect(defaultThreads(8)).toBe(7);
    expect(defaultThreads(1)).toBe(1);
    expect(defaultThreads(undefined)).toBe(1);
    expect(defaults.threads).toBe(7);
    expect(defaults.brokerUrl).toBe('/mqtt');
  });

  it('round-trips through storage and ignores corrupt or ill-typed entries', () => {
    const storage = memoryStorage();
    const mine = { ...defaults, address: ADDRESS, work: 'ondemand' as const, backend: 'wasm' as const, threads: 3 };
    expect(saveSettings(storage, mine)).toBe(true);
    expect(loadSettings(storage, defaults)).toEqual(mine);
    expect(loadSettings(memoryStorage({ [STORAGE_KEY]: '{not json' }), defaults)).toEqual(defaults);
    const odd = loadSettings(memoryStorage({ [STORAGE_KEY]: JSON.stringify({ work: 'everything', threads: -2, intensity: 9 }) }), defaults);
    expect(odd.work).toBe(defaults.work);
    expect(odd.threads).toBe(defaults.threads);
    expect(odd.intensity).toBe(1);
  });

  it('has the kind-worker switches on or off as a volunteer expects, stored, and never handed to the client', () => {
    expect(defaults).toMatchObject({ pauseOnBattery: true, oneTab: true, pauseWhenHidden: false, notify: false });
    const storage = memoryStorage();
    const mine = { ...defaults, address: ADDRESS, pauseOnBattery: false, pauseWhenHidden: true, notify: true };
    saveSettings(storage, mine);
    expect(loadSettings(storage, defaults)).toMatchObject({ pauseOnBattery: false, oneTab: true, pauseWhenHidden: true, notify: true });
    const odd = loadSettings(memoryStorage({ [STORAGE_KEY]: JSON.stringify({ oneTab: 'no', notify: 1 }) }), defaults);
    expect(odd).toMatchObject({ oneTab: true, notify: false });
    const client = toClientSettings(mine, DEFAULT_DEPLOYMENT, 'https://dpow.example/');
    for (const key of ['pauseOnBattery', 'oneTab', 'pauseWhenHidden', 'notify']) expect(client).not.toHaveProperty(key);
  });

  it('keeps a kernel setting, and says so when a stored or linked one does not exist', () => {
    expect(defaults.kernel).toBeNull();
    expect(KERNEL_CHOICES).toEqual(KERNEL_VARIANTS.map((v) => v.name));
    const storage = memoryStorage();
    saveSettings(storage, { ...defaults, kernel: 'biased-n8-w256' });
    const notices: string[] = [];
    expect(loadSettings(storage, defaults, (m) => notices.push(m)).kernel).toBe('biased-n8-w256');
    expect(notices).toEqual([]);

    // A name the engine could parse but this version does not offer, a typo, a wrong type.
    for (const bad of ['plain-n4-w64', 'fast', 42, { name: 'plain-n64-w64' }]) {
      const seen: string[] = [];
      const stored = memoryStorage({ [STORAGE_KEY]: JSON.stringify({ address: ADDRESS, threads: 2, kernel: bad }) });
      const loaded = loadSettings(stored, defaults, (m) => seen.push(m));
      expect(loaded).toEqual({ ...defaults, address: ADDRESS, threads: 2, kernel: null });
      expect(seen).toEqual([
        `Kernel setting ${JSON.stringify(bad)} is not a kernel this version has (${KERNEL_CHOICES.join(', ')}): using Automatic (tuned) instead.`,
      ]);
    }
    // "auto" and null are Automatic, without a notice; so is a missing field.
    for (const auto of ['auto', null]) {
      const seen: string[] = [];
      expect(loadSettings(memoryStorage({ [STORAGE_KEY]: JSON.stringify({ kernel: auto }) }), defaults, (m) => seen.push(m)).kernel).toBeNull();
      expect(seen).toEqual([]);
    }
    // A corrupt entry is told too (it used to vanish silently).
    const seen: string[] = [];
    expect(loadSettings(memoryStorage({ [STORAGE_KEY]: '{not json' }), defaults, (m) => seen.push(m))).toEqual(defaults);
    expect(seen).toEqual([expect.stringMatching(/^Saved settings could not be read \(.+\): using the defaults\.$/)]);
  });

  it('carries a pinned kernel in a share link, and never hands it to the client', () => {
    const mine = { ...defaults, address: ADDRESS, kernel: 'plain-n1-w256' };
    const url = shareUrl(mine, defaults, 'http://x/');
    expect(new URL(url).searchParams.get('kernel')).toBe('plain-n1-w256');
    expect(settingsFromQuery(new URL(url).searchParams, defaults).settings.kernel).toBe('plain-n1-w256');
    // Automatic over a pinned base.
    expect(settingsFromQuery(new URLSearchParams('kernel=auto'), mine).settings.kernel).toBeNull();
    const notices: string[] = [];
    expect(settingsFromQuery(new URLSearchParams('kernel=nope'), mine, (m) => notices.push(m)).settings.kernel).toBeNull();
    expect(notices).toHaveLength(1);
    expect(toClientSettings(mine, DEFAULT_DEPLOYMENT, 'http://x/')).not.toHaveProperty('kernel');
  });

  it('never puts the password in a share URL', () => {
    const mine = { ...defaults, address: ADDRESS, password: 'my-own-secret', username: 'alice', backend: 'webgpu' as const };
    const url = shareUrl(mine, defaults, 'https://dpow.example/app/?old=1#x');
    expect(url).not.toContain('my-own-secret');
    expect(url).not.toContain('sekrit-pass');
    expect(url).not.toMatch(/pass/i);
    const parsed = new URL(url);
    expect(parsed.pathname).toBe('/app/');
    expect(parsed.searchParams.get('address')).toBe(ADDRESS);
    expect(parsed.searchParams.get('user')).toBe('alice');
    expect(parsed.searchParams.has('old')).toBe(false);
  });

  it('reads a share URL back into the same settings, except the password', () => {
    const mine = { ...defaults, address: ADDRESS, work: 'precache' as const, backend: 'wasm' as const, intensity: 0.5, threads: 2, password: 'p' };
    const { settings, launch, fromUrl } = settingsFromQuery(new URL(shareUrl(mine, defaults, 'http://x/')).searchParams, defaults);
    expect(fromUrl).toBe(true);
    expect(settings).toEqual({ ...mine, password: defaults.password });
    expect(launch).toEqual({ kiosk: false, autostart: false });
  });

  it('parses kiosk URLs with friendly aliases and ignores a password parameter', () => {
    const q = new URLSearchParams(`kiosk=1&autostart=true&address=${ADDRESS}&work=both&backend=cpu&password=leak`);
    const { settings, launch } = settingsFromQuery(q, defaults);
    expect(launch).toEqual({ kiosk: true, autostart: true });
    expect(settings.work).toBe('any');
    expect(settings.backend).toBe('wasm');
    expect(settings.password).toBe(defaults.password);
    expect(settingsFromQuery(new URLSearchParams('backend=gpu&work=nonsense'), defaults).settings).toMatchObject({ backend: 'webgpu', work: defaults.work });
  });

  it('resolves a relative broker URL against the page origin', () => {
    expect(resolveBrokerUrl('/mqtt', 'http://127.0.0.1:8080/app/')).toBe('ws://127.0.0.1:8080/mqtt');
    expect(resolveBrokerUrl('/mqtt', 'https://dpow.example/')).toBe('wss://dpow.example/mqtt');
    expect(resolveBrokerUrl('wss://broker.example:9001/mqtt', 'http://x/')).toBe('wss://broker.example:9001/mqtt');
    expect(resolveBrokerUrl('https://broker.example/mqtt', 'http://x/')).toBe('wss://broker.example/mqtt');
    expect(resolveBrokerUrl('ftp://nope/', 'http://x/')).toBeNull();
    const client = toClientSettings({ ...defaults, address: ADDRESS }, DEFAULT_DEPLOYMENT, 'https://dpow.example/');
    expect(client).toMatchObject({ brokerUrl: 'wss://dpow.example/mqtt', address: ADDRESS, addressPrefixes: ['nano', 'xrb'] });
  });
});
