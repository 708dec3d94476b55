// Every knob of the ban policy, its convict schema (config section `policy`), validation of
// per-profile overrides (`profiles.<name>`), and the merge of the two. The defaults are the
// policy: they are chosen from how phones, offices and attackers behave (see docs/policy.md),
// not from any particular trace.
import { parseCidr } from '../net/ip.js';
import { CALL_KNOBS, callSettingsProblems, DEFAULT_CALL_POLICY_SETTINGS, type CallPolicySettings } from './calls/settings.js';
import { DURATION_FORMS, parseDurationSeconds } from '../text/duration.js';

/** The call rules' knobs (lib/policy/calls/settings.ts) are policy keys too. */
export interface PolicySettings extends CallPolicySettings {
  /** CIDRs never banned (FreeSWITCH's own addresses are added from each event). */
  readonly allow: readonly string[];
  /** Case-insensitive substrings of user agents that only attack tools send. */
  readonly scannerUserAgents: readonly string[];

  /** A challenge not answered (by a register_attempt with its call-id) within this is unanswered. */
  readonly answerTimeoutSeconds: number;
  /** The short window for bursts: brute force, unanswered challenges, near-misses. */
  readonly shortWindowSeconds: number;
  /** The long horizon for slow guessing and for distinct failing users. */
  readonly longWindowSeconds: number;

  /** Answered failures from an unproven source within the short window that ban (brute force). */
  readonly bruteForceFailures: number;
  /** Answered failures from an unproven source within the long horizon that ban (slow guessing). */
  readonly slowGuessingFailures: number;
  /** Distinct users failing (and never succeeding) at a source within the long horizon that ban… */
  readonly credentialScanUsers: number;
  /** …plus this many per user that succeeded at the source (tolerance grows with the site). */
  readonly credentialScanUsersPerSiteUser: number;
  /** Unanswered challenges from an unproven source within the short window that ban. */
  readonly unansweredChallenges: number;
  /** Unanswered challenges from an unproven source within the long horizon that ban. */
  readonly slowUnansweredChallenges: number;
  /** This many outstanding challenges from an unproven source ban once the oldest is… */
  readonly challengeFloodOutstanding: number;
  /** …older than this: phones answer in 20-150 ms, a flood never does. */
  readonly challengeFloodAgeSeconds: number;
  /** Answer latency (s) of this source's slowest answer times this is how long its challenges may wait. */
  readonly slowLinkFactor: number;
  /** Challenges in a row for one user, each within the answer timeout of the last, that ban an unproven source. */
  readonly sameUserChallenges: number;
  /** Failures of one user within the short window that ban even a proven source (0 = never). */
  readonly provenBruteForceFailures: number;

  /**
   * A proven site with at least this many users registered from its address is never banned on
   * answered failures alone while they can be forged (UDP: FreeSWITCH does not bind a nonce to an
   * address): a forged_failures alert instead. 0 = never shield.
   */
  readonly forgedFailureShieldUsers: number;
  /** false for a profile that only accepts TCP/TLS/WSS: its answered failures cannot be forged. */
  readonly failuresForgeable: boolean;

  /** Event time more than this ahead of the daemon's wall clock is out of bound (not the clock). */
  readonly maxEventLeadSeconds: number;
  /** Clocks of event sources (sofia threads, FreeSWITCH nodes) may differ by this much. */
  readonly maxSourceSkewSeconds: number;
  /** A jump of event time beyond this moves the clock only once a second event confirms it. */
  readonly clockStepSeconds: number;

  /** Failures of one user at a proven source, with no success since, that raise an alert. */
  readonly misprovisionedFailures: number;
  /** A source reaching this fraction of a ban threshold raises a near-miss alert. */
  readonly nearMissFraction: number;
  /**
   * A near miss is reported only once this long has passed without a ban of its source (one
   * policy-wide hold, so the held alerts are in due order): an attacker that crosses the
   * threshold a moment later is a ban, not a near miss and a ban.
   */
  readonly nearMissHoldSeconds: number;
  /** Minimum interval between two alerts of one kind about one source (and user). */
  readonly alertIntervalSeconds: number;
  /** A proven source stays proven this long after its last success. */
  readonly legitimacySeconds: number;

