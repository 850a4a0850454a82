/**
 * The page-wide notices: offline, server offline, reconnecting, errors, a waiting update, and what
 * this browser lacks.
 */
import type { AppController } from '../controller.ts';
import { updateReady } from '../pwa.ts';
import { BrowserNotes } from './BrowserNotes.tsx';

export function Banners({ app }: { app: AppController }) {
  const s = app.state.value;
  const online = app.online.value;
  const wanted = app.wanted.value;
  const update = updateReady.value;
  const heartbeatAge = s.lastHeartbeatAt ? Math.max(0, app.now.value - s.lastHeartbeatAt) : null;
  return (
    <div class="banners">
      {update && !app.launch.kiosk && (
        <div class="banner banner-info" role="status" data-testid="update-banner">
          <span>Update available.</span>
          <button type="button" class="btn btn-small" onClick={() => update()}>
            Reload
          </button>
        </div>
      )}
      {!online && (
        <div class="banner banner-warn" role="alert" data-testid="offline-banner">
          <strong>You are offline.</strong>
          <span>
            {wanted
              ? ' Work pauses until the network returns; it reconnects and resumes by itself.'
              : ' The app works from its offline copy; connecting needs the network.'}
          </span>
        </div>
      )}
      {online && s.connection === 'server-offline' && (
        <div class="banner banner-error" role="alert" data-testid="server-offline-banner">
          <strong>Server offline.</strong>
          <span>
            {' '}No heartbeat{heartbeatAge !== null ? ` for ${Math.round(heartbeatAge / 1000)} s` : ' yet'}. Work
            resumes when the server is back.
          </span>
        </div>
      )}
      {online && s.connection === 'reconnecting' && (
        <div class="banner banner-warn" role="status">
          <strong>Connection lost.</strong> <span>Reconnecting to the broker…</span>
        </div>
      )}
      {app.settingsNotices.value.map((notice) => (
        <div key={notice} class="banner banner-warn" role="status" data-testid="settings-notice">
          <strong>Settings:</strong> <span>{notice}</span>
        </div>
      ))}
      {(app.startError.value || s.error) && (
        <div class="banner banner-error" role="alert" data-testid="error-banner">
          <strong>Problem:</strong> <span>{app.startError.value ?? s.error}</span>
        </div>
      )}
      <BrowserNotes kiosk={app.launch.kiosk} />
    </div>
  );
}
