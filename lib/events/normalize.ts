// Turns one FreeSWITCH event (decoded headers, as in an `event json` body) into an AuthEvent.
// Used by the daemon's ESL source and by `fsguard policy simulate`, so a recorded trace is
// judged exactly as live traffic would be.
import { parseIp } from '../net/ip.js';
import type {
  AttemptResult, AuthEvent, FailureMethod, NormalizeResult,
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

function str(h: Headers, name: string): string {
  const v = h[name];
  if (typeof v === 'string') return v.length > MAX_FIELD_CHARS ? v.slice(0, MAX_FIELD_CHARS) : v;
  // FreeSWITCH repeats some headers (profile-name on register_failure); JSON keeps the last,
  // a plain-format parser may hand us an array: take the first.
  if (Array.isArray(v) && typeof v[0] === 'string') return str({ x: v[0] }, 'x');
  return '';
}

const ATTEMPT_RESULTS: Readonly<Record<string, AttemptResult>> = {
  SUCCESS: 'success',
  RENEWED: 'success',
  STALE: 'stale',
  FORBIDDEN: 'forbidden',
};

function fail(reason: Exclude<NormalizeResult, { ok: true }>['reason'], detail: string): NormalizeResult {
  return { ok: false, reason, detail };
}

export interface NormalizeOptions {
  /** Profiles to keep; null keeps every profile. */
  readonly profiles: ReadonlySet<string> | null;
}

export function normalizeEvent(h: unknown, opts: NormalizeOptions): NormalizeResult {
  if (typeof h !== 'object' || h === null || Array.isArray(h)) return fail('not_an_object', 'event body is not a JSON object');
  const headers = h as Headers;
  const subclass = str(headers, 'Event-Subclass');
  if (headers['Event-Name'] !== 'CUSTOM' || !(AUTH_SUBCLASSES as readonly string[]).includes(subclass)) {
    return fail('not_auth_event', `not a sofia auth event: ${str(headers, 'Event-Name')} ${subclass}`.slice(0, 120));
  }
  const profile = str(headers, 'profile-name');
  if (!profile) return fail('missing_profile', `${subclass} without profile-name`);
  if (opts.profiles && !opts.profiles.has(profile)) return fail('profile_not_watched', `profile ${profile} is not watched`);
  const ipRaw = headers['network-ip'];
  if (typeof ipRaw !== 'string' || ipRaw === '') return fail('missing_address', `${subclass} without network-ip`);
  const source = parseIp(ipRaw);
  if (!source) return fail('bad_address', `network-ip is not an IP address: ${JSON.stringify(ipRaw.slice(0, 64))}`);
  const tsRaw = headers['Event-Date-Timestamp'];
  const timeUs = typeof tsRaw === 'string' && /^\d{1,16}$/.test(tsRaw) ? Number(tsRaw) : NaN;
  if (!Number.isSafeInteger(timeUs) || timeUs <= 0) return fail('bad_timestamp', `bad Event-Date-Timestamp: ${JSON.stringify(String(tsRaw).slice(0, 32))}`);
  const portRaw = str(headers, 'network-port');
  const portNum = /^\d{1,5}$/.test(portRaw) ? Number(portRaw) : NaN;
  const switchAddresses: string[] = [];
  for (const name of ['FreeSWITCH-IPv4', 'FreeSWITCH-IPv6']) {
    const a = parseIp(str(headers, name));
    if (a) switchAddresses.push(a.text);
  }
  const common = {
    profile,
    source,
    port: portNum >= 1 && portNum <= 65535 ? portNum : null,
    userAgent: str(headers, 'user-agent'),
    callId: str(headers, 'call-id'),
    timeUs,
    switchAddresses,
  };
  let event: AuthEvent;
  switch (subclass) {
    case 'sofia::pre_register':
      // FreeSWITCH fills from-user with the To-URI user and to-user with the From-URI user.
      event = { ...common, kind: 'challenge', fromUser: str(headers, 'to-user'), toUser: str(headers, 'from-user') };
      break;
    case 'sofia::register_attempt': {
      const result = ATTEMPT_RESULTS[str(headers, 'auth-result')];
      if (!result) return fail('bad_auth_result', `unknown auth-result ${JSON.stringify(str(headers, 'auth-result').slice(0, 32))}`);
      event = {
        ...common,
        kind: 'attempt',
        result,
        authUser: str(headers, 'username'),
        fromUser: str(headers, 'to-user'),
        toUser: str(headers, 'from-user'),
        realm: str(headers, 'realm'),
      };
      break;
    }
    case 'sofia::register_failure': {
      const method = str(headers, 'registration-type');
      if (method !== 'REGISTER' && method !== 'INVITE') return fail('bad_registration_type', `unknown registration-type ${JSON.stringify(method.slice(0, 32))}`);
      event = { ...common, kind: 'failure', method: method as FailureMethod, toUser: str(headers, 'to-user') };
      break;
    }
    default: {
      const exp = str(headers, 'expires');
      event = {
        ...common,
        kind: 'registered',
        authUser: str(headers, 'username') || str(headers, 'from-user'),
        expires: /^\d{1,9}$/.test(exp) ? Number(exp) : null,
      };
    }
  }
  return { ok: true, event };
}
