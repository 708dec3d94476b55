// The stream's wire format: one Redis Stream entry per message, one field `m` holding a JSON
// object. Messages are normalized events (of any registered kind: auth events now, call events
// later), and manual bans and unbans. Each carries its origin — node name, incarnation (one per
// process start) and a sequence number — so a message published twice (an append whose reply
// was lost, a republish after an outage) is judged once on every node.
//
// Entries come from other hosts: everything is validated on the way in, and a malformed entry
// is counted and skipped, never trusted.
import type { AttemptResult, AuthEvent, FailureMethod } from '../events/auth-event.js';
import { MAX_FIELD_CHARS } from '../events/normalize.js';
import { parseCidr, parseIp, type Cidr } from '../net/ip.js';

/** The stream field holding the message. */
export const MESSAGE_FIELD = 'm';
/** Bumped on an incompatible change; entries of another version are skipped (and counted). */
export const WIRE_VERSION = 1;

/** Who published a message: unique over the stream's lifetime. */
export interface OriginId {
  readonly node: string;
  /** One per process start, so a restarted node's sequence numbers never collide with its last life's. */
  readonly incarnation: string;
  /** 1, 2, 3, … per incarnation, in publication order. */
  readonly seq: number;
}

/** How one kind of normalized event travels: a JSON value and back, validated. */
export interface EventCodec<E> {
  encode(event: E): unknown;
  /** The event, or why the value is not one. */
  decode(value: unknown): E | string;
  /** The event's own timestamp (µs), and a copy stamped otherwise (clock-skew bound). */
  timeUs(event: E): number;
  withTimeUs(event: E, timeUs: number): E;
}

/** Event kinds the stream carries, by name: `{ auth: AuthEvent; call: CallEvent }`. */
export type EventCodecs<M> = { readonly [K in keyof M & string]: EventCodec<M[K]> };

/** An event tagged with its kind. */
export type KindedEvent<M> = { [K in keyof M & string]: { readonly kind: K; readonly event: M[K] } }[keyof M & string];

export type ClusterMessage<M> =
  | { readonly type: 'event'; readonly origin: OriginId } & KindedEvent<M>
  | { readonly type: 'ban'; readonly origin: OriginId; readonly target: Cidr; readonly seconds: number; readonly note: string }
  | { readonly type: 'unban'; readonly origin: OriginId; readonly target: Cidr };

export type DecodeResult<M> = { readonly ok: true; readonly message: ClusterMessage<M> } | { readonly ok: false; readonly reason: string };

const MAX_NOTE_CHARS = 200;
const MAX_BAN_SECONDS = 10 * 365 * 86_400;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const text = (v: unknown, max = MAX_FIELD_CHARS): string | null => (typeof v === 'string' && v.length <= max ? v : null);

/** Encodes and decodes the stream's messages for a set of event kinds. */
export class ClusterCodec<M> {
  constructor(private readonly codecs: EventCodecs<M>) {}

  encodeEvent(origin: OriginId, e: KindedEvent<M>): string {
    const codec = this.codecs[e.kind] as EventCodec<unknown>;
    return JSON.stringify({ v: WIRE_VERSION, t: 'e', n: origin.node, i: origin.incarnation, s: origin.seq, k: e.kind, e: codec.encode(e.event) });
  }

  encodeBan(origin: OriginId, target: Cidr, seconds: number, note: string): string {
    return JSON.stringify({ v: WIRE_VERSION, t: 'b', n: origin.node, i: origin.incarnation, s: origin.seq, target: target.text, seconds, note: note.slice(0, MAX_NOTE_CHARS) });
  }

  encodeUnban(origin: OriginId, target: Cidr): string {
    return JSON.stringify({ v: WIRE_VERSION, t: 'u', n: origin.node, i: origin.incarnation, s: origin.seq, target: target.text });
  }

  /** The event's timestamp, bounded to at most `maxUs` (an event may not run ahead of the stream's clock). */
  boundTime(e: KindedEvent<M>, maxUs: number): KindedEvent<M> {
    const codec = this.codecs[e.kind] as EventCodec<unknown>;
    if (codec.timeUs(e.event) <= maxUs) return e;
    return { kind: e.kind, event: codec.withTimeUs(e.event, maxUs) } as KindedEvent<M>;
  }