  /** First ban length. */
  readonly banSeconds: number;
  /** Each repeat offence multiplies the ban length by this (fail2ban bantime.increment). */
  readonly banIncrementFactor: number;
  /** Upper bound of a ban length. */
  readonly banMaxSeconds: number;
  /** Up to this fraction is added to a ban length, deterministically per target and offence. */
  readonly banJitterFraction: number;
  /** Offences are remembered this long after the ban ends. */
  readonly offenceMemorySeconds: number;
  /** After a manual unban, the target cannot be banned again for this long. */
  readonly unbanGraceSeconds: number;

  /** IPv6 evidence is also aggregated per prefix of this length (64 = a customer's subnet). */
  readonly ipv6PrefixLength: number;
  /** A prefix is banned only when its evidence comes from at least this many addresses. */
  readonly prefixMinAddresses: number;

  /** Sources without proven legitimacy tracked at once (least recently seen evicted first). */
  readonly maxTrackedSources: number;
  /** Proven-legitimate sources tracked at once (kept apart so a spray cannot evict them). */
  readonly maxLegitimateSources: number;
  /** IPv6 prefixes tracked at once. */
  readonly maxTrackedPrefixes: number;
  /** Users remembered per source. */
  readonly maxUsersPerSource: number;
  /** Challenges awaiting an answer remembered per source. */
  readonly maxPendingChallengesPerSource: number;
  /** Repeat-offence records kept. */
  readonly maxOffenceRecords: number;
}

/**
 * User agents of SIP attack tools. Matched case-insensitively as a word of its own anywhere in
 * the user agent (so `smap` matches "smap/1.0" and "smap2" but not "Asmapp" or "smapi"). Legitimate phones
 * never send these; attackers also spoof phone user agents, so this is a hint that bans only
 * sources with no proven legitimacy.
 */
export const DEFAULT_SCANNER_USER_AGENTS: readonly string[] = [
  'friendly-scanner', 'sipvicious', 'sipcli', 'vaxsipuseragent', 'vaxipuseragent', 'pplsip',
  'sundayddr', 'iwar', 'sivus', 'gulp', 'sipsak', 'smap', 'sip-scan', 'sipscan', 'siparmyknife',
  'voipbuster', 'nmap', 'masscan', 'cseq-scan', 'sipptk', 'inviteflood', 'svwar', 'svcrack',
  'mr.sip', 'sip-hunter',
];

export const DEFAULT_POLICY_SETTINGS: PolicySettings = {
  allow: ['127.0.0.0/8', '::1/128'],
  scannerUserAgents: DEFAULT_SCANNER_USER_AGENTS,
  // The slowest answer of a real link: a 1.5 s round trip (a congested uplink, LTE, satellite)
  // and SIP's first resend of a lost 401 or answer, 0.5 s later. At 1.5 s, one boot in 50 of a
  // 35-150-phone office over such a link with 30 % loss was banned before its first answer
  // (challenge_flood; test/policy-slow-links.test.ts draws such boots).
  answerTimeoutSeconds: 2,
  shortWindowSeconds: 60,
  longWindowSeconds: 6 * 3600,
  bruteForceFailures: 6,
  slowGuessingFailures: 15,
  credentialScanUsers: 5,
  credentialScanUsersPerSiteUser: 0.25,
  unansweredChallenges: 10,
  slowUnansweredChallenges: 30,
  challengeFloodOutstanding: 20,
  challengeFloodAgeSeconds: 2,
  slowLinkFactor: 2,
  sameUserChallenges: 10,
  provenBruteForceFailures: 60,
  forgedFailureShieldUsers: 3,
  failuresForgeable: true,
  maxEventLeadSeconds: 10,
  maxSourceSkewSeconds: 2,
  clockStepSeconds: 300,
  misprovisionedFailures: 3,
  nearMissFraction: 0.7,
  nearMissHoldSeconds: 60,
  alertIntervalSeconds: 3600,
  legitimacySeconds: 24 * 3600,
  banSeconds: 3600,
  banIncrementFactor: 2,
  banMaxSeconds: 7 * 24 * 3600,
  banJitterFraction: 0.1,
  offenceMemorySeconds: 30 * 24 * 3600,
  unbanGraceSeconds: 900,
  ipv6PrefixLength: 64,
  prefixMinAddresses: 3,
  maxTrackedSources: 100_000,
  maxLegitimateSources: 50_000,
  maxTrackedPrefixes: 20_000,
  maxUsersPerSource: 4096,
  maxPendingChallengesPerSource: 1024,
  maxOffenceRecords: 100_000,
  ...DEFAULT_CALL_POLICY_SETTINGS,
};

