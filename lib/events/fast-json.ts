// A fast path for the one thing fsguard needs from a FreeSWITCH `event json` body: the
// string values of the ~17 headers normalizeEvent reads. JSON.parse builds all ~32 headers
// as an object (4-7 µs an event, the largest cost of `policy simulate`); this scans the
// object's top-level keys with String#indexOf and copies only the values it needs.
//
// Correctness first: it returns exactly what JSON.parse would give for those headers, or null
// when it cannot be sure, and the caller then uses JSON.parse (which also decides whether the
// text is JSON at all). Null for: any byte outside 0x20-0x7f in the range (control
// characters, tabs, newlines, non-ASCII), a non-string value anywhere, a backslash
// escape in a key or in a value it returns, any syntax it does not expect. Escapes in values
// it skips are validated as JSON.parse would, so a line it accepts is one JSON.parse accepts.
// test/fast-json.test.ts compares it with JSON.parse on traces and on mutated, hostile lines.

/** The headers normalizeEvent (and the ESL source) read from an event. */
export const EVENT_HEADER_NAMES = [
  'Event-Name', 'Event-Subclass', 'Event-Date-Timestamp', 'profile-name', 'network-ip', 'network-port',
  'FreeSWITCH-IPv4', 'FreeSWITCH-IPv6', 'user-agent', 'call-id', 'to-user', 'from-user', 'username',
  'realm', 'auth-result', 'registration-type', 'expires',
] as const;

export type EventHeaderName = (typeof EVENT_HEADER_NAMES)[number];

/**
 * The headers of one event as JSON.parse would give them: each is the header's string value,
 * or undefined when the body does not have it. normalizeEvent accepts it as it is.
 */
export type EventHeaders = { readonly [K in EventHeaderName]: string | undefined };

/** EventHeaders from values in EVENT_HEADER_NAMES order (an object literal: one hidden class for all). */
export function headersOf(v: readonly (string | undefined)[]): EventHeaders {
  return {
    'Event-Name': v[0], 'Event-Subclass': v[1], 'Event-Date-Timestamp': v[2], 'profile-name': v[3],
    'network-ip': v[4], 'network-port': v[5], 'FreeSWITCH-IPv4': v[6], 'FreeSWITCH-IPv6': v[7],
    'user-agent': v[8], 'call-id': v[9], 'to-user': v[10], 'from-user': v[11], username: v[12],
    realm: v[13], 'auth-result': v[14], 'registration-type': v[15], expires: v[16],
  };
}

/** Index of Event-Date-Timestamp: unique per event, never worth caching, never kept by normalize. */
const TIMESTAMP_SLOT = 2;
const HEADER_COUNT = EVENT_HEADER_NAMES.length;
/** Values shorter than this are copied by String#slice (longer ones would be views of the whole text). */
const SLICE_COPIES_BELOW = 13;
/** Direct-mapped cache of recent values (user agents, addresses, users repeat from event to event). */
const POOL_SIZE = 4096;
/** Values longer than this are not cached (nor expected: normalize cuts fields to 256 characters). */
const POOL_MAX_CHARS = 256;

const QUOTE = 34;
const BACKSLASH = 92;
const SPACE = 32;

/** Slots of the wanted keys, grouped by key length. */
function slotsByLength(): readonly (readonly number[] | undefined)[] {
  const out: number[][] = [];
  EVENT_HEADER_NAMES.forEach((name, slot) => {
    (out[name.length] ??= []).push(slot);
  });
  return out;
}

/** Character codes of each wanted key (compared by hand: String#startsWith costs ten times more). */
function keyCodes(): readonly Uint8Array[] {
  return EVENT_HEADER_NAMES.map((name) => Uint8Array.from(name, (c) => c.charCodeAt(0)));
}



function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
}

/** Anything but printable ASCII (DEL included: JSON allows it raw). */
const NOT_PRINTABLE = /[^\x20-\x7f]/;

/**
 * Extracts EventHeaders from `event json` bodies. Owned by one stream (an ESL connection, a
 * trace being replayed): it keeps a small cache of recent values, so equal values come back as
 * the same string and most events allocate only their timestamp and call-id.
 */
export class EventJsonExtractor {
  private readonly byLength = slotsByLength();
  private readonly codes = keyCodes();
  private readonly values: (string | undefined)[] = new Array<string | undefined>(HEADER_COUNT).fill(undefined);
  private readonly pool: (string | undefined)[] = new Array<string | undefined>(POOL_SIZE).fill(undefined);
  /** Position of the next backslash in `bsText` at or after `bsFrom` (text.length: none). */
  private bsText = '';
  private bsFrom = 0;
  private bsAt = 0;

  /**
   * One event body: bytes [start, end) of `buf`. Null when the fast path does not apply: the
   * caller then parses the body with JSON.parse.
   */
  extract(buf: Buffer, start = 0, end = buf.length): EventHeaders | null {
    const text = buf.toString('latin1', start, end);
    if (NOT_PRINTABLE.test(text)) return null;
    return this.extractChecked(buf, text, start, 0, text.length);
  }

