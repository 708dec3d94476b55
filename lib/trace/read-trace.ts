// Reads a recorded trace: one FreeSWITCH `event json` body per line (plain or gzip), turned
// into AuthEvents by the same normalizeEvent the daemon uses, so a replay judges exactly what
// live traffic would produce. Streaming: a trace of any size is read in constant memory.
//
// It is the hot path of `fsguard policy simulate` (≥ 500,000 events/s): the wasm line scanner
// (lib/events/line-scanner.ts) splits the lines on the bytes — the one trace-line splitter —
// and reads each regular auth event without JSON.parse; every other line (another event,
// non-ASCII, control characters, escapes, anything unusual) goes through JSON.parse and
// normalizeEvent, the reference the scanner is held to, so every line gets the same record.
import { fstat as fsFstat, read as fsRead, type Stats } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { createGunzip } from 'node:zlib';
import type { AuthEvent, DropReason, NormalizeResult } from '../events/auth-event.js';
import { isCallEventName, normalizeCallEvent, normalizeCallValues, type CallDropReason, type CallEvent, type CallNormalizeResult } from '../events/call-event.js';
import { AddressMemo, normalizeEvent, normalizePreparsed, PreparsedEvent, SwitchAddressMemo, type NormalizeOptions } from '../events/normalize.js';
import { LineRecords, LineStatus, loadLineScannerModule, RECORD_SIZE, WasmLineScanner } from '../events/line-scanner.js';
import { SlotKind, SlotRing, type ScanWorkerData, type ScanWorkerMessage } from './scan-protocol.js';

export type TraceRecord =
  /** A sofia auth event, ready for the policy. */
  | { readonly kind: 'event'; readonly index: number; readonly line: number; readonly event: AuthEvent }
  /** A finished call (CHANNEL_HANGUP_COMPLETE), ready for the policy. */
  | { readonly kind: 'call'; readonly index: number; readonly line: number; readonly event: CallEvent }
  /** Valid JSON that the daemon would also drop (another event, unwatched profile, bad address…). */
  | { readonly kind: 'dropped'; readonly index: number; readonly line: number; readonly reason: TraceDropReason; readonly detail: string }
  /** A line that is not a JSON object: reported, counted, skipped. */
  | { readonly kind: 'malformed'; readonly index: number; readonly line: number; readonly detail: string };

export interface ReadTraceOptions {
  /** Profiles to keep (null: all), as the daemon's `esl.profiles`. */
  readonly profiles: ReadonlySet<string> | null;
  /** Index of this trace's first line when several traces are replayed as one (default 0). */
  readonly firstIndex?: number;
  /**
   * scanTrace only: read and scan the trace on a second thread while this one makes events of
   * the records and runs the policy. Default: for files of 4 MB and more, pipes and FIFOs.
   */
  readonly thread?: boolean;
}

export type TraceDropReason = DropReason | CallDropReason;

/** What scanTrace calls for each non-blank line, in order (the same cases as TraceRecord). */
export interface TraceVisitor {
  event(event: AuthEvent, index: number, line: number): void;
  /** A finished call; without it, call events are reported dropped (`not_auth_event`). */
  call?(event: CallEvent, index: number, line: number): void;
  dropped(reason: TraceDropReason, detail: string, index: number, line: number): void;
  malformed(detail: string, index: number, line: number): void;
  /** Called between chunks of the file (a chance to write out what was collected); may be async. */
  chunkDone?(): void | Promise<void>;
}

/** The trace name that means standard input. */
export const STDIN_TRACE = '-';

/** How a trace is named in messages ('-' is "stdin"). */
export function traceLabel(name: string): string {
  return name === STDIN_TRACE ? 'stdin' : name;
}

const READ_CHUNK = 1 << 20;
/** Standard input set non-blocking by another process (EAGAIN): looked at again after this long. */
const STDIN_RETRY_MS = 5;

/**
 * A trace's bytes in order, read sequentially (never at a position: pipes, FIFOs, sockets and
 * terminals cannot seek, and `zcat day.jsonl.gz | fsguard policy simulate -` is how a day is
 * replayed). At most one read runs at a time; close() waits for it.
 */
interface TraceInput {
  read(buf: Buffer, offset: number, length: number): Promise<number>;
  close(): Promise<void>;
}

