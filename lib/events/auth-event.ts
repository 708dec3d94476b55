// The typed form of the sofia auth events fsguard acts on. Everything downstream of the
// event source (policy, simulate, explain) sees only these, never raw headers.
import type { IpAddress } from '../net/ip.js';

export type AuthEventKind = 'challenge' | 'attempt' | 'failure' | 'registered';

/** `auth-result` of a register_attempt: SUCCESS and RENEWED (qop) are both success. */
export type AttemptResult = 'success' | 'stale' | 'forbidden';

/** `registration-type` of a register_failure. */
export type FailureMethod = 'REGISTER' | 'INVITE';

interface AuthEventCommon {
  /** Sofia profile that emitted the event (`profile-name`). */
  readonly profile: string;
  /** Validated, canonical source address (`network-ip`); IPv4-mapped IPv6 becomes IPv4. */
  readonly source: IpAddress;
  /** `network-port`, or null when absent or not a port. */
  readonly port: number | null;
  /** `user-agent`, attacker-controlled: truncated, otherwise verbatim. Empty when absent. */
  readonly userAgent: string;
  /** `call-id`, attacker-controlled, truncated. Empty when absent (register_failure has none). */
  readonly callId: string;
  /** `Event-Date-Timestamp`, microseconds since the epoch. Not strictly increasing. */
  readonly timeUs: number;
  /** Addresses of the FreeSWITCH that emitted it (`FreeSWITCH-IPv4` / `-IPv6`), canonical text. */
  readonly switchAddresses: readonly string[];
}

/** `sofia::pre_register`: a 401/407 challenge was sent. Proves nothing about the source. */
export interface ChallengeEvent extends AuthEventCommon {
  readonly kind: 'challenge';
  /** From-URI user (FreeSWITCH puts it in the `to-user` header). */
  readonly fromUser: string;
  /** To-URI user (the `from-user` header): the AOR for REGISTER, the dialled number for INVITE. */
  readonly toUser: string;
}

/** `sofia::register_attempt`: credentials were presented, so the source got our challenge. */
export interface AttemptEvent extends AuthEventCommon {
  readonly kind: 'attempt';
  readonly result: AttemptResult;
  /** Digest `username` (may be `unknown` on STALE). */
  readonly authUser: string;
  readonly fromUser: string;
  readonly toUser: string;
  readonly realm: string;
}

/** `sofia::register_failure`: a 403 was sent. Carries no tried username and no call-id. */
export interface FailureEvent extends AuthEventCommon {
  readonly kind: 'failure';
  readonly method: FailureMethod;
  /** `to-user`: the AOR for REGISTER, the number dialled for INVITE. */
  readonly toUser: string;
}

/** `sofia::register`: a registration was stored. */
export interface RegisteredEvent extends AuthEventCommon {
  readonly kind: 'registered';
  readonly authUser: string;
  /** Seconds, or null when absent. */
  readonly expires: number | null;
}

export type AuthEvent = ChallengeEvent | AttemptEvent | FailureEvent | RegisteredEvent;

/** Why an event was not turned into an AuthEvent; each is a metrics label. */
export type DropReason =
  | 'not_an_object'
  | 'not_auth_event'
  | 'missing_address'
  | 'bad_address'
  | 'bad_timestamp'
  | 'bad_auth_result'
  | 'bad_registration_type'
  | 'missing_profile'
  | 'profile_not_watched';

export type NormalizeResult =
  | { readonly ok: true; readonly event: AuthEvent }
  | { readonly ok: false; readonly reason: DropReason; readonly detail: string };

/** A registration FreeSWITCH holds right now (`show registrations as json`). */
export interface LiveRegistration {
  readonly source: IpAddress;
  readonly user: string;
  readonly realm: string;
  readonly userAgent: string;
  /** Unix seconds at which it expires, when known. */
  readonly expiresAtSec: number | null;
}