  decode(raw: string): DecodeResult<M> {
    let o: unknown;
    try {
      o = JSON.parse(raw);
    } catch {
      return { ok: false, reason: 'not JSON' };
    }
    if (!isRecord(o)) return { ok: false, reason: 'not an object' };
    if (o.v !== WIRE_VERSION) return { ok: false, reason: `wire version ${JSON.stringify(o.v)} (this node speaks ${WIRE_VERSION})` };
    const node = text(o.n, 63);
    const incarnation = text(o.i, 64);
    const seq = o.s;
    if (!node || !incarnation || typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) return { ok: false, reason: 'bad origin' };
    const origin: OriginId = { node, incarnation, seq };
    if (o.t === 'e') {
      const kind = o.k;
      if (typeof kind !== 'string' || !Object.prototype.hasOwnProperty.call(this.codecs, kind)) return { ok: false, reason: `unknown event kind ${JSON.stringify(kind)}` };
      const codec = this.codecs[kind as keyof M & string] as EventCodec<unknown>;
      const event = codec.decode(o.e);
      if (typeof event === 'string') return { ok: false, reason: `${kind} event: ${event}` };
      return { ok: true, message: { type: 'event', origin, kind, event } as ClusterMessage<M> };
    }
    if (o.t === 'b' || o.t === 'u') {
      const target = typeof o.target === 'string' ? parseCidr(o.target) : null;
      if (!target) return { ok: false, reason: 'bad ban target' };
      if (o.t === 'u') return { ok: true, message: { type: 'unban', origin, target } };
      const seconds = o.seconds;
      if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_BAN_SECONDS) return { ok: false, reason: 'bad ban length' };
      const note = o.note === undefined ? '' : text(o.note, MAX_NOTE_CHARS);
      if (note === null) return { ok: false, reason: 'bad ban note' };
      return { ok: true, message: { type: 'ban', origin, target, seconds, note } };
    }
    return { ok: false, reason: `unknown message type ${JSON.stringify(o.t)}` };
  }
}

// ---- auth events ------------------------------------------------------------------------

const ATTEMPT_RESULTS: readonly AttemptResult[] = ['success', 'stale', 'forbidden'];
const FAILURE_METHODS: readonly FailureMethod[] = ['REGISTER', 'INVITE'];
const MAX_SWITCH_ADDRESSES = 8;

/**
 * AuthEvents as JSON: the fields as they are, the source as text. Decoding shares one
 * switchAddresses array between consecutive events that carry the same addresses (the guard
 * skips re-reading an array it has just seen).
 */
export class AuthEventCodec implements EventCodec<AuthEvent> {
  private lastSwitch: readonly string[] = [];
  private lastSwitchKey = '';

  encode(e: AuthEvent): unknown {
    return { ...e, source: e.source.text };
  }

  timeUs(e: AuthEvent): number {
    return e.timeUs;
  }

  withTimeUs(e: AuthEvent, timeUs: number): AuthEvent {
    return { ...e, timeUs };
  }

  decode(v: unknown): AuthEvent | string {
    if (!isRecord(v)) return 'not an object';
    const source = typeof v.source === 'string' ? parseIp(v.source) : null;
    if (!source || source.text !== v.source) return 'bad source address';
    const profile = text(v.profile, 64);
    const userAgent = text(v.userAgent);
    const callId = text(v.callId);
    if (profile === null || userAgent === null || callId === null) return 'bad profile, user agent or call-id';
    const port = v.port;
    if (port !== null && !(typeof port === 'number' && Number.isInteger(port) && port >= 0 && port <= 65535)) return 'bad port';
    const timeUs = v.timeUs;
    if (typeof timeUs !== 'number' || !Number.isSafeInteger(timeUs) || timeUs <= 0) return 'bad timestamp';
    const switchAddresses = this.switchAddressesOf(v.switchAddresses);
    if (switchAddresses === null) return 'bad switch addresses';
    const common = { profile, source, port, userAgent, callId, timeUs, switchAddresses };
    switch (v.kind) {
      case 'challenge': {
        const fromUser = text(v.fromUser);
        const toUser = text(v.toUser);
        if (fromUser === null || toUser === null) return 'bad users';
        return { kind: 'challenge', ...common, fromUser, toUser };
      }
      case 'attempt': {
        const authUser = text(v.authUser);
        const fromUser = text(v.fromUser);
        const toUser = text(v.toUser);
        const realm = text(v.realm);
        const result = ATTEMPT_RESULTS.find((r) => r === v.result);
        if (authUser === null || fromUser === null || toUser === null || realm === null || !result) return 'bad attempt fields';
        return { kind: 'attempt', ...common, result, authUser, fromUser, toUser, realm };
      }
      case 'failure': {
        const toUser = text(v.toUser);
        const method = FAILURE_METHODS.find((m) => m === v.method);
        if (toUser === null || !method) return 'bad failure fields';
        return { kind: 'failure', ...common, method, toUser };
      }
      case 'registered': {
        const authUser = text(v.authUser);
        const expires = v.expires;
        if (authUser === null || !(expires === null || (typeof expires === 'number' && Number.isSafeInteger(expires) && expires >= 0))) return 'bad registration fields';
        return { kind: 'registered', ...common, authUser, expires };
      }
      default:
        return `unknown auth event kind ${JSON.stringify(v.kind)}`;
    }
  }

  private switchAddressesOf(v: unknown): readonly string[] | null {
    if (!Array.isArray(v) || v.length > MAX_SWITCH_ADDRESSES) return null;
    const key = v.join(',');
    if (key === this.lastSwitchKey) return this.lastSwitch;
    const out: string[] = [];
    for (const a of v) {
      const ip = typeof a === 'string' ? parseIp(a) : null;
      if (!ip || ip.text !== a) return null;
      out.push(ip.text);
    }
    this.lastSwitch = out;
    this.lastSwitchKey = key;
    return out;
  }
}

/** The event kinds the cluster carries today (the calls work adds `call`). */
export interface ClusterEventKinds {
  auth: AuthEvent;
}

export function clusterCodec(): ClusterCodec<ClusterEventKinds> {
  return new ClusterCodec<ClusterEventKinds>({ auth: new AuthEventCodec() });
}
