// The typed form of one finished call, from FreeSWITCH's CHANNEL_HANGUP_COMPLETE, and its
// normalization. CHANNEL_HANGUP_COMPLETE alone carries everything the policy needs (source,
// profile, context, dialled number, cause, answer time, billed time, the authenticated
// account): fsguard subscribes to it and to nothing else of the channel events, so one call
// is one event (CHANNEL_DESTROY repeats it header for header and is ignored when a trace
// recorded with `event json ALL` carries both).
//
// What the bytes of a real FreeSWITCH 1.10.9 show (../shared/esl/README.md, "Call events"):
//   - the source is `Caller-Network-Addr` (= `variable_sip_network_ip`), its port
//     `variable_sip_network_port`; Via, Contact and SDP addresses are what the caller wrote;
//   - the profile is `variable_sofia_profile_name`, the context `Caller-Context`;
//   - the dialled number is `Caller-Destination-Number` (the Request-URI user; `%2B` in plain
//     is decoded by the plain parser like every value);
//   - `Hangup-Cause` comes twice (two plain lines, a duplicate JSON key): the same value;
//   - an authenticated call has `variable_sip_authorized: true` and
//     `variable_sip_auth_username`/`_realm`; an unauthenticated one has no such header;
//   - a call refused at the auth step (407 never answered, wrong password) has no `Caller-*`
//     header, no address and no profile variable. It is dropped here (reason
//     `call_refused_at_auth`): its `sofia::pre_register` / `register_attempt` /
//     `register_failure` already put it in the auth evidence of its source (unanswered
//     challenge, FORBIDDEN attempt), and counting it again as a call would count one INVITE
//     twice. Nothing would be gained by linking it back through its call-id either: the
//     pre_register already holds the number dialled (`from-user`).
//   - outbound legs (`Call-Direction: outbound`, e.g. the leg FreeSWITCH sends to a carrier
//     gateway) name the gateway as their network address: they are not calls *from* it and
//     are dropped (reason `outbound_leg`).
import type { IpAddress } from '../net/ip.js';
import type { AddressMemo, Headers, SwitchAddressMemo } from './normalize.js';
import { digits, str, switchAddressesOf } from './normalize.js';
import { parseIp } from '../net/ip.js';

/** The one channel event fsguard subscribes to. */
export const CALL_EVENT_NAME = 'CHANNEL_HANGUP_COMPLETE';

/**
 * The headers normalizeCallEvent reads (of a body's ~200): the event body reader takes these
 * from a call's bytes without JSON.parse (lib/events/line-scanner.ts).
 */
export const CALL_HEADER_NAMES = [
  'Event-Name', 'Event-Date-Timestamp', 'FreeSWITCH-IPv4', 'FreeSWITCH-IPv6', 'Call-Direction', 'Unique-ID',
  'Hangup-Cause', 'Caller-Network-Addr', 'Caller-Context', 'Caller-Destination-Number',
  'variable_sip_network_ip', 'variable_sip_network_port', 'variable_sofia_profile_name', 'variable_sip_req_user',
  'variable_hangup_cause', 'variable_answer_uepoch', 'variable_billusec', 'variable_sip_authorized',
  'variable_sip_auth_username', 'variable_user_name', 'variable_sip_auth_realm', 'variable_domain_name',
  'variable_sip_user_agent', 'variable_sip_call_id',
] as const;
export type CallHeaderName = (typeof CALL_HEADER_NAMES)[number];

/**
 * A finished call's headers as normalizeCallValues reads them: the value of each of
 * CALL_HEADER_NAMES, in that order, as `str` gives it (cut to MAX_FIELD_CHARS; '' when absent
 * or not a string). An array by position rather than an object by name: the body reader fills
 * one per call without building an object of 24 computed keys.
 */
export type CallHeaderValues = readonly string[];

/** Where each header is in CallHeaderValues. */
const AT = Object.fromEntries(CALL_HEADER_NAMES.map((name, i) => [name, i])) as Readonly<Record<CallHeaderName, number>>;

/** The CallHeaderValues of a decoded body (JSON or plain). */
export function callHeaderValues(h: Headers): string[] {
  return CALL_HEADER_NAMES.map((name) => str(h, name));
}

/** The profile a finished call names (`variable_sofia_profile_name`), '' if none. */
export function callProfileOf(v: CallHeaderValues): string {
  return val(v, AT['variable_sofia_profile_name']);
}

