// The stream's wire format. Each Redis Stream entry has one field `m`: lines of JSON arrays.
// The first line is the header `[2, node, incarnation, firstSeq]`, naming who published the
// entry; each further line is one message, numbered firstSeq, firstSeq+1, …: a normalized
// event of a registered kind (auth or call), or a manual ban or unban.
// A node puts what it publishes in one turn into one entry: one XADD per message cost ioredis
// and Redis ~40 µs each, and the origin is written once per entry, not per message.
//
// The origin — node, incarnation (one per process start), sequence number — makes every
// message unique, so one published twice (an append whose reply was lost, a republish after an
// outage) is judged once on every node (OriginLedger).
//
// Entries come from other hosts: everything is validated on the way in, and a malformed entry
// or message is counted and skipped, never trusted.
//
// FreeSWITCH's addresses do not travel: an event's switchAddresses are sent empty and read as
// empty, whatever an entry holds. A node never bans the addresses its events name; were the
// stream's events to name them, whoever can write the stream could make any address unbannable
// on every node (and grow every node's set without bound). The other nodes' addresses come
// from the node registry instead (node-registry.ts), capped.
// The fields keep their place: the wire version is the same, and an older node's entries, which
// fill them, still decode.
import type { AttemptResult, AuthEvent, FailureMethod } from '../events/auth-event.js';
import { CALL_OUTCOMES, type CallEvent } from '../events/call-event.js';
import { AddressMemo, MAX_FIELD_CHARS } from '../events/normalize.js';
import { parseCidr, type Cidr } from '../net/ip.js';

/** The stream field holding the entry. */
export const MESSAGE_FIELD = 'm';
/** Bumped on an incompatible change; entries of another version are skipped (and counted). */
export const WIRE_VERSION = 2;

/** Who published an entry. */
export interface Publisher {
  readonly node: string;
  /** One per process start, so a restarted node's sequence numbers never collide with its last life's. */
  readonly incarnation: string;
}

/** Who published a message: unique over the stream's lifetime. */
export interface OriginId extends Publisher {
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

/** One message, without its origin. */
export type ClusterBody<M> =
  | { readonly type: 'event' } & KindedEvent<M>
  | { readonly type: 'ban'; readonly target: Cidr; readonly seconds: number; readonly note: string }
  | { readonly type: 'unban'; readonly target: Cidr };

export type ClusterMessage<M> = ClusterBody<M> & { readonly origin: OriginId };

export type BodyResult<M> = { readonly ok: true; readonly body: ClusterBody<M> } | { readonly ok: false; readonly reason: string };
export type DecodeResult<M> = { readonly ok: true; readonly message: ClusterMessage<M> } | { readonly ok: false; readonly reason: string };

/** An entry split into its header and message lines (not yet decoded). */
export type EntryResult = { readonly ok: true; readonly publisher: Publisher; readonly firstSeq: number; readonly lines: readonly string[] } | { readonly ok: false; readonly reason: string };

const MAX_NOTE_CHARS = 200;
const MAX_BAN_SECONDS = 10 * 365 * 86_400;
/** Messages in one entry at most (a publisher batches far fewer). */
const MAX_LINES = 100_000;

const text = (v: unknown, max = MAX_FIELD_CHARS): string | null => (typeof v === 'string' && v.length <= max ? v : null);
/**
 * The entry of `table` that the integer `v` indexes, else undefined. Not `table[v]`: a peer's
 * "length" would index the array's length (a number, not an entry).
 */
function entryAt<T>(table: readonly T[], v: unknown): T | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < table.length ? table[v] : undefined;
}

/** Encodes and decodes the stream's entries for a set of event kinds. */
export class ClusterCodec<M> {
  constructor(private readonly codecs: EventCodecs<M>) {}

  eventBody(e: KindedEvent<M>): string {
    const codec = this.codecs[e.kind] as EventCodec<unknown>;
    return JSON.stringify(['e', e.kind, codec.encode(e.event)]);
  }

