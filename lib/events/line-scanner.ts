// The JavaScript half of wasm/line-scanner.ts (AssemblyScript, compiled to
// dist/wasm/line-scanner.wasm by `npm run build`): owns the WebAssembly memory — the input
// bytes, the value pool, the records the scanner writes — and turns a record into the
// EventHeaders normalizeEvent takes. One instance per event stream (its pool is that stream's):
// a trace being replayed (TraceDecoder, scan-worker) or an ESL connection (WasmBodyReader).
// When the module does not load, EventJsonExtractor and TraceDecoder's JavaScript line
// splitter do the same work, with the same results (test/fast-json.test.ts).
import { readFileSync } from 'node:fs';
import type { AttemptResult, FailureMethod } from './auth-event.js';
import { EVENT_HEADER_NAMES, EventJsonExtractor, headersOf, type EventHeaders } from './fast-json.js';
import { MAX_FIELD_CHARS, type PreparsedEvent } from './normalize.js';

/** What the scanner made of one line (the constants of wasm/line-scanner.ts). */
export const LineStatus = { extracted: 0, blank: 1, declined: 2, unusual: 3 } as const;
export type LineStatus = (typeof LineStatus)[keyof typeof LineStatus];

/** Buffer's own latin1 decoder (toString's argument checks cost as much as the copy here). */
type Latin1Buffer = Buffer & { latin1Slice(start: number, end: number): string };

interface ScannerExports {
  readonly memory: WebAssembly.Memory;
  setup(keys: number, lens: number, table: number, poolLens: number, poolBytes: number, timestampSlot: number, poolBits: number): void;
  addKey(slot: number): void;
  scan(from: number, to: number, out: number, cap: number): number;
  consumed(): number;
  staticEnd(): number;
  recordInts(): number;
}

const SLOTS = EVENT_HEADER_NAMES.length;
/** Where a record's parsed facts start (FACTS in the wasm), and the record's length. */
const FACTS = 3 + SLOTS * 3;
const RECORD_INTS = FACTS + 8;
const slot = (name: (typeof EVENT_HEADER_NAMES)[number]): number => EVENT_HEADER_NAMES.indexOf(name);
/**
 * The slots normalizePreparsed needs as strings, by the PreparsedEvent field they fill. The
 * other slots are parsed in the wasm (facts) and never made into strings.
 */
const STRING_SLOTS = {
  profile: slot('profile-name'), networkIp: slot('network-ip'), switchV4: slot('FreeSWITCH-IPv4'), switchV6: slot('FreeSWITCH-IPv6'),
  userAgent: slot('user-agent'), callId: slot('call-id'), toUserHeader: slot('to-user'), fromUserHeader: slot('from-user'),
  username: slot('username'), realm: slot('realm'),
} as const;
const STRING_SLOT_SET: readonly boolean[] = EVENT_HEADER_NAMES.map((_, k) => (Object.values(STRING_SLOTS) as number[]).includes(k));
/** AUTH_RESULTS of the wasm, in its order. */
const ATTEMPT_RESULT_OF: readonly AttemptResult[] = ['success', 'success', 'stale', 'forbidden'];
const FAILURE_METHOD_OF: readonly FailureMethod[] = ['REGISTER', 'INVITE'];
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
/** Records per scan call (the output area's size). */
const RECORDS = 4096;
/** Where each area is in the wasm memory (addresses); the input area grows at the end. */
interface Layout {
  readonly keys: number;
  readonly lens: number;
  readonly table: number;
  readonly poolLens: number;
  readonly poolBytes: number;
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
  const out = poolBytes + POOL_SIZE * POOL_MAX;
  return { keys, lens, table, poolLens, poolBytes, out, in: out + RECORDS * RECORD_INTS * 4 };
}
/** Readable bytes the scanner may look at past the end of the input (16-byte loads). */
const SLACK = 32;
const PAGE = 65536;
const LINE_FEED = Uint8Array.of(10);

