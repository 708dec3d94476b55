// Event-socket framing on Buffers, robust against anything on the wire.
//
// FreeSWITCH frames every message as a header block (`Name: value` lines ending in a blank
// line) optionally followed by exactly Content-Length bytes of body. A JSON event body is
// not followed by a newline: the next frame starts right after its `}`. modesl's own parser
// decodes header values with an unguarded decodeURIComponent (a `%C3` throws inside the
// socket's data handler and kills the process), cannot resynchronise after a bad
// Content-Length, and re-concatenates its whole buffer on every chunk. This parser never
// throws on input, reports each malformed piece with a reason, and finds the next frame.

/** Why bytes from FreeSWITCH were not turned into a frame or an event; metrics labels. */
export type FrameDropReason =
  /** A header block that is not `Name: value` lines, garbage between frames, or no Content-Type. */
  | 'bad_frame_header'
  /** Content-Length that is not a decimal byte count. */
  | 'bad_content_length'
  /** An event frame without Content-Length (its body, if any, is then garbage). */
  | 'missing_content_length'
  /** A body over the configured limit; its bytes are skipped. */
  | 'frame_too_large'
  /** An event body that is not valid JSON. */
  | 'bad_json'
  /** A Content-Type this client never asked for. */
  | 'unknown_content_type'
  /** The connection closed in the middle of a frame. */
  | 'truncated_frame';

export interface EslFrame {
  /** `Content-Type` of the frame (`auth/request`, `command/reply`, `text/event-json`, …). */
  readonly contentType: string;
  /** The frame's own header block, values verbatim (FreeSWITCH does not encode them). */
  readonly headers: ReadonlyMap<string, string>;
  /** The Content-Length bytes that followed, or null when there was no Content-Length. */
  readonly body: Buffer | null;
}

export interface FrameSink {
  /**
   * One complete frame. Returning a byte offset into `frame.body` says the body was not what
   * its Content-Length claimed (e.g. the next frame starts inside it): framing resumes there.
   */
  onFrame(frame: EslFrame): number | void;
  onMalformed(reason: FrameDropReason, detail: string): void;
}

export interface FrameLimits {
  /** Longest header block accepted; FreeSWITCH's are under 200 bytes. */
  readonly maxHeaderBytes: number;
  /** Longest body accepted; `api show registrations` on a big PBX can be tens of MB. */
  readonly maxBodyBytes: number;
}

export const DEFAULT_FRAME_LIMITS: FrameLimits = { maxHeaderBytes: 64 * 1024, maxBodyBytes: 64 * 1024 * 1024 };

const HEADER_NAME = /^[A-Za-z0-9_.-]{1,128}$/;
/** The header block FreeSWITCH puts on every `event json` frame, up to the length's digits… */
const JSON_EVENT_HEAD = Buffer.from('Content-Length: ', 'latin1');
/** …and after them. */
const JSON_EVENT_TAIL = Buffer.from('\nContent-Type: text/event-json\n\n', 'latin1');
const JSON_EVENT_TYPE = 'text/event-json';

/** True when `buf` holds `want` at `at` (a loop: Buffer#compare's native call costs more for 16-31 bytes). */
function bytesAt(buf: Buffer, at: number, want: Buffer): boolean {
  for (let k = 0; k < want.length; k++) if (buf[at + k] !== want[k]) return false;
  return true;
}

/**
 * A frame read by the fast path: its header block was exactly `Content-Length: N` and
 * `Content-Type: text/event-json`, so the header Map is only built if someone asks.
 */
class JsonEventFrame implements EslFrame {
  readonly contentType = JSON_EVENT_TYPE;
  constructor(readonly body: Buffer) {}
  get headers(): ReadonlyMap<string, string> {
    return new Map([['Content-Length', String(this.body.length)], ['Content-Type', JSON_EVENT_TYPE]]);
  }
}
const DECIMAL = /^\d{1,10}$/;
const EMPTY = Buffer.alloc(0);

interface PendingBody {
  readonly contentType: string;
  readonly headers: ReadonlyMap<string, string>;
  readonly length: number;
}

type HeaderBlock =
  | { readonly ok: true; readonly headers: Map<string, string> }
  | { readonly ok: false; readonly resyncAt: number; readonly detail: string };

/** Offsets of the markers a frame header block starts with, for resynchronising. */
function frameStartIn(text: string, from: number): number {
  const a = text.indexOf('Content-Length: ', from);
  const b = text.indexOf('Content-Type: ', from);
  if (a === -1) return b;
  if (b === -1) return a;
  return Math.min(a, b);
}

