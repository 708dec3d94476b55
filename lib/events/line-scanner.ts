// The JavaScript half of wasm/line-scanner.ts (AssemblyScript, compiled to
// dist/wasm/line-scanner.wasm by `npm run build`): owns the WebAssembly memory — the input
// bytes, the value pool, the records the scanner writes — gives the module the wanted headers
// and the value tables it matches (normalize.ts's: subclasses, auth results, registration
// types), and fills a PreparsedEvent from a record of a regular auth event, or the headers
// normalizeCallEvent reads from a record of a finished call (CHANNEL_HANGUP_COMPLETE: 5-10 KB
// and ~200 headers, of which it reads 24). Anything else (any other event, escapes in a wanted
// value, non-ASCII, odd syntax, a value normalize would cut) is left to JSON.parse and the
// normalizers, the reference the reader is held to (test/event-reader.test.ts). One
// instance per event stream (its pool is that stream's): a trace being replayed (TraceDecoder,
// scan-worker) or an ESL connection (WasmBodyReader).
//
// It exists for speed only, and pays in two bench figures (bench/RESULTS.md): `policy simulate`
// ≥ 500,000 events/s and the daemon's ≥ 100,000 events/s within one core.
import { readFileSync } from 'node:fs';
import { parseIp, type IpAddress } from '../net/ip.js';
import { AUTH_RESULT_TABLE, AUTH_SUBCLASSES, FAILURE_METHODS, MAX_FIELD_CHARS, type PreparsedEvent } from './normalize.js';
import { CALL_EVENT_NAME, CALL_HEADER_NAMES, type CallHeaderValues } from './call-event.js';

/** The headers read from an auth event body (normalizeEvent's), and Event-Sequence (the gap tracker's). */
const AUTH_HEADER_NAMES = [
  'Event-Name', 'Event-Subclass', 'Event-Date-Timestamp', 'profile-name', 'network-ip', 'network-port',
  'FreeSWITCH-IPv4', 'FreeSWITCH-IPv6', 'user-agent', 'call-id', 'to-user', 'from-user', 'username',
  'realm', 'auth-result', 'registration-type', 'expires', 'Event-Sequence',
] as const;
type AuthHeaderName = (typeof AUTH_HEADER_NAMES)[number];

/**
 * The headers read from any body: the auth headers, then the call headers not among them.
 * Adding one is a change to those lists only: the module takes this one, and records grow by
 * three ints a header.
 */
export const EVENT_HEADER_NAMES: readonly string[] = [
  ...AUTH_HEADER_NAMES,
  ...CALL_HEADER_NAMES.filter((name) => !(AUTH_HEADER_NAMES as readonly string[]).includes(name)),
];

/** What LineRecords.read made of an extracted record. */
export type RecordRead = 'auth' | 'call' | 'other';

/** What the scanner made of one line (the constants of wasm/line-scanner.ts). */
export const LineStatus = { extracted: 0, blank: 1, declined: 2, unusual: 3 } as const;
export type LineStatus = (typeof LineStatus)[keyof typeof LineStatus];

/** Buffer's own latin1 decoder (toString's argument checks cost as much as the copy here). */
type Latin1Buffer = Buffer & { latin1Slice(start: number, end: number): string };

interface ScannerExports {
  readonly memory: WebAssembly.Memory;
  setup(slots: number, keys: number, lens: number, table: number, poolLens: number, poolBytes: number, timestampSlot: number, poolBits: number,
    facts: number, choices: number, kinds: number): void;
  addKey(slot: number): void;
  setSlotKinds(slot: number, mask: number): void;
  setFact(fact: number, slot: number, kind: number, arg: number): void;
  scan(from: number, to: number, out: number, cap: number): number;
  consumed(): number;
  staticEnd(): number;
  recordInts(): number;
}

