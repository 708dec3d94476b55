// Small formatters shared by the rule table's sentences, explain and `fsguard policy`.
import { formatDuration } from '../text/duration.js';

/** Seconds as fsguard prints every duration (lib/text/duration.ts): "90s", "5m", "6h", "1d", "1h30m". */
export function humanSeconds(s: number): string {
  return formatDuration(s);
}

/** A count, with one decimal when it is not whole (window counts interpolate). */
export function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

/** A user agent or user name inside a sentence: quoted, cut to 64 characters. */
export function quoted(text: string): string {
  return JSON.stringify(text.slice(0, 64));
}