  banBody(target: Cidr, seconds: number, note: string): string {
    return JSON.stringify(['b', target.text, seconds, note.slice(0, MAX_NOTE_CHARS)]);
  }

  unbanBody(target: Cidr): string {
    return JSON.stringify(['u', target.text]);
  }

  /** The entry text for consecutive messages of one publisher, numbered from `firstSeq`. */
  entry(publisher: Publisher, firstSeq: number, bodies: readonly string[]): string {
    return `${JSON.stringify([WIRE_VERSION, publisher.node, publisher.incarnation, firstSeq])}\n${bodies.join('\n')}`;
  }

  /** One message as a whole entry (tests, the CLI). */
  encodeEvent(origin: OriginId, e: KindedEvent<M>): string {
    return this.entry(origin, origin.seq, [this.eventBody(e)]);
  }

  encodeBan(origin: OriginId, target: Cidr, seconds: number, note: string): string {
    return this.entry(origin, origin.seq, [this.banBody(target, seconds, note)]);
  }

  encodeUnban(origin: OriginId, target: Cidr): string {
    return this.entry(origin, origin.seq, [this.unbanBody(target)]);
  }

  decodeEntry(raw: string): EntryResult {
    const nl = raw.indexOf('\n');
    if (nl === -1) return { ok: false, reason: 'no messages' };
    let h: unknown;
    try {
      h = JSON.parse(raw.slice(0, nl));
    } catch {
      return { ok: false, reason: 'header not JSON' };
    }
    if (!Array.isArray(h)) return { ok: false, reason: 'header not an array' };
    if (h[0] !== WIRE_VERSION) return { ok: false, reason: `wire version ${JSON.stringify(h[0])} (this node speaks ${WIRE_VERSION})` };
    const node = text(h[1], 63);
    const incarnation = text(h[2], 64);
    const firstSeq = h[3];
    if (!node || !incarnation || typeof firstSeq !== 'number' || !Number.isSafeInteger(firstSeq) || firstSeq < 1) return { ok: false, reason: 'bad origin' };
    const lines = raw.slice(nl + 1).split('\n');
    if (lines.length > MAX_LINES) return { ok: false, reason: 'too many messages' };
    return { ok: true, publisher: { node, incarnation }, firstSeq, lines };
  }

  decodeBody(line: string): BodyResult<M> {
    let o: unknown;
    try {
      o = JSON.parse(line);
    } catch {
      return { ok: false, reason: 'not JSON' };
    }
    if (!Array.isArray(o)) return { ok: false, reason: 'not an array' };
    if (o[0] === 'e') {
      const kind = o[1];
      if (typeof kind !== 'string' || !Object.prototype.hasOwnProperty.call(this.codecs, kind)) return { ok: false, reason: `unknown event kind ${JSON.stringify(kind)}` };
      const codec = this.codecs[kind as keyof M & string] as EventCodec<unknown>;
      const event = codec.decode(o[2]);
      if (typeof event === 'string') return { ok: false, reason: `${kind} event: ${event}` };
      return { ok: true, body: { type: 'event', kind, event } as ClusterBody<M> };
    }
    if (o[0] === 'b' || o[0] === 'u') {
      const target = typeof o[1] === 'string' ? parseCidr(o[1]) : null;
      if (!target) return { ok: false, reason: 'bad ban target' };
      if (o[0] === 'u') return { ok: true, body: { type: 'unban', target } };
      const seconds = o[2];
      if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds <= 0 || seconds > MAX_BAN_SECONDS) return { ok: false, reason: 'bad ban length' };
      const note = o[3] === undefined ? '' : text(o[3], MAX_NOTE_CHARS);
      if (note === null) return { ok: false, reason: 'bad ban note' };
      return { ok: true, body: { type: 'ban', target, seconds, note } };
    }
    return { ok: false, reason: `unknown message type ${JSON.stringify(o[0])}` };
  }

  /** The first message of an entry with its origin (tests, tools). */
  decode(raw: string): DecodeResult<M> {
    const entry = this.decodeEntry(raw);
    if (!entry.ok) return entry;
    const body = this.decodeBody(entry.lines[0]!);
    if (!body.ok) return body;
    return { ok: true, message: { ...body.body, origin: { ...entry.publisher, seq: entry.firstSeq } } as ClusterMessage<M> };
  }

  /** The event with its timestamp bounded to [minUs, maxUs] (see ClusterEvidence: the stream's clock). */
  boundTime(e: KindedEvent<M>, minUs: number, maxUs: number): KindedEvent<M> {
    const codec = this.codecs[e.kind] as EventCodec<unknown>;
    const t = codec.timeUs(e.event);
    if (t >= minUs && t <= maxUs) return e;
    return { kind: e.kind, event: codec.withTimeUs(e.event, t < minUs ? minUs : maxUs) } as KindedEvent<M>;
  }
}