const SLOTS = EVENT_HEADER_NAMES.length;
/** Where a record's parsed facts and its slots start (factsAt, slotsAt in the wasm), and the record's length. */
const FACTS = 3;
const FACT_COUNT = 10;
const SLOTS_AT = FACTS + FACT_COUNT;
const RECORD_INTS = SLOTS_AT + SLOTS * 3;
const slot = (name: AuthHeaderName): number => EVENT_HEADER_NAMES.indexOf(name);

/** How the module reads a fact out of a header's value (FACT_* in the wasm). */
const FactKind = { choice: 1, digits: 2, digitsSplit: 3 } as const;
type FactDefinition =
  | { readonly header: AuthHeaderName; readonly choices: readonly string[] }
  | { readonly header: AuthHeaderName; readonly digits: number; readonly split?: true };
/**
 * The facts of a record, in record order: what normalizeEvent parses out of the headers, read in
 * the wasm so no string is made only to be parsed. Choices are normalize.ts's own tables (the
 * one auth-result table); a split fact takes two places (value / 1e8, value % 1e8).
 */
const FACT_DEFINITIONS: readonly FactDefinition[] = [
  { header: 'Event-Name', choices: ['CUSTOM', CALL_EVENT_NAME] },
  { header: 'Event-Subclass', choices: AUTH_SUBCLASSES },
  { header: 'auth-result', choices: AUTH_RESULT_TABLE.map(([text]) => text) },
  { header: 'registration-type', choices: FAILURE_METHODS },
  { header: 'Event-Date-Timestamp', digits: 16, split: true },
  { header: 'network-port', digits: 5 },
  { header: 'expires', digits: 9 },
  { header: 'Event-Sequence', digits: 16, split: true },
];
/** Record offsets (from FACTS) of each fact, as laid out from FACT_DEFINITIONS. */
const F_EVENT_NAME = 0;
const F_SUBCLASS = 1;
const F_AUTH_RESULT = 2;
const F_METHOD = 3;
const F_TIME_HIGH = 4;
const F_TIME_LOW = 5;
const F_PORT = 6;
const F_EXPIRES = 7;
const F_SEQ_HIGH = 8;
const F_SEQ_LOW = 9;
const CHOICES_MAX = 8;
/**
 * The slots normalizePreparsed needs as strings, by the PreparsedEvent field they fill. The
 * other slots are parsed in the wasm (facts) and never made into strings.
 */
const STRING_SLOTS = {
  profile: slot('profile-name'), networkIp: slot('network-ip'), switchV4: slot('FreeSWITCH-IPv4'), switchV6: slot('FreeSWITCH-IPv6'),
  userAgent: slot('user-agent'), callId: slot('call-id'), toUserHeader: slot('to-user'), fromUserHeader: slot('from-user'),
  username: slot('username'), realm: slot('realm'),
} as const;
const AUTH_STRING_SLOTS: readonly number[] = Object.values(STRING_SLOTS);
/** The slots of the call headers (all read as strings). */
const CALL_SLOTS: readonly number[] = CALL_HEADER_NAMES.map((name) => EVENT_HEADER_NAMES.indexOf(name));
// The wasm interns a record's values slot by slot in ascending order, and a value may hit the
// pool entry an earlier slot of the same record just filled (a phone's user is its from-user,
// to-user and username): each kind's strings are read in that order, or a hit would find the
// entry's previous string. readAuth reads STRING_SLOTS in their order; readCall, CALL_SLOTS.
for (const slots of [AUTH_STRING_SLOTS, CALL_SLOTS]) {
  if (slots.some((slot, i) => i > 0 && slot <= slots[i - 1]!)) throw new Error('line-scanner: string slots must be read in ascending order');
}
/** Event-Name choices (the first fact's): the record kinds, whose slots read as strings the wasm interns. */
const EVENT_CUSTOM = 0;
const EVENT_CALL = 1;
const SLOT_KINDS: readonly number[] = EVENT_HEADER_NAMES.map((_, k) =>
  (AUTH_STRING_SLOTS.includes(k) ? 1 << EVENT_CUSTOM : 0) | (CALL_SLOTS.includes(k) ? 1 << EVENT_CALL : 0));