async function openTraceInput(name: string): Promise<TraceInput> {
  if (name === STDIN_TRACE) {
    let pending: Promise<unknown> = Promise.resolve();
    const readOnce = (buf: Buffer, offset: number, length: number): Promise<number> => new Promise((resolve, reject) => {
      fsRead(0, buf, offset, length, null, (err, n) => (err ? reject(err) : resolve(n)));
    });
    const readStdin = async (buf: Buffer, offset: number, length: number): Promise<number> => {
      for (;;) {
        try {
          return await readOnce(buf, offset, length);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
          await new Promise((resolve) => setTimeout(resolve, STDIN_RETRY_MS));
        }
      }
    };
    return {
      read: (buf, offset, length) => {
        const r = readStdin(buf, offset, length);
        pending = r.catch(() => undefined);
        return r;
      },
      // Standard input stays open: it is not ours.
      close: async () => { await pending; },
    };
  }
  const fh = await open(name, 'r');
  let pending: Promise<unknown> = Promise.resolve();
  return {
    read: async (buf, offset, length) => {
      const r = fh.read(buf, offset, length, null);
      pending = r.catch(() => undefined);
      return (await r).bytesRead;
    },
    close: async () => {
      await pending;
      await fh.close();
    },
  };
}

/** Reads into buf from `from` until it holds `want` bytes or the input ends; returns the bytes held. */
async function readAtLeast(input: TraceInput, buf: Buffer, from: number, want: number): Promise<number> {
  let have = from;
  while (have < want) {
    const n = await input.read(buf, have, buf.length - have);
    if (n === 0) break;
    have += n;
  }
  return have;
}

const GZIP_MAGIC_0 = 0x1f;
const GZIP_MAGIC_1 = 0x8b;

/**
 * A trace's bytes, chunk by chunk: from a file, a FIFO, a pipe or standard input ('-'), gunzipped
 * on the fly when its first two bytes are gzip's magic (1f 8b), whatever its name. A plain trace
 * is read into one reused buffer (a new 1 MB buffer per read cost more in page faults than the
 * reading): each chunk is valid only until the next one is asked for. No read runs ahead: the
 * scanning thread that reads large traces outpaces the policy's thread without it.
 */
export async function* traceChunks(name: string): AsyncGenerator<Uint8Array> {
  const input = await openTraceInput(name);
  const buffer = Buffer.allocUnsafe(READ_CHUNK);
  try {
    let n = await readAtLeast(input, buffer, 0, 2);
    if (n >= 2 && buffer[0] === GZIP_MAGIC_0 && buffer[1] === GZIP_MAGIC_1) {
      yield* gunzipped(input, Buffer.from(buffer.subarray(0, n)));
      return;
    }
    while (n > 0) {
      yield buffer.subarray(0, n);
      n = await input.read(buffer, 0, READ_CHUNK);
    }
  } finally {
    await input.close();
  }
}

/** The inflated bytes of a gzip input whose first bytes (`head`) were already read. */
async function* gunzipped(input: TraceInput, head: Buffer): AsyncGenerator<Uint8Array> {
  async function* compressed(): AsyncGenerator<Buffer> {
    yield head;
    for (;;) {
      // A buffer per read: zlib may still hold the previous ones.
      const buf = Buffer.allocUnsafe(READ_CHUNK);
      const n = await input.read(buf, 0, READ_CHUNK);
      if (n === 0) return;
      yield buf.subarray(0, n);
    }
  }
  const raw = Readable.from(compressed(), { objectMode: false });
  // Large output chunks and a deep buffer: zlib inflates on a worker thread and can run ahead
  // of the lines being judged (16 KB chunks cost more in callbacks than in inflating).
  const gunzip = createGunzip({ chunkSize: 256 * 1024 });
  raw.on('error', (err) => gunzip.destroy(err));
  try {
    for await (const chunk of raw.pipe(gunzip)) yield chunk as Buffer;
  } finally {
    raw.destroy();
    gunzip.destroy();
  }
}

/**
 * Turns a trace's bytes, fed chunk by chunk, into records. Lines are numbered as readline
 * numbered them (`\n`, `\r\n` and a lone `\r` end a line: the scanner splits at line feeds and
 * marks lines with other control bytes unusual; those are split at `\r` here).
 */
export class TraceDecoder {
  private readonly normalizeOptions: NormalizeOptions;
  /** This decoder's scanner, made when it is first fed bytes (never, when a scanning thread feeds decodeRecords). */
  private scanner: WasmLineScanner | null = null;
  /** Reads the scanner's records: this decoder's, or those of a scanning thread (decodeRecords). */
  private readonly records = new LineRecords();
  /** Filled by LineRecords.preparse for each regular event (reused: one per decoder). */
  private readonly preparsed = new PreparsedEvent();
  private index: number;
  private line = 0;

  constructor(options: ReadTraceOptions) {
    this.normalizeOptions = { profiles: options.profiles, switchMemo: new SwitchAddressMemo(), addressMemo: new AddressMemo() };
    this.index = options.firstIndex ?? 0;
  }

  /** Non-blank lines so far (the next line's index, less firstIndex). */
  get nextIndex(): number {
    return this.index;
  }

