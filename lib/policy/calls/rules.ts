// The call rules as data: one row per rule — its id, what it bans (a host, an IPv6 prefix, or
// an account's address), the fact it reads, the threshold knob, the reason, and the line that
// `fsguard policy` and explain print. The verdict, explain, near-miss alerts, the description
// and the docs all read this table; nothing about a rule is written twice.
import type { CallPolicySettings } from './settings.js';
import type { PolicySettings } from '../settings.js';

export type CallRuleId =
  | 'call_scanner_user_agent'
  | 'call_probing'
  | 'call_probing_international'
  | 'slow_call_probing'
  | 'slow_call_probing_international'
  | 'ipv6_prefix_call_scanner_user_agent'
  | 'ipv6_prefix_call_probing'
  | 'ipv6_prefix_call_probing_international'
  | 'toll_fraud';

/** What a rule's fact is measured on. */
export type CallRuleScope = 'host' | 'prefix' | 'account';

/** The numbers the rules read, for one host, prefix or account at one instant. */
export interface CallFacts {
  /** 1 when an unauthenticated call carried an attack-tool user agent (prefix: addresses that did). */
  readonly scannerUserAgent: number;
  /** Distinct numbers of probing calls (unauthenticated, public context, unrouted/refused). */
  readonly distinctShort: number;
  readonly distinctLong: number;
  /** …of them international or premium. */
  readonly internationalShort: number;
  readonly internationalLong: number;
  /** Account: international/premium numbers new to it within the toll-fraud window. */
  readonly newCostlyNumbers: number;
}

export const NO_FACTS: CallFacts = {
  scannerUserAgent: 0, distinctShort: 0, distinctLong: 0, internationalShort: 0, internationalLong: 0, newCostlyNumbers: 0,
};

type Settings = CallPolicySettings & Pick<PolicySettings, 'shortWindowSeconds' | 'longWindowSeconds' | 'prefixMinAddresses'>;

export interface CallRule {
  readonly id: CallRuleId;
  readonly scope: CallRuleScope;
  readonly fact: keyof CallFacts;
  /** The threshold from the settings (for toll_fraud: before the account's own peak and address). */
  readonly threshold: (s: Settings) => number;
  /** The knob the threshold comes from (docs, `fsguard policy --json`). */
  readonly knob: keyof Settings | null;
  /** Why a ban (or alert) happened: `who` is the source or prefix text. */
  readonly reason: (who: string, value: number, s: Settings) => string;
  /** The line `fsguard policy` prints after the rule id. */
  readonly explain: (s: Settings) => string;
  /** Reaching nearMissFraction of the threshold raises a near_miss alert. */
  readonly nearMiss: boolean;
}