function parseHeaderBlock(text: string): HeaderBlock {
  const headers = new Map<string, string>();
  let lineStart = 0;
  while (lineStart <= text.length) {
    let lineEnd = text.indexOf('\n', lineStart);
    if (lineEnd === -1) lineEnd = text.length;
    let line = text.slice(lineStart, lineEnd);
    if (line.endsWith('\r')) line = line.slice(0, -1);
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    if (!HEADER_NAME.test(name)) {
      // Garbage, typically the tail of a body whose Content-Length was wrong, glued to the
      // next real frame: restart at the next frame marker after the bad line's start.
      const at = frameStartIn(text, Math.max(lineStart, 1));
      return { ok: false, resyncAt: at, detail: `not a header line: ${JSON.stringify(line.slice(0, 40))}` };
    }
    let v = colon + 1;
    while (line.charCodeAt(v) === 32) v++;
    headers.set(name, line.slice(v));
    lineStart = lineEnd + 1;
  }
  return { ok: true, headers };
}

export class EslFrameParser {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Bytes of an oversized body still to be thrown away as they arrive. */
  private skipping = 0;
  private pending: PendingBody | null = null;

  constructor(
    private readonly sink: FrameSink,
    private readonly limits: FrameLimits = DEFAULT_FRAME_LIMITS,
  ) {}

  /** Feeds bytes as they come off the socket. Never throws because of their content. */
  push(chunk: Buffer): void {
    let data = chunk;
    for (;;) {
      if (this.skipping > 0) {
        const n = Math.min(this.skipping, data.length);
        this.skipping -= n;
        data = data.subarray(n);
      }
      if (data.length === 0) return;
      if (this.buffered === 0) {
        // Nothing held from the last read: frames are parsed in place.
        this.process(data);
        return;
      }
      // A frame was cut by the last read. When its header is known, complete its body with
      // just the bytes it lacks instead of copying the whole read behind it, then carry on in
      // place. (A cut header block is joined with the whole read, as it always was.)
      const take = this.pending ? Math.min(Math.max(1, this.pending.length - this.buffered), data.length) : data.length;
      this.chunks.push(data.subarray(0, take));
      this.buffered += take;
      data = data.subarray(take);
      // Waiting for a body: do not copy anything until all of it is here.
      if (this.pending && this.buffered < this.pending.length) return;
      const buf = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.buffered);
      this.chunks = [];
      this.buffered = 0;
      this.process(buf);
    }
  }

  /** The connection closed: whatever is buffered is an incomplete frame. */
  end(): void {
    const partial = this.buffered + (this.pending ? 1 : 0);
    if (partial > 0 || this.skipping > 0) {
      this.sink.onMalformed('truncated_frame', `connection closed inside a frame (${this.buffered} bytes buffered)`);
    }
    this.reset();
  }

  reset(): void {
    this.chunks = [];
    this.buffered = 0;
    this.skipping = 0;
    this.pending = null;
  }

  private keep(rest: Buffer): void {
    if (rest.length === 0) return;
    this.chunks = [rest];
    this.buffered = rest.length;
  }

  private process(buf: Buffer): void {
    let pos = 0;
    const len = buf.length;
    for (;;) {
      if (this.pending) {
        const want = this.pending.length;
        if (len - pos < want) break;
        const body = buf.subarray(pos, pos + want);
        const frame: EslFrame = { contentType: this.pending.contentType, headers: this.pending.headers, body };
        this.pending = null;
        const resume = this.sink.onFrame(frame);
        pos += typeof resume === 'number' && resume > 0 && resume < want ? resume : want;
        continue;
      }
      // FreeSWITCH's own reader skips stray line ends between messages; so do we.
      while (pos < len && (buf[pos] === 10 || buf[pos] === 13)) pos++;
      if (pos >= len) break;
      const fast = this.jsonEvent(buf, pos, len);
      if (fast > 0) {
        pos = fast;
        continue;
      }
      const end = buf.indexOf('\n\n', pos);
      if (end === -1) {
        if (len - pos > this.limits.maxHeaderBytes) {
          this.sink.onMalformed('bad_frame_header', `${len - pos} bytes without a header block end`);
          // Keep the last byte: it may be the first half of the `\n\n` still to come.
          pos = len - 1;
        }
        break;
      }
      if (end - pos > this.limits.maxHeaderBytes) {
        this.sink.onMalformed('bad_frame_header', `header block of ${end - pos} bytes`);
        pos = end + 2;
        continue;
      }
      // latin1 keeps one character per byte, so string offsets are byte offsets.
      const text = buf.toString('latin1', pos, end);
      const block = parseHeaderBlock(text);
      if (!block.ok) {
        this.sink.onMalformed('bad_frame_header', block.detail);
        pos = block.resyncAt > 0 ? pos + block.resyncAt : end + 2;
        continue;
      }
      pos = end + 2;
      this.startFrame(block.headers);
      if (this.skipping > 0) {
        const n = Math.min(this.skipping, len - pos);
        this.skipping -= n;
        pos += n;
      }
    }
    this.keep(pos < len ? buf.subarray(pos) : EMPTY);
  }

  /**
   * The common case without strings or Maps: a complete `event json` frame with exactly
   * FreeSWITCH's header block at `pos`. Returns where the next frame starts, or 0 when this
   * is anything else (or incomplete), for the general path to handle.
   */
  private jsonEvent(buf: Buffer, pos: number, len: number): number {
    const head = JSON_EVENT_HEAD.length;
    if (len - pos < head + 1 + JSON_EVENT_TAIL.length || !bytesAt(buf, pos, JSON_EVENT_HEAD)) return 0;
    let i = pos + head;
    let length = 0;
    const digitsEnd = Math.min(len, i + 9);
    while (i < digitsEnd) {
      const c = buf[i]! - 48;
      if (c < 0 || c > 9) break;
      length = length * 10 + c;
      i++;
    }
    if (i === pos + head || length === 0 || length > this.limits.maxBodyBytes) return 0;
    const bodyAt = i + JSON_EVENT_TAIL.length;
    if (bodyAt + length > len || !bytesAt(buf, i, JSON_EVENT_TAIL)) return 0;
    const resume = this.sink.onFrame(new JsonEventFrame(buf.subarray(bodyAt, bodyAt + length)));
    return bodyAt + (typeof resume === 'number' && resume > 0 && resume < length ? resume : length);
  }

  private startFrame(headers: Map<string, string>): void {
    const contentType = headers.get('Content-Type');
    const lengthText = headers.get('Content-Length');
    let length: number | null = null;
    if (lengthText !== undefined) {
      if (!DECIMAL.test(lengthText)) {
        this.sink.onMalformed('bad_content_length', `Content-Length ${JSON.stringify(lengthText.slice(0, 24))}`);
        return;
      }
      length = Number(lengthText);
      if (length > this.limits.maxBodyBytes) {
        this.sink.onMalformed('frame_too_large', `Content-Length ${length} over the ${this.limits.maxBodyBytes} byte limit`);
        this.skipping = length;
        return;
      }
    }
    if (contentType === undefined) {
      this.sink.onMalformed('bad_frame_header', 'frame without Content-Type');
      if (length !== null) this.skipping = length;
      return;
    }
    if (length === null || length === 0) {
      this.sink.onFrame({ contentType, headers, body: length === 0 ? EMPTY : null });
      return;
    }
    this.pending = { contentType, headers, length };
  }
}

