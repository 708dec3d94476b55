// AssemblyScript (compiled by `asc` to dist/wasm/line-scanner.wasm; not part of the tsc build).
//
// The byte work of `fsguard policy simulate`, in WebAssembly with 128-bit SIMD: split a chunk of
// a trace into lines, tell plain lines (printable ASCII only) from the rest, and read each plain
// line as a FreeSWITCH `event json` body — the byte ranges of the headers normalizeEvent needs —
// exactly as lib/events/fast-json.ts's EventJsonExtractor.extractChecked does, and with the same
// contract: it gives JSON.parse's answer for those headers or declines (status DECLINED) and the
// caller uses JSON.parse. In JavaScript that walk costs ~2 µs a line (a String#indexOf call per
// quote); here 16 bytes are looked at per instruction. lib/events/line-scanner.ts owns the
// memory layout and turns the records into strings; test/fast-json.test.ts holds both to
// JSON.parse.
//
// Wanted values are also interned here: each is looked up in a direct-mapped table of recent
// values (bytes kept in linear memory), so the JavaScript side reuses the string it made last
// time instead of allocating one per event (user agents, realms, users, addresses repeat).

/** Header slots (EVENT_HEADER_NAMES in lib/events/fast-json.ts). */
const SLOTS: i32 = 17;
/**
 * Ints of a record: line start, line end, status, then per slot value start, value end, pool
 * word, then what normalizeEvent would parse out of the values (FACTS, see classify()).
 */
const FACTS: i32 = 3 + SLOTS * 3;
const RECORD_INTS: i32 = FACTS + 8;
// Slots classify() reads (EVENT_HEADER_NAMES order).
const S_EVENT_NAME: i32 = 0;
const S_SUBCLASS: i32 = 1;
const S_TIMESTAMP: i32 = 2;
const S_PORT: i32 = 5;
const S_AUTH_RESULT: i32 = 14;
const S_REGISTRATION_TYPE: i32 = 15;
const S_EXPIRES: i32 = 16;
const KEY_MAX: i32 = 32;
const TABLE_SIZE: i32 = 256;
const POOL_MAX: i32 = 256;

/** Line statuses (LineStatus in lib/events/line-scanner.ts). */
const EXTRACTED: i32 = 0;
const BLANK: i32 = 1;
const DECLINED: i32 = 2;
const UNUSUAL: i32 = 3;

const QUOTE: u8 = 34;
const BACKSLASH: u8 = 92;
const SPACE: u8 = 32;

let keyBytes: usize = 0;
let keyLens: usize = 0;
let table: usize = 0;
let poolLens: usize = 0;
let poolBytes: usize = 0;
let timestampSlot: i32 = -1;
/** The pool has 1 << poolBits entries of POOL_MAX bytes. */
let poolBits: i32 = 12;
let consumedAt: usize = 0;
let lineOdd: i32 = 0;

/** Areas laid out by the caller; key bytes and lengths are written there before addKey. */
export function setup(keys: usize, lens: usize, hashTable: usize, poolLen: usize, poolData: usize, tsSlot: i32, bits: i32): void {
  keyBytes = keys;
  keyLens = lens;
  table = hashTable;
  poolLens = poolLen;
  poolBytes = poolData;
  timestampSlot = tsSlot;
  poolBits = bits;
  memory.fill(table, 0, <usize>(TABLE_SIZE * 4));
  memory.fill(poolLens, 0, <usize>((1 << poolBits) * 4));
}

@inline function keyHash(p: usize, len: i32): i32 {
  const first = <u32>load<u8>(p);
  const last = <u32>load<u8>(p + <usize>(len - 1));
  const mid = <u32>load<u8>(p + <usize>(len >> 1));
  return <i32>((((<u32>len) * 0x9e3779b1) ^ (first * 0x85ebca6b) ^ (last * 0xc2b2ae35) ^ (mid * 0x27d4eb2f)) >>> 24);
}

/** Enters slot's key (its bytes at keys + slot*32, its length at lens + slot*4) in the hash table. */
export function addKey(slot: i32): void {
  const len = load<i32>(keyLens + <usize>(slot * 4));
  let h = keyHash(keyBytes + <usize>(slot * KEY_MAX), len);
  while (load<i32>(table + <usize>(h * 4)) != 0) h = (h + 1) & (TABLE_SIZE - 1);
  store<i32>(table + <usize>(h * 4), slot + 1);
}