function dur(seconds: number): string {
  if (seconds >= 86400 && seconds % 86400 === 0) return `${seconds / 86400} d`;
  if (seconds >= 3600 && seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds >= 60 && seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

const PROBING = 'unauthenticated calls in a public context ending unrouted or refused';

export const CALL_RULES: readonly CallRule[] = [
  {
    id: 'call_scanner_user_agent', scope: 'host', fact: 'scannerUserAgent', knob: null, nearMiss: false,
    threshold: () => 1,
    reason: (who) => `an unauthenticated call from ${who} carried a SIP attack-tool user agent`,
    explain: () => 'one unauthenticated call whose user agent contains an attack-tool name (scannerUserAgents)',
  },
  {
    id: 'call_probing_international', scope: 'host', fact: 'internationalShort', knob: 'callProbeInternational', nearMiss: true,
    threshold: (s) => s.callProbeInternational,
    reason: (who, v, s) => `${who} dialled ${v} distinct international/premium numbers within ${dur(s.shortWindowSeconds)}, ${PROBING}: probing the dialplan for a route out`,
    explain: (s) => `${s.callProbeInternational} distinct international/premium numbers within about ${dur(s.shortWindowSeconds)}, ${PROBING}`,
  },
  {
    id: 'call_probing', scope: 'host', fact: 'distinctShort', knob: 'callProbeDestinations', nearMiss: true,
    threshold: (s) => s.callProbeDestinations,
    reason: (who, v, s) => `${who} dialled ${v} distinct numbers within ${dur(s.shortWindowSeconds)}, ${PROBING}: scanning the dialplan`,
    explain: (s) => `${s.callProbeDestinations} distinct numbers within about ${dur(s.shortWindowSeconds)}, ${PROBING}`,
  },
  {
    id: 'slow_call_probing_international', scope: 'host', fact: 'internationalLong', knob: 'slowCallProbeInternational', nearMiss: true,
    threshold: (s) => s.slowCallProbeInternational,
    reason: (who, v, s) => `${who} dialled ${v} distinct international/premium numbers within ${dur(s.longWindowSeconds)}, ${PROBING}: slow probing for a route out`,
    explain: (s) => `${s.slowCallProbeInternational} distinct international/premium numbers within about ${dur(s.longWindowSeconds)} (slow probing)`,
  },
  {
    id: 'slow_call_probing', scope: 'host', fact: 'distinctLong', knob: 'slowCallProbeDestinations', nearMiss: true,
    threshold: (s) => s.slowCallProbeDestinations,
    reason: (who, v, s) => `${who} dialled ${v} distinct numbers within ${dur(s.longWindowSeconds)}, ${PROBING}: slow dialplan scan`,
    explain: (s) => `${s.slowCallProbeDestinations} distinct numbers within about ${dur(s.longWindowSeconds)} (slow scan)`,
  },
  {
    id: 'ipv6_prefix_call_scanner_user_agent', scope: 'prefix', fact: 'scannerUserAgent', knob: 'prefixMinAddresses', nearMiss: false,
    threshold: (s) => s.prefixMinAddresses,
    reason: (who, v) => `unauthenticated calls with an attack-tool user agent from ${v} addresses of ${who}, none proven: address rotation`,
    explain: (s) => `attack-tool user agents on calls from ${s.prefixMinAddresses}+ addresses of one prefix`,
  },
  {
    id: 'ipv6_prefix_call_probing_international', scope: 'prefix', fact: 'internationalLong', knob: 'callProbeInternational', nearMiss: false,
    threshold: (s) => s.callProbeInternational,
    reason: (who, v, s) => `${v} distinct international/premium numbers dialled within ${dur(s.longWindowSeconds)} from several addresses of ${who}, ${PROBING}: probing with address rotation`,
    explain: (s) => `${s.callProbeInternational} distinct international/premium numbers within about ${dur(s.longWindowSeconds)}, spread over the prefix`,
  },
  {
    id: 'ipv6_prefix_call_probing', scope: 'prefix', fact: 'distinctLong', knob: 'callProbeDestinations', nearMiss: false,
    threshold: (s) => s.callProbeDestinations,
    reason: (who, v, s) => `${v} distinct numbers dialled within ${dur(s.longWindowSeconds)} from several addresses of ${who}, ${PROBING}: scanning with address rotation`,
    explain: (s) => `${s.callProbeDestinations} distinct numbers within about ${dur(s.longWindowSeconds)}, spread over the prefix`,
  },
  {
    id: 'toll_fraud', scope: 'account', fact: 'newCostlyNumbers', knob: 'tollFraudDestinations', nearMiss: true,
    threshold: (s) => s.tollFraudDestinations,
    reason: (who, v, s) => `account ${who} dialled ${v} international/premium numbers new to it within ${dur(s.tollFraudWindowSeconds)}`,
    explain: (s) => `an authenticated account dialling ${s.tollFraudDestinations} international/premium numbers new to it within ${dur(s.tollFraudWindowSeconds)} (plus its own usual peak), or ${s.tollFraudNewAddressDestinations} from an address it never used: a toll_fraud alert naming account, address and numbers${s.tollFraudBan ? '; the address is banned' + (s.tollFraudBanSites ? ', even a multi-account site' : ' unless it is a proven site with several accounts') : ' (banning it: tollFraudBan)'}`,
  },
];

export function callRule(id: CallRuleId): CallRule {
  const r = CALL_RULES.find((x) => x.id === id);
  if (!r) throw new Error(`unknown call rule ${id}`);
  return r;
}
