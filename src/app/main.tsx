/**
 * The page's entry: load the deployment's /config.json, build the controller (engine + client),
 * register the service worker, render. The browser's edges are wired here: the tab lock (Web
 * Locks), the Battery Status API, page visibility, notifications and the history's IndexedDB.
 * Kiosk mode adds autostart, a wake lock and automatic updates.
 */
import { render } from 'preact';
import { computed, signal } from '@preact/signals';
import { DEFAULT_DEPLOYMENT, parseDeployment, type DeploymentConfig } from '../dpow/deployment.ts';
import { DpowClient } from '../dpow/client.ts';
import { BrowserEngine, DEFAULT_MAX_REPLACEMENTS } from '../pow-browser/browser-engine.ts';
import { usableCoreCount } from '../pow-browser/parallelism.ts';
import type { Alert } from './alerts.ts';
import { watchBattery } from './battery.ts';
import { AppController } from './controller.ts';
import { openHistoryStore } from './history-store.ts';
import { TabLock } from './tab-lock.ts';
import { App } from './components/App.tsx';
import { registerServiceWorker } from './pwa.ts';
import { applyTheme, theme } from './theme.ts';
import { holdWakeLockWhile } from './wake-lock.ts';
import './styles.css';

const KIOSK_RETRY_MS = 30_000;

/** The deployment's settings; offline, the service worker answers from its cache. */
async function loadDeployment(): Promise<DeploymentConfig> {
  try {
    const response = await fetch(`${import.meta.env.BASE_URL}config.json`, { cache: 'no-cache' });
    if (response.ok) return parseDeployment(await response.json());
  } catch {
    // Offline with nothing cached yet: the built-in defaults still give a working page.
  }
  return { ...DEFAULT_DEPLOYMENT };
}

/** Shows an alert as a system notification, when the volunteer allowed them. */
function notify(alert: Alert): void {
  if (typeof Notification === 'undefined' || Notification.permission !== 'granted') return;
  try {
    new Notification(alert.title, { body: alert.body, tag: alert.tag, icon: `${import.meta.env.BASE_URL}icon.svg` });
  } catch {
    // Some browsers allow notifications only from a service worker: the dashboard shows the state anyway.
  }
}

function storage(): Storage | undefined {
  try {
    return window.localStorage;
  } catch {
    return undefined;
  }
}

async function boot(): Promise<void> {
  applyTheme(theme.value);
  // The thread default needs the cores that really run at once, not only the browser's claim.
  const [config, cores] = await Promise.all([loadDeployment(), usableCoreCount(navigator, storage())]);
  document.title = config.title;
  // The engine worker, once the first Start has created it.
  let worker: BrowserEngine | null = null;
  const app = new AppController({
    config,
    pageUrl: window.location.href,
    storage: storage(),
    hardwareConcurrency: cores,
    online: navigator.onLine,
    createClient: () => {
      // The engine worker starts with the first Start; status callbacks cross as Comlink proxies.
      // Calls wait for a worker that has answered (a silent one is replaced: browser-engine.ts),
      // so none goes to a worker that is then thrown away; a replacement is logged as a warning.
      const engine = new BrowserEngine();
      worker = engine;
      const answering = () => engine.ready().then(() => engine.engine);
      return new DpowClient({
        engine: {
          generate: async (root, difficulty, options) => (await answering()).generate(root, difficulty, options),
          cancel: async (root) => (await answering()).cancel(root),
          // A worker that never answers fails Start (setKernel below) with the engine's failure.
          onStatus: (callback) => void engine.onStatus(callback).catch(() => {}),
          onNotice: (callback) =>
            void engine.onReplacement((r) =>
              callback(`Engine worker replaced (${r.attempt} of at most ${DEFAULT_MAX_REPLACEMENTS}): it ${r.reason}`),
            ),
        },
      });
    },
    setKernel: async (variant) => {
      if (!worker) return;
      await worker.ready();
      await worker.engine.setKernel(variant);
    },
    tabLock: new TabLock(navigator.locks),
    notify,
  });
  app.attach();
  watchBattery((onBattery) => (app.onBattery.value = onBattery));
  const visibility = () => (app.pageHidden.value = document.visibilityState === 'hidden');
  visibility();
  document.addEventListener('visibilitychange', visibility);
  // The history opens beside the first render; what is counted before it opens is written then.
  void openHistoryStore().then((store) => app.attachHistory(store));
  // Leaving or hiding the page: write what is counted now (IndexedDB finishes it in the background).
  window.addEventListener('pagehide', () => void app.flushHistory());
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'hidden') void app.flushHistory();
  });
  window.addEventListener('online', () => void app.networkOnline());
  window.addEventListener('offline', () => app.networkOffline());

  const kiosk = app.launch.kiosk;
  if (kiosk) document.documentElement.classList.add('kiosk-mode');
  if (import.meta.env.PROD) registerServiceWorker({ autoUpdate: kiosk, checkEveryMs: kiosk ? 15 * 60 * 1000 : 60 * 60 * 1000 });

  const wakeLockHeld = signal(false);
  if (kiosk) holdWakeLockWhile(computed(() => app.wanted.value), wakeLockHeld);

  const root = document.getElementById('app')!;
  const Root = () => <App app={app} wakeLock={wakeLockHeld.value} />;
  render(<Root />, root);

  // Expose the controller for tests and for curious volunteers in the console (read-only use).
  (window as unknown as { dpowApp?: AppController }).dpowApp = app;

  // Kiosk autostart, or picking up work the page was doing before a reload or restart.
  if ((app.launch.autostart || app.shouldResume()) && app.addressCheck.value.ok) await app.start();

  // An unattended kiosk has no Start button: if a start failed, it tries again by itself.
  if (kiosk && app.launch.autostart) {
    setInterval(() => {
      if (!app.wanted.value && !app.busy.value && app.addressCheck.value.ok) void app.start();
    }, KIOSK_RETRY_MS);
  }
}

void boot();
