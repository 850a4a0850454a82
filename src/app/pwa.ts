/**
 * Service worker registration with workbox-window (from this module, so index.html carries no
 * inline script). The worker is generated with registerType 'prompt': a new version waits until
 * the volunteer presses Reload, except in kiosk mode, which takes it at once (nobody is there to
 * press anything).
 */
import { signal } from '@preact/signals';
import { Workbox } from 'workbox-window';

/** Set when a new version is installed and waiting; calling it activates it and reloads. */
export const updateReady = signal<null | (() => void)>(null);
/** True once a service worker controls this page (the app then works offline). */
export const offlineReady = signal(false);
/** Why registering the service worker failed, when it did (shown as a note, not thrown). */
export const serviceWorkerError = signal<string | null>(null);

export interface RegisterOptions {
  autoUpdate: boolean;
  /** How often to look for a new version while the page stays open. */
  checkEveryMs?: number;
}

export function registerServiceWorker({ autoUpdate, checkEveryMs = 60 * 60 * 1000 }: RegisterOptions): void {
  if (!('serviceWorker' in navigator)) return;
  const wb = new Workbox(`${import.meta.env.BASE_URL}sw.js`, { scope: import.meta.env.BASE_URL });
  let reloading = false;
  const activate = () => {
    // Reload once the waiting worker has taken control, so the page and its cache agree.
    wb.addEventListener('controlling', () => {
      if (reloading) return;
      reloading = true;
      window.location.reload();
    });
    wb.messageSkipWaiting();
  };
  wb.addEventListener('waiting', () => {
    if (autoUpdate) activate();
    else updateReady.value = activate;
  });
  wb.addEventListener('activated', () => {
    offlineReady.value = true;
  });
  if (navigator.serviceWorker.controller) offlineReady.value = true;
  wb.register()
    .then((registration) => {
      if (!registration) return;
      setInterval(() => {
        if (navigator.onLine) registration.update().catch(() => undefined);
      }, checkEveryMs);
    })
    .catch((err: unknown) => {
      console.warn('service worker registration failed', err);
      serviceWorkerError.value = err instanceof Error ? err.message : String(err);
    });
}