/** How a call ended, as far as the policy cares. */
export type CallOutcome =
  /** Answered (`variable_answer_uepoch` > 0): the dialplan routed it and someone picked up. */
  | 'answered'
  /** The dialplan had no route for it (NO_ROUTE_DESTINATION, UNALLOCATED_NUMBER, …): a 404. */
  | 'unrouted'
  /** The dialplan refused it (CALL_REJECTED from `respond 403`, barred, …). */
  | 'refused'
  /** Routed but not answered: busy, no answer, cancelled by the caller, a gateway failure. */
  | 'unanswered';

export const CALL_OUTCOMES: readonly CallOutcome[] = ['answered', 'unrouted', 'refused', 'unanswered'];

/** Hangup causes that say the dialplan found nothing for the number. */
const UNROUTED_CAUSES: ReadonlySet<string> = new Set([
  'NO_ROUTE_DESTINATION', 'UNALLOCATED_NUMBER', 'NO_ROUTE_TRANSIT_NET', 'INVALID_NUMBER_FORMAT',
  'NUMBER_CHANGED', 'INCOMPATIBLE_DESTINATION',
]);
/** Hangup causes that say the dialplan (or a policy in it) refused the call. */
const REFUSED_CAUSES: ReadonlySet<string> = new Set([
  'CALL_REJECTED', 'OUTGOING_CALL_BARRED', 'INCOMING_CALL_BARRED', 'FACILITY_REJECTED',
  'BEARERCAPABILITY_NOTAUTH', 'FACILITY_NOT_SUBSCRIBED',
]);

/** The outcome of a call that was not answered, from its hangup cause. */
export function outcomeOfCause(cause: string): Exclude<CallOutcome, 'answered'> {
  if (UNROUTED_CAUSES.has(cause)) return 'unrouted';
  if (REFUSED_CAUSES.has(cause)) return 'refused';
  return 'unanswered';
}

/** One finished inbound call. Attacker-controlled strings are cut to MAX_FIELD_CHARS. */
export interface CallEvent {
  readonly kind: 'call';
  /** `variable_sofia_profile_name`. */
  readonly profile: string;
  /** Validated, canonical source address (`Caller-Network-Addr`). */
  readonly source: IpAddress;
  /** `variable_sip_network_port`, or null. */
  readonly port: number | null;
  /** `Caller-Context`: the dialplan context the call ran in. */
  readonly context: string;
  /** `Caller-Destination-Number`: the number dialled (Request-URI user), decoded. */
  readonly destination: string;
  /** `Hangup-Cause` (e.g. NO_ROUTE_DESTINATION). */
  readonly hangupCause: string;
  readonly outcome: CallOutcome;
  /** Billed (answered) time in seconds, 0 when not answered. */
  readonly answeredSeconds: number;
  /** `variable_sip_auth_username` of an authenticated call, else null. */
  readonly account: string | null;
  /** `variable_sip_auth_realm` of an authenticated call ('' when absent or unauthenticated). */
  readonly realm: string;
  /** `variable_sip_user_agent`, attacker-controlled ('' when absent). */
  readonly userAgent: string;
  /** `variable_sip_call_id`. */
  readonly callId: string;
  /** `Unique-ID` of the channel. */
  readonly uuid: string;
  /** `Event-Date-Timestamp` (µs): the hangup. */
  readonly timeUs: number;
  /** FreeSWITCH's own addresses (`FreeSWITCH-IPv4` / `-IPv6`), canonical text. */
  readonly switchAddresses: readonly string[];
}

/** Why a channel event did not become a CallEvent; each is a metrics label. */
export type CallDropReason =
  | 'not_call_event'
  | 'call_refused_at_auth'
  | 'outbound_leg'
  | 'missing_address'
  | 'bad_address'
  | 'bad_timestamp'
  | 'missing_profile'
  | 'profile_not_watched'
  | 'missing_destination';

export type CallNormalizeResult =
  | { readonly ok: true; readonly event: CallEvent }
  | { readonly ok: false; readonly reason: CallDropReason; readonly detail: string };

export interface CallNormalizeOptions {
  readonly profiles: ReadonlySet<string> | null;
  readonly switchMemo?: SwitchAddressMemo;
  readonly addressMemo?: AddressMemo;
}


function fail(reason: CallDropReason, detail: string): CallNormalizeResult {
  return { ok: false, reason, detail };
}


/** Turns the decoded headers of a CHANNEL_HANGUP_COMPLETE (JSON or plain) into a CallEvent. */
export function normalizeCallEvent(h: unknown, opts: CallNormalizeOptions): CallNormalizeResult {
  if (typeof h !== 'object' || h === null || Array.isArray(h)) return fail('not_call_event', 'event body is not an object');
  return normalizeCallValues(callHeaderValues(h as Headers), opts);
}

