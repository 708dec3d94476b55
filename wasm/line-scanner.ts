// AssemblyScript (compiled by `asc` to dist/wasm/line-scanner.wasm; not part of the tsc build).
//
// The byte work of `fsguard policy simulate` and of the daemon's event bodies, in WebAssembly
// with 128-bit SIMD: split a chunk of a trace into lines (the one trace-line splitter), tell
// plain lines (printable ASCII only) from the rest, and read each plain line as a FreeSWITCH
// `event json` body (an auth event or a finished call) — the byte ranges of the wanted headers — with one contract: JSON.parse's
// answer for those headers, or a decline (status DECLINED) and the caller uses JSON.parse.
// 16 bytes are looked at per instruction. The module knows no header name and no header value:
// lib/events/line-scanner.ts gives it the wanted keys, the value tables (subclasses, auth
// results…) and the record layout at setup, owns the memory, and turns records into events;
// test/event-reader.test.ts holds it to JSON.parse.
//
// Wanted values are also interned here: each is looked up in a direct-mapped table of recent
// values (bytes kept in linear memory), so the JavaScript side reuses the string it made last
// time instead of allocating one per event (user agents, realms, users, addresses repeat).

/** Facts per record (see classify()); what each one is, is set by the caller (setFact). */
const FACT_COUNT: i32 = 10;
/** Fact kinds (FactKind in lib/events/line-scanner.ts). */
const FACT_NONE: i32 = 0;
const FACT_CHOICE: i32 = 1;
const FACT_DIGITS: i32 = 2;
const FACT_DIGITS_SPLIT: i32 = 3;
/** Choices per fact at most, and the stride of one choice (its length, then its bytes). */
const CHOICES_MAX: i32 = 8;
const KEY_MAX: i32 = 32;
const CHOICE_STRIDE: i32 = 4 + KEY_MAX;
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
/** Wanted headers (slots), set by setup. */
let slots: i32 = 0;
/**
 * Ints of a record: line start, line end, status, then FACT_COUNT facts parsed out of the
 * values (see classify()), then per slot value start, value end, pool word (from `slotsAt` on).
 * The facts come first: the reader on the other thread looks at them before any slot, and an
 * auth event's slots are the first ones, so what it reads of a record is one run of cache lines.
 */
const factsAt: i32 = 3;
const slotsAt: i32 = factsAt + FACT_COUNT;
let recordLength: i32 = 0;
/** Per fact: slot, kind, argument (choices or digits); and each fact's choices. */
let factTable: usize = 0;
let choiceTable: usize = 0;
/**
 * Per slot, a mask of the record kinds whose caller reads it as a string (setSlotKinds): a
 * record's kind is its first fact (a choice: kind i is bit i), and only the values its caller
 * reads are interned (a value interned and not read would leave the caller's mirror stale).
 */
let slotKinds: usize = 0;

/**
 * Areas laid out by the caller; key bytes and lengths are written there before addKey, fact
 * definitions and their choices before setFact.
 */