export type PolicyKey = keyof PolicySettings;

/** How one knob is checked; the same rule serves the convict schema and profile overrides. */
interface KnobSpec {
  readonly doc: string;
  readonly kind: 'seconds' | 'count' | 'fraction' | 'factor' | 'prefix' | 'cidrs' | 'patterns' | 'boolean';
  /** Shared by every profile (the challenge queue, memory caps, the clock): not overridable per profile. */
  readonly baseOnly?: boolean;
  /** Inclusive bounds for numbers. */
  readonly min?: number;
  readonly max?: number;
  /** Counts must be integers. */
  readonly integer?: boolean;
}

const KNOBS: { readonly [K in PolicyKey]: KnobSpec } = {
  allow: { doc: 'CIDRs never banned (FreeSWITCH\'s own addresses are always added)', kind: 'cidrs' },
  scannerUserAgents: { doc: 'Case-insensitive names of attack tools, matched as whole words of the user agent (a version may follow): ban an unproven source at once', kind: 'patterns' },
  answerTimeoutSeconds: { doc: 'A challenge not answered within this many seconds counts as unanswered', kind: 'seconds', min: 0.05, max: 60 , baseOnly: true },
  shortWindowSeconds: { doc: 'Short window (s) for bursts: brute force, unanswered challenges', kind: 'seconds', min: 1, max: 86400 },
  longWindowSeconds: { doc: 'Long horizon (s) for slow guessing and distinct failing users', kind: 'seconds', min: 60, max: 7 * 86400 },
  bruteForceFailures: { doc: 'Answered failures within the short window that ban an unproven source', kind: 'count', min: 1, max: 1e6, integer: true },
  slowGuessingFailures: { doc: 'Answered failures within the long horizon that ban an unproven source', kind: 'count', min: 1, max: 1e6, integer: true },
  credentialScanUsers: { doc: 'Distinct users failing and never succeeding at a source (long horizon) that ban it', kind: 'count', min: 1, max: 1e6, integer: true },
  credentialScanUsersPerSiteUser: { doc: 'Extra failing users tolerated per user that succeeded at the source', kind: 'fraction', min: 0, max: 10 },
  unansweredChallenges: { doc: 'Unanswered challenges within the short window that ban an unproven source', kind: 'count', min: 1, max: 1e6, integer: true },
  slowUnansweredChallenges: { doc: 'Unanswered challenges within the long horizon that ban an unproven source', kind: 'count', min: 1, max: 1e6, integer: true },
  challengeFloodOutstanding: { doc: 'Outstanding challenges from an unproven source that ban once the oldest is older than challengeFloodAgeSeconds', kind: 'count', min: 2, max: 1e6, integer: true },
  challengeFloodAgeSeconds: { doc: 'Age (s) of the oldest outstanding challenge at which challengeFloodOutstanding applies: the slowest answer a real link gives (an RTT of 1.5 s and SIP\'s first resend, 0.5 s later)', kind: 'seconds', min: 0.05, max: 60 },
  slowLinkFactor: { doc: 'A source that answered before may take this many times its slowest answer before its outstanding challenges count as a flood', kind: 'factor', min: 1, max: 100 },
  forgedFailureShieldUsers: { doc: 'Users registered from a proven site that shield it from bans on answered failures alone over UDP (0 = never shield)', kind: 'count', min: 0, max: 1e6, integer: true },
  failuresForgeable: { doc: 'Answered failures on this profile can be forged (it accepts UDP); false for a TCP/TLS-only profile', kind: 'boolean' },
  maxEventLeadSeconds: { doc: 'Event time further than this ahead of the wall clock is out of bound: counted, logged, judged at the policy clock', kind: 'seconds', min: 0.5, max: 86400, baseOnly: true },
  maxSourceSkewSeconds: { doc: 'How far the clocks of event sources (FreeSWITCH nodes, sofia threads) may differ', kind: 'seconds', min: 0.01, max: 3600, baseOnly: true },
  clockStepSeconds: { doc: 'A jump of event time beyond this moves the policy clock only once a second event confirms it (a host clock step)', kind: 'seconds', min: 1, max: 7 * 86400, baseOnly: true },
  sameUserChallenges: { doc: 'Challenges in a row for one user (new call-ids, each within the answer timeout) that ban an unproven source', kind: 'count', min: 2, max: 1e6, integer: true },
  provenBruteForceFailures: { doc: 'Failures of one user within the short window that ban even a proven source (0 = never)', kind: 'count', min: 0, max: 1e6, integer: true },
  misprovisionedFailures: { doc: 'Failures of one user at a proven source, no success since, that raise a misprovisioned_device alert', kind: 'count', min: 1, max: 1e6, integer: true },
  nearMissFraction: { doc: 'Fraction of a ban threshold that raises a near_miss alert', kind: 'fraction', min: 0.1, max: 1 },
  nearMissHoldSeconds: { doc: 'A near_miss alert is raised only after this many seconds without a ban of its source (0 = at once)', kind: 'seconds', min: 0, max: 86400, baseOnly: true },
  alertIntervalSeconds: { doc: 'Minimum seconds between alerts of one kind about one source and user', kind: 'seconds', min: 0, max: 30 * 86400 },
  legitimacySeconds: { doc: 'A source stays proven legitimate this long after its last success', kind: 'seconds', min: 60, max: 365 * 86400 },
  banSeconds: { doc: 'First ban length (s)', kind: 'seconds', min: 1, max: 365 * 86400 },
  banIncrementFactor: { doc: 'Ban length multiplier per repeat offence (1 = no increment)', kind: 'factor', min: 1, max: 100 },
  banMaxSeconds: { doc: 'Longest ban (s)', kind: 'seconds', min: 1, max: 10 * 365 * 86400 },
  banJitterFraction: { doc: 'Up to this fraction added to a ban length, deterministic per target and offence', kind: 'fraction', min: 0, max: 1 },
  offenceMemorySeconds: { doc: 'How long (s) past offences count toward longer bans', kind: 'seconds', min: 0, max: 10 * 365 * 86400 },
  unbanGraceSeconds: { doc: 'After a manual unban, seconds before the target can be banned again', kind: 'seconds', min: 0, max: 30 * 86400 , baseOnly: true },
  ipv6PrefixLength: { doc: 'IPv6 evidence is aggregated and banned per prefix of this length (64..127)', kind: 'prefix', min: 64, max: 127, integer: true , baseOnly: true },
  prefixMinAddresses: { doc: 'Distinct addresses a prefix\'s evidence must come from before the prefix is banned', kind: 'count', min: 2, max: 1e6, integer: true },
  maxTrackedSources: { doc: 'Unproven sources tracked at once (least recently seen evicted)', kind: 'count', min: 100, max: 1e8, integer: true , baseOnly: true },
  maxLegitimateSources: { doc: 'Proven-legitimate sources tracked at once', kind: 'count', min: 10, max: 1e8, integer: true , baseOnly: true },
  maxTrackedPrefixes: { doc: 'IPv6 prefixes tracked at once', kind: 'count', min: 10, max: 1e8, integer: true , baseOnly: true },
  maxUsersPerSource: { doc: 'Users remembered per source', kind: 'count', min: 10, max: 1e6, integer: true },
  maxPendingChallengesPerSource: { doc: 'Unanswered challenges remembered per source', kind: 'count', min: 10, max: 1e6, integer: true },
  maxOffenceRecords: { doc: 'Repeat-offence records kept', kind: 'count', min: 10, max: 1e8, integer: true , baseOnly: true },
  ...CALL_KNOBS,
};

