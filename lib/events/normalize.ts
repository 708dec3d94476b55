// Turns one FreeSWITCH event (decoded headers, as in an `event json` body) into an AuthEvent.
// Used by the daemon's ESL source and by `fsguard policy simulate`, so a recorded trace is
// judged exactly as live traffic would be. It runs once per event on the hot path: object
// literals are built whole (no spreads), and regexes are avoided where a char loop will do.
import { parseIp, type IpAddress } from '../net/ip.js';
import { BoundedMemo } from '../util/bounded-memo.js';
import type {
  AttemptResult, AuthEvent, DropReason, FailureMethod, NormalizeResult,
} from './auth-event.js';

/** Attacker-controlled strings are cut to this many characters before they are stored. */
export const MAX_FIELD_CHARS = 256;

export const AUTH_SUBCLASSES = [
  'sofia::pre_register',
  'sofia::register_attempt',
  'sofia::register_failure',
  'sofia::register',
] as const;

export type Headers = Readonly<Record<string, unknown>>;

export function str(h: Headers, name: string): string {
  let v = h[name];
  // FreeSWITCH repeats some headers (profile-name on register_failure); JSON keeps the last,
  // a plain-format parser may hand us an array: take the first.
  if (Array.isArray(v)) v = v[0];
  if (typeof v !== 'string') return '';
  return v.length > MAX_FIELD_CHARS ? v.slice(0, MAX_FIELD_CHARS) : v;
}

/** The decimal value of `s` if it is 1..maxDigits ASCII digits, else -1. */
export function digits(s: string, maxDigits: number): number {
  const n = s.length;
  if (n === 0 || n > maxDigits) return -1;
  let v = 0;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v;
}

/**
 * The one table of `auth-result` values of a register_attempt (read here and, through
 * line-scanner.ts, by the wasm reader). A correct login from a phone using qop=auth gives
 * RENEWED, one without qop SUCCESS (../shared/esl/README.md); anything else is dropped.
 */
export const AUTH_RESULT_TABLE: readonly (readonly [text: string, result: AttemptResult])[] = [
  ['SUCCESS', 'success'],
  ['RENEWED', 'success'],
  ['STALE', 'stale'],
  ['FORBIDDEN', 'forbidden'],
];

const ATTEMPT_RESULTS: ReadonlyMap<string, AttemptResult> = new Map(AUTH_RESULT_TABLE);

/** `registration-type` values of a register_failure. */
export const FAILURE_METHODS: readonly FailureMethod[] = ['REGISTER', 'INVITE'];

function fail(reason: DropReason, detail: string): NormalizeResult {
  return { ok: false, reason, detail };
}

export interface NormalizeOptions {
  /** Profiles to keep; null keeps every profile. */
  readonly profiles: ReadonlySet<string> | null;
  /**
   * Optional per-stream memo of the switch's own address headers, which repeat in every
   * event: parsed once, and the same array shared by every event that carries them.
   */
  readonly switchMemo?: SwitchAddressMemo;
  /** Optional per-stream memo of parsed `network-ip` values (sources repeat from event to event). */
  readonly addressMemo?: AddressMemo;
}

/** Entries of an AddressMemo; it starts over when full, so a spray cannot grow it. */
const ADDRESS_MEMO_CAP = 4096;

/** Owned by one event stream; see NormalizeOptions.addressMemo. */
export class AddressMemo {
  private readonly parsed = new BoundedMemo<string, IpAddress | null>(ADDRESS_MEMO_CAP);

  parse(raw: string): IpAddress | null {
    let a = this.parsed.get(raw);
    if (a === undefined) {
      a = parseIp(raw);
      this.parsed.set(raw, a);
    }
    return a;
  }
}

/** Owned by one event stream (a source, a simulate run); see NormalizeOptions.switchMemo. */
export class SwitchAddressMemo {
  v4Raw = '';
  v6Raw = '';
  addresses: readonly string[] = [];