export function setup(slotCount: i32, keys: usize, lens: usize, hashTable: usize, poolLen: usize, poolData: usize, tsSlot: i32, bits: i32,
  facts: usize, choices: usize, kinds: usize): void {
  slots = slotCount;
  slotKinds = kinds;
  memory.fill(slotKinds, 0, <usize>(slotCount * 4));
  recordLength = slotsAt + slotCount * 3;
  factTable = facts;
  choiceTable = choices;
  memory.fill(factTable, 0, <usize>(FACT_COUNT * 12));
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
  const n = <usize>len;
  if (n >= 8) {
    // Whole words, then the last eight bytes (overlapping the words before: no byte loop).
    const last = n - 8;
    for (let i: usize = 0; i < last; i += 8) {
      if (load<u64>(a + i) != load<u64>(b + i)) return false;
    }
    return load<u64>(a + last) == load<u64>(b + last);
  }
  if (n >= 4) return load<u32>(a) == load<u32>(b) && load<u32>(a + n - 4) == load<u32>(b + n - 4);
  for (let i: usize = 0; i < n; i++) {
    if (load<u8>(a + i) != load<u8>(b + i)) return false;
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

/** stringEnd's last string held an escape. */
let stringEscaped = false;

/**
 * The closing quote of the JSON string whose first byte is at p (a position ≥ e: not a valid
 * string before e); escapes are validated as JSON.parse would, and set stringEscaped.
 */
function stringEnd(p: usize, e: usize): usize {
  stringEscaped = false;
  while (p < e) {
    const q = nextQuoteOrBackslash(p, e);
    if (q >= e) return e;
    if (load<u8>(q) == QUOTE) return q;
    stringEscaped = true;
    if (q + 1 >= e) return e;
    const c = load<u8>(q + 1);
    if (c == QUOTE || c == BACKSLASH || c == 47 || c == 98 || c == 102 || c == 110 || c == 114 || c == 116) {
      p = q + 2;
    } else if (c == 117 && q + 5 < e && isHex(load<u8>(q + 2)) && isHex(load<u8>(q + 3)) && isHex(load<u8>(q + 4)) && isHex(load<u8>(q + 5))) {
      p = q + 6;
    } else {
      return e;
    }
  }
  return e;
}

/**
 * Reads the plain line [s, e) as an object of string values (and arrays of strings, never
 * wanted); fills the record's value ranges.
 * EXTRACTED, or DECLINED wherever JSON.parse could answer otherwise or refuse the line.
 */
function parseLine(s: usize, e: usize, rec: usize): i32 {
  for (let k = 0; k < slots; k++) store<i32>(rec + <usize>((slotsAt + k * 3) * 4), -1);
  const compact = parseCompact(s, e, rec);
  if (compact != RETRY) return compact;
  for (let k = 0; k < slots; k++) store<i32>(rec + <usize>((slotsAt + k * 3) * 4), -1);
  return parseSpaced(s, e, rec);
}

/** parseCompact's answer when the line is not in the compact form: parseSpaced reads it. */
const RETRY: i32 = -1;

/**
 * FreeSWITCH's own form of a body, `{"key":"value","key":["value",…],…}` with no spaces: the
 * same answers as parseSpaced in fewer steps (each separator is one load), or RETRY at the
 * first byte where the form differs.
 */
function parseCompact(s: usize, e: usize, rec: usize): i32 {
  if (load<u16>(s) != 0x227B) return RETRY;
  let ks = s + 2;
  for (;;) {
    const ke = nextQuoteOrBackslash(ks, e);
    // `":` after the key (a backslash in a key, or anything else: RETRY).
    if (ke + 3 > e || load<u16>(ke) != 0x3A22) return RETRY;
    const slot = slotOf(ks, <i32>(ke - ks));
    // The value's last byte: its closing quote, or the `]` of an array of strings.
    let last: usize;
    const open = load<u8>(ke + 2);
    if (open == QUOTE) {
      const vs = ke + 3;
      last = nextQuoteOrBackslash(vs, e);
      if (last >= e) return RETRY;
      let escaped = false;
      if (load<u8>(last) == BACKSLASH) {
        last = stringEnd(vs, e);
        if (last >= e) return RETRY;
        escaped = true;
      }
      if (slot >= 0) {
        // An escape in a wanted value: JSON.parse decodes it.
        if (escaped) return DECLINED;
        const at = rec + <usize>((slotsAt + slot * 3) * 4);
        store<i32>(at, <i32>vs);
        store<i32>(at + 4, <i32>last);
      }
    } else if (open == 91) {
      // An array of strings (a channel event's `variable_DP_MATCH`): never a wanted value.
      if (slot >= 0) return DECLINED;
      last = ke + 3;
      if (load<u8>(last) != 93) {
        for (;;) {
          if (load<u8>(last) != QUOTE) return RETRY;
          const end = stringEnd(last + 1, e);
          if (end >= e) return RETRY;
          const c = load<u8>(end + 1);
          if (c == 93) { last = end + 1; break; }
          if (c != 44) return RETRY;
          last = end + 2;
        }
      }
      if (last >= e) return RETRY;
    } else {
      return RETRY;
    }
    // `,"` to the next key, or `}` at the end of the line.
    const next = load<u16>(last + 1);
    if (next == 0x222C) {
      ks = last + 3;
      continue;
    }
    return (next & 0xFF) == 125 && last + 2 == e ? EXTRACTED : RETRY;
  }
}

/** Any JSON object of string values (and arrays of strings) on one line, spaces anywhere. */
function parseSpaced(s: usize, e: usize, rec: usize): i32 {
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
      const slot = slotOf(ks, <i32>(ke - ks));
      if (i < e && load<u8>(i) == 91) {
        // An array of strings (a channel event's `variable_DP_MATCH`): never a wanted value.
        if (slot >= 0) return DECLINED;
        i = skipSpaces(i + 1, e);
        if (i < e && load<u8>(i) == 93) {
          i++;
        } else {
          for (;;) {
            if (i >= e || load<u8>(i) != QUOTE) return DECLINED;
            const end = stringEnd(i + 1, e);
            if (end >= e) return DECLINED;
            i = skipSpaces(end + 1, e);
            if (i >= e) return DECLINED;
            const c = load<u8>(i++);
            if (c == 93) break;
            if (c != 44) return DECLINED;
            i = skipSpaces(i, e);
          }
        }
      } else {
        if (i >= e || load<u8>(i) != QUOTE) return DECLINED;
        const vs = i + 1;
        const ve = stringEnd(vs, e);
        if (ve >= e) return DECLINED;
        if (slot >= 0) {
          // An escape in a wanted value: JSON.parse decodes it.
          if (stringEscaped) return DECLINED;
          const at = rec + <usize>((slotsAt + slot * 3) * 4);
          store<i32>(at, <i32>vs);
          store<i32>(at + 4, <i32>ve);
        }
        i = ve + 1;
      }
      i = skipSpaces(i, e);
      if (i >= e) return DECLINED;
      const c = load<u8>(i++);
      if (c == 125) break;
      if (c != 44) return DECLINED;
      i = skipSpaces(i, e);
    }
  }
  return skipSpaces(i, e) == e ? EXTRACTED : DECLINED;
}