export const POLICY_KEYS: readonly PolicyKey[] = Object.keys(KNOBS) as PolicyKey[];

export function policyKnobDoc(key: PolicyKey): string {
  return KNOBS[key].doc;
}

/** Keys a profile cannot override (the challenge queue, memory caps and the clock are shared). */
export function isBaseOnlyKey(key: PolicyKey): boolean {
  return KNOBS[key].baseOnly === true;
}

/** Why a value is wrong for a knob, or null if it is right. */
function knobProblem(key: PolicyKey, value: unknown): string | null {
  const spec = KNOBS[key];
  if (spec.kind === 'cidrs') {
    if (!Array.isArray(value)) return 'must be a list of addresses or CIDRs';
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      if (typeof v !== 'string' || !parseCidr(v)) return `[${i}]: not an address or CIDR: ${JSON.stringify(v)}`;
    }
    return null;
  }
  if (spec.kind === 'boolean') return typeof value === 'boolean' ? null : `must be true or false, got ${JSON.stringify(value)}`;
  if (spec.kind === 'patterns') {
    if (!Array.isArray(value)) return 'must be a list of strings';
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      if (typeof v !== 'string' || v.trim() === '') return `[${i}]: must be a non-empty string, got ${JSON.stringify(v)}`;
    }
    return null;
  }
  if (typeof value !== 'number' || !Number.isFinite(value)) return `must be a number, got ${JSON.stringify(value)}`;
  if (spec.integer && !Number.isInteger(value)) return `must be a whole number, got ${value}`;
  if (spec.min !== undefined && value < spec.min) return `must be at least ${spec.min}, got ${value}`;
  if (spec.max !== undefined && value > spec.max) return `must be at most ${spec.max}, got ${value}`;
  return null;
}