  /**
   * For callers that decoded a larger range once: `text` is `buf` decoded as latin1 from byte
   * `textByte` on, and the caller has checked that text[start, end) holds only characters
   * 0x20-0x7f (no control characters, no non-ASCII). `start` and `end` index `text`.
   */
  extractChecked(buf: Buffer, text: string, textByte: number, start: number, end: number): EventHeaders | null {
    const v = this.values;
    for (let k = 0; k < HEADER_COUNT; k++) v[k] = undefined;
    let i = start;
    while (i < end && text.charCodeAt(i) === SPACE) i++;
    if (i >= end || text.charCodeAt(i) !== 123 /* { */) return null;
    i++;
    while (i < end && text.charCodeAt(i) === SPACE) i++;
    if (i < end && text.charCodeAt(i) === 125 /* } */) {
      i++;
    } else {
      for (;;) {
        // "key"
        if (i >= end || text.charCodeAt(i) !== QUOTE) return null;
        const ks = i + 1;
        const ke = text.indexOf('"', ks);
        if (ke < 0 || ke >= end || this.nextBackslash(text, ks) < ke) return null;
        i = ke + 1;
        if (text.charCodeAt(i) === 58 /* : */ && text.charCodeAt(i + 1) === QUOTE && i + 1 < end) {
          i++; // the compact form FreeSWITCH writes
        } else {
          while (i < end && text.charCodeAt(i) === SPACE) i++;
          if (i >= end || text.charCodeAt(i) !== 58 /* : */) return null;
          i++;
          while (i < end && text.charCodeAt(i) === SPACE) i++;
          // "value" (only strings: anything else goes to JSON.parse)
          if (i >= end || text.charCodeAt(i) !== QUOTE) return null;
        }
        const vs = i + 1;
        let ve = text.indexOf('"', vs);
        if (ve < 0 || ve >= end) return null;
        let escaped = false;
        let bs = this.nextBackslash(text, vs);
        while (bs < ve) {
          // Validate the escape as JSON.parse would, and find the real end of the string.
          escaped = true;
          const c = text.charCodeAt(bs + 1);
          let next: number;
          if (c === QUOTE || c === BACKSLASH || c === 47 || c === 98 || c === 102 || c === 110 || c === 114 || c === 116) {
            next = bs + 2;
          } else if (c === 117 /* u */ && bs + 5 < end && isHex(text.charCodeAt(bs + 2)) && isHex(text.charCodeAt(bs + 3)) &&
            isHex(text.charCodeAt(bs + 4)) && isHex(text.charCodeAt(bs + 5))) {
            next = bs + 6;
          } else {
            return null;
          }
          if (next > ve) {
            ve = text.indexOf('"', next);
            if (ve < 0 || ve >= end) return null;
          }
          bs = this.nextBackslash(text, next);
        }
        const slot = this.slotOf(text, ks, ke - ks);
        if (slot >= 0) {
          if (escaped) return null;
          v[slot] = this.value(buf, text, textByte, slot, vs, ve);
        }
        i = ve + 1;
        if (i >= end) return null;
        let c = text.charCodeAt(i++);
        if (c === 44 /* , */ && text.charCodeAt(i) === QUOTE) continue;
        if (c === SPACE) {
          while (i < end && text.charCodeAt(i) === SPACE) i++;
          if (i >= end) return null;
          c = text.charCodeAt(i++);
        }
        if (c === 125 /* } */) break;
        if (c !== 44 /* , */) return null;
        while (i < end && text.charCodeAt(i) === SPACE) i++;
      }
    }
    while (i < end && text.charCodeAt(i) === SPACE) i++;
    if (i !== end) return null;
    return headersOf(v);
  }

  /** Position of the first backslash at or after `from` (text.length when none): cached per text. */
  private nextBackslash(text: string, from: number): number {
    if (text !== this.bsText || from < this.bsFrom || from > this.bsAt) {
      const at = text.indexOf('\\', from);
      this.bsText = text;
      this.bsFrom = from;
      this.bsAt = at < 0 ? text.length : at;
    }
    return this.bsAt;
  }

  /** The header slot of the key text[ks, ks+len), or -1 when normalize does not need it. */
  private slotOf(text: string, ks: number, len: number): number {
    const candidates = this.byLength[len];
    if (candidates === undefined) return -1;
    const first = text.charCodeAt(ks);
    const last = text.charCodeAt(ks + len - 1);
    next: for (let k = 0; k < candidates.length; k++) {
      const slot = candidates[k]!;
      const code = this.codes[slot]!;
      if (code[0] !== first || code[len - 1] !== last) continue;
      for (let j = 1; j < len - 1; j++) if (text.charCodeAt(ks + j) !== code[j]) continue next;
      return slot;
    }
    return -1;
  }

  /** The value text[vs, ve) as a string of its own (never a view that keeps `text` alive, but the timestamp's). */
  private value(buf: Buffer, text: string, textByte: number, slot: number, vs: number, ve: number): string {
    const len = ve - vs;
    // A short slice is a copy, as cheap as a cache lookup. The timestamp is only parsed, never
    // kept: a view of the text is enough.
    if (len < SLICE_COPIES_BELOW || slot === TIMESTAMP_SLOT) return text.slice(vs, ve);
    if (len > POOL_MAX_CHARS) return buf.toString('latin1', textByte + vs, textByte + ve);
    const h = (Math.imul(len * 31 + slot, 0x9e3779b1) ^ Math.imul(text.charCodeAt(vs + 1), 0x85ebca6b) ^
      Math.imul(text.charCodeAt(ve - 1), 0xc2b2ae35) ^ Math.imul(text.charCodeAt(vs + (len >> 1)), 0x27d4eb2f)) >>> 20;
    const cached = this.pool[h];
    // A view and one comparison (memcmp) is cheaper than comparing character by character.
    if (cached !== undefined && cached.length === len && cached === text.slice(vs, ve)) return cached;
    // A long slice would be a view that keeps the whole text alive: copy from the bytes.
    const s = buf.toString('latin1', textByte + vs, textByte + ve);
    this.pool[h] = s;
    return s;
  }
}
