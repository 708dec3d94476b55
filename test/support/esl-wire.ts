// FreeSWITCH 1.10 event-socket wire formats, for the test server: what mod_event_socket sends
// and how switch_event_serialize writes a plain event. Checked byte for byte against the
// captures in ../shared/esl by test/esl-server.test.ts.

/** FreeSWITCH's SWITCH_URL_UNSAFE (switch_utils.h). */
const URL_UNSAFE = new Set(Array.from('\r\n #%&+:;<=>?@[\\]^`{|}"', (c) => c.charCodeAt(0)));
/** switch_url_encode_opt leaves `%XX` alone when both X are in this string (upper case only). */
const UPPER_HEX = '0123456789ABCDEF';

/**
 * switch_url_encode_opt(value, …, double_encode = false), as used by switch_event_serialize:
 * bytes below space, above `~` and in SWITCH_URL_UNSAFE become `%XX`, except a `%` already
 * followed by two upper-case hex digits, which is copied as is (so `%C3` reaches the client
 * verbatim).
 */
export function fsUrlEncode(value: string): string {
  const bytes = Buffer.from(value, 'utf8');
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b === 37 && i + 2 < bytes.length
      && UPPER_HEX.includes(String.fromCharCode(bytes[i + 1]!)) && UPPER_HEX.includes(String.fromCharCode(bytes[i + 2]!))) {
      out += '%';
      continue;
    }
    if (b < 0x20 || b > 0x7e || URL_UNSAFE.has(b)) {
      out += `%${UPPER_HEX[b >> 4]}${UPPER_HEX[b & 15]}`;
    } else {
      out += String.fromCharCode(b);
    }
  }
  return out;
}

export type OrderedHeaders = Array<[string, string]>;

function skipWs(text: string, i: number): number {
  while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  return i;
}

/** End (exclusive) of the JSON value starting at `i`: strings, nesting and literals. */
function valueEnd(text: string, start: number): number {
  let depth = 0;
  let i = start;
  for (; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      i++;
      while (i < text.length && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      if (depth === 0) return i + 1;
    } else if (c === '{' || c === '[') {
      depth++;
    } else if (c === '}' || c === ']') {
      if (depth === 0) return i;
      depth--;
      if (depth === 0) return i + 1;
    } else if (depth === 0 && (c === ',' || c === ' ' || c === '\n' || c === '\r' || c === '\t')) {
      return i;
    }
  }
  return i;
}

/**
 * A flat event JSON object as its ordered (name, value) pairs, duplicates kept: FreeSWITCH's
 * JSON repeats `profile-name` on register_failure, and the plain form of the same event must
 * repeat it too. Array values become FreeSWITCH's `ARRAY::a|:b`; null for anything that is
 * not an object.
 */
export function orderedEventHeaders(json: string): OrderedHeaders | null {
  let i = skipWs(json, 0);
  if (json[i] !== '{') return null;
  i = skipWs(json, i + 1);
  const out: OrderedHeaders = [];
  if (json[i] === '}') return out;
  try {
    for (;;) {
      const keyEnd = valueEnd(json, i);
      const key = JSON.parse(json.slice(i, keyEnd)) as unknown;
      if (typeof key !== 'string') return null;
      i = skipWs(json, keyEnd);
      if (json[i] !== ':') return null;
      i = skipWs(json, i + 1);
      const end = valueEnd(json, i);
      const value = JSON.parse(json.slice(i, end)) as unknown;
      const text = typeof value === 'string' ? value
        : Array.isArray(value) ? `ARRAY::${value.map(String).join('|:')}`
          : value === null ? '' : String(value);
      out.push([key, text]);
      i = skipWs(json, end);
      if (json[i] === ',') { i = skipWs(json, i + 1); continue; }
      if (json[i] === '}') return out;
      return null;
    }
  } catch {
    return null;
  }
}

/**
 * switch_event_serialize(event, &str, SWITCH_TRUE): `Name: url-encoded value\n` per header
 * (an empty value is written `_undef_`), then a blank line, or for an event with a body
 * `Content-Length: N\n\n` and the body. `_body` (how the JSON form carries the body) is the body.
 */
export function serializePlainEvent(headers: OrderedHeaders): string {
  let out = '';
  let body: string | null = null;
  for (const [name, value] of headers) {
    if (name === '_body') { body = value; continue; }
    const encoded = fsUrlEncode(value);
    out += `${name}: ${encoded === '' ? '_undef_' : encoded}\n`;
  }
  if (body !== null && body !== '') return `${out}Content-Length: ${Buffer.byteLength(body)}\n\n${body}`;
  return `${out}\n`;
}

/** A complete event frame as mod_event_socket writes it (Content-Length first). */
export function eventFrame(format: 'json' | 'plain', body: string | Buffer): Buffer {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  return Buffer.concat([
    Buffer.from(`Content-Length: ${bytes.length}\nContent-Type: text/event-${format}\n\n`, 'latin1'),
    bytes,
  ]);
}

export const AUTH_REQUEST = 'Content-Type: auth/request\n\n';

export function commandReply(text: string): string {
  return `Content-Type: command/reply\nReply-Text: ${text}\n\n`;
}

/** api/response: Content-Type first (unlike events); an empty answer becomes `-ERR no reply\n`. */
export function apiResponse(body: string): Buffer {
  const bytes = Buffer.from(body === '' ? '-ERR no reply\n' : body, 'utf8');
  return Buffer.concat([Buffer.from(`Content-Type: api/response\nContent-Length: ${bytes.length}\n\n`, 'latin1'), bytes]);
}