/** A convict format function for one knob: throws with the problem. */
function convictFormat(key: PolicyKey): (value: unknown) => void {
  return (value: unknown): void => {
    const problem = knobProblem(key, value);
    if (problem) throw new Error(problem);
  };
}

/** A knob's value as read from the config, or why it is wrong (naming what was expected). */
export type KnobParse = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly problem: string };

const DECIMAL = /^\d+(?:\.\d+)?$/;

/**
 * Reads one knob from the config: `raw` is the JSON value from the file, or the text of its
 * FSGUARD_POLICY_* variable (`fromEnv`). Durations (the *Seconds knobs) take a number of seconds
 * or a string with a unit ("90s", "1h", "7d"); numbers must be numbers (from the environment:
 * plain decimal text), never a prefix of one ("2h" is not 2); lists come from the environment
 * comma-separated. Then the knob's range applies.
 */
export function parseKnobValue(key: PolicyKey, raw: unknown, fromEnv: boolean): KnobParse {
  const spec = KNOBS[key];
  let value: unknown = raw;
  if (spec.kind === 'cidrs' || spec.kind === 'patterns') {
    if (fromEnv && typeof raw === 'string') value = raw.split(',').map((v) => v.trim()).filter((v) => v !== '');
  } else if (spec.kind === 'boolean') {
    // true/false only: from the environment the text "true"/"false", never "no" or "1".
    if (fromEnv ? raw !== 'true' && raw !== 'false' : typeof raw !== 'boolean') return { ok: false, problem: fromEnv ? 'expected true or false' : 'expected true or false (a JSON boolean)' };
    value = raw === true || raw === 'true';
  } else if (spec.kind === 'seconds') {
    const seconds = parseDurationSeconds(raw);
    if (seconds === null) return { ok: false, problem: `expected a duration: ${DURATION_FORMS}` };
    value = seconds;
  } else if (fromEnv) {
    if (typeof raw !== 'string' || !DECIMAL.test(raw.trim())) return { ok: false, problem: `expected ${spec.integer ? 'a whole number' : 'a number'}` };
    value = Number(raw.trim());
  } else if (typeof raw !== 'number') {
    return { ok: false, problem: `expected ${spec.integer ? 'a whole number' : 'a number'} (a JSON number, not ${Array.isArray(raw) ? 'a list' : typeof raw})` };
  }
  const problem = knobProblem(key, value);
  return problem ? { ok: false, problem } : { ok: true, value };
}

export interface PolicySchemaItem {
  readonly doc: string;
  readonly format: ((value: unknown) => void) | ArrayConstructor | BooleanConstructor;
  readonly default: number | boolean | string[];
  readonly env: string;
  /** How the config loader reads this knob (see parseKnobValue). */
  readonly parse: (raw: unknown, fromEnv: boolean) => KnobParse;
}

function envName(key: string): string {
  return `FSGUARD_POLICY_${key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()}`;
}

function buildSchema(): { readonly [K in PolicyKey]: PolicySchemaItem } {
  const out: Record<string, PolicySchemaItem> = {};
  for (const key of POLICY_KEYS) {
    const def = DEFAULT_POLICY_SETTINGS[key];
    const spec = KNOBS[key];
    // Lists use convict's Array format so FSGUARD_POLICY_ALLOW="10.0.0.0/8,192.0.2.0/24" splits
    // on commas like every other list; their contents are checked by policySettingsProblems.
    out[key] = {
      doc: spec.doc,
      format: spec.kind === 'cidrs' || spec.kind === 'patterns' ? Array : spec.kind === 'boolean' ? Boolean : convictFormat(key),
      default: Array.isArray(def) ? [...(def as readonly string[])] : (def as number | boolean),
      env: envName(key),
      parse: (raw, fromEnv) => parseKnobValue(key, raw, fromEnv),
    };
  }
  return out as { readonly [K in PolicyKey]: PolicySchemaItem };
}