/** The compiled scanner, or the reason it is not available (then TraceDecoder uses JavaScript). */
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
    if (this.exports.recordInts() !== RECORD_INTS) {
      throw new Error(`line-scanner.wasm writes records of ${this.exports.recordInts()} ints, this code reads ${RECORD_INTS}: rebuild (npm run build)`);
    }
    this.at = layoutAbove(this.exports.staticEnd());
    this.reserve(1 << 21);
    const x = this.exports;
    const at = this.at;
    x.setup(at.keys, at.lens, at.table, at.poolLens, at.poolBytes, TIMESTAMP_SLOT, POOL_BITS);
    const lens = new Int32Array(x.memory.buffer, at.lens, SLOTS);
    EVENT_HEADER_NAMES.forEach((name, slot) => {
      this.bytes.write(name, at.keys + slot * KEY_MAX, 'latin1');
      lens[slot] = name.length;
      x.addKey(slot);
    });
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
  private readonly values: (string | undefined)[] = new Array<string | undefined>(SLOTS).fill(undefined);

  /** The records to read next: `bytes` holds the scanner's memory from address `base` on. */
  use(records: Int32Array, bytes: Uint8Array, base: number): void {
    this.records = records;
    this.bytes = (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)) as Latin1Buffer;
    this.base = base;
  }

  status(k: number): LineStatus {
    return this.records[k * RECORD_INTS + 2] as LineStatus;
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

  /** The headers of an `extracted` record; values seen recently come back as the same string. */
  headers(k: number): EventHeaders {
    const v = this.values;
    for (let slot = 0; slot < SLOTS; slot++) v[slot] = this.value(k, slot);
    return headersOf(v);
  }

  /**
   * Fills `p` from an `extracted` record when normalizeEvent would find nothing irregular in it
   * (an auth event with a profile, an address and a good timestamp, known auth-result or
   * registration-type, no value cut to MAX_FIELD_CHARS): then normalizePreparsed(p) is exactly
   * normalizeEvent(headers(k)), without the headers object and the strings it only parses.
   * False otherwise: the caller uses headers(k) and normalizeEvent.
   */
  preparse(k: number, p: PreparsedEvent): boolean {
    const r = this.records;
    const f = k * RECORD_INTS + FACTS;
    const subclass = r[f + 1]!;
    const tsHigh = r[f + 4]!;
    if (r[f] !== 1 || subclass < 0 || tsHigh < 0) return false;
    const timeUs = tsHigh * 1e8 + r[f + 5]!;
    if (timeUs <= 0 || timeUs > Number.MAX_SAFE_INTEGER) return false;
    const result = r[f + 2]!;
    const method = r[f + 3]!;
    if ((subclass === 1 && result < 0) || (subclass === 2 && method < 0)) return false;
    // Every value the wasm interned is settled here, needed or not, so the pools stay mirrors.
    let regular = true;
    const v = this.values;
    for (let slot = 0; slot < SLOTS; slot++) {
      if (!STRING_SLOT_SET[slot]) { this.forget(k, slot); continue; }
      const value = this.value(k, slot);
      if (value !== undefined && value.length > MAX_FIELD_CHARS) regular = false;
      v[slot] = value;
    }
    const profile = v[STRING_SLOTS.profile];
    const networkIp = v[STRING_SLOTS.networkIp];
    if (!regular || !profile || !networkIp) return false;
    p.subclass = subclass;
    p.profile = profile;
    p.networkIp = networkIp;
    p.timeUs = timeUs;
    const port = r[f + 6]!;
    p.port = port >= 1 && port <= 65535 ? port : null;
    p.switchV4 = v[STRING_SLOTS.switchV4] ?? '';
    p.switchV6 = v[STRING_SLOTS.switchV6] ?? '';
    p.userAgent = v[STRING_SLOTS.userAgent] ?? '';
    p.callId = v[STRING_SLOTS.callId] ?? '';
    p.toUserHeader = v[STRING_SLOTS.toUserHeader] ?? '';
    p.fromUserHeader = v[STRING_SLOTS.fromUserHeader] ?? '';
    p.username = v[STRING_SLOTS.username] ?? '';
    p.realm = v[STRING_SLOTS.realm] ?? '';
    p.result = subclass === 1 ? ATTEMPT_RESULT_OF[result]! : null;
    p.method = subclass === 2 ? FAILURE_METHOD_OF[method]! : null;
    const expires = r[f + 7]!;
    p.expires = subclass === 3 && expires >= 0 ? expires : null;
    return true;
  }

  /**
   * Slot `slot` of record k as a string (undefined: absent). An interned value comes from the
   * pool; the pool keeps, per entry, the string of the wasm entry's bytes or nothing yet.
   */
  private value(k: number, slot: number): string | undefined {
    const r = this.records;
    const at = k * RECORD_INTS + 3 + slot * 3;
    const vs = r[at]!;
    if (vs < 0) return undefined;
    const word = r[at + 2]!;
    if (word >= 0 && (word & 1) === 1) {
      const pooled = this.pool[word >> 1];
      if (pooled !== undefined) return pooled;
    }
    const s = this.bytes.latin1Slice(vs - this.base, r[at + 1]! - this.base);
    if (word >= 0) this.pool[word >> 1] = s;
    return s;
  }

  /** Slot `slot` of record k is not made into a string: a pool entry the wasm refilled for it is emptied. */
  private forget(k: number, slot: number): void {
    const r = this.records;
    const at = k * RECORD_INTS + 3 + slot * 3;
    const word = r[at + 2]!;
    if (r[at]! >= 0 && word >= 0 && (word & 1) === 0) this.pool[word >> 1] = undefined;
  }
}

