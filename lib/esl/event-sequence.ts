// Lost-event awareness from FreeSWITCH's `Event-Sequence` header.
//
// What the real bytes (../shared/esl) show: Event-Sequence is one counter for the whole
// FreeSWITCH process (reset only when FreeSWITCH restarts, together with its Core-UUID), taken
// by every event it prepares, including those this connection never subscribed to and the
// directory lookups (REQUEST_PARAMS) that are never delivered at all. A subscriber to a subset
// therefore sees jumps all the time: in the sofia capture 10 of 22 steps skip numbers (one per
// password check), in the call capture 4-6 per call; even `event plain ALL` skips. Events
// dispatched from several threads may also arrive a little out of order. So:
//   - a number below the highest seen is a late event, never a gap;
//   - within one connection, a jump proves nothing by itself; only one of more than
//     `gapThreshold` numbers between two consecutive events is reported (FreeSWITCH drops
//     events for a listener whose queue is full, and closes it after 500 drops, so a loss is a
//     burst, not a trickle). Such a jump is either a loss or a very busy stretch of events
//     fsguard does not subscribe to; either way the evidence of that window may be incomplete;
//   - across a reconnect to the same FreeSWITCH (same Core-UUID) every number between the last
//     event before and the first after was fired while fsguard was not listening: that window
//     is a gap whatever its size. A new Core-UUID means FreeSWITCH restarted: the counter starts
//     over and nothing is compared ("the reset at reconnect").
// `missing` is an upper bound: the numbers skipped, some of them events fsguard never asked for.

/** One window in which events may have been lost. */
export interface EventGap {
  /** 'stream': a jump within one connection; 'reconnect': the time fsguard was not connected. */
  readonly kind: 'stream' | 'reconnect';
  readonly fromSeq: number;
  readonly toSeq: number;
  /** Event-Date-Timestamp (µs) of the last event before the gap and of the first after it. */
  readonly fromUs: number;
  readonly toUs: number;
  /** Sequence numbers skipped (an upper bound of the events lost). */
  readonly missing: number;
}

/** Default `gapThreshold`: numbers skipped between two consecutive events that count as a gap. */
export const DEFAULT_EVENT_GAP_THRESHOLD = 1000;

export class EventSequenceTracker {
  private highest = -1;
  private highestUs = 0;
  private coreUuid = '';
  /** The end of the previous connection's stream, compared with the next one's start. */
  private previous: { readonly coreUuid: string; readonly seq: number; readonly timeUs: number } | null = null;
  /** Events that arrived below the highest number seen (reordered or repeated). */
  late = 0;

  constructor(private readonly gapThreshold: number = DEFAULT_EVENT_GAP_THRESHOLD) {}

  /** True until the first event of the current connection. */
  get awaitingFirst(): boolean {
    return this.highest < 0;
  }

  /** A new connection starts: its numbers are compared with this one's last only by Core-UUID. */
  newConnection(): void {
    if (this.highest >= 0) this.previous = { coreUuid: this.coreUuid, seq: this.highest, timeUs: this.highestUs };
    this.highest = -1;
    this.highestUs = 0;
    this.coreUuid = '';
  }

  /** One event's number and time (and, for the first of a connection, FreeSWITCH's Core-UUID). */
  observe(seq: number, timeUs: number, coreUuid: string | null): EventGap | null {
    if (this.highest < 0) {
      this.highest = seq;
      this.highestUs = timeUs;
      this.coreUuid = coreUuid ?? '';
      const p = this.previous;
      this.previous = null;
      if (p && p.coreUuid !== '' && p.coreUuid === this.coreUuid && seq > p.seq + 1) {
        return { kind: 'reconnect', fromSeq: p.seq, toSeq: seq, fromUs: p.timeUs, toUs: timeUs, missing: seq - p.seq - 1 };
      }
      return null;
    }
    if (seq <= this.highest) {
      this.late++;
      return null;
    }
    const skipped = seq - this.highest - 1;
    const gap: EventGap | null = skipped > this.gapThreshold
      ? { kind: 'stream', fromSeq: this.highest, toSeq: seq, fromUs: this.highestUs, toUs: timeUs, missing: skipped }
      : null;
    this.highest = seq;
    if (timeUs > this.highestUs) this.highestUs = timeUs;
    return gap;
  }
}