/** The value at `i` ('' past the end: a shorter array is headers absent). */
function val(v: CallHeaderValues, i: number): string {
  return v[i] ?? '';
}

/** normalizeCallEvent of the headers whose CallHeaderValues are `v`. */
export function normalizeCallValues(v: CallHeaderValues, opts: CallNormalizeOptions): CallNormalizeResult {
  const name = val(v, AT['Event-Name']);
  if (name !== CALL_EVENT_NAME) return fail('not_call_event', `not ${CALL_EVENT_NAME}: ${name}`.slice(0, 120));
  const tsRaw = val(v, AT['Event-Date-Timestamp']);
  const timeUs = digits(tsRaw, 16);
  if (timeUs <= 0 || !Number.isSafeInteger(timeUs)) return fail('bad_timestamp', `bad Event-Date-Timestamp: ${JSON.stringify(tsRaw.slice(0, 32))}`);
  const ipRaw = val(v, AT['Caller-Network-Addr']) || val(v, AT['variable_sip_network_ip']);
  const profile = val(v, AT['variable_sofia_profile_name']);
  if (ipRaw === '') {
    // Refused at the auth step (no CHANNEL_CREATE, no caller profile): see the file comment.
    if (val(v, AT['Caller-Destination-Number']) === '' && profile === '') {
      return fail('call_refused_at_auth', `call ${val(v, AT['variable_sip_call_id']).slice(0, 64)} refused before the dialplan (${val(v, AT['Hangup-Cause'])}): counted by its auth events`);
    }
    return fail('missing_address', `${CALL_EVENT_NAME} without Caller-Network-Addr`);
  }
  if (profile === '') return fail('missing_profile', `${CALL_EVENT_NAME} without variable_sofia_profile_name`);
  if (opts.profiles && !opts.profiles.has(profile)) return fail('profile_not_watched', `profile ${profile} is not watched`);
  if (val(v, AT['Call-Direction']) === 'outbound') return fail('outbound_leg', `outbound leg to ${ipRaw.slice(0, 64)}: not a call from it`);
  const source = opts.addressMemo ? opts.addressMemo.parse(ipRaw) : parseIp(ipRaw);
  if (!source) return fail('bad_address', `Caller-Network-Addr is not an IP address: ${JSON.stringify(ipRaw.slice(0, 64))}`);
  const destination = val(v, AT['Caller-Destination-Number']) || val(v, AT['variable_sip_req_user']);
  if (destination === '') return fail('missing_destination', `${CALL_EVENT_NAME} from ${source.text} without Caller-Destination-Number`);
  const hangupCause = val(v, AT['Hangup-Cause']) || val(v, AT['variable_hangup_cause']);
  const answerUs = digits(val(v, AT['variable_answer_uepoch']), 16);
  const answered = answerUs > 0;
  let answeredSeconds = 0;
  if (answered) {
    const billUs = digits(val(v, AT['variable_billusec']), 16);
    answeredSeconds = billUs > 0 ? billUs / 1e6 : Math.max(0, (timeUs - answerUs) / 1e6);
  }
  const authorized = val(v, AT['variable_sip_authorized']) === 'true';
  const account = authorized ? (val(v, AT['variable_sip_auth_username']) || val(v, AT['variable_user_name'])) : '';
  const port = digits(val(v, AT['variable_sip_network_port']), 5);
  const switchV4 = val(v, AT['FreeSWITCH-IPv4']);
  const switchV6 = val(v, AT['FreeSWITCH-IPv6']);
  const event: CallEvent = {
    kind: 'call',
    profile,
    source,
    port: port >= 1 && port <= 65535 ? port : null,
    context: val(v, AT['Caller-Context']),
    destination,
    hangupCause,
    outcome: answered ? 'answered' : outcomeOfCause(hangupCause),
    answeredSeconds,
    account: authorized && account !== '' ? account : null,
    realm: authorized ? (val(v, AT['variable_sip_auth_realm']) || val(v, AT['variable_domain_name'])) : '',
    userAgent: val(v, AT['variable_sip_user_agent']),
    callId: val(v, AT['variable_sip_call_id']),
    uuid: val(v, AT['Unique-ID']),
    timeUs,
    switchAddresses: opts.switchMemo ? opts.switchMemo.of(switchV4, switchV6) : switchAddressesOf(switchV4, switchV6),
  };
  return { ok: true, event };
}

/** True for the Event-Name of the channel event fsguard reads (a cheap test before parsing). */
export function isCallEventName(name: unknown): boolean {
  return name === CALL_EVENT_NAME;
}
