/** A short note on what this browser lacks (browser-support.ts); nothing when it lacks nothing. */
import { detectSupport, supportNotes } from '../browser-support.ts';
import { serviceWorkerError } from '../pwa.ts';

const support = detectSupport(window);

export function BrowserNotes({ kiosk }: { kiosk: boolean }) {
  const notes = supportNotes(support, { kiosk, serviceWorkerError: serviceWorkerError.value });
  if (notes.length === 0) return null;
  return (
    <div class="banner" role="note" data-testid="browser-notes">
      <strong>In this browser:</strong>
      {notes.map((note) => (
        <span key={note.id} data-note={note.id}>
          {note.text}
        </span>
      ))}
    </div>
  );
}
