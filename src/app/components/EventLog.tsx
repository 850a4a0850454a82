/** The client's event log, filterable by level, kind and text. */
import { useMemo, useState } from 'preact/hooks';
import type { ClientEvent } from '../../dpow/state.ts';
import { formatClock } from '../../format.ts';

type LevelFilter = 'all' | ClientEvent['level'];

export function filterEvents(events: ClientEvent[], level: LevelFilter, kind: string, text: string): ClientEvent[] {
  const needle = text.trim().toLowerCase();
  return events.filter(
    (e) =>
      (level === 'all' || e.level === level) &&
      (kind === 'all' || e.kind === kind) &&
      (needle === '' || e.message.toLowerCase().includes(needle) || e.kind.includes(needle)),
  );
}

export function EventLog({ events }: { events: ClientEvent[] }) {
  const [level, setLevel] = useState<LevelFilter>('all');
  const [kind, setKind] = useState('all');
  const [text, setText] = useState('');
  const kinds = useMemo(() => [...new Set(events.map((e) => e.kind))].sort(), [events]);
  const shown = filterEvents(events, level, kind, text).slice(0, 200);
  return (
    <section class="card log" aria-labelledby="log-title">
      <div class="card-head">
        <h2 id="log-title">Event log</h2>
        <span class="muted">
          {shown.length} of {events.length}
        </span>
      </div>
      <div class="log-filters" role="search">
        <label class="sr-only" for="log-level">
          Level
        </label>
        <select id="log-level" value={level} onChange={(e) => setLevel((e.currentTarget as HTMLSelectElement).value as LevelFilter)}>
          <option value="all">All levels</option>
          <option value="info">Info</option>
          <option value="warn">Warnings</option>
          <option value="error">Errors</option>
        </select>
        <label class="sr-only" for="log-kind">
          Kind
        </label>
        <select id="log-kind" value={kind} onChange={(e) => setKind((e.currentTarget as HTMLSelectElement).value)}>
          <option value="all">All kinds</option>
          {kinds.map((k) => (
            <option key={k} value={k}>
              {k}
            </option>
          ))}
        </select>
        <label class="sr-only" for="log-text">
          Search the log
        </label>
        <input
          id="log-text"
          type="search"
          placeholder="Search…"
          value={text}
          onInput={(e) => setText((e.currentTarget as HTMLInputElement).value)}
        />
      </div>
      {shown.length === 0 ? (
        <p class="empty">{events.length ? 'No events match the filter.' : 'Nothing yet.'}</p>
      ) : (
        <ol class="events" data-testid="event-log" aria-live="off">
          {shown.map((e, i) => (
            <li key={`${e.at}-${i}`} class={`event event-${e.level}`}>
              <time dateTime={new Date(e.at).toISOString()}>{formatClock(e.at)}</time>
              <span class={`kind kind-${e.level}`}>{e.kind}</span>
              <span class="msg">{e.message}</span>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
