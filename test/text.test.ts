import t from 'tap';
import { formatDuration, parseDurationSeconds, requireDurationSeconds } from '../lib/text/duration.js';
import { terminalSafe } from '../lib/text/terminal.js';
import { isoTimeMs, isoTimeUs } from '../lib/text/iso-time.js';

t.test('durations: a number of seconds or a number with a unit', async (t) => {
  const cases: Array<[unknown, number]> = [
    [90, 90], [1.5, 1.5], [0, 0], ['90', 90], ['90s', 90], ['1.5s', 1.5], ['250ms', 0.25], ['15m', 900],
    ['1h', 3600], ['2h', 7200], ['7d', 604800], ['1w', 604800], ['1h30m', 5400], ['1d12h', 129600],
    [' 1h ', 3600], ['1m0.5s', 60.5],
  ];
  for (const [input, seconds] of cases) t.equal(parseDurationSeconds(input), seconds, JSON.stringify(input));
});

t.test('durations: everything else is an error, never a guess', async (t) => {
  for (const bad of ['', ' ', '1 hour', '1hour', '1h junk', 'h', '-5s', '-5', '1e3', '0x10', '1H', '1y', '1M', '30m1h', '1h1h', '1,5s', '.5s', '5.s', NaN, Infinity, -1, true, null, [], {}]) {
    t.equal(parseDurationSeconds(bad), null, JSON.stringify(bad) ?? String(bad));
  }
  t.throws(() => requireDurationSeconds('7 days'), /not a duration: "7 days" \(expected a number of seconds or a number with a unit/);
});

t.test('formatDuration: the form the parser reads back', async (t) => {
  const cases: Array<[number, string]> = [
    [0, '0s'], [0.25, '250ms'], [1.5, '1.5s'], [45, '45s'], [90, '1m30s'], [3600, '1h'], [5400, '1h30m'],
    [3723, '1h2m3s'], [86400, '1d'], [604800, '1w'], [7 * 86400 + 3600, '7d1h'], [21600, '6h'], [30 * 86400, '30d'], [14 * 86400, '2w'],
  ];
  for (const [seconds, text] of cases) {
    t.equal(formatDuration(seconds), text, String(seconds));
    t.equal(parseDurationSeconds(text), seconds, `${text} reads back`);
  }
  t.equal(formatDuration(3723, 2), '1h2m', 'two parts, rounded');
  t.equal(formatDuration(3599, 1), '1h', 'rounding carries into the next unit');
  t.equal(formatDuration(119, 1), '2m');
  t.equal(formatDuration(45.4, 2), '45.4s');
});

t.test('terminalSafe escapes control and bidi characters', async (t) => {
  t.equal(terminalSafe('alice'), 'alice');
  t.equal(terminalSafe('Zoiper rv2.10 ünïcode 中文'), 'Zoiper rv2.10 ünïcode 中文', 'printable text is kept');
  t.equal(terminalSafe('\u001b[2J\u001b]0;pwned\u0007'), '\\e[2J\\e]0;pwned\\a');
  t.equal(terminalSafe('a\rb\nc\u0000d\te'), 'a\\rb\\nc\\0d\\te');
  t.equal(terminalSafe('\u009b31m'), '\\x9b31m', 'C1 CSI');
  t.equal(terminalSafe('\u007f'), '\\x7f');
  for (const ch of ['\u202a', '\u202b', '\u202c', '\u202d', '\u202e', '\u2066', '\u2067', '\u2068', '\u2069', '\u200e', '\u200f', '\u061c', '\u2028', '\u2029', '\u200b', '\ufeff']) {
    t.equal(terminalSafe(`x${ch}y`), `x\\u{${ch.charCodeAt(0).toString(16)}}y`, `U+${ch.charCodeAt(0).toString(16)}`);
  }
  t.equal(terminalSafe('a\\eb'), 'a\\\\eb', 'a literal backslash is doubled, so an escape cannot be faked');
  t.equal(terminalSafe('\ud800x'), '\\u{d800}x', 'a lone surrogate');
  t.equal(terminalSafe('😀'), '😀', 'a surrogate pair is kept');
});

t.test('terminalSafe cuts long values with a marker', async (t) => {
  const long = 'A'.repeat(65536);
  const shown = terminalSafe(long);
  t.equal(shown, `${'A'.repeat(200)}…[+65336 chars]`);
  t.equal(terminalSafe('abcdef', 3), 'abc…[+3 chars]');
  t.equal(terminalSafe('ab😀', 3), 'ab…[+2 chars]', 'never splits a surrogate pair');
  t.equal(terminalSafe('\u001b'.repeat(10), 4), '\\e\\e\\e\\e…[+6 chars]');
});

t.test('isoTimeMs: the text of toISOString, for every kind of date', async (t) => {
  const edges = [
    0, -1, 1, 999, 1000, 86_399_999, 86_400_000, -86_400_000, 951_782_400_000 /* 2000-02-29 */, 951_868_799_999,
    4_107_542_400_000 /* 2100-03-01 */, 4_107_455_999_999, 1_893_456_000_000, 1_893_455_999_999.9, 1_735_689_599_999.5,
    -1.5, -999.9, -62_167_219_200_000, -62_167_219_200_001, 253_402_300_799_999, 253_402_300_800_000, 8.64e15, -8.64e15,
  ];
  for (const ms of edges) t.equal(isoTimeMs(ms), new Date(ms).toISOString(), String(ms));
  // A fixed-seed walk over four centuries (every leap-year rule) and the years fsguard sees.
  let x = 0x2545f491;
  const next = (): number => { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; return (x >>> 0) / 2 ** 32; };
  let bad = 0;
  for (let i = 0; i < 200_000; i++) {
    const ms = i % 2 === 0 ? Math.floor((next() - 0.3) * 2e13) : 1.7e12 + next() * 4e11;
    if (isoTimeMs(ms) !== new Date(ms).toISOString() && bad++ < 5) t.fail(`${ms}: ${isoTimeMs(ms)} against ${new Date(ms).toISOString()}`);
  }
  t.equal(bad, 0, '200,000 random times');
  t.throws(() => isoTimeMs(NaN), RangeError, 'NaN is refused as Date refuses it');
});

t.test('isoTimeUs: event time with its microseconds', async (t) => {
  t.equal(isoTimeUs(1_893_456_000_019_000), '2030-01-01T00:00:00.019000Z');
  t.equal(isoTimeUs(1_893_456_000_000_001.7), '2030-01-01T00:00:00.000001Z', 'fractions of a µs are cut');
  t.equal(isoTimeUs(1_735_689_599_999_999), '2024-12-31T23:59:59.999999Z');
  t.equal(isoTimeUs(0), '1970-01-01T00:00:00.000000Z');
  t.equal(isoTimeUs(-1), '1969-12-31T23:59:59.999999Z');
  t.equal(isoTimeUs(253_402_300_800_000_000), '+010000-01-01T00:00:00.000000Z', 'past year 9999 as Date writes it');
  let bad = 0;
  for (let us = 1_700_000_000_000_000; us < 1_700_000_000_000_000 + 5e12; us += 123_456_789) {
    const want = `${new Date(Math.floor(us / 1000)).toISOString().slice(0, 19)}.${String(us % 1_000_000).padStart(6, '0')}Z`;
    if (isoTimeUs(us) !== want && bad++ < 5) t.fail(`${us}: ${isoTimeUs(us)} against ${want}`);
  }
  t.equal(bad, 0, '40,000 times over two months');
});