/** The convict schema of the `policy` config section. */
export const policySchema = buildSchema();

/**
 * Every problem of a complete settings object, each naming `path.key` (convict checks types;
 * this also checks list contents and the relations between knobs).
 */
export function policySettingsProblems(settings: PolicySettings, path = 'policy'): string[] {
  const problems: string[] = [];
  for (const key of POLICY_KEYS) {
    const p = knobProblem(key, settings[key]);
    if (p) problems.push(`${path}.${key}${p.startsWith('[') ? '' : ': '}${p}`);
  }
  if (problems.length) return problems;
  if (settings.longWindowSeconds < settings.shortWindowSeconds) problems.push(`${path}.longWindowSeconds: must be at least shortWindowSeconds (${settings.shortWindowSeconds})`);
  if (settings.banMaxSeconds < settings.banSeconds) problems.push(`${path}.banMaxSeconds: must be at least banSeconds (${settings.banSeconds})`);
  if (settings.challengeFloodAgeSeconds > settings.answerTimeoutSeconds) problems.push(`${path}.challengeFloodAgeSeconds: must not exceed answerTimeoutSeconds (${settings.answerTimeoutSeconds})`);
  if (settings.answerTimeoutSeconds >= settings.shortWindowSeconds) problems.push(`${path}.answerTimeoutSeconds: must be shorter than shortWindowSeconds (${settings.shortWindowSeconds})`);
  problems.push(...callSettingsProblems(settings, path));
  return problems;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Validates one per-profile override object (`profiles.<name>` in the config). Throws an Error
 * with one line per problem (every unknown key and bad value, each naming its key path, the
 * value and what was expected). Durations may be written with a unit, as in `policy`.
 */
export function parsePolicyOverride(value: unknown, path: string): Partial<PolicySettings> {
  if (!isPlainObject(value)) throw new Error(`${path}: must be an object of policy keys, got ${Array.isArray(value) ? 'a list' : JSON.stringify(value)}`);
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [key, v] of Object.entries(value)) {
    if (!Object.prototype.hasOwnProperty.call(KNOBS, key)) {
      problems.push(`${path}.${key}: unknown policy key (known: ${POLICY_KEYS.join(', ')})`);
      continue;
    }
    if (KNOBS[key as PolicyKey].baseOnly) {
      problems.push(`${path}.${key}: set it in policy, not per profile (${KNOBS[key as PolicyKey].doc.toLowerCase()}; shared by every profile)`);
      continue;
    }
    const parsed = parseKnobValue(key as PolicyKey, v, false);
    if (!parsed.ok) {
      problems.push(`${path}.${key}${parsed.problem.startsWith('[') ? '' : ` = ${JSON.stringify(v)}: `}${parsed.problem}`);
      continue;
    }
    out[key] = Array.isArray(parsed.value) ? [...(parsed.value as string[])] : parsed.value;
  }
  if (problems.length) throw new Error(problems.join('\n'));
  return out as Partial<PolicySettings>;
}

/** The settings that apply to one sofia profile: the base with its override, if any. */
export function settingsForProfile(
  base: PolicySettings,
  overrides: Readonly<Record<string, Partial<PolicySettings>>>,
  profile: string,
): PolicySettings {
  const o = Object.prototype.hasOwnProperty.call(overrides, profile) ? overrides[profile] : undefined;
  return o ? { ...base, ...o } : base;
}

/**
 * The longest long window of the base and of any profile: a source's evidence may count that
 * long for some profile's rules, so a source idle for less is not forgotten.
 */
export function longestLongWindowSeconds(base: PolicySettings, overrides: Readonly<Record<string, Partial<PolicySettings>>>): number {
  let longest = base.longWindowSeconds;
  for (const o of Object.values(overrides)) if (o.longWindowSeconds !== undefined && o.longWindowSeconds > longest) longest = o.longWindowSeconds;
  return longest;
}

/**
 * The addresses never banned, whatever profile an event came from: the base allow-list and
 * every profile's. A ban is an element in the kernel, so it drops the address on every profile:
 * a partner allowed on one profile would lose that profile to a ban decided on another.
 */
export function allowedEverywhere(base: PolicySettings, overrides: Readonly<Record<string, Partial<PolicySettings>>>): string[] {
  const all = new Set(base.allow);
  for (const o of Object.values(overrides)) for (const a of o.allow ?? []) all.add(a);
  return [...all];
}
