// The headers normalizeCallEvent reads, taken from a CHANNEL_HANGUP_COMPLETE `event json` body
// without JSON.parse. A channel event is 5-10 KB and ~200 headers; JSON.parse builds all of
// them (~190 µs a call on the bench machine, more than the rest of fsguard's work for a call
// by far), normalizeCallEvent reads 25.
//
// Exactness: it walks the whole body as JSON.parse would for a flat object of strings and
// arrays of strings (what FreeSWITCH writes: `variable_DP_MATCH` is an array): every escape is checked, control characters in strings and
// anything but `"key":"value"` pairs is refused. It returns the wanted headers exactly as
// JSON.parse would give them (a repeated key: the last, like JSON.parse), or null when it
// cannot be sure — a wanted value with an escape, an odd byte of syntax — and the caller then
// uses JSON.parse, which also decides whether the text is JSON at all.

/** The headers normalizeCallEvent reads. */
export const CALL_HEADER_NAMES: ReadonlySet<string> = new Set([
  'Event-Name', 'Event-Date-Timestamp', 'FreeSWITCH-IPv4', 'FreeSWITCH-IPv6', 'Call-Direction', 'Unique-ID',
  'Hangup-Cause', 'Caller-Network-Addr', 'Caller-Context', 'Caller-Destination-Number',
  'variable_sip_network_ip', 'variable_sip_network_port', 'variable_sofia_profile_name', 'variable_sip_req_user',
  'variable_hangup_cause', 'variable_answer_uepoch', 'variable_billusec', 'variable_sip_authorized',
  'variable_sip_auth_username', 'variable_user_name', 'variable_sip_auth_realm', 'variable_domain_name',
  'variable_sip_user_agent', 'variable_sip_call_id',
]);

/** The wanted names by length: a key of another length is skipped without being made a string. */
const WANTED_BY_LENGTH: readonly (readonly string[] | undefined)[] = (() => {
  const out: string[][] = [];
  for (const name of CALL_HEADER_NAMES) (out[name.length] ??= []).push(name);
  return out;
})();

/** The wanted header name text[from, to) is, or null. */
function wantedKey(text: string, from: number, to: number): string | null {
  const names = WANTED_BY_LENGTH[to - from];
  if (names === undefined) return null;
  for (const name of names) if (text.startsWith(name, from)) return name;
  return null;
}

const QUOTE = 34;
/** Characters JSON allows only escaped inside strings (outside them only as whitespace, which this reader does not expect). */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f]/;
const BACKSLASH = 92;

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
}

function isSpace(c: number): boolean {
  return c === 32 || c === 9 || c === 10 || c === 13;
}

interface ScanState {
  /** The string just read held an escape. */
  escapes: boolean;
  /** Index of the next backslash at or after the scan position (-1: none left). */
  backslash: number;
}

/**
 * End of the JSON string whose opening quote is at `i` (the index of its closing quote), or -1
 * when it is not a valid JSON string. `escapes` is set when it holds a backslash escape. The
 * quote and backslash are found with indexOf (native, many bytes at a time): most values have
 * no escape, and the caller has checked the whole text for control characters already.
 */
function stringEnd(text: string, i: number, state: ScanState): number {
  state.escapes = false;
  let j = i + 1;
  for (;;) {
    const q = text.indexOf('"', j);
    if (q < 0) return -1;
    // The next backslash is looked for once and reused until passed (values rarely hold one).
    if (state.backslash >= 0 && state.backslash < j) state.backslash = text.indexOf('\\', j);
    const b = state.backslash;
    if (b < 0 || b > q) return q;
    state.escapes = true;
    const e = text.charCodeAt(b + 1);
    if (e === 117) {
      if (!(isHex(text.charCodeAt(b + 2)) && isHex(text.charCodeAt(b + 3)) && isHex(text.charCodeAt(b + 4)) && isHex(text.charCodeAt(b + 5)))) return -1;
      j = b + 6;
    } else if (e === QUOTE || e === BACKSLASH || e === 47 || e === 98 || e === 102 || e === 110 || e === 114 || e === 116) {
      j = b + 2;
    } else {
      return -1;
    }
  }
}

