/**
 * When to tell a volunteer who is not looking (the opt-in notifications): the connection has
 * been lost for more than a few minutes while they want work, or the server refuses this
 * address's results. One policy, plain values in and out; main.tsx turns each alert into a
 * Notification.
 */
import type { Activity } from '../dpow/activity.ts';
import type { ClientMessage } from '../dpow/codec.ts';

/** Lost for this long before anyone is told: a reconnect within it is not news. */
export const LOST_ALERT_MS = 3 * 60_000;
/** At most one refusal notification per this long, however many refusals arrive. */
const REFUSAL_QUIET_MS = 10 * 60_000;

export interface Alert {
  /** Notifications with the same tag replace each other instead of piling up. */
  tag: 'connection-lost' | 'results-refused';
  title: string;
  body: string;
}

export interface AlertInput {
  now: number;
  /** The volunteer wants work (Start pressed, not stopped). */
  wanted: boolean;
  activity: Activity;
  /** The latest client/<address> message (an object identity per message). */
  lastClientMessage: ClientMessage | null;
}

export class AlertPolicy {
  #offlineSince: number | null = null;
  #lostTold = false;
  #lastMessage: ClientMessage | null = null;
  #refusalToldAt = -Infinity;

  readonly #lostAfterMs: number;

  constructor(lostAfterMs = LOST_ALERT_MS) {
    this.#lostAfterMs = lostAfterMs;
  }

  /** Feeds the current state; returns the alerts to show now (usually none). */
  observe(input: AlertInput): Alert[] {
    const alerts: Alert[] = [];
    if (input.wanted && input.activity === 'offline') {
      this.#offlineSince ??= input.now;
      if (!this.#lostTold && input.now - this.#offlineSince >= this.#lostAfterMs) {
        this.#lostTold = true;
        const minutes = Math.round((input.now - this.#offlineSince) / 60_000);
        alerts.push({
          tag: 'connection-lost',
          title: 'dpow-web: no connection',
          body: `The worker has been offline for ${minutes} minutes; it keeps trying to reconnect.`,
        });
      }
    } else {
      this.#offlineSince = null;
      this.#lostTold = false;
    }
    const message = input.lastClientMessage;
    if (message !== this.#lastMessage) {
      this.#lastMessage = message;
      if (input.wanted && message?.kind === 'error' && input.now - this.#refusalToldAt >= REFUSAL_QUIET_MS) {
        this.#refusalToldAt = input.now;
        alerts.push({ tag: 'results-refused', title: 'dpow-web: results refused', body: `The server says: ${message.error}` });
      }
    }
    return alerts;
  }
}