// ---- auth events ------------------------------------------------------------------------

const ATTEMPT_RESULTS: readonly AttemptResult[] = ['success', 'stale', 'forbidden'];
const FAILURE_METHODS: readonly FailureMethod[] = ['REGISTER', 'INVITE'];
/** An event's switchAddresses, on the wire and decoded (see the top of this file). */
const NO_SWITCH_ADDRESSES: readonly string[] = Object.freeze([]);

const KINDS = ['challenge', 'attempt', 'failure', 'registered'] as const;

/**
 * AuthEvents as a JSON array `[kind, profile, source, port, userAgent, callId, timeUs,
 * switchAddresses (always empty), …kind's fields]` (arrays parse faster and weigh less than
 * objects with their keys). Decoding remembers parsed sources, as the event source does.
 */
export class AuthEventCodec implements EventCodec<AuthEvent> {
  private readonly addresses = new AddressMemo();

  encode(e: AuthEvent): unknown {
    const head = [KINDS.indexOf(e.kind), e.profile, e.source.text, e.port, e.userAgent, e.callId, e.timeUs, NO_SWITCH_ADDRESSES];
    switch (e.kind) {
      case 'challenge': return [...head, e.fromUser, e.toUser];
      case 'attempt': return [...head, e.result, e.authUser, e.fromUser, e.toUser, e.realm];
      case 'failure': return [...head, e.method, e.toUser];
      case 'registered': return [...head, e.authUser, e.expires];
    }
  }

  timeUs(e: AuthEvent): number {
    return e.timeUs;
  }

  withTimeUs(e: AuthEvent, timeUs: number): AuthEvent {
    return { ...e, timeUs };
  }

  decode(v: unknown): AuthEvent | string {
    if (!Array.isArray(v)) return 'not an array';
    const kind = entryAt(KINDS, v[0]);
    if (kind === undefined) return `unknown auth event kind ${JSON.stringify(v[0])}`;
    const raw = v[2];
    const source = typeof raw === 'string' ? this.addresses.parse(raw) : null;
    if (!source || source.text !== raw) return 'bad source address';
    const profile = text(v[1]);
    const userAgent = text(v[4]);
    const callId = text(v[5]);
    if (profile === null || userAgent === null || callId === null) return 'bad profile, user agent or call-id';
    const port = v[3];
    if (port !== null && !(typeof port === 'number' && Number.isInteger(port) && port >= 0 && port <= 65535)) return 'bad port';
    const timeUs = v[6];
    if (typeof timeUs !== 'number' || !Number.isSafeInteger(timeUs) || timeUs <= 0) return 'bad timestamp';
    const switchAddresses = NO_SWITCH_ADDRESSES;
    switch (kind) {
      case 'challenge': {
        const fromUser = text(v[8]);
        const toUser = text(v[9]);
        if (fromUser === null || toUser === null) return 'bad users';
        return { kind, profile, source, port, userAgent, callId, timeUs, switchAddresses, fromUser, toUser };
      }
      case 'attempt': {
        const result = ATTEMPT_RESULTS.find((r) => r === v[8]);
        const authUser = text(v[9]);
        const fromUser = text(v[10]);
        const toUser = text(v[11]);
        const realm = text(v[12]);
        if (authUser === null || fromUser === null || toUser === null || realm === null || !result) return 'bad attempt fields';
        return { kind, profile, source, port, userAgent, callId, timeUs, switchAddresses, result, authUser, fromUser, toUser, realm };
      }
      case 'failure': {
        const method = FAILURE_METHODS.find((m) => m === v[8]);
        const toUser = text(v[9]);
        if (toUser === null || !method) return 'bad failure fields';
        return { kind, profile, source, port, userAgent, callId, timeUs, switchAddresses, method, toUser };
      }
      case 'registered': {
        const authUser = text(v[8]);
        const expires = v[9];
        if (authUser === null || !(expires === null || (typeof expires === 'number' && Number.isSafeInteger(expires) && expires >= 0))) return 'bad registration fields';
        return { kind, profile, source, port, userAgent, callId, timeUs, switchAddresses, authUser, expires };
      }
    }
  }
}

