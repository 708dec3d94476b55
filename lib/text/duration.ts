// Durations as people write them in a config file, an environment variable or on the command
// line, and the one way fsguard prints them. A duration is a number of seconds or a number
// with a unit:
//
//   90   90s   1.5s   250ms   15m   1h   2d   1w   1h30m
//
// Units: ms (milliseconds), s (seconds), m (minutes), h (hours), d (days), w (weeks). There is
// no month or year unit (months differ in length, and "m" is minutes). A compound form writes
// the units from the largest down, each at most once ("1h30m", not "30m1h"). Anything else (an
// empty string, "1 hour", "1h junk", "-5s", "1e3", "0x10") is an error, never a guess: a
// coerced "7d" that became 7 seconds is how bans turn into nothing.

export const DURATION_UNITS: Readonly<Record<DurationUnit, number>> = { w: 604800, d: 86400, h: 3600, m: 60, s: 1, ms: 0.001 };

export type DurationUnit = 'w' | 'd' | 'h' | 'm' | 's' | 'ms';

const UNIT_ORDER: readonly DurationUnit[] = ['w', 'd', 'h', 'm', 's', 'ms'];

/** What the parser accepts, for error messages. */
export const DURATION_FORMS = 'a number of seconds or a number with a unit ms, s, m, h, d or w (e.g. 90, "90s", "15m", "1h", "7d", "1h30m")';

const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/y;
const PLAIN_NUMBER = /^\d+(?:\.\d+)?$/;

/**
 * Seconds for a duration, or null when the text or value is not one (see the module comment).
 * A JSON number is seconds; it must be finite and not negative.
 */
export function parseDurationSeconds(value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : null;
  if (typeof value !== 'string') return null;
  const text = value.trim();
  if (text === '') return null;
  if (PLAIN_NUMBER.test(text)) return Number(text);
  let total = 0;
  let at = 0;
  let lastUnit = -1;
  while (at < text.length) {
    PART.lastIndex = at;
    const m = PART.exec(text);
    if (!m) return null;
    const unit = UNIT_ORDER.indexOf(m[2] as DurationUnit);
    if (unit <= lastUnit) return null;
    lastUnit = unit;
    total += Number(m[1]) * DURATION_UNITS[m[2] as DurationUnit];
    at = PART.lastIndex;
  }
  // Sums of ms parts carry binary fractions: 1.2s → 1.2, not 1.2000000000000002.
  return Math.round(total * 1e6) / 1e6;
}

/** Like parseDurationSeconds, but throws an Error that quotes the value and says what is accepted. */
export function requireDurationSeconds(value: unknown): number {
  const s = parseDurationSeconds(value);
  if (s === null) throw new Error(`not a duration: ${JSON.stringify(value)} (expected ${DURATION_FORMS})`);
  return s;
}

/**
 * The one way fsguard prints a duration: the units from the largest down, in the form the
 * parser reads back ("1h30m", "7d", "1.5s", "250ms"). `maxParts` keeps only the leading units
 * (rounded to the last shown one) for at-a-glance columns such as a ban's time left: 3723 s
 * is "1h2m3s" exactly, "1h2m" with maxParts 2.
 */
export function formatDuration(seconds: number, maxParts = Infinity): string {
  if (!Number.isFinite(seconds)) return String(seconds);
  if (seconds < 0) return `-${formatDuration(-seconds, maxParts)}`;
  if (seconds === 0) return '0s';
  if (seconds < 1) return `${roundTo(seconds * 1000, 3)}ms`;
  maxParts = Math.max(1, Math.floor(maxParts));
  // Whole-unit parts above seconds; seconds keep their fraction (1.5s, 1m0.5s). Weeks only for
  // a whole number of them: 30 days reads better as "30d" than "4w2d".
  const wholeUnits: DurationUnit[] = seconds % DURATION_UNITS.w === 0 ? ['w', 'd', 'h', 'm'] : ['d', 'h', 'm'];
  // Round to the smallest unit that will be shown, so 59.9 min with 1 part is "1h", not "59m".
  const parts: string[] = [];
  let rest = roundTo(seconds, 6);
  let shown: DurationUnit[] = [];
  // Twice: rounding can carry into a larger unit (3599 s with one part → 60 m → 1 h).
  for (let pass = 0; pass < 2; pass++) {
    let first = wholeUnits.findIndex((u) => rest >= DURATION_UNITS[u]);
    if (first === -1) first = wholeUnits.length;

    shown = wholeUnits.slice(first).concat('s').slice(0, maxParts);
    const smallest = DURATION_UNITS[shown[shown.length - 1]!];
    if (smallest > 1) rest = Math.round(rest / smallest) * smallest;
  }
  for (const u of shown) {
    const size = DURATION_UNITS[u];
    if (u === 's') {
      const s = roundTo(rest, 3);
      if (s > 0 || parts.length === 0) parts.push(`${s}s`);
      break;
    }
    const n = Math.floor(rest / size);
    rest = roundTo(rest - n * size, 6);
    if (n > 0) parts.push(`${n}${u}`);
  }
  return parts.length ? parts.join('') : '0s';
}

function roundTo(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