// The bytes alone, not the slot: a phone's user is in from-user, to-user and username of one
// event, a call's address in two headers, and each is then one entry and one string.
@inline function valueHash(p: usize, len: i32): i32 {
  let h: u32 = (<u32>len) * 0x9e3779b1;
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

/** Slot `slot` is read as a string by the callers of the record kinds in `mask`. */
export function setSlotKinds(slot: i32, mask: i32): void {
  store<i32>(slotKinds + <usize>(slot * 4), mask);
}

/**
 * Interns the record's wanted values that its kind's caller reads (only once the line is known
 * good and classified, so every entry changed here is one the caller sees): pool word = entry
 * * 2 + 1 on a hit, entry * 2 on a miss (the caller makes the string and keeps it at that
 * entry), -1 when not pooled (not read for this kind, the timestamp, values over POOL_MAX bytes).
 * Slots are interned in ascending order, and a later slot may hit the entry an earlier one of
 * the same record filled: the caller reads them in that order too.
 */
function intern(rec: usize): void {
  const kind = load<i32>(rec + <usize>(factsAt * 4));
  const mask = kind >= 0 && kind < 32 ? 1 << kind : 0;
  for (let k = 0; k < slots; k++) {
    const at = rec + <usize>((slotsAt + k * 3) * 4);
    const vs = load<i32>(at);
    if (vs < 0) continue;
    const len = load<i32>(at + 4) - vs;
    if ((load<i32>(slotKinds + <usize>(k * 4)) & mask) == 0 || k == timestampSlot || len > POOL_MAX) {
      store<i32>(at + 8, -1);
      continue;
    }
    const entry = valueHash(<usize>vs, len);
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

/**
 * Fact `fact` is slot `slot` read as `kind`: FACT_CHOICE (the index of its value among `arg`
 * choices, whose lengths and bytes the caller wrote at choices + (fact * CHOICES_MAX + i) *
 * CHOICE_STRIDE), FACT_DIGITS (its value as 1..arg decimal digits), FACT_DIGITS_SPLIT (the same,
 * as value / 1e8 in this fact and value % 1e8 in the next). -1: absent or not of that form.
 */
export function setFact(fact: i32, slot: i32, kind: i32, arg: i32): void {
  const at = factTable + <usize>(fact * 12);
  store<i32>(at, slot);
  store<i32>(at + 4, kind);
  store<i32>(at + 8, kind == FACT_CHOICE ? min(arg, CHOICES_MAX) : arg);
}

/** Index among fact `fact`'s `count` choices of slot k's value, or -1 (also when absent). */
function choiceOf(rec: usize, k: i32, fact: i32, count: i32): i32 {
  const at = rec + <usize>((slotsAt + k * 3) * 4);
  const vs = load<i32>(at);
  if (vs < 0) return -1;
  const len = load<i32>(at + 4) - vs;
  for (let i = 0; i < count; i++) {
    const choice = choiceTable + <usize>((fact * CHOICES_MAX + i) * CHOICE_STRIDE);
    if (load<i32>(choice) == len && sameBytes(choice + 4, <usize>vs, len)) return i;
  }
  return -1;
}

/** Slot k's value as a decimal of 1..maxDigits ASCII digits, or -1 (normalize's digits()). */
function digitsOf(rec: usize, k: i32, maxDigits: i32): f64 {
  const at = rec + <usize>((slotsAt + k * 3) * 4);
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

/**
 * What the caller would parse from an extracted record's values, so it makes no string it only
 * parses (an auth event's subclass, auth-result, timestamp, port…: the facts set by setFact).
 * 16 digits fit a double exactly; the caller checks a timestamp against Number.MAX_SAFE_INTEGER.
 */
function classify(rec: usize): void {
  const out = rec + <usize>(factsAt * 4);
  for (let f = 0; f < FACT_COUNT; f++) {
    const def = factTable + <usize>(f * 12);
    const kind = load<i32>(def + 4);
    if (kind == FACT_NONE) continue;
    const slot = load<i32>(def);
    const arg = load<i32>(def + 8);
    const at = out + <usize>(f * 4);
    if (kind == FACT_CHOICE) {
      store<i32>(at, choiceOf(rec, slot, f, arg));
    } else if (kind == FACT_DIGITS) {
      store<i32>(at, <i32>digitsOf(rec, slot, arg));
    } else if (kind == FACT_DIGITS_SPLIT && f + 1 < FACT_COUNT) {
      const v = digitsOf(rec, slot, arg);
      store<i32>(at, v < 0 ? -1 : <i32>Math.floor(v / 1e8));
      store<i32>(at + 4, v < 0 ? -1 : <i32>(v % 1e8));
    }
  }
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
    const rec = out + <usize>(n * recordLength * 4);
    store<i32>(rec, <i32>p);
    store<i32>(rec + 4, <i32>nl);
    let status: i32;
    if (lineOdd != 0) status = UNUSUAL;
    else if (skipSpaces(p, nl) == nl) status = BLANK;
    else {
      status = parseLine(p, nl, rec);
      if (status == EXTRACTED) {
        classify(rec);
        intern(rec);
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

/** Ints per record, once set up (the caller checks its layout against it). */
export function recordInts(): i32 {
  return recordLength;
}
