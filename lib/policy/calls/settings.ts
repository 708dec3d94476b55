// The knobs of the call rules. They are policy keys like the others (config section `policy`,
// per-profile overrides in `profiles.<name>`, env FSGUARD_POLICY_<KEY>): which contexts take
// calls from the internet and which numbers look international or premium differ per profile.
// settings.ts merges them into PolicySettings; this file owns their defaults and meaning.

export interface CallPolicySettings {
  /** Dialplan contexts that take calls from anyone (FreeSWITCH's `public`). */
  readonly callPublicContexts: readonly string[];
  /** Prefixes of dialled numbers that look international (E.164 `+`, `00`, NANP `011`, `9`+…). */
  readonly callInternationalPrefixes: readonly string[];
  /** Prefixes of dialled numbers that look premium-rate. */
  readonly callPremiumPrefixes: readonly string[];
  /** Unauthenticated unrouted/refused calls to this many distinct numbers within the short window ban an unproven source. */
  readonly callProbeDestinations: number;
  /** …or to this many distinct international/premium numbers within the short window. */
  readonly callProbeInternational: number;
  /** The same spread slowly: distinct numbers within the long horizon. */
  readonly slowCallProbeDestinations: number;
  /** …or distinct international/premium numbers within the long horizon. */
  readonly slowCallProbeInternational: number;
  /** An unauthenticated call answered for at least this long proves its source (a carrier, a trunk). */
  readonly callProofMinSeconds: number;
  /** Toll fraud: the window in which an account's new international/premium numbers are counted. */
  readonly tollFraudWindowSeconds: number;
  /** An account dialling this many international/premium numbers new to it within the window (beyond its own peak) raises a toll_fraud alert. */
  readonly tollFraudDestinations: number;
  /** …this many when the calls come from an address the account never used. */
  readonly tollFraudNewAddressDestinations: number;
  /** How long an account's numbers, addresses and peak are remembered. */
  readonly tollFraudHistorySeconds: number;
  /** Also ban the address a toll_fraud alert is about (opt-in). */
  readonly tollFraudBan: boolean;
  /** …even when that address is a proven site with several accounts (off: the site keeps working). */
  readonly tollFraudBanSites: boolean;
  /** Accounts tracked at once for toll fraud (least recently seen evicted). */
  readonly maxTrackedAccounts: number;
}

export const DEFAULT_CALL_POLICY_SETTINGS: CallPolicySettings = {
  callPublicContexts: ['public'],
  // `+` E.164; `00` ITU (most of the world); `011` NANP; `9011`/`900` the same behind a PBX's
  // outside-line 9; `810` Russia/CIS (8, tone, 10). A prefix counts only when at least
  // MIN_SUBSCRIBER_DIGITS follow it, so extension ranges like 810x or 900x are not matched.
  callInternationalPrefixes: ['+', '00', '011', '9011', '900', '810'],
  // 1900: NANP premium-rate; 0900: premium-rate in DE, NL, AT, CH, BE; 0906/0909: UK premium
  // rate (09 alone would hit French VoIP numbers); 0190: former German premium range.
  callPremiumPrefixes: ['1900', '0900', '0906', '0909', '0190'],
  callProbeDestinations: 5,
  callProbeInternational: 3,
  slowCallProbeDestinations: 12,
  slowCallProbeInternational: 6,
  callProofMinSeconds: 10,
  tollFraudWindowSeconds: 600,
  tollFraudDestinations: 10,
  tollFraudNewAddressDestinations: 3,
  tollFraudHistorySeconds: 7 * 86400,
  tollFraudBan: false,
  tollFraudBanSites: false,
  maxTrackedAccounts: 50_000,
};

export type CallPolicyKey = keyof CallPolicySettings;

/** The same shape as settings.ts's KnobSpec (kept structural to avoid an import cycle). */
export interface CallKnobSpec {
  readonly doc: string;
  readonly kind: 'seconds' | 'count' | 'patterns' | 'boolean';
  readonly baseOnly?: boolean;
  readonly min?: number;
  readonly max?: number;
  readonly integer?: boolean;
}

export const CALL_KNOBS: { readonly [K in CallPolicyKey]: CallKnobSpec } = {
  callPublicContexts: { doc: 'Dialplan contexts that take calls from anyone: unauthenticated calls there ending unrouted or refused are probing evidence', kind: 'patterns' },
  callInternationalPrefixes: { doc: 'Prefixes of dialled numbers that look international (at least 6 more characters must follow)', kind: 'patterns' },
  callPremiumPrefixes: { doc: 'Prefixes of dialled numbers that look premium-rate (at least 6 more characters must follow)', kind: 'patterns' },
  callProbeDestinations: { doc: 'Distinct numbers of unauthenticated unrouted/refused calls within the short window that ban an unproven source', kind: 'count', min: 2, max: 1e6, integer: true },
  callProbeInternational: { doc: 'Distinct international/premium numbers of unauthenticated unrouted/refused calls within the short window that ban an unproven source', kind: 'count', min: 1, max: 1e6, integer: true },
  slowCallProbeDestinations: { doc: 'Distinct numbers of unauthenticated unrouted/refused calls within the long horizon that ban an unproven source', kind: 'count', min: 2, max: 1e6, integer: true },
  slowCallProbeInternational: { doc: 'Distinct international/premium numbers of unauthenticated unrouted/refused calls within the long horizon that ban an unproven source', kind: 'count', min: 1, max: 1e6, integer: true },
  callProofMinSeconds: { doc: 'An unauthenticated call answered this long proves its source (carrier, trunk) for legitimacySeconds', kind: 'seconds', min: 0, max: 86400 },
  tollFraudWindowSeconds: { doc: 'Window (s) in which an authenticated account\'s new international/premium numbers are counted', kind: 'seconds', min: 60, max: 86400 },
  tollFraudDestinations: { doc: 'New international/premium numbers of one account within the window (beyond its own peak) that raise a toll_fraud alert', kind: 'count', min: 1, max: 1e6, integer: true },
  tollFraudNewAddressDestinations: { doc: 'The same, when the calls come from an address the account never used', kind: 'count', min: 1, max: 1e6, integer: true },
  tollFraudHistorySeconds: { doc: 'How long (s) an account\'s numbers, addresses and peak are remembered', kind: 'seconds', min: 3600, max: 365 * 86400 },
  tollFraudBan: { doc: 'Also ban the address of a toll_fraud alert (opt-in, per profile)', kind: 'boolean' },
  tollFraudBanSites: { doc: 'With tollFraudBan: also ban it when it is a proven site with several accounts', kind: 'boolean' },
  maxTrackedAccounts: { doc: 'Authenticated accounts tracked at once for toll fraud', kind: 'count', min: 10, max: 1e8, integer: true, baseOnly: true },
};

/** Relations between call knobs, each naming `path.key`. */
export function callSettingsProblems(s: CallPolicySettings, path: string): string[] {
  const out: string[] = [];
  if (s.slowCallProbeDestinations < s.callProbeDestinations) out.push(`${path}.slowCallProbeDestinations: must be at least callProbeDestinations (${s.callProbeDestinations})`);
  if (s.slowCallProbeInternational < s.callProbeInternational) out.push(`${path}.slowCallProbeInternational: must be at least callProbeInternational (${s.callProbeInternational})`);
  if (s.tollFraudBanSites && !s.tollFraudBan) out.push(`${path}.tollFraudBanSites: needs tollFraudBan`);
  return out;
}