  /** The addresses of these `FreeSWITCH-IPv4`/`-IPv6` values: the same array as last time while they repeat. */
  of(v4: string, v6: string): readonly string[] {
    if (this.v4Raw !== v4 || this.v6Raw !== v6) {
      this.v4Raw = v4;
      this.v6Raw = v6;
      // Shared by the events that follow (readonly), not frozen: see EMPTY_OUTPUT in lib/policy/engine.ts.
      this.addresses = switchAddressesOf(v4, v6);
    }
    return this.addresses;
  }
}

/** FreeSWITCH's addresses as an event's `FreeSWITCH-IPv4`/`-IPv6` name them, canonical text (bad or empty ones left out). */
export function switchAddressesOf(v4: string, v6: string): string[] {
  const out: string[] = [];
  const a = v4 ? parseIp(v4) : null;
  if (a) out.push(a.text);
  const b = v6 ? parseIp(v6) : null;
  if (b) out.push(b.text);
  return out;
}

/**
 * The values of an auth event once checked: what normalizeEvent reads from the headers, and
 * what a reader that parsed them itself (the wasm scanner) hands normalizePreparsed. Strings
 * are already cut to MAX_FIELD_CHARS; absent ones are ''.
 */
export class PreparsedEvent {
  /** Index in AUTH_SUBCLASSES. */
  subclass = 0;
  profile = '';
  /** `network-ip`, not yet parsed (a non-empty string). */
  networkIp = '';
  /**
   * `networkIp` parsed by the reader, which keeps the parse of each value it interns (null: not
   * an address); undefined: not parsed, normalizePreparsed parses it.
   */
  networkAddress: IpAddress | null | undefined = undefined;
  timeUs = 0;
  port: number | null = null;
  switchV4 = '';
  switchV6 = '';
  userAgent = '';
  callId = '';
  /** The `to-user`, `from-user`, `username` and `realm` headers. */
  toUserHeader = '';
  fromUserHeader = '';
  username = '';
  realm = '';
  /** register_attempt: its result (null: not an attempt). */
  result: AttemptResult | null = null;
  /** register_failure: its registration-type (null: not a failure). */
  method: FailureMethod | null = null;
  /** register: `expires`, or null when absent or not 1..9 digits. */
  expires: number | null = null;
}

/**
 * The event of values a reader checked and parsed itself (as normalizeEvent would have: see
 * PreparsedEvent): what can still drop it is the profile filter and the address.
 */
export function normalizePreparsed(p: PreparsedEvent, opts: NormalizeOptions): NormalizeResult {
  if (opts.profiles && !opts.profiles.has(p.profile)) return fail('profile_not_watched', `profile ${p.profile} is not watched`);
  const source = p.networkAddress !== undefined ? p.networkAddress : sourceOf(p.networkIp, opts);
  if (!source) return badAddress(p.networkIp);
  return build(p, source, opts);
}

function sourceOf(ipRaw: string, opts: NormalizeOptions): IpAddress | null {
  return opts.addressMemo ? opts.addressMemo.parse(ipRaw) : parseIp(ipRaw);
}

function badAddress(ipRaw: string): NormalizeResult {
  return fail('bad_address', `network-ip is not an IP address: ${JSON.stringify(ipRaw.slice(0, 64))}`);
}