  feed(chunk: Uint8Array, visitor: TraceVisitor): void {
    const scanner = this.ownScanner();
    scanner.append(chunk);
    this.drain(scanner, visitor);
  }

  /** The end of the input: the last line, when it has no line feed. */
  finish(visitor: TraceVisitor): void {
    if (this.scanner === null) return;
    this.scanner.endInput();
    this.drain(this.scanner, visitor);
  }

  private ownScanner(): WasmLineScanner {
    if (this.scanner === null) {
      const module = loadLineScannerModule();
      if (module instanceof Error) throw new Error(`cannot read traces without dist/wasm/line-scanner.wasm (npm run build makes it): ${module.message}`);
      this.scanner = new WasmLineScanner(module);
    }
    return this.scanner;
  }

  /** Every complete line the wasm scanner has, record by record. */
  private drain(wasm: WasmLineScanner, visitor: TraceVisitor): void {
    for (;;) {
      const n = wasm.scan();
      this.records.use(wasm.records, wasm.bytes, 0);
      this.decodeRecords(this.records, n, visitor);
      if (n < WasmLineScanner.RECORDS) break;
    }
    wasm.compact();
  }

  /**
   * Records 0..n-1 of `records`, in order: this decoder's own, or a batch from a scanning thread
   * (then this decoder is never fed bytes, and `records` is the one LineRecords of that trace).
   */
  decodeRecords(records: LineRecords, n: number, visitor: TraceVisitor): void {
    for (let k = 0; k < n; k++) {
      const status = records.status(k);
      if (status === LineStatus.unusual) { this.unusualText(records.utf8(k), visitor); continue; }
      this.line++;
      if (status === LineStatus.blank) continue;
      const index = this.index++;
      const read = status === LineStatus.extracted ? records.read(k, this.preparsed) : 'other';
      if (read === 'auth') {
        this.result(normalizePreparsed(this.preparsed, this.normalizeOptions), index, visitor);
      } else if (read === 'call' && visitor.call !== undefined) {
        this.callResult(normalizeCallValues(records.callValues, this.normalizeOptions), index, visitor);
      } else {
        // Printable ASCII only (the scanner sent anything else to `unusual`): latin1 is UTF-8 here.
        this.parsed(records.latin1(k), index, visitor);
      }
    }
  }

  private unusualText(decoded: string, visitor: TraceVisitor): void {
    const pieces = decoded.split('\r');
    // `\r\n` is one line end; any other `\r` ends a line of its own.
    if (decoded.endsWith('\r')) pieces.pop();
    for (const text of pieces) {
      this.line++;
      if (text.length === 0 || text.trim().length === 0) continue;
      this.parsed(text, this.index++, visitor);
    }
  }

  private parsed(text: string, index: number, visitor: TraceVisitor): void {
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (err) {
      visitor.malformed(`not JSON: ${err instanceof Error ? err.message : String(err)}`.slice(0, 200), index, this.line);
      return;
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      visitor.malformed('not a JSON object', index, this.line);
      return;
    }
    this.normalized(body, index, visitor);
  }

  private normalized(headers: object, index: number, visitor: TraceVisitor): void {
    if (visitor.call !== undefined && isCallEventName((headers as { readonly 'Event-Name'?: unknown })['Event-Name'])) {
      this.callResult(normalizeCallEvent(headers, this.normalizeOptions), index, visitor);
      return;
    }
    this.result(normalizeEvent(headers, this.normalizeOptions), index, visitor);
  }

  /** A finished call, for a visitor that takes calls. */
  private callResult(r: CallNormalizeResult, index: number, visitor: TraceVisitor): void {
    if (r.ok) visitor.call?.(r.event, index, this.line);
    else visitor.dropped(r.reason, r.detail, index, this.line);
  }

  private result(r: NormalizeResult, index: number, visitor: TraceVisitor): void {
    if (r.ok) visitor.event(r.event, index, this.line);
    else visitor.dropped(r.reason, r.detail, index, this.line);
  }
}

/** Files this big and more are scanned on a second thread by default (a thread costs ~30 ms to start). */
const THREAD_MIN_BYTES = 4 << 20;
/** The scanning thread's script. */
const SCAN_WORKER = new URL('./scan-worker.js', import.meta.url);
/** Slots of the ring between the threads, and the bytes of lines a slot holds. */
const THREAD_WINDOW = 8;
const SLOT_LINE_BYTES = 2 << 20;

/**
 * Replays one trace file into `visitor`, line by line, synchronously within each chunk (no
 * object or promise per line). Returns the number of non-blank lines (records) it had.
 */