/** Index of the `]` closing the array of strings opened at `i`, or -1. */
function stringArrayEnd(text: string, i: number, st: ScanState): number {
  const n = text.length;
  i++;
  while (i < n && isSpace(text.charCodeAt(i))) i++;
  if (text.charCodeAt(i) === 93) return i;
  for (;;) {
    if (text.charCodeAt(i) !== QUOTE) return -1;
    const end = stringEnd(text, i, st);
    if (end < 0) return -1;
    i = end + 1;
    while (i < n && isSpace(text.charCodeAt(i))) i++;
    const c = text.charCodeAt(i);
    if (c === 93) return i;
    if (c !== 44) return -1;
    i++;
    while (i < n && isSpace(text.charCodeAt(i))) i++;
  }
}

/** The wanted headers of a flat `event json` object, or null (then JSON.parse decides). */
export function extractCallHeaders(text: string): Record<string, string> | null {
  // A raw control character is JSON.parse's to refuse (FreeSWITCH escapes them all).
  if (CONTROL.test(text)) return null;
  const out: Record<string, string> = {};
  const n = text.length;
  const st: ScanState = { escapes: false, backslash: text.indexOf('\\') };
  let i = 0;
  while (i < n && isSpace(text.charCodeAt(i))) i++;
  if (text.charCodeAt(i) !== 123) return null;
  i++;
  for (;;) {
    while (i < n && isSpace(text.charCodeAt(i))) i++;
    if (text.charCodeAt(i) !== QUOTE) return null;
    const keyEnd = stringEnd(text, i, st);
    if (keyEnd < 0 || st.escapes) return null;
    const key = wantedKey(text, i + 1, keyEnd);
    i = keyEnd + 1;
    while (i < n && isSpace(text.charCodeAt(i))) i++;
    if (text.charCodeAt(i) !== 58) return null;
    i++;
    while (i < n && isSpace(text.charCodeAt(i))) i++;
    if (text.charCodeAt(i) === 91) {
      // An array of strings (FreeSWITCH writes `variable_DP_MATCH` so): never a wanted header.
      if (key !== null) return null;
      const end = stringArrayEnd(text, i, st);
      if (end < 0) return null;
      i = end + 1;
    } else {
      if (text.charCodeAt(i) !== QUOTE) return null;
      const valueEnd = stringEnd(text, i, st);
      if (valueEnd < 0) return null;
      if (key !== null) {
        if (st.escapes) return null;
        out[key] = text.slice(i + 1, valueEnd);
      }
      i = valueEnd + 1;
    }
    while (i < n && isSpace(text.charCodeAt(i))) i++;
    const c = text.charCodeAt(i);
    if (c === 44) { i++; continue; }
    if (c !== 125) return null;
    i++;
    while (i < n && isSpace(text.charCodeAt(i))) i++;
    return i === n ? out : null;
  }
}

/** The headers of a call event body: the fast path, else JSON.parse (which may throw). */
export function parseCallBody(text: string): unknown {
  return extractCallHeaders(text) ?? JSON.parse(text);
}

/** How FreeSWITCH starts every CHANNEL_HANGUP_COMPLETE body (Event-Name is its first header). */
export const CALL_BODY_PREFIX = '{"Event-Name":"CHANNEL_HANGUP_COMPLETE"';
const PREFIX_BYTES = Buffer.from(CALL_BODY_PREFIX, 'latin1');

/** A body that starts as FreeSWITCH starts a call event (others are found by their Event-Name). */
export function looksLikeCallBody(body: Uint8Array | string): boolean {
  if (typeof body === 'string') return body.startsWith(CALL_BODY_PREFIX);
  if (body.length < PREFIX_BYTES.length) return false;
  for (let i = 0; i < PREFIX_BYTES.length; i++) if (body[i] !== PREFIX_BYTES[i]) return false;
  return true;
}