/** Subclass indexes (AUTH_SUBCLASSES order). */
const ATTEMPT = AUTH_SUBCLASSES.indexOf('sofia::register_attempt');
const FAILURE = AUTH_SUBCLASSES.indexOf('sofia::register_failure');
const REGISTER = AUTH_SUBCLASSES.indexOf('sofia::register');
const TIMESTAMP_SLOT = slot('Event-Date-Timestamp');
/**
 * Interned values: 4,096 entries. What misses is new (call-ids, the users and ports of scans):
 * 16,384 entries missed as often on the bench's mixed trace.
 */
const POOL_BITS = 12;
const POOL_SIZE = 1 << POOL_BITS;
/** Longest value interned (POOL_MAX in the wasm). */
const POOL_MAX = 256;
const KEY_MAX = 32;
const CHOICE_STRIDE = 4 + KEY_MAX;
/** Records per scan call (the output area's size). */
const RECORDS = 4096;
/** Where each area is in the wasm memory (addresses); the input area grows at the end. */
interface Layout {
  readonly keys: number;
  readonly lens: number;
  readonly table: number;
  readonly poolLens: number;
  readonly poolBytes: number;
  readonly facts: number;
  readonly choices: number;
  readonly kinds: number;
  readonly out: number;
  readonly in: number;
}

/** The areas, above the module's own static data (which ends at `staticEnd`). */
function layoutAbove(staticEnd: number): Layout {
  const keys = Math.ceil(staticEnd / 4096) * 4096;
  const lens = keys + SLOTS * KEY_MAX;
  const table = lens + 1024;
  const poolLens = table + 1024;
  const poolBytes = poolLens + POOL_SIZE * 4;
  const facts = poolBytes + POOL_SIZE * POOL_MAX;
  const choices = facts + 1024;
  const kinds = choices + FACT_COUNT * CHOICES_MAX * CHOICE_STRIDE;
  const out = kinds + SLOTS * 4;
  return { keys, lens, table, poolLens, poolBytes, facts, choices, kinds, out, in: out + RECORDS * RECORD_INTS * 4 };
}
/** Readable bytes the scanner may look at past the end of the input (16-byte loads). */
const SLACK = 32;
const PAGE = 65536;
const LINE_FEED = Uint8Array.of(10);

