// Attacker-controlled text (user agents, user names) shown to a person: status output, mail
// bodies, chat messages. The harden helper's lib/text/terminal.ts is to be the one owner of
// this; until it is on main this is the minimal version with the same name and signature,
// imported from here only, so switching is one line.
//
// Escaped, so the text shown is unambiguous and cannot act on a terminal or a reader:
// C0/C1 controls and DEL (ANSI escapes, CR/LF that would forge a line), bidi overrides and
// isolates (Trojan Source: text that reads differently from what it is), zero-width and
// line/paragraph separators, and the backslash itself (so `\x1b` in the output always means
// an escaped byte, never a literal one).
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\\]/g;

function escapeChar(c: string): string {
  if (c === '\\') return '\\\\';
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
}

/** `value` with unsafe characters escaped, cut to `maxChars` (of the input) with a marker. */
export function terminalSafe(value: string, maxChars = 200): string {
  let cut = value.length > maxChars ? value.slice(0, maxChars) : value;
  // Never leave half a surrogate pair at the cut.
  if (cut.length < value.length && /[\ud800-\udbff]$/.test(cut)) cut = cut.slice(0, -1);
  const escaped = cut.replace(UNSAFE, escapeChar);
  return cut.length < value.length ? `${escaped}…[+${value.length - cut.length} chars]` : escaped;
}