const GOODBYE = 'Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n';
/** What every connection gets before FreeSWITCH closes it (listener_run's `done:`). */
export const DISCONNECT_NOTICE = `Content-Type: text/disconnect-notice\nContent-Length: ${Buffer.byteLength(GOODBYE)}\n\n${GOODBYE}`;

const ACCESS_DENIED = 'Access Denied, go away.\n';
/** An address refused by `apply-inbound-acl`; the disconnect notice follows. */
export const RUDE_REJECTION = `Content-Type: text/rude-rejection\nContent-Length: ${Buffer.byteLength(ACCESS_DENIED)}\n\n${ACCESS_DENIED}`;

/** switch_event.c EVENT_NAMES (1.10), for `event` subscriptions; matched case-insensitively. */
export const EVENT_NAMES: readonly string[] = [
  'CUSTOM', 'CLONE', 'CHANNEL_CREATE', 'CHANNEL_DESTROY', 'CHANNEL_STATE', 'CHANNEL_CALLSTATE',
  'CHANNEL_ANSWER', 'CHANNEL_HANGUP', 'CHANNEL_HANGUP_COMPLETE', 'CHANNEL_EXECUTE', 'CHANNEL_EXECUTE_COMPLETE',
  'CHANNEL_HOLD', 'CHANNEL_UNHOLD', 'CHANNEL_BRIDGE', 'CHANNEL_UNBRIDGE', 'CHANNEL_PROGRESS',
  'CHANNEL_PROGRESS_MEDIA', 'CHANNEL_OUTGOING', 'CHANNEL_PARK', 'CHANNEL_UNPARK', 'CHANNEL_APPLICATION',
  'CHANNEL_ORIGINATE', 'CHANNEL_UUID', 'API', 'LOG', 'INBOUND_CHAN', 'OUTBOUND_CHAN', 'STARTUP', 'SHUTDOWN',
  'PUBLISH', 'UNPUBLISH', 'TALK', 'NOTALK', 'SESSION_CRASH', 'MODULE_LOAD', 'MODULE_UNLOAD', 'DTMF',
  'MESSAGE', 'PRESENCE_IN', 'NOTIFY_IN', 'PRESENCE_OUT', 'PRESENCE_PROBE', 'MESSAGE_WAITING',
  'MESSAGE_QUERY', 'ROSTER', 'CODEC', 'BACKGROUND_JOB', 'DETECTED_SPEECH', 'DETECTED_TONE',
  'PRIVATE_COMMAND', 'HEARTBEAT', 'TRAP', 'ADD_SCHEDULE', 'DEL_SCHEDULE', 'EXE_SCHEDULE', 'RE_SCHEDULE',
  'RELOADXML', 'NOTIFY', 'PHONE_FEATURE', 'PHONE_FEATURE_SUBSCRIBE', 'SEND_MESSAGE', 'RECV_MESSAGE',
  'REQUEST_PARAMS', 'CHANNEL_DATA', 'GENERAL', 'COMMAND', 'SESSION_HEARTBEAT', 'CLIENT_DISCONNECTED',
  'SERVER_DISCONNECTED', 'SEND_INFO', 'RECV_INFO', 'RECV_RTCP_MESSAGE', 'SEND_RTCP_MESSAGE', 'CALL_SECURE',
  'NAT', 'RECORD_START', 'RECORD_STOP', 'PLAYBACK_START', 'PLAYBACK_STOP', 'CALL_UPDATE', 'FAILURE',
  'SOCKET_DATA', 'MEDIA_BUG_START', 'MEDIA_BUG_STOP', 'CONFERENCE_DATA_QUERY', 'CONFERENCE_DATA',
  'CALL_SETUP_REQ', 'CALL_SETUP_RESULT', 'CALL_DETAIL', 'DEVICE_STATE', 'TEXT', 'SHUTDOWN_REQUESTED', 'ALL',
];

/** switch_name_event: case-insensitive, with or without the `SWITCH_EVENT_` prefix. */
export function eventNameOf(token: string): string | null {
  const upper = token.toUpperCase();
  const bare = upper.length > 13 && upper.startsWith('SWITCH_EVENT_') ? upper.slice(13) : upper;
  return EVENT_NAMES.includes(bare) ? bare : null;
}

export type EventFormat = 'plain' | 'json' | 'xml';

/** One listener's subscription, built with mod_event_socket's `event` command semantics. */
export class Subscription {
  format: EventFormat = 'plain';
  readonly events = new Set<string>();
  readonly subclasses = new Set<string>();

  /**
   * Applies `event [format] NAME … [CUSTOM sub1 sub2 …]`; returns the Reply-Text FreeSWITCH
   * would send. After a CUSTOM token every further token is a subclass, whatever it looks like.
   */
  apply(command: string): string {
    const space = command.indexOf(' ', 5);
    const tokens = space === -1 ? [] : command.slice(space + 1).split(' ');
    let keywords = 0;
    let custom = false;
    tokens.forEach((token, index) => {
      if (index === 0) {
        const f = token.toLowerCase();
        if (f === 'json' || f === 'plain' || f === 'xml') { this.format = f; return; }
      }
      if (custom) { this.subclasses.add(token); return; }
      const name = eventNameOf(token);
      if (!name) return;
      keywords++;
      this.events.add(name);
      if (name === 'CUSTOM') custom = true;
    });
    if (keywords === 0) return '-ERR no keywords supplied';
    return `+OK event listener enabled ${this.format}`;
  }

  /** event_handler's test: ALL, or the event's id and (for CUSTOM) its subclass. */
  matches(eventName: string, subclass: string | null): boolean {
    if (this.events.has('ALL')) return true;
    if (!this.events.has(eventName)) return false;
    return eventName !== 'CUSTOM' || subclass === null || this.subclasses.has(subclass);
  }

  get active(): boolean {
    return this.events.size > 0;
  }
}
