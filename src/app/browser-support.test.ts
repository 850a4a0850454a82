import { describe, expect, it } from 'vitest';
import { detectSupport, supportNotes, type BrowserSupport } from './browser-support.ts';

const EVERYTHING: BrowserSupport = { serviceWorker: true, installPrompt: true, wakeLock: true, indexedDb: true };
const ids = (support: BrowserSupport, kiosk: boolean, serviceWorkerError?: string) =>
  supportNotes(support, { kiosk, serviceWorkerError }).map((n) => n.id);

describe('browser support notes', () => {
  it('says nothing where the browser has every part', () => {
    expect(ids(EVERYTHING, false)).toEqual([]);
    expect(ids(EVERYTHING, true)).toEqual([]);
  });

  it('names each missing part that matters in the view: the install prompt on the page, the wake lock in a kiosk', () => {
    // Firefox and Safari: no install prompt; it is not missed in a kiosk.
    expect(ids({ ...EVERYTHING, installPrompt: false }, false)).toEqual(['install-prompt']);
    expect(ids({ ...EVERYTHING, installPrompt: false }, true)).toEqual([]);
    // A wake lock only matters to a kiosk.
    expect(ids({ ...EVERYTHING, wakeLock: false }, false)).toEqual([]);
    expect(ids({ ...EVERYTHING, wakeLock: false }, true)).toEqual(['wake-lock']);
    const none = { serviceWorker: false, installPrompt: false, wakeLock: false, indexedDb: false };
    expect(ids(none, false)).toEqual(['service-worker', 'install-prompt', 'indexed-db']);
    expect(ids(none, true)).toEqual(['service-worker', 'wake-lock', 'indexed-db']);
  });

  it('says why a service worker the browser has did not start', () => {
    const [note] = supportNotes(EVERYTHING, { kiosk: false, serviceWorkerError: 'SecurityError: denied' });
    expect(note).toEqual({ id: 'service-worker', text: expect.stringContaining('(SecurityError: denied)') });
  });

  it('detects parts without throwing, even where reading one throws', () => {
    const throwing = {
      navigator: {
        get serviceWorker(): never {
          throw new Error('SecurityError');
        },
        wakeLock: {},
      },
      get indexedDB(): never {
        throw new Error('private mode');
      },
    };
    expect(detectSupport(throwing as unknown as Window)).toEqual({ serviceWorker: false, installPrompt: false, wakeLock: true, indexedDb: false });
    const complete = { navigator: { serviceWorker: {}, wakeLock: {} }, onbeforeinstallprompt: null, indexedDB: { open() {} } };
    expect(detectSupport(complete as unknown as Window)).toEqual(EVERYTHING);
  });
});
