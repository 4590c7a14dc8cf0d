/**
 * What the demo chat and the dashboard show alike: one time format, and one colour per user.
 * Browser-only helpers of the pages, not part of the SDK (client/index.ts does not export them).
 */

/** Hours, minutes and seconds in the reader's locale (`14:05:09`, or `02:05:09 PM`). */
const TIME = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
/** The full date and time, for tooltips. */
const DATE_TIME = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });

function toDate(ts: string | number | Date): Date | undefined {
  const d = ts instanceof Date ? ts : new Date(ts);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** A timestamp (ISO 8601 from the server, or ms) as the pages show it; '' when it is not a time. */
export function formatTime(ts: string | number | Date): string {
  const d = toDate(ts);
  return d ? TIME.format(d) : '';
}

/** The same instant with its date, for a tooltip; '' when it is not a time. */
export function formatDateTime(ts: string | number | Date): string {
  const d = toDate(ts);
  return d ? DATE_TIME.format(d) : '';
}

/**
 * The hue (0–359) of a user, from the user id: the same user has the same colour on every page,
 * every reload and every device, whatever their display name. FNV-1a over the UTF-16 code units.
 */
export function userHue(userId: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < userId.length; i++) {
    hash ^= userId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % 360;
}

/** Sets `--user-hue` on `el`, which the pages' CSS turns into the user's avatar and name colours. */
export function paintUser<E extends HTMLElement>(el: E, userId: string): E {
  el.style.setProperty('--user-hue', String(userHue(userId)));
  el.dataset.userId = userId;
  return el;
}
