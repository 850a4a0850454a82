/**
 * The page's optional parts that a browser may lack, and a short note for each one that is missing,
 * so a volunteer reads why instead of meeting an error: the service worker (offline use and
 * updates), the install prompt, the screen wake lock (kiosk mode) and IndexedDB (the kernel
 * tuner's cache). Firefox and Safari have no install prompt; a private window may have no service
 * worker. Plain functions over what the caller detected, so they test without a browser.
 */

export interface BrowserSupport {
  serviceWorker: boolean;
  installPrompt: boolean;
  wakeLock: boolean;
  indexedDb: boolean;
}

export type SupportNoteId = 'service-worker' | 'install-prompt' | 'wake-lock' | 'indexed-db';

export interface SupportNote {
  id: SupportNoteId;
  text: string;
}

/** What the page's window offers; reading a property never throws out of here. */
export function detectSupport(win: Window): BrowserSupport {
  const has = (read: () => boolean) => {
    try {
      return read();
    } catch {
      return false;
    }
  };
  return {
    serviceWorker: has(() => 'serviceWorker' in win.navigator && win.navigator.serviceWorker != null),
    installPrompt: has(() => 'onbeforeinstallprompt' in win),
    wakeLock: has(() => 'wakeLock' in win.navigator && win.navigator.wakeLock != null),
    indexedDb: has(() => typeof win.indexedDB?.open === 'function'),
  };
}

export interface NoteContext {
  /** Kiosk mode: a wake lock matters, an install prompt does not. */
  kiosk: boolean;
  /** Why the service worker failed to register, when the browser has one but it failed. */
  serviceWorkerError?: string | null;
}

/** One short note per missing part that matters in this view, in a fixed order. */
export function supportNotes(support: BrowserSupport, context: NoteContext): SupportNote[] {
  const notes: SupportNote[] = [];
  if (!support.serviceWorker) {
    notes.push({ id: 'service-worker', text: 'No service worker: the page does not open offline or update by itself.' });
  } else if (context.serviceWorkerError) {
    notes.push({
      id: 'service-worker',
      text: `The service worker did not start (${context.serviceWorkerError}): the page does not open offline.`,
    });
  }
  if (!support.installPrompt && !context.kiosk) {
    notes.push({
      id: 'install-prompt',
      text: "No install prompt: add the page from the browser's menu (Safari: Share, Add to Dock or Home Screen) or bookmark it.",
    });
  }
  if (!support.wakeLock && context.kiosk) {
    notes.push({ id: 'wake-lock', text: 'No screen wake lock: keep the display on in the system settings.' });
  }
  if (!support.indexedDb) {
    notes.push({ id: 'indexed-db', text: 'No IndexedDB: the GPU kernel is tuned again on every visit.' });
  }
  return notes;
}