/** Reads one event body at a time (an ESL frame's), as EventJsonExtractor.extract does. */
export interface EventBodyReader {
  /**
   * `p` itself when the body is a regular auth event and `p` was filled (see
   * LineRecords.preparse: normalizePreparsed(p) is then normalizeEvent's answer), else the
   * body's headers, or null when JSON.parse must decide (odd bytes, escapes, odd syntax).
   */
  read(body: Uint8Array, p: PreparsedEvent): EventHeaders | PreparsedEvent | null;
}

/** EventBodyReader on the wasm scanner: the body as one line. */
export class WasmBodyReader implements EventBodyReader {
  private readonly scanner: WasmLineScanner;
  private readonly records = new LineRecords();

  constructor(module: WebAssembly.Module) {
    this.scanner = new WasmLineScanner(module);
  }

  read(body: Uint8Array, p: PreparsedEvent): EventHeaders | PreparsedEvent | null {
    const s = this.scanner;
    s.loadLine(body);
    const n = s.scan();
    this.records.use(s.records, s.bytes, 0);
    if (n === 1 && s.scannedTo === body.length + 1) {
      if (this.records.status(0) !== LineStatus.extracted) return null;
      return this.records.preparse(0, p) ? p : this.records.headers(0);
    }
    // A line feed inside the body (JSON allows none in a string; FreeSWITCH writes one line):
    // JSON.parse decides. The values interned for its lines are still taken, so this side's
    // pool stays the wasm pool's mirror.
    for (let k = 0; k < n; k++) if (this.records.status(k) === LineStatus.extracted) this.records.headers(k);
    return null;
  }
}

/** The wasm reader when the module loads, else EventJsonExtractor (the same answers, slower). */
export function createEventBodyReader(): EventBodyReader {
  const module = loadLineScannerModule();
  if (module instanceof Error) {
    const extractor = new EventJsonExtractor();
    return { read: (body) => extractor.extract(Buffer.from(body.buffer, body.byteOffset, body.byteLength)) };
  }
  return new WasmBodyReader(module);
}

/** Ints of one record (for copies of the records area). */
export const RECORD_SIZE = RECORD_INTS;