/** The compiled scanner, or the reason it is not available (then the daemon reads every body with JSON.parse). */
export function loadLineScannerModule(): WebAssembly.Module | Error {
  try {
    return new WebAssembly.Module(readFileSync(new URL('../../wasm/line-scanner.wasm', import.meta.url)));
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

/**
 * Drives the wasm module: input bytes go in with append(); scan() reads the complete lines
 * among them into records (at most RECORDS a call), which `records` and `bytes` hold until the
 * next call; compact() then drops what was consumed. Record positions are addresses in `bytes`.
 */
export class WasmLineScanner {
  /** Records per scan() call at most. */
  static readonly RECORDS = RECORDS;
  private readonly exports: ScannerExports;
  private readonly at: Layout;
  bytes!: Latin1Buffer;
  records!: Int32Array;
  private length = 0;
  private consumedTo = 0;
  /** Input offset where the lines of the last scan() begin. */
  scannedFrom = 0;

  constructor(module: WebAssembly.Module) {
    this.exports = new WebAssembly.Instance(module, {}).exports as unknown as ScannerExports;
    this.at = layoutAbove(this.exports.staticEnd());
    this.reserve(1 << 21);
    const x = this.exports;
    const at = this.at;
    x.setup(SLOTS, at.keys, at.lens, at.table, at.poolLens, at.poolBytes, TIMESTAMP_SLOT, POOL_BITS, at.facts, at.choices, at.kinds);
    if (x.recordInts() !== RECORD_INTS) {
      throw new Error(`line-scanner.wasm writes records of ${x.recordInts()} ints, this code reads ${RECORD_INTS}: rebuild (npm run build)`);
    }
    const lens = new Int32Array(x.memory.buffer, at.lens, SLOTS);
    EVENT_HEADER_NAMES.forEach((name, slot) => {
      this.bytes.write(name, at.keys + slot * KEY_MAX, 'latin1');
      lens[slot] = name.length;
      x.addKey(slot);
      x.setSlotKinds(slot, SLOT_KINDS[slot]!);
    });
    let fact = 0;
    for (const def of FACT_DEFINITIONS) {
      if ('choices' in def) {
        if (def.choices.length > CHOICES_MAX || def.choices.some((text) => text.length > KEY_MAX)) {
          throw new Error(`the wasm line scanner takes at most ${CHOICES_MAX} values of ${KEY_MAX} characters per header (${def.header})`);
        }
        def.choices.forEach((text, i) => {
          const choice = at.choices + (fact * CHOICES_MAX + i) * CHOICE_STRIDE;
          this.bytes.writeInt32LE(text.length, choice);
          this.bytes.write(text, choice + 4, 'latin1');
        });
        x.setFact(fact++, slot(def.header), FactKind.choice, def.choices.length);
      } else {
        x.setFact(fact, slot(def.header), def.split ? FactKind.digitsSplit : FactKind.digits, def.digits);
        fact += def.split ? 2 : 1;
      }
    }
  }

  /** Unread input bytes (an unfinished line, after scan()). */
  get pending(): number {
    return this.length - this.consumedTo;
  }

  /** Address in `bytes` of the input's byte `offset`. */
  address(offset: number): number {
    return this.at.in + offset;
  }

  /** Input offset just past the lines of the last scan(). */
  get scannedTo(): number {
    return this.consumedTo;
  }

  /** Replaces all input with `line` and a line feed (the value pool is kept). */
  loadLine(line: Uint8Array): void {
    this.reserve(this.at.in + line.length + 1 + SLACK);
    this.bytes.set(line, this.at.in);
    this.bytes[this.at.in + line.length] = 10;
    this.length = line.length + 1;
    this.consumedTo = 0;
    this.scannedFrom = 0;
  }

  append(chunk: Uint8Array): void {
    this.reserve(this.at.in + this.length + chunk.length + SLACK);
    this.bytes.set(chunk, this.at.in + this.length);
    this.length += chunk.length;
  }

  /** The last line, ended as if it had a line feed (one that ends in \r still keeps it). */
  endInput(): void {
    if (this.pending > 0) this.append(LINE_FEED);
  }

  /** Reads up to RECORDS complete lines from where the last scan stopped; returns how many. */
  scan(): number {
    const x = this.exports;
    this.scannedFrom = this.consumedTo;
    const n = x.scan(this.at.in + this.consumedTo, this.at.in + this.length, this.at.out, RECORDS);
    this.consumedTo = x.consumed() - this.at.in;
    return n;
  }

  /** Moves the unread bytes to the front (after the records of the last scan were used). */
  compact(): void {
    if (this.consumedTo === 0) return;
    this.bytes.copyWithin(this.at.in, this.at.in + this.consumedTo, this.at.in + this.length);
    this.length -= this.consumedTo;
    this.consumedTo = 0;
    this.scannedFrom = 0;
  }

  private reserve(size: number): void {
    const memory = this.exports.memory;
    if (this.bytes !== undefined && size <= this.bytes.length) return;
    const have = memory.buffer.byteLength;
    const want = Math.max(this.at.in + (1 << 21), size * 2);
    if (want > have) memory.grow(Math.ceil((want - have) / PAGE));
    this.bytes = Buffer.from(memory.buffer) as Latin1Buffer;
    this.records = new Int32Array(memory.buffer, this.at.out, RECORDS * RECORD_INTS);
  }
}

/** A value normalizeEvent would take whole (a longer one is cut: its reading is JSON.parse's). */
function fits(value: string): boolean {
  return value.length <= MAX_FIELD_CHARS;
}

/**
 * Reads the records of one scan — in the scanner's memory, or copies of them sent from the
 * scanning thread — and keeps the strings of the interned values: one per trace, fed every
 * batch in order (the wasm pool and this one change together).
 */
export class LineRecords {
  private records: Int32Array = new Int32Array(0);
  private bytes: Latin1Buffer = Buffer.alloc(0) as Latin1Buffer;
  /** Address (in the scanner's memory) of bytes[0]. */
  private base = 0;
  private readonly pool: (string | undefined)[] = new Array<string | undefined>(POOL_SIZE).fill(undefined);
  /**
   * parseIp of the pool's string, per entry, once asked (undefined: not yet, or the entry changed):
   * a source's address is parsed when its value enters the pool, not at every event.
   */
  private readonly poolAddresses: (IpAddress | null | undefined)[] = new Array<IpAddress | null | undefined>(POOL_SIZE).fill(undefined);
  /** The CallHeaderValues of the last record read() answered `call` for (reused: valid until the next read). */
  readonly callValues: string[] = new Array<string>(CALL_SLOTS.length).fill('');

  /** The records to read next: `bytes` holds the scanner's memory from address `base` on. */
  use(records: Int32Array, bytes: Uint8Array, base: number): void {
    this.records = records;
    this.bytes = (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) as Latin1Buffer;
    this.base = base;
  }

  status(k: number): LineStatus {
    return this.records[k * RECORD_INTS + 2] as LineStatus;
  }

  /**
   * Event-Sequence and Event-Date-Timestamp of an `extracted` record (whatever its kind), as
   * readSequence (lib/esl/event-sequence.ts) reads them from the bytes: -1 when absent or not
   * 1-16 digits (then the time is 0).
   */
  sequence(k: number): number {
    const f = k * RECORD_INTS + FACTS;
    const high = this.records[f + F_SEQ_HIGH]!;
    return high < 0 ? -1 : high * 1e8 + this.records[f + F_SEQ_LOW]!;
  }

  sequenceTimeUs(k: number): number {
    const f = k * RECORD_INTS + FACTS;
    const high = this.records[f + F_TIME_HIGH]!;
    return high < 0 ? 0 : high * 1e8 + this.records[f + F_TIME_LOW]!;
  }

  /** The line as latin1 (what JSON.parse gets for a declined plain line). */
  latin1(k: number): string {
    const r = this.records;
    return this.bytes.latin1Slice(r[k * RECORD_INTS]! - this.base, r[k * RECORD_INTS + 1]! - this.base);
  }

  /** The line as UTF-8 (an unusual line). */
  utf8(k: number): string {
    const r = this.records;
    return this.bytes.toString('utf8', r[k * RECORD_INTS]! - this.base, r[k * RECORD_INTS + 1]! - this.base);
  }

  /**
   * Reads an `extracted` record k, settling every value the wasm interned for it (the values of
   * the slots its kind reads: taken, or forgotten when the record turns out irregular, so the
   * pools stay mirrors):
   * - `auth`: `p` is filled; the record is an auth event in which normalizeEvent would find
   *   nothing irregular (a profile, an address and a good timestamp, known auth-result or
   *   registration-type, no value cut to MAX_FIELD_CHARS): normalizePreparsed(p) is exactly
   *   normalizeEvent(JSON.parse(line)), without the headers object and the strings it only parses;
   * - `call`: `callValues` holds the headers normalizeCallValues reads of a finished call, each
   *   as JSON.parse gives it (a repeated key: the last) and str() cuts it, an absent one '':
   *   normalizeCallValues of them is exactly normalizeCallEvent(JSON.parse(line));
   * - `other`: any other event, an irregular one: the caller uses JSON.parse.
   */
  read(k: number, p: PreparsedEvent): RecordRead {
    const name = this.records[k * RECORD_INTS + FACTS + F_EVENT_NAME];
    if (name === EVENT_CALL) {
      this.readCall(k);
      return 'call';
    }
    if (name === EVENT_CUSTOM) return this.readAuth(k, p) ? 'auth' : 'other';
    return 'other';
  }

  private readAuth(k: number, p: PreparsedEvent): boolean {
    const r = this.records;
    const f = k * RECORD_INTS + FACTS;
    const subclass = r[f + F_SUBCLASS]!;
    const tsHigh = r[f + F_TIME_HIGH]!;
    const timeUs = tsHigh * 1e8 + r[f + F_TIME_LOW]!;
    const result = r[f + F_AUTH_RESULT]!;
    const method = r[f + F_METHOD]!;
    if (subclass < 0 || tsHigh < 0 || timeUs <= 0 || timeUs > Number.MAX_SAFE_INTEGER
      || (subclass === ATTEMPT && result < 0) || (subclass === FAILURE && method < 0)) {
      for (const slot of AUTH_STRING_SLOTS) this.forget(k, slot);
      return false;
    }
    // Straight into p (every slot read, in STRING_SLOTS order, so the pool stays the wasm's
    // mirror): p is only used when this answers true.
    const s = STRING_SLOTS;
    const profile = this.value(k, s.profile) ?? '';
    const networkIp = this.value(k, s.networkIp) ?? '';
    // Before the later slots are read: one of them may take over the entry.
    p.networkAddress = networkIp === '' ? undefined : this.addressOf(k, s.networkIp, networkIp);
    p.switchV4 = this.value(k, s.switchV4) ?? '';
    p.switchV6 = this.value(k, s.switchV6) ?? '';
    p.userAgent = this.value(k, s.userAgent) ?? '';
    p.callId = this.value(k, s.callId) ?? '';
    p.toUserHeader = this.value(k, s.toUserHeader) ?? '';
    p.fromUserHeader = this.value(k, s.fromUserHeader) ?? '';
    p.username = this.value(k, s.username) ?? '';
    p.realm = this.value(k, s.realm) ?? '';
    if (profile === '' || networkIp === '' || !fits(profile) || !fits(networkIp) || !fits(p.switchV4) || !fits(p.switchV6)
      || !fits(p.userAgent) || !fits(p.callId) || !fits(p.toUserHeader) || !fits(p.fromUserHeader) || !fits(p.username) || !fits(p.realm)) {
      return false;
    }
    p.subclass = subclass;
    p.profile = profile;
    p.networkIp = networkIp;
    p.timeUs = timeUs;
    const port = r[f + F_PORT]!;
    p.port = port >= 1 && port <= 65535 ? port : null;
    p.result = subclass === ATTEMPT ? AUTH_RESULT_TABLE[result]![1] : null;
    p.method = subclass === FAILURE ? FAILURE_METHODS[method]! : null;
    const expires = r[f + F_EXPIRES]!;
    p.expires = subclass === REGISTER && expires >= 0 ? expires : null;
    return true;
  }

  private readCall(k: number): void {
    const out = this.callValues;
    for (let i = 0; i < CALL_SLOTS.length; i++) {
      const value = this.value(k, CALL_SLOTS[i]!);
      out[i] = value === undefined ? '' : value.length > MAX_FIELD_CHARS ? value.slice(0, MAX_FIELD_CHARS) : value;
    }
  }

  /**
   * Slot `slot` of record k as a string (undefined: absent). An interned value comes from the
   * pool; the pool keeps, per entry, the string of the wasm entry's bytes or nothing yet.
   */
  private value(k: number, slot: number): string | undefined {
    const r = this.records;
    const at = k * RECORD_INTS + SLOTS_AT + slot * 3;
    const vs = r[at]!;
    if (vs < 0) return undefined;
    const word = r[at + 2]!;
    if (word >= 0 && (word & 1) === 1) {
      const pooled = this.pool[word >> 1];
      if (pooled !== undefined) return pooled;
    }
    const s = this.bytes.latin1Slice(vs - this.base, r[at + 1]! - this.base);
    if (word >= 0) {
      this.pool[word >> 1] = s;
      this.poolAddresses[word >> 1] = undefined;
    }
    return s;
  }

  /**
   * parseIp(text), where `text` is what value() just returned for slot `slot` of record k: from
   * the entry's memo when the value is interned (undefined when it is not: the caller parses).
   */
  private addressOf(k: number, slot: number, text: string): IpAddress | null | undefined {
    const word = this.records[k * RECORD_INTS + SLOTS_AT + slot * 3 + 2]!;
    if (word < 0) return undefined;
    const entry = word >> 1;
    let a = this.poolAddresses[entry];
    if (a === undefined) {
      a = parseIp(text);
      this.poolAddresses[entry] = a;
    }
    return a;
  }

  /** Slot `slot` of record k is not made into a string: a pool entry the wasm refilled for it is emptied. */
  private forget(k: number, slot: number): void {
    const r = this.records;
    const at = k * RECORD_INTS + SLOTS_AT + slot * 3;
    const word = r[at + 2]!;
    if (r[at]! >= 0 && word >= 0 && (word & 1) === 0) {
      this.pool[word >> 1] = undefined;
      this.poolAddresses[word >> 1] = undefined;
    }
  }
}

/** Reads one event body at a time (an ESL frame's). */
export interface EventBodyReader {
  /**
   * `auth`: the body is a regular auth event and `p` was filled (normalizePreparsed(p) is then
   * exactly normalizeEvent(JSON.parse(body))). `call`: a finished call, whose headers are in
   * `callValues` (normalizeCallValues of them is exactly normalizeCallEvent(JSON.parse(body))).
   * `other`: the caller parses the body with JSON.parse (any other event, odd bytes, an escape
   * in a wanted value, odd syntax; or no wasm at all).
   */
  read(body: Uint8Array, p: PreparsedEvent): RecordRead;
  readonly callValues: CallHeaderValues;
  /** The last body's Event-Sequence (-1: not read here; the caller reads it from the bytes) and its time. */
  readonly sequence: number;
  readonly sequenceTimeUs: number;
}

/** EventBodyReader on the wasm scanner: the body as one line. */
export class WasmBodyReader implements EventBodyReader {
  private readonly scanner: WasmLineScanner;
  private readonly records = new LineRecords();

  constructor(module: WebAssembly.Module) {
    this.scanner = new WasmLineScanner(module);
  }

  sequence = -1;
  sequenceTimeUs = 0;

  get callValues(): CallHeaderValues {
    return this.records.callValues;
  }

  read(body: Uint8Array, p: PreparsedEvent): RecordRead {
    const s = this.scanner;
    s.loadLine(body);
    const n = s.scan();
    this.records.use(s.records, s.bytes, 0);
    this.sequence = -1;
    if (n === 1 && s.scannedTo === body.length + 1) {
      if (this.records.status(0) !== LineStatus.extracted) return 'other';
      this.sequence = this.records.sequence(0);
      this.sequenceTimeUs = this.records.sequenceTimeUs(0);
      return this.records.read(0, p);
    }
    // A line feed inside the body (JSON allows none in a string; FreeSWITCH writes one line):
    // JSON.parse decides. The values interned for its lines are still settled, so this side's
    // pool stays the wasm pool's mirror.
    for (let k = 0; k < n; k++) if (this.records.status(k) === LineStatus.extracted) this.records.read(k, p);
    return 'other';
  }
}

/** The reader of the reference: every body to JSON.parse (when the wasm module does not load). */
const JSON_PARSE_ONLY: EventBodyReader = { read: () => 'other', callValues: [], sequence: -1, sequenceTimeUs: 0 };

/** The wasm reader when the module loads, else JSON.parse for every body (the same answers, slower). */
export function createEventBodyReader(): EventBodyReader {
  const module = loadLineScannerModule();
  return module instanceof Error ? JSON_PARSE_ONLY : new WasmBodyReader(module);
}

/** Ints of one record (for copies of the records area). */
export const RECORD_SIZE = RECORD_INTS;
