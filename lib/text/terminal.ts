// Text from the network (user names, user agents, call-ids, numbers dialled, nft comments)
// printed for a person on a terminal. Raw, it can clear the screen (ESC [2J), ring the bell,
// move the cursor, rewrite the line it is on (CR), forge further lines (LF), or reorder what
// is shown with bidi overrides (the "Trojan Source" trick). terminalSafe shows every such
// character as a visible escape and cuts long values with a marker; JSON output does not use
// it (JSON escapes control characters itself and must stay exact).

/** Longest value shown by default; longer ones are cut with a marker saying how much was left out. */
export const TERMINAL_MAX_CHARS = 200;

// C0 controls, DEL, C1 controls; bidi embeddings/overrides/isolates and marks; zero-width and
// line/paragraph separators (they break or hide lines in some terminals); BOM; the lone
// surrogates a malformed UTF-16 string may hold.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

const NAMED: Readonly<Record<string, string>> = {
  '\n': '\\n', '\r': '\\r', '\t': '\\t', '\u001b': '\\e', '\u0000': '\\0', '\u0007': '\\a', '\b': '\\b', '\\': '\\\\',
};

function escapeChar(ch: string): string {
  const named = NAMED[ch];
  if (named) return named;
  const code = ch.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
}

/**
 * `value` with control, bidi and invisible formatting characters shown as escapes (\e, \r, \n,
 * \0, \a, \x9b, \u{202e}, …; a backslash itself is doubled, so an escape cannot be faked), cut to
 * about `maxChars` characters with a marker "…[+N chars]" naming what was left out.
 */
export function terminalSafe(value: string, maxChars: number = TERMINAL_MAX_CHARS): string {
  const text = String(value);
  const cut = text.length > maxChars;
  // Cut before escaping so a 64 KB value costs no 64 KB regex pass; never split a surrogate pair.
  let head = cut ? text.slice(0, maxChars) : text;
  if (cut && /[\ud800-\udbff]$/.test(head)) head = head.slice(0, -1);
  const escaped = head.replace(/\\/g, '\\\\').replace(UNSAFE, escapeChar);
  return cut ? `${escaped}…[+${text.length - head.length} chars]` : escaped;
}