// ---- call events ------------------------------------------------------------------------

/**
 * CallEvents as `[profile, source, port, context, destination, hangupCause, outcome,
 * answeredSeconds, account, realm, userAgent, callId, uuid, timeUs, switchAddresses (always
 * empty)]`: what the call rules read, never the call's media or SDP (CHANNEL_HANGUP_COMPLETE
 * has ~200 headers, normalizeCallEvent keeps these).
 */
export class CallEventCodec implements EventCodec<CallEvent> {
  private readonly addresses = new AddressMemo();

  encode(e: CallEvent): unknown {
    return [e.profile, e.source.text, e.port, e.context, e.destination, e.hangupCause, CALL_OUTCOMES.indexOf(e.outcome), e.answeredSeconds,
      e.account, e.realm, e.userAgent, e.callId, e.uuid, e.timeUs, NO_SWITCH_ADDRESSES];
  }

  timeUs(e: CallEvent): number {
    return e.timeUs;
  }

  withTimeUs(e: CallEvent, timeUs: number): CallEvent {
    return { ...e, timeUs };
  }

  decode(v: unknown): CallEvent | string {
    if (!Array.isArray(v) || v.length !== 15) return 'not an array of 15';
    const raw = v[1];
    const source = typeof raw === 'string' ? this.addresses.parse(raw) : null;
    if (!source || source.text !== raw) return 'bad source address';
    const [profile, context, destination, hangupCause, realm, userAgent, callId, uuid] = [v[0], v[3], v[4], v[5], v[9], v[10], v[11], v[12]].map((x) => text(x));
    if (!profile || context === null || !destination || hangupCause === null || realm === null || userAgent === null || callId === null || uuid === null) return 'bad call fields';
    const port = v[2];
    if (port !== null && !(typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65535)) return 'bad port';
    const outcome = entryAt(CALL_OUTCOMES, v[6]);
    if (outcome === undefined) return `unknown call outcome ${JSON.stringify(v[6])}`;
    const answeredSeconds = v[7];
    if (typeof answeredSeconds !== 'number' || !Number.isFinite(answeredSeconds) || answeredSeconds < 0) return 'bad answered time';
    const account = v[8] === null ? null : text(v[8]);
    if (account === null && v[8] !== null) return 'bad account';
    const timeUs = v[13];
    if (typeof timeUs !== 'number' || !Number.isSafeInteger(timeUs) || timeUs <= 0) return 'bad timestamp';
    return {
      kind: 'call', profile, source, port, context, destination, hangupCause, outcome, answeredSeconds, account: account === '' ? null : account,
      realm, userAgent, callId, uuid, timeUs, switchAddresses: NO_SWITCH_ADDRESSES,
    };
  }
}

/** The event kinds the cluster carries. */
export interface ClusterEventKinds {
  auth: AuthEvent;
  call: CallEvent;
}

export function clusterCodec(): ClusterCodec<ClusterEventKinds> {
  return new ClusterCodec<ClusterEventKinds>({ auth: new AuthEventCodec(), call: new CallEventCodec() });
}
