/** The app shell: header, notices, then onboarding/settings or the dashboard (or the kiosk). */
import { useSignal } from '@preact/signals';
import { useState } from 'preact/hooks';
import type { AppController } from '../controller.ts';
import { applyTheme, effectiveTheme, theme } from '../theme.ts';
import { Banners } from './Banners.tsx';
import { Dashboard } from './Dashboard.tsx';
import { ConnectionPill } from './WorkerStatus.tsx';
import { Kiosk } from './Kiosk.tsx';
import { SettingsForm } from './SettingsForm.tsx';

function ThemeToggle() {
  // Reading theme.value re-renders on change; the label names the theme a click switches to.
  void theme.value;
  const next = effectiveTheme() === 'dark' ? 'light' : 'dark';
  return (
    <button type="button" class="btn btn-ghost btn-icon" onClick={() => applyTheme(next)} aria-label={`Switch to ${next} theme`} title={`Switch to ${next} theme`}>
      <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
        {next === 'light' ? (
          <path fill="currentColor" d="M12 7a5 5 0 1 0 0 10 5 5 0 0 0 0-10Zm0-5 1.5 3h-3L12 2Zm0 20-1.5-3h3L12 22ZM2 12l3-1.5v3L2 12Zm20 0-3 1.5v-3l3 1.5ZM4.9 4.9l3.2 1.1-2.1 2.1-1.1-3.2Zm14.2 14.2-3.2-1.1 2.1-2.1 1.1 3.2ZM4.9 19.1l1.1-3.2 2.1 2.1-3.2 1.1ZM19.1 4.9l-1.1 3.2-2.1-2.1 3.2-1.1Z" />
        ) : (
          <path fill="currentColor" d="M20 15.3A8.5 8.5 0 0 1 8.7 4a8.5 8.5 0 1 0 11.3 11.3Z" />
        )}
      </svg>
    </button>
  );
}

export function App({ app, wakeLock }: { app: AppController; wakeLock: boolean }) {
  // Onboarding when there is no valid saved address, or a share link brought new settings.
  const [firstRun] = useState(() => !app.addressCheck.peek().ok || app.settingsFromUrl);
  const view = useSignal<'settings' | 'dashboard'>(firstRun && !app.wanted.peek() ? 'settings' : 'dashboard');
  if (app.launch.kiosk) {
    return (
      <>
        <Banners app={app} />
        <Kiosk app={app} wakeLock={wakeLock} />
      </>
    );
  }
  const showSettings = view.value === 'settings';
  // A new view starts at its top, with focus there for keyboard and screen reader users.
  const show = (next: 'settings' | 'dashboard') => {
    view.value = next;
    window.scrollTo(0, 0);
    document.getElementById('main')?.focus({ preventScroll: true });
  };
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <div class="brand">
          <img src={`${import.meta.env.BASE_URL}icon.svg`} alt="" width="28" height="28" />
          <span class="brand-name">{app.config.title}</span>
        </div>
        <div class="topbar-right">
          <ConnectionPill state={app.state.value} wanted={app.wanted.value} />
          <button
            type="button"
            class="btn btn-ghost"
            aria-pressed={showSettings}
            aria-label={showSettings ? 'Dashboard' : 'Settings'}
            onClick={() => show(showSettings ? 'dashboard' : 'settings')}
            data-testid="settings-toggle"
          >
            <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true">
              {showSettings ? (
                <path fill="currentColor" d="M4 4h7v7H4V4Zm9 0h7v7h-7V4ZM4 13h7v7H4v-7Zm9 0h7v7h-7v-7Z" />
              ) : (
                <path
                  fill="currentColor"
                  d="M19.4 13a7.6 7.6 0 0 0 0-2l2.1-1.6-2-3.5-2.5 1a7.3 7.3 0 0 0-1.7-1L14.9 3h-4l-.4 2.9a7.3 7.3 0 0 0-1.7 1l-2.5-1-2 3.5L6.4 11a7.6 7.6 0 0 0 0 2l-2.1 1.6 2 3.5 2.5-1c.5.4 1.1.7 1.7 1l.4 2.9h4l.4-2.9c.6-.3 1.2-.6 1.7-1l2.5 1 2-3.5-2.1-1.6ZM12.9 15.5a3.5 3.5 0 1 1 0-7 3.5 3.5 0 0 1 0 7Z"
                />
              )}
            </svg>
            <span class="btn-label">{showSettings ? 'Dashboard' : 'Settings'}</span>
          </button>
          <ThemeToggle />
        </div>
      </header>
      <Banners app={app} />
      <main id="main" tabIndex={-1}>
        {showSettings ? (
          <SettingsForm app={app} firstRun={!app.wanted.value && firstRun} onDone={() => show('dashboard')} />
        ) : (
          <Dashboard app={app} />
        )}
      </main>
    </>
  );
}