function build(p: PreparsedEvent, source: IpAddress, opts: NormalizeOptions): NormalizeResult {
  const memo = opts.switchMemo;
  const switchAddresses = memo ? memo.of(p.switchV4, p.switchV6) : switchAddressesOf(p.switchV4, p.switchV6);
  const { profile, port, userAgent, callId, timeUs } = p;
  let event: AuthEvent;
  switch (AUTH_SUBCLASSES[p.subclass]) {
    case 'sofia::pre_register':
      // FreeSWITCH fills from-user with the To-URI user and to-user with the From-URI user.
      event = {
        kind: 'challenge', profile, source, port, userAgent, callId, timeUs, switchAddresses,
        fromUser: p.toUserHeader, toUser: p.fromUserHeader,
      };
      break;
    case 'sofia::register_attempt':
      event = {
        kind: 'attempt', profile, source, port, userAgent, callId, timeUs, switchAddresses,
        result: p.result!,
        authUser: p.username,
        fromUser: p.toUserHeader,
        toUser: p.fromUserHeader,
        realm: p.realm,
      };
      break;
    case 'sofia::register_failure':
      event = {
        kind: 'failure', profile, source, port, userAgent, callId, timeUs, switchAddresses,
        method: p.method!, toUser: p.toUserHeader,
      };
      break;
    default:
      event = {
        kind: 'registered', profile, source, port, userAgent, callId, timeUs, switchAddresses,
        authUser: p.username || p.fromUserHeader,
        expires: p.expires,
      };
  }
  return { ok: true, event };
}

export function normalizeEvent(h: unknown, opts: NormalizeOptions): NormalizeResult {
  if (typeof h !== 'object' || h === null || Array.isArray(h)) return fail('not_an_object', 'event body is not a JSON object');
  const headers = h as Headers;
  const subclass = str(headers, 'Event-Subclass');
  const subclassIndex = (AUTH_SUBCLASSES as readonly string[]).indexOf(subclass);
  if (headers['Event-Name'] !== 'CUSTOM' || subclassIndex < 0) {
    return fail('not_auth_event', `not a sofia auth event: ${str(headers, 'Event-Name')} ${subclass}`.slice(0, 120));
  }
  const p = new PreparsedEvent();
  p.subclass = subclassIndex;
  const profile = str(headers, 'profile-name');
  if (!profile) return fail('missing_profile', `${subclass} without profile-name`);
  if (opts.profiles && !opts.profiles.has(profile)) return fail('profile_not_watched', `profile ${profile} is not watched`);
  p.profile = profile;
  const ipRaw = headers['network-ip'];
  if (typeof ipRaw !== 'string' || ipRaw === '') return fail('missing_address', `${subclass} without network-ip`);
  p.networkIp = ipRaw;
  const source = sourceOf(ipRaw, opts);
  if (!source) return badAddress(ipRaw);
  const tsRaw = headers['Event-Date-Timestamp'];
  const timeUs = typeof tsRaw === 'string' ? digits(tsRaw, 16) : -1;
  if (timeUs <= 0 || !Number.isSafeInteger(timeUs)) return fail('bad_timestamp', `bad Event-Date-Timestamp: ${JSON.stringify(String(tsRaw).slice(0, 32))}`);
  p.timeUs = timeUs;
  const portNum = digits(str(headers, 'network-port'), 5);
  p.port = portNum >= 1 && portNum <= 65535 ? portNum : null;
  p.switchV4 = str(headers, 'FreeSWITCH-IPv4');
  p.switchV6 = str(headers, 'FreeSWITCH-IPv6');
  p.userAgent = str(headers, 'user-agent');
  p.callId = str(headers, 'call-id');
  p.toUserHeader = str(headers, 'to-user');
  p.fromUserHeader = str(headers, 'from-user');
  p.username = str(headers, 'username');
  p.realm = str(headers, 'realm');
  if (subclass === 'sofia::register_attempt') {
    const result = ATTEMPT_RESULTS.get(str(headers, 'auth-result'));
    if (!result) return fail('bad_auth_result', `unknown auth-result ${JSON.stringify(str(headers, 'auth-result').slice(0, 32))}`);
    p.result = result;
  } else if (subclass === 'sofia::register_failure') {
    const method = str(headers, 'registration-type');
    const known = FAILURE_METHODS.find((m) => m === method);
    if (known === undefined) return fail('bad_registration_type', `unknown registration-type ${JSON.stringify(method.slice(0, 32))}`);
    p.method = known;
  } else if (subclass === 'sofia::register') {
    const exp = digits(str(headers, 'expires'), 9);
    p.expires = exp >= 0 ? exp : null;
  }
  return build(p, source, opts);
}
