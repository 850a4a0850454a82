/**
 * Onboarding and settings: the payout address (checked live, checksum included), what work to
 * take, which backend, how hard to run it, and the broker login. Start stays disabled until the
 * address is valid, with the reason shown beside the field.
 */
import { useState } from 'preact/hooks';
import type { AppController } from '../controller.ts';
import type { AppSettings } from '../settings.ts';
import { KERNEL_CHOICES, shareUrl } from '../settings.ts';
import type { WorkChoice } from '../../dpow/state.ts';
import type { BackendChoice } from '../../pow/types.ts';

const WORK_OPTIONS: { value: WorkChoice; label: string; hint: string }[] = [
  { value: 'any', label: 'Both', hint: 'On-demand work first, precache when there is none.' },
  { value: 'ondemand', label: 'On demand', hint: 'Only work a service is waiting for right now.' },
  { value: 'precache', label: 'Precache', hint: "Only work computed ahead of time for accounts' next blocks." },
];

const BACKEND_OPTIONS: { value: BackendChoice; label: string }[] = [
  { value: 'auto', label: 'Auto (fastest available)' },
  { value: 'webgpu', label: 'GPU (WebGPU)' },
  { value: 'wasm', label: 'CPU (WebAssembly threads)' },
];

export function SettingsForm({ app, onDone, firstRun }: { app: AppController; onDone: () => void; firstRun: boolean }) {
  const settings = app.settings.value;
  const check = app.addressCheck.value;
  const [touched, setTouched] = useState(settings.address !== '');
  const [copied, setCopied] = useState<string | null>(null);
  const maxThreads = Math.max(navigator.hardwareConcurrency || 1, settings.threads, 1);
  const wanted = app.wanted.value;
  const busy = app.busy.value;
  const addressEmpty = settings.address === '';
  const showError = !check.ok && (touched || !addressEmpty);
  const edit = (patch: Partial<AppSettings>) => app.edit(patch);
  const [notifyBlocked, setNotifyBlocked] = useState(() => typeof Notification !== 'undefined' && Notification.permission === 'denied');

  // Asked from the click itself: browsers only prompt for a user gesture.
  const toggleNotify = async (on: boolean) => {
    edit({ notify: on });
    if (!on) return;
    if (typeof Notification === 'undefined') {
      setNotifyBlocked(true);
      return;
    }
    const permission = Notification.permission === 'default' ? await Notification.requestPermission() : Notification.permission;
    setNotifyBlocked(permission !== 'granted');
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    setTouched(true);
    if (!check.ok) return;
    if (wanted) {
      await app.apply(app.settings.value);
      onDone();
    } else if (await app.start()) {
      onDone();
    }
  };

  const share = async () => {
    const url = shareUrl(app.settings.value, app.defaults, window.location.href);
    try {
      await navigator.clipboard.writeText(url);
      setCopied(url);
    } catch {
      setCopied(url);
    }
  };

  return (
    <form class="card settings" onSubmit={submit} aria-labelledby="settings-title" noValidate>
      <h2 id="settings-title">{firstRun ? 'Start contributing' : 'Settings'}</h2>
      {firstRun && (
        <p class="lead">
          Your browser computes proofs of work for Nano services through DPoW. Work that is accepted earns
          rewards for the payout address below. Nothing is installed; close the tab to stop.
        </p>
      )}

      <div class="field">
        <label for="address">Payout address</label>
        <input
          id="address"
          name="address"
          type="text"
          inputMode="text"
          autoComplete="off"
          autoCapitalize="off"
          spellcheck={false}
          placeholder={`${app.config.addressPrefixes[0] ?? 'nano'}_1…`}
          value={settings.address}
          aria-invalid={showError ? 'true' : 'false'}
          aria-describedby="address-help"
          onInput={(e) => edit({ address: (e.currentTarget as HTMLInputElement).value.trim() })}
          onBlur={() => setTouched(true)}
        />
        <p id="address-help" class={`help ${showError ? 'help-error' : check.ok ? 'help-ok' : ''}`} aria-live="polite">
          {check.ok
            ? 'Valid address, checksum verified.'
            : showError
              ? check.reason.charAt(0).toUpperCase() + check.reason.slice(1) + '.'
              : `Accepted prefixes: ${app.config.addressPrefixes.map((p) => `${p}_`).join(', ')}.`}
        </p>
      </div>

      <fieldset class="field">
        <legend>Work to take</legend>
        <div class="segmented">
          {WORK_OPTIONS.map((o) => (
            <label key={o.value} class="segment" title={o.hint}>
              <input
                type="radio"
                name="work"
                value={o.value}
                checked={settings.work === o.value}
                onChange={() => edit({ work: o.value })}
              />
              <span>{o.label}</span>
            </label>
          ))}
        </div>
        <p class="help">{WORK_OPTIONS.find((o) => o.value === settings.work)?.hint}</p>
      </fieldset>

      <div class="field-row">
        <div class="field">
          <label for="backend">Compute on</label>
          <select
            id="backend"
            value={settings.backend}
            aria-describedby="backend-help"
            onChange={(e) => edit({ backend: (e.currentTarget as HTMLSelectElement).value as BackendChoice })}
          >
            {BACKEND_OPTIONS.map((o) => (
              <option key={o.value} value={o.value}>
                {o.label}
              </option>
            ))}
          </select>
          <p id="backend-help" class="help">
            Auto uses a hardware GPU when the browser offers one, and the CPU threads otherwise (a
            software GPU is slower than the CPU).
          </p>
        </div>
        <div class="field">
          <label for="threads">CPU threads</label>
          <input
            id="threads"
            type="number"
            min={1}
            max={maxThreads}
            step={1}
            value={settings.threads}
            aria-describedby="threads-help"
            onInput={(e) => {
              const n = Number((e.currentTarget as HTMLInputElement).value);
              if (Number.isInteger(n) && n >= 1) edit({ threads: Math.min(n, maxThreads) });
            }}
          />
          <p id="threads-help" class="help">
            Used by the CPU backend; by default all cores but one ({app.defaults.threads}).
          </p>
        </div>
      </div>

      <div class="field">
        <label for="intensity">
          Intensity (GPU and CPU) <output for="intensity">{Math.round(settings.intensity * 100)}%</output>
        </label>
        <input
          id="intensity"
          type="range"
          min={10}
          max={100}
          step={5}
          value={Math.round(settings.intensity * 100)}
          aria-describedby="intensity-help"
          aria-valuetext={`${Math.round(settings.intensity * 100)} percent`}
          onInput={(e) => edit({ intensity: Number((e.currentTarget as HTMLInputElement).value) / 100 })}
        />
        <p id="intensity-help" class="help">
          Share of time the GPU or the CPU threads compute: at 50% they idle half the time, so the CPU time really
          halves. Lower it to keep the device cool and responsive.
        </p>
      </div>

      <div class="field">
        <label for="kernel">GPU kernel</label>
        <select
          id="kernel"
          value={settings.kernel ?? 'auto'}
          aria-describedby="kernel-help"
          onChange={(e) => {
            const value = (e.currentTarget as HTMLSelectElement).value;
            edit({ kernel: value === 'auto' ? null : value });
          }}
        >
          <option value="auto">Automatic (tuned)</option>
          {KERNEL_CHOICES.map((name) => (
            <option key={name} value={name}>
              {name}
            </option>
          ))}
        </select>
        <p id="kernel-help" class="help">
          Automatic measures each kernel variant on this device once and keeps the fastest. Pick one to use it
          instead (carry form, nonces per invocation, workgroup size).
        </p>
      </div>

      <fieldset class="field kind" aria-describedby="kind-help">
        <legend>Be kind to this device</legend>
        <p id="kind-help" class="help">When one of these pauses the work, the dashboard says so.</p>
        <label class="switch">
          <input type="checkbox" checked={settings.pauseOnBattery} onChange={(e) => edit({ pauseOnBattery: (e.currentTarget as HTMLInputElement).checked })} />
          <span>
            Pause on battery
            <small class="help">
              {app.onBattery.value === null
                ? 'This browser does not say whether the device runs on battery, so this cannot act here.'
                : 'Resumes when the charger is plugged in.'}
            </small>
          </span>
        </label>
        <label class="switch">
          <input type="checkbox" checked={settings.oneTab} onChange={(e) => edit({ oneTab: (e.currentTarget as HTMLInputElement).checked })} />
          <span>
            One tab computes
            <small class="help">A second tab of this browser waits, and can take over.</small>
          </span>
        </label>
        <label class="switch">
          <input type="checkbox" checked={settings.pauseWhenHidden} onChange={(e) => edit({ pauseWhenHidden: (e.currentTarget as HTMLInputElement).checked })} />
          <span>
            Pause when this page is hidden
            <small class="help">Another tab in front or the window minimised; work resumes when it is shown.</small>
          </span>
        </label>
        <label class="switch">
          <input type="checkbox" checked={settings.notify} onChange={(e) => void toggleNotify((e.currentTarget as HTMLInputElement).checked)} />
          <span>
            Notify me
            <small class="help" data-testid="notify-help">
              {notifyBlocked
                ? 'Notifications are blocked for this site: allow them in the browser to be told.'
                : 'When the connection has been lost for more than 3 minutes, or the server refuses your results.'}
            </small>
          </span>
        </label>
      </fieldset>

      <details class="advanced">
        <summary>Connection</summary>
        <div class="field">
          <label for="broker">Broker URL</label>
          <input
            id="broker"
            type="text"
            autoComplete="off"
            spellcheck={false}
            value={settings.brokerUrl}
            aria-describedby="broker-help"
            onInput={(e) => edit({ brokerUrl: (e.currentTarget as HTMLInputElement).value.trim() || app.defaults.brokerUrl })}
          />
          <p id="broker-help" class="help">
            WebSocket address of the DPoW broker. Default: {app.defaults.brokerUrl} on this server.
          </p>
        </div>
        <div class="field-row">
          <div class="field">
            <label for="username">Username</label>
            <input
              id="username"
              type="text"
              autoComplete="username"
              value={settings.username}
              onInput={(e) => edit({ username: (e.currentTarget as HTMLInputElement).value })}
            />
          </div>
          <div class="field">
            <label for="password">Password</label>
            <input
              id="password"
              type="password"
              autoComplete="current-password"
              value={settings.password}
              onInput={(e) => edit({ password: (e.currentTarget as HTMLInputElement).value })}
            />
          </div>
        </div>
      </details>

      <div class="actions">
        <button type="submit" class="btn btn-primary" disabled={!check.ok || busy} aria-describedby="address-help">
          {wanted ? 'Apply and restart' : 'Start working'}
        </button>
        {!firstRun && (
          <button type="button" class="btn" onClick={onDone}>
            Back to dashboard
          </button>
        )}
        <button type="button" class="btn btn-ghost" onClick={share} disabled={!check.ok}>
          Copy share link
        </button>
      </div>
      {copied && (
        <p class="help share" role="status">
          Link (without your password): <a href={copied} data-testid="share-link">{copied}</a>
        </p>
      )}
    </form>
  );
}