@inline function sameBytes(a: usize, b: usize, len: i32): bool {
  let n = <usize>len;
  while (n >= 8) {
    if (load<u64>(a) != load<u64>(b)) return false;
    a += 8;
    b += 8;
    n -= 8;
  }
  while (n > 0) {
    if (load<u8>(a) != load<u8>(b)) return false;
    a++;
    b++;
    n--;
  }
  return true;
}

/** The slot of the key at [p, p+len), or -1 when it is not a wanted header. */
@inline function slotOf(p: usize, len: i32): i32 {
  if (len == 0 || len > KEY_MAX) return -1;
  let h = keyHash(p, len);
  let e = load<i32>(table + <usize>(h * 4));
  while (e != 0) {
    const slot = e - 1;
    if (load<i32>(keyLens + <usize>(slot * 4)) == len && sameBytes(p, keyBytes + <usize>(slot * KEY_MAX), len)) return slot;
    h = (h + 1) & (TABLE_SIZE - 1);
    e = load<i32>(table + <usize>(h * 4));
  }
  return -1;
}

/** First `"` or `\` at or after p; a position ≥ end means none before end (reads ≤ 15 bytes past it). */
@inline function nextQuoteOrBackslash(p: usize, end: usize): usize {
  const q = i8x16.splat(<i8>QUOTE);
  const b = i8x16.splat(<i8>BACKSLASH);
  while (p < end) {
    const v = v128.load(p);
    const m = i8x16.bitmask(v128.or(i8x16.eq(v, q), i8x16.eq(v, b)));
    if (m != 0) return p + <usize>ctz(m);
    p += 16;
  }
  return end;
}

/**
 * The next line feed at or after p (or `end` when there is none before it); sets lineOdd when a
 * byte before it is outside 0x20-0x7f. Whole blocks of 16 only while they are inside [p, end).
 */
@inline function lineEnd(p: usize, end: usize): usize {
  const nl = i8x16.splat(10);
  const low = i8x16.splat(0x20);
  const zero = i8x16.splat(0);
  let odd: i32 = 0;
  while (p + 16 <= end) {
    const v = v128.load(p);
    const nlm = i8x16.bitmask(i8x16.eq(v, nl));
    // Below 0x20, or 0x80 and above (negative as signed bytes).
    const oddm = i8x16.bitmask(v128.or(i8x16.lt_u(v, low), i8x16.lt_s(v, zero)));
    if (nlm != 0) {
      const at = ctz(nlm);
      lineOdd = odd | (oddm & ((1 << at) - 1));
      return p + <usize>at;
    }
    odd |= oddm;
    p += 16;
  }
  while (p < end) {
    const c = load<u8>(p);
    if (c == 10) {
      lineOdd = odd;
      return p;
    }
    if (c < 0x20 || c >= 0x80) odd = 1;
    p++;
  }
  lineOdd = odd;
  return end;
}

@inline function isHex(c: u8): bool {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70);
}

@inline function skipSpaces(i: usize, e: usize): usize {
  while (i < e && load<u8>(i) == SPACE) i++;
  return i;
}

/**
 * Reads the plain line [s, e) as an object of string values; fills the record's value ranges.
 * EXTRACTED or DECLINED, with the same cases as EventJsonExtractor.extractChecked.
 */
