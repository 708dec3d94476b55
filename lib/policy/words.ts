// Small formatters shared by the rule table's sentences, explain and `fsguard policy`.

/** Seconds in the largest whole unit: "90 s", "5 min", "6 h", "1 d". */
export function humanSeconds(s: number): string {
  if (s >= 86400 && s % 86400 === 0) return `${s / 86400} d`;
  if (s >= 3600 && s % 3600 === 0) return `${s / 3600} h`;
  if (s >= 60 && s % 60 === 0) return `${s / 60} min`;
  return `${Math.round(s * 100) / 100} s`;
}

/** A count, with one decimal when it is not whole (window counts interpolate). */
export function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

/** A user agent or user name inside a sentence: quoted, cut to 64 characters. */
export function quoted(text: string): string {
  return JSON.stringify(text.slice(0, 64));
}