/** True for the characters FreeSWITCH's url decoder treats as hex digits. */
function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/**
 * Decodes a `text/event-plain` value like FreeSWITCH's switch_url_decode: `%XX` becomes the
 * byte, `+` stays `+`, anything that is not a valid escape is kept as is. Never throws (unlike
 * decodeURIComponent); bytes that are not UTF-8 become U+FFFD.
 */
export function decodePlainValue(raw: string): string {
  if (raw.indexOf('%') === -1) return raw;
  const src = Buffer.from(raw, 'latin1');
  const out = Buffer.allocUnsafe(src.length);
  let o = 0;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === 37 && i + 2 < src.length) {
      const hi = hexValue(src[i + 1]!);
      const lo = hexValue(src[i + 2]!);
      if (hi >= 0 && lo >= 0) {
        out[o++] = (hi << 4) | lo;
        i += 2;
        continue;
      }
    }
    out[o++] = c;
  }
  return out.toString('utf8', 0, o);
}

/** Headers of a plain event; a header FreeSWITCH repeats (`profile-name`) becomes an array. */
export type PlainEventHeaders = Record<string, string | string[]>;

/**
 * Parses the body of a `text/event-plain` frame (`Name: url-encoded value` lines, a blank
 * line, then an optional inner body announced by its own Content-Length, kept as `_body`).
 */
export function parsePlainEventBody(body: Buffer): PlainEventHeaders {
  const headers: PlainEventHeaders = Object.create(null) as PlainEventHeaders;
  const blank = body.indexOf('\n\n');
  const end = blank === -1 ? body.length : blank;
  // Each name and value is made from the bytes, not cut from one string of the whole block: a
  // cut would be a slice keeping the block alive as long as the policy keeps the value (a
  // pending challenge's call-id).
  let colon = -1;
  for (let start = 0; start < end;) {
    let eol = body.indexOf(10, start);
    if (eol === -1 || eol > end) eol = end;
    // The next ': ' may lie lines ahead: it is searched for again only once passed, so lines
    // without one cost one search in all, not one each.
    if (colon < start) { colon = body.indexOf(': ', start); if (colon === -1) colon = body.length; }
    if (colon > start && colon < eol) {
      const name = body.toString('latin1', start, colon);
      const value = decodePlainValue(body.toString('latin1', colon + 2, eol));
      const prev = headers[name];
      if (prev === undefined) headers[name] = value;
      else if (Array.isArray(prev)) prev.push(value);
      else headers[name] = [prev, value];
    }
    start = eol + 1;
  }
  const innerLength = headers['Content-Length'];
  if (blank !== -1 && typeof innerLength === 'string' && DECIMAL.test(innerLength)) {
    headers._body = body.toString('utf8', blank + 2, Math.min(body.length, blank + 2 + Number(innerLength)));
  }
  return headers;
}