function parseLine(s: usize, e: usize, rec: usize): i32 {
  for (let k = 0; k < SLOTS; k++) store<i32>(rec + <usize>((3 + k * 3) * 4), -1);
  let i = skipSpaces(s, e);
  if (i >= e || load<u8>(i) != 123) return DECLINED;
  i = skipSpaces(i + 1, e);
  if (i < e && load<u8>(i) == 125) {
    i++;
  } else {
    for (;;) {
      if (i >= e || load<u8>(i) != QUOTE) return DECLINED;
      const ks = i + 1;
      const ke = nextQuoteOrBackslash(ks, e);
      // A backslash in a key: JSON.parse decides.
      if (ke >= e || load<u8>(ke) != QUOTE) return DECLINED;
      i = skipSpaces(ke + 1, e);
      if (i >= e || load<u8>(i) != 58) return DECLINED;
      i = skipSpaces(i + 1, e);
      if (i >= e || load<u8>(i) != QUOTE) return DECLINED;
      const vs = i + 1;
      let p = vs;
      let escaped = false;
      let ve: usize = 0;
      for (;;) {
        const q = nextQuoteOrBackslash(p, e);
        if (q >= e) return DECLINED;
        if (load<u8>(q) == QUOTE) {
          ve = q;
          break;
        }
        // An escape, validated as JSON.parse would.
        escaped = true;
        if (q + 1 >= e) return DECLINED;
        const c = load<u8>(q + 1);
        if (c == QUOTE || c == BACKSLASH || c == 47 || c == 98 || c == 102 || c == 110 || c == 114 || c == 116) {
          p = q + 2;
        } else if (c == 117 && q + 5 < e && isHex(load<u8>(q + 2)) && isHex(load<u8>(q + 3)) && isHex(load<u8>(q + 4)) && isHex(load<u8>(q + 5))) {
          p = q + 6;
        } else {
          return DECLINED;
        }
      }
      const slot = slotOf(ks, <i32>(ke - ks));
      if (slot >= 0) {
        // An escape in a wanted value: JSON.parse decodes it.
        if (escaped) return DECLINED;
        const at = rec + <usize>((3 + slot * 3) * 4);
        store<i32>(at, <i32>vs);
        store<i32>(at + 4, <i32>ve);
      }
      i = skipSpaces(ve + 1, e);
      if (i >= e) return DECLINED;
      const c = load<u8>(i++);
      if (c == 125) break;
      if (c != 44) return DECLINED;
      i = skipSpaces(i, e);
    }
  }
  return skipSpaces(i, e) == e ? EXTRACTED : DECLINED;
}

@inline function valueHash(p: usize, len: i32, slot: i32): i32 {
  let h: u32 = (<u32>len) * 0x9e3779b1 ^ (<u32>slot) * 0x7feb352d;
  if (len >= 4) {
    h ^= load<u32>(p) * 0x85ebca6b;
    h = (h ^ (h >>> 13)) ^ load<u32>(p + <usize>(len - 4)) * 0xc2b2ae35;
    h = (h ^ (h >>> 13)) ^ load<u32>(p + <usize>((len - 4) >> 1)) * 0x27d4eb2f;
  } else if (len > 0) {
    h ^= ((<u32>load<u8>(p)) | ((<u32>load<u8>(p + <usize>(len - 1))) << 8)) * 0x85ebca6b;
  }
  h ^= h >>> 15;
  h *= 0x2c1b3c6d;
  return <i32>(h >>> (32 - poolBits));
}

/**
 * Interns the record's wanted values (only once the line is known good, so every entry changed
 * here is one the caller sees): pool word = entry * 2 + 1 on a hit, entry * 2 on a miss (the
 * caller makes the string and keeps it at that entry), -1 when not pooled (the timestamp,
 * values over POOL_MAX bytes).
 */
function intern(rec: usize): void {
  for (let k = 0; k < SLOTS; k++) {
    const at = rec + <usize>((3 + k * 3) * 4);
    const vs = load<i32>(at);
    if (vs < 0) continue;
    const len = load<i32>(at + 4) - vs;
    if (k == timestampSlot || len > POOL_MAX) {
      store<i32>(at + 8, -1);
      continue;
    }
    const entry = valueHash(<usize>vs, len, k);
    const lenAt = poolLens + <usize>(entry * 4);
    const bytesAt = poolBytes + <usize>(entry * POOL_MAX);
    if (load<i32>(lenAt) == len + 1 && sameBytes(bytesAt, <usize>vs, len)) {
      store<i32>(at + 8, entry * 2 + 1);
    } else {
      store<i32>(lenAt, len + 1);
      memory.copy(bytesAt, <usize>vs, <usize>len);
      store<i32>(at + 8, entry * 2);
    }
  }
}

/** The value of slot `k` equals `text` (ASCII), byte for byte. */
function valueIs(rec: usize, k: i32, text: string): bool {
  const at = rec + <usize>((3 + k * 3) * 4);
  const vs = load<i32>(at);
  if (vs < 0) return false;
  const len = load<i32>(at + 4) - vs;
  if (len != text.length) return false;
  // load<u16> of the string's own UTF-16 code units: charCodeAt would bring in bounds checks.
  const chars = changetype<usize>(text);
  for (let i = 0; i < len; i++) if (<u32>load<u8>(<usize>(vs + i)) != <u32>load<u16>(chars + <usize>(i << 1))) return false;
  return true;
}

