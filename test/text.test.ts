import t from 'tap';
import { formatDuration, parseDurationSeconds, requireDurationSeconds } from '../lib/text/duration.js';
import { terminalSafe } from '../lib/text/terminal.js';

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