const JSON_SEQUENCE = Buffer.from('"Event-Sequence"', 'latin1');
const JSON_TIMESTAMP = Buffer.from('"Event-Date-Timestamp"', 'latin1');
const JSON_CORE_UUID = Buffer.from('"Core-UUID"', 'latin1');
const PLAIN_SEQUENCE = Buffer.from('Event-Sequence: ', 'latin1');
const PLAIN_TIMESTAMP = Buffer.from('Event-Date-Timestamp: ', 'latin1');
const PLAIN_CORE_UUID = Buffer.from('Core-UUID: ', 'latin1');

/** JSON's whitespace between tokens. */
function isJsonSpace(c: number | undefined): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

/**
 * Where a top-level header's value starts in an event body, or -1. JSON: the key with its
 * quotes, then `:` and the value's opening quote, with any whitespace JSON allows between them
 * (`"variable_Event-Sequence"` of channel variables does not match, attacker text inside a
 * value has its quotes escaped, and a key's name given as a value is followed by no `:`).
 * Plain: at the start of a line (values are URL-encoded, so no value holds a line break;
 * `variable_Event-Sequence:` does not match).
 */
function valueStart(body: Buffer, json: boolean, key: Buffer): number {
  if (json) {
    for (let at = body.indexOf(key); at >= 0; at = body.indexOf(key, at + 1)) {
      let i = at + key.length;
      while (isJsonSpace(body[i])) i++;
      if (body[i] !== 0x3a) continue;
      i++;
      while (isJsonSpace(body[i])) i++;
      if (body[i] === 0x22) return i + 1;
    }
    return -1;
  }
  let at = body.indexOf(key);
  while (at > 0 && body[at - 1] !== 0x0a) at = body.indexOf(key, at + 1);
  return at < 0 ? -1 : at + key.length;
}

/** The decimal digits at `at` (up to 16), or -1 when there are none or the number ends oddly. */
function digitsAt(body: Buffer, at: number, json: boolean): number {
  if (at < 0) return -1;
  let n = 0;
  let i = at;
  for (; i < body.length && i - at < 17; i++) {
    const c = body[i]!;
    if (c < 0x30 || c > 0x39) break;
    n = n * 10 + (c - 0x30);
  }
  if (i === at || i - at > 16) return -1;
  const end = body[i];
  if (json ? end !== 0x22 : end !== 0x0a && end !== 0x0d && end !== undefined) return -1;
  return n;
}

/** Event-Sequence and Event-Date-Timestamp of an event body (JSON or plain), or null. */
export function readSequence(body: Buffer, json: boolean): { seq: number; timeUs: number } | null {
  const seq = digitsAt(body, valueStart(body, json, json ? JSON_SEQUENCE : PLAIN_SEQUENCE), json);
  if (seq < 0) return null;
  const timeUs = digitsAt(body, valueStart(body, json, json ? JSON_TIMESTAMP : PLAIN_TIMESTAMP), json);
  return { seq, timeUs: timeUs < 0 ? 0 : timeUs };
}

/** FreeSWITCH's Core-UUID from an event body, or null. */
export function readCoreUuid(body: Buffer, json: boolean): string | null {
  const at = valueStart(body, json, json ? JSON_CORE_UUID : PLAIN_CORE_UUID);
  if (at < 0) return null;
  let end = at;
  while (end < body.length && end - at < 64) {
    const c = body[end]!;
    if (!((c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46) || c === 0x2d)) break;
    end++;
  }
  return end > at ? body.toString('latin1', at, end) : null;
}