/** Index of slot k's value in `texts`, or -1 (also when absent). */
function valueIndex(rec: usize, k: i32, texts: string[]): i32 {
  for (let i = 0; i < texts.length; i++) if (valueIs(rec, k, unchecked(texts[i]))) return i;
  return -1;
}

/** Slot k's value as a decimal of 1..maxDigits ASCII digits, or -1 (normalize's digits()). */
function digitsOf(rec: usize, k: i32, maxDigits: i32): f64 {
  const at = rec + <usize>((3 + k * 3) * 4);
  const vs = load<i32>(at);
  if (vs < 0) return -1;
  const len = load<i32>(at + 4) - vs;
  if (len == 0 || len > maxDigits) return -1;
  let v: f64 = 0;
  for (let i = 0; i < len; i++) {
    const c = <i32>load<u8>(<usize>(vs + i)) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + <f64>c;
  }
  return v;
}

const SUBCLASSES: string[] = ['sofia::pre_register', 'sofia::register_attempt', 'sofia::register_failure', 'sofia::register'];
const AUTH_RESULTS: string[] = ['SUCCESS', 'RENEWED', 'STALE', 'FORBIDDEN'];
const REGISTRATION_TYPES: string[] = ['REGISTER', 'INVITE'];

/**
 * What normalizeEvent would parse from an extracted record's values, so the caller makes no
 * string it only parses: [Event-Name is CUSTOM (1/0), subclass index (-1: none of the four),
 * auth-result index, registration-type index, timestamp / 1e8, timestamp % 1e8 (-1: not 1..16
 * digits), port (-1: not 1..5 digits), expires (-1: not 1..9 digits)]. 16 digits fit a double
 * exactly; the caller checks the timestamp against Number.MAX_SAFE_INTEGER as normalize does.
 */
function classify(rec: usize): void {
  const at = rec + <usize>(FACTS * 4);
  store<i32>(at, valueIs(rec, S_EVENT_NAME, 'CUSTOM') ? 1 : 0);
  store<i32>(at + 4, valueIndex(rec, S_SUBCLASS, SUBCLASSES));
  store<i32>(at + 8, valueIndex(rec, S_AUTH_RESULT, AUTH_RESULTS));
  store<i32>(at + 12, valueIndex(rec, S_REGISTRATION_TYPE, REGISTRATION_TYPES));
  const ts = digitsOf(rec, S_TIMESTAMP, 16);
  store<i32>(at + 16, ts < 0 ? -1 : <i32>Math.floor(ts / 1e8));
  store<i32>(at + 20, ts < 0 ? -1 : <i32>(ts % 1e8));
  store<i32>(at + 24, <i32>digitsOf(rec, S_PORT, 5));
  store<i32>(at + 28, <i32>digitsOf(rec, S_EXPIRES, 9));
}

/**
 * Reads the complete lines of [from, to) — at most `cap` of them — into records at `out`; returns
 * how many. consumed() is then where the next unread line starts. [to, to+16) must be readable.
 */
export function scan(from: usize, to: usize, out: usize, cap: i32): i32 {
  let p = from;
  let n = 0;
  while (n < cap) {
    const nl = lineEnd(p, to);
    if (nl >= to) break;
    const rec = out + <usize>(n * RECORD_INTS * 4);
    store<i32>(rec, <i32>p);
    store<i32>(rec + 4, <i32>nl);
    let status: i32;
    if (lineOdd != 0) status = UNUSUAL;
    else if (skipSpaces(p, nl) == nl) status = BLANK;
    else {
      status = parseLine(p, nl, rec);
      if (status == EXTRACTED) {
        intern(rec);
        classify(rec);
      }
    }
    store<i32>(rec + 8, status);
    n++;
    p = nl + 1;
  }
  consumedAt = p;
  return n;
}

export function consumed(): usize {
  return consumedAt;
}

/** End of the module's own static data: the caller's areas start above it. */
export function staticEnd(): usize {
  return __heap_base;
}

/** Ints per record (the caller checks its layout against it). */
export function recordInts(): i32 {
  return RECORD_INTS;
}