export async function scanTrace(path: string, options: ReadTraceOptions, visitor: TraceVisitor): Promise<number> {
  if (await useThread(path, options)) return scanTraceThreaded(path, options, visitor);
  const decoder = new TraceDecoder(options);
  const first = options.firstIndex ?? 0;
  for await (const chunk of namedErrors(path, traceChunks(path))) {
    decoder.feed(chunk, visitor);
    if (visitor.chunkDone) await visitor.chunkDone();
  }
  decoder.finish(visitor);
  if (visitor.chunkDone) await visitor.chunkDone();
  return decoder.nextIndex - first;
}

/** The chunks of `chunks`, its read and inflate errors prefixed with the trace's name (as the scanning thread's are). */
async function* namedErrors(name: string, chunks: AsyncGenerator<Uint8Array>): AsyncGenerator<Uint8Array> {
  try {
    for (;;) {
      let r: IteratorResult<Uint8Array>;
      try {
        r = await chunks.next();
      } catch (err) {
        throw new Error(`${traceLabel(name)}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
      if (r.done === true) return;
      yield r.value;
    }
  } finally {
    // The caller stopped early (or a read failed): the input is closed either way.
    await chunks.return(undefined);
  }
}

async function useThread(path: string, options: ReadTraceOptions): Promise<boolean> {
  if (options.thread !== undefined) return options.thread;
  const st = await statTrace(path);
  // A pipe, FIFO or terminal has no size to go by; it is how large traces arrive (zcat … |).
  return !st.isFile() || st.size >= THREAD_MIN_BYTES;
}

function statTrace(name: string): Promise<Stats> {
  if (name !== STDIN_TRACE) return stat(name);
  return new Promise((resolve, reject) => fsFstat(0, (err, st) => (err ? reject(err) : resolve(st))));
}

/**
 * scanTrace with the reading and scanning on a worker thread (scan-worker.ts) that hands each
 * scan's records over through a SlotRing: this thread makes events of them and runs the
 * visitor — the same records, in the same order, as the single-threaded path. A thread that
 * fails or exits early rejects the scan with what it said (`workerScript`: a test's thread).
 */
export async function scanTraceThreaded(
  path: string, options: ReadTraceOptions, visitor: TraceVisitor, workerScript: URL = SCAN_WORKER,
): Promise<number> {
  // This decoder is never fed bytes: it numbers lines and normalizes what the thread scanned.
  const decoder = new TraceDecoder(options);
  const records = new LineRecords();
  const first = options.firstIndex ?? 0;
  const ring = new SlotRing(SlotRing.create(THREAD_WINDOW, WasmLineScanner.RECORDS * RECORD_SIZE, SLOT_LINE_BYTES));
  const data: ScanWorkerData = { path, ring: ring.shared };
  const worker = new Worker(workerScript, { workerData: data });
  const messages: ScanWorkerMessage[] = [];
  let failure: Error | null = null;
  let wake: (() => void) | null = null;
  const poke = (): void => {
    if (wake !== null) { const w = wake; wake = null; w(); }
  };
  const fail = (err: Error): void => { failure ??= err; ring.interrupt(); poke(); };
  worker.on('message', (m: ScanWorkerMessage) => { messages.push(m); poke(); });
  worker.on('error', (err) => fail(err));
  worker.on('exit', (code) => fail(new Error(`the scanning thread exited (code ${code}) before the end of the trace`)));
  /** Why the scan stops early, under the trace's name (as the thread's own errors are). */
  const stoppedEarly = (): Error => {
    const why = failure ?? new Error('the scanning thread stopped');
    return new Error(`${traceLabel(path)}: ${why.message}`, { cause: why });
  };
  const nextMessage = async (): Promise<ScanWorkerMessage> => {
    while (messages.length === 0) {
      if (failure !== null) throw stoppedEarly();
      await new Promise<void>((resolve) => { wake = resolve; });
    }
    return messages.shift()!;
  };
  try {
    for (let seq = 0; ; seq++) {
      await ring.waitFull(seq);
      if (!ring.isFull(seq)) throw stoppedEarly();
      const kind = ring.kind(seq);
      if (kind === SlotKind.end) break;
      const slot = ring.slotOf(seq);
      if (kind === SlotKind.batch) {
        records.use(ring.records[slot]!, ring.bytes[slot]!, ring.base(seq));
      } else {
        const m = await nextMessage();
        if (m.kind === 'error') throw new Error(`${traceLabel(path)}: ${m.message}`);
        records.use(m.records, m.bytes, ring.base(seq));
      }
      decoder.decodeRecords(records, ring.count(seq), visitor);
      ring.release(seq);
      if (visitor.chunkDone) await visitor.chunkDone();
    }
  } finally {
    worker.removeAllListeners('exit');
    await worker.terminate();
  }
  return decoder.nextIndex - first;
}

