// ISO-8601 UTC times, the one formatter of fsguard's timestamps (log lines, ban evidence,
// simulate's rows). `Date.prototype.toISOString` is a runtime call that builds its string
// through V8's date cache: every ban line took three of them (pino's time, first and last
// seen), more than the rest of the line's fields together (bench/RESULTS.md, session 10).
// This computes the calendar date with integer arithmetic (Hinnant's days-to-civil) and
// gives the same text as toISOString for years 0000-9999, which is every time an event,
// a ban or a log line can carry; outside them (and for NaN) it defers to toISOString.

/** Milliseconds of 9999-12-31T23:59:59.999Z, the last time with a four-digit year. */
const LAST_FOUR_DIGIT_MS = 253_402_300_799_999;
/** Milliseconds of 0000-01-01T00:00:00.000Z. */
const FIRST_FOUR_DIGIT_MS = -62_167_219_200_000;
const DAY_MS = 86_400_000;

/** Two digits of 0-99, built once: a table lookup instead of a padStart per field. */
const TWO: readonly string[] = Array.from({ length: 100 }, (_, i) => (i < 10 ? `0${i}` : String(i)));

function pad3(n: number): string {
  return n < 10 ? `00${n}` : n < 100 ? `0${n}` : String(n);
}

function pad4(n: number): string {
  return n < 1000 ? `${n < 10 ? '000' : n < 100 ? '00' : '0'}${n}` : String(n);
}

/** `YYYY-MM-DDTHH:MM:SS` of whole milliseconds `ms` (UTC); the caller adds the fraction. */
function dateTime(ms: number): string {
  const days = Math.floor(ms / DAY_MS);
  const inDay = ms - days * DAY_MS;
  // civil_from_days (H. Hinnant): eras of 400 years starting on 0000-03-01.
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  const seconds = Math.floor(inDay / 1000);
  const hour = Math.floor(seconds / 3600);
  const minute = Math.floor((seconds - hour * 3600) / 60);
  return `${pad4(year)}-${TWO[month]}-${TWO[day]}T${TWO[hour]}:${TWO[minute]}:${TWO[seconds - hour * 3600 - minute * 60]}`;
}

/** `new Date(ms).toISOString()`: a fraction of a millisecond is cut toward zero, as Date cuts it. */
export function isoTimeMs(ms: number): string {
  const whole = Math.trunc(ms);
  if (!(whole >= FIRST_FOUR_DIGIT_MS && whole <= LAST_FOUR_DIGIT_MS)) return new Date(ms).toISOString();
  const milli = whole - Math.floor(whole / 1000) * 1000;
  return `${dateTime(whole)}.${pad3(milli)}Z`;
}

/** ISO-8601 time of an event timestamp (µs since the epoch), keeping the microseconds. */
export function isoTimeUs(timeUs: number): string {
  const us = Math.floor(timeUs);
  const ms = Math.floor(us / 1000);
  const micros = String(us - Math.floor(us / 1_000_000) * 1_000_000).padStart(6, '0');
  const upToSeconds = ms >= FIRST_FOUR_DIGIT_MS && ms <= LAST_FOUR_DIGIT_MS ? dateTime(ms) : new Date(ms).toISOString().slice(0, -5);
  return `${upToSeconds}.${micros}Z`;
}
