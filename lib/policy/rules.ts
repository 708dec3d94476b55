// The rule table: every way the policy can ban, as data. The verdict, `fsguard policy explain`,
// near-miss alerts, `fsguard policy` and the tables of docs/policy.md are all read off this
// one table (test/policy-docs.test.ts checks the docs against it), so a rule is written once.
//
// A rule reads one fact of a per-source facts value (HostFacts / PrefixFacts: what the
// evidence says now, never the engine's internals), compares it with a threshold taken from
// the settings of the profile the evidence came from, and says why in one sentence.
//
// Adding a fact family (call probing, say): add its facts to the facts value its scope reads,
// its ids to RuleId, and its rows to RULES; nothing else reads rules by name.
import type { PolicyKey, PolicySettings } from './settings.js';
import { fmt, humanSeconds, quoted } from './words.js';

/** Every rule's stable id: the metrics label, the nft element comment, the log field. */
export type RuleId =
  | 'scanner_user_agent'
  | 'brute_force'
  | 'credential_scan'
  | 'slow_guessing'
  | 'pipelined_cracker'
  | 'challenge_flood'
  | 'unanswered_challenges'
  | 'slow_unanswered_challenges'
  | 'foothold_credential_scan'
  | 'proven_source_brute_force'
  | 'ipv6_prefix_scanner_user_agent'
  | 'ipv6_prefix_brute_force'
  | 'ipv6_prefix_credential_scan'
  | 'ipv6_prefix_slow_guessing'
  | 'ipv6_prefix_unanswered_challenges'
  | 'ipv6_prefix_slow_unanswered_challenges'
  // Calls (lib/policy/calls): dialplan probing from unauthenticated sources, toll fraud.
  | 'call_scanner_user_agent'
  | 'call_probing_international'
  | 'call_probing'
  | 'slow_call_probing_international'
  | 'slow_call_probing'
  | 'ipv6_prefix_call_probing_international'
  | 'ipv6_prefix_call_probing'
  | 'toll_fraud';

/**
 * Whom a rule can ban: a source that never proved itself legitimate, a proven site (only on
 * evidence a site cannot explain), or an IPv6 prefix (evidence from several unproven hosts).
 */
export type RuleScope = 'unproven_source' | 'proven_site' | 'ipv6_prefix';

/** What the evidence says about one host now. */
export interface HostFacts {
  readonly key: string;
  /** Proven legitimate: a success or a live registration within legitimacySeconds. */
  readonly proven: boolean;
  /** Answered at least one challenge: its packets reached us and came back. */
  readonly answered: boolean;
  /** An IPv6 host whose prefix holds a proven host (probably one of the site's devices). */
  readonly inProvenPrefix: boolean;
  /** The first attack-tool user agent it sent while unproven ('' for none). */
  readonly scannerUserAgent: string;
  /** Answered failures within the short window / the long horizon. */
  readonly failuresShort: number;
  readonly failuresLong: number;
  /** Distinct users failing and never succeeding here (long horizon). */
  readonly failingUsers: number;
  /** Distinct users that succeeded here (within legitimacySeconds): the site's size. */
  readonly workingUsers: number;
  /** Challenges in a row for one user, each within the answer timeout of the last. */
  readonly sameUserRun: number;
  readonly sameUserRunUser: string;
  /** Challenges awaiting an answer now, and how long the oldest has waited (µs). */
  readonly pendingChallenges: number;
  readonly oldestPendingAgeUs: number;
  /** How long this source's answers may take (µs): its link's slowest answer, scaled. */
  readonly answerWaitUs: number;
  /** Answered a challenge within the short window (its link works, however slowly). */
  readonly answeringNow: boolean;
  /** Challenges left unanswered within the short window / the long horizon. */
  readonly unansweredShort: number;
  readonly unansweredLong: number;
  /** The user failing fastest here (short window), and how often. */
  readonly worstUser: string;
  readonly worstUserFailuresShort: number;
  /** A few of the users tried, for the reason sentence. */
  readonly sampleUsers: readonly string[];
  // Calls (CHANNEL_HANGUP_COMPLETE; lib/policy/calls). "Probing calls": unauthenticated, in a
  // public context, ended unrouted or refused; each number counted once per long horizon.
  /** An unauthenticated call of it was answered (callProofMinSeconds+): a carrier, a trunk. */
  readonly provenByCalls: boolean;
  /** The first attack-tool user agent of its unauthenticated calls ('' for none). */
  readonly callScannerUserAgent: string;
  /** Distinct numbers of its probing calls within the short window / the long horizon. */
  readonly callNumbersShort: number;
  readonly callNumbersLong: number;
  /** …of them international or premium. */
  readonly callCostlyNumbersShort: number;
  readonly callCostlyNumbersLong: number;
  /** A few of the numbers, for the reason sentence. */
  readonly sampleNumbers: readonly string[];
  /**
   * Whether a rule's `value` reads a window with no count kept here in its length: the profile
   * judged with gives the window another length than the base, and none of the evidence it
   * counts came over a profile with that length yet (docs/policy.md, "Per-profile policy"). The
   * value reads 0, for the verdict too, and that 0 is no count. Explain asks; judging never does.
   */
  uncounted(value: (f: HostFacts) => number): boolean;
}

/** What the evidence says about one IPv6 prefix now (only unproven hosts feed it). */
export interface PrefixFacts {
  readonly key: string;
  readonly proven: boolean;
  readonly addresses: number;
  readonly scannerAddresses: number;
  readonly scannerUserAgent: string;
  readonly failuresShort: number;
  readonly failuresLong: number;
  readonly failingUsers: number;
  readonly unansweredShort: number;
  readonly unansweredLong: number;
  /** Calls: a host inside was proven by an answered call; distinct probed numbers (long horizon). */
  readonly provenByCalls: boolean;
  readonly callNumbersLong: number;
  readonly callCostlyNumbersLong: number;
  /** Whether a rule's `value` reads a window with no count kept here in its length (see HostFacts). */
  uncounted(value: (f: PrefixFacts) => number): boolean;
}

interface RuleBase<F> {
  readonly id: RuleId;
  /** The fact it reads (a field of the scope's facts value). */
  readonly fact: string;
  /** The settings keys its threshold (and condition) come from, for the docs and `fsguard policy`. */
  readonly keys: readonly PolicyKey[];
  readonly value: (f: F) => number;
  readonly threshold: (s: PolicySettings, f: F) => number;
  /** A condition besides value ≥ threshold (null: none). */
  readonly when: ((f: F, s: PolicySettings) => boolean) | null;
  /** The rule in words, with its numbers (`fsguard policy`, docs/policy.md). */
  readonly summary: (s: PolicySettings) => string;
  /** The ban's reason sentence. */
  readonly reason: (f: F, s: PolicySettings) => string;
  /** What explain prints beside value/threshold. */
  readonly explain: (f: F, s: PolicySettings) => string;
  /** Raises near_miss alerts at nearMissFraction of its threshold (counting rules only). */
  readonly nearMiss: boolean;
  /** Reads answered failures only: on UDP they can be forged (see forgedFailureShieldUsers). */
  readonly answeredFailures: boolean;
  /** The real-world situation it answers (docs/policy.md). */
  readonly situation: string;
}

export interface HostRule extends RuleBase<HostFacts> {
  readonly scope: 'unproven_source' | 'proven_site';
}

export interface PrefixRule extends RuleBase<PrefixFacts> {
  readonly scope: 'ipv6_prefix';
}

export type Rule = HostRule | PrefixRule;

function who(f: HostFacts): string {
  return f.answered ? 'a source that answered challenges but never authenticated successfully' : 'a source that never proved itself legitimate';
}

/** What a probing call is, in the rules' sentences. */
const PROBING = 'unauthenticated calls in a public context ending unrouted or refused';

function spread(f: PrefixFacts): string {
  return `spread over ${f.addresses} addresses of ${f.key}, none proven legitimate`;
}

/** Distinct failing users a source may show before credential_scan: grows with the site. */
export function credentialScanTolerance(s: PolicySettings, workingUsers: number): number {
  return s.credentialScanUsers + Math.floor(s.credentialScanUsersPerSiteUser * workingUsers);
}

/** Host rules, in the order the verdict tries them (the first that holds bans). */
export const HOST_RULES: readonly HostRule[] = [
  {
    id: 'scanner_user_agent', scope: 'unproven_source', fact: 'scannerUserAgent', keys: ['scannerUserAgents'],
    value: (f) => (f.scannerUserAgent !== '' ? 1 : 0), threshold: () => 1, when: null,
    summary: (s) => `one request whose user agent names an attack tool (${s.scannerUserAgents.length} patterns, e.g. ${s.scannerUserAgents.slice(0, 4).join(', ')})`,
    reason: (f) => `user agent ${quoted(f.scannerUserAgent)} is a SIP attack tool, sent from ${who(f)}`,
    explain: (f) => (f.scannerUserAgent !== '' ? `attack-tool user agent ${quoted(f.scannerUserAgent)} seen` : 'no attack-tool user agent seen'),
    nearMiss: false, answeredFailures: false,
    situation: 'scanners announce themselves (friendly-scanner, sipvicious, sipcli, …): banned at the first packet; never a proven site (a forged agent on a forged packet)',
  },
  {
    id: 'brute_force', scope: 'unproven_source', fact: 'failuresShort', keys: ['bruteForceFailures', 'shortWindowSeconds'],
    value: (f) => f.failuresShort, threshold: (s) => s.bruteForceFailures, when: null,
    summary: (s) => `${s.bruteForceFailures} answered authentication failures within about ${humanSeconds(s.shortWindowSeconds)}`,
    reason: (f, s) => `${s.bruteForceFailures} answered authentication failures within ${humanSeconds(s.shortWindowSeconds)} (users ${f.sampleUsers.slice(0, 4).join(', ') || 'unknown'}) from ${who(f)}`,
    explain: (_f, s) => `answered failures, in the last ${humanSeconds(s.shortWindowSeconds)}`,
    nearMiss: true, answeredFailures: true,
    situation: 'a password cracker, at any rate above one guess per 10 s',
  },
  {
    id: 'credential_scan', scope: 'unproven_source', fact: 'failingUsers', keys: ['credentialScanUsers', 'credentialScanUsersPerSiteUser', 'longWindowSeconds'],
    value: (f) => f.failingUsers, threshold: (s, f) => credentialScanTolerance(s, f.workingUsers), when: null,
    summary: (s) => `${s.credentialScanUsers} distinct users failing, none succeeding, within ${humanSeconds(s.longWindowSeconds)}`,
    reason: (f, s) => `${f.failingUsers} distinct users failed authentication and none succeeded, from ${who(f)} (tolerance ${credentialScanTolerance(s, f.workingUsers) - 1})`,
    explain: (f, s) => `distinct users failing and never succeeding here (${s.credentialScanUsers} + ${s.credentialScanUsersPerSiteUser} × ${f.workingUsers} working users)`,
    nearMiss: true, answeredFailures: true,
    situation: 'one guessed password per extension, at any rate',
  },
  {
    // A host of an IPv6 subnet where a proven host lives is probably one of the site's own
    // devices (IPv6 sites need no NAT): a slow trickle of failures there is a misprovisioned
    // phone (alerted), not slow guessing. The fast rules still ban the single host.
    id: 'slow_guessing', scope: 'unproven_source', fact: 'failuresLong', keys: ['slowGuessingFailures', 'longWindowSeconds'],
    value: (f) => f.failuresLong, threshold: (s) => s.slowGuessingFailures, when: (f) => !f.inProvenPrefix,
    summary: (s) => `${s.slowGuessingFailures} answered failures within about ${humanSeconds(s.longWindowSeconds)} (guessing below any short window; not for a host of a /64 holding a proven host)`,
    reason: (f, s) => `${s.slowGuessingFailures} answered authentication failures within ${humanSeconds(s.longWindowSeconds)}, below any short window, from ${who(f)}`,
    explain: (_f, s) => `answered failures, in the last ${humanSeconds(s.longWindowSeconds)}`,
    nearMiss: true, answeredFailures: true,
    situation: 'guessing below any short window (one guess every 90 s or slower)',
  },
  {
    id: 'pipelined_cracker', scope: 'unproven_source', fact: 'sameUserRun', keys: ['sameUserChallenges', 'answerTimeoutSeconds'],
    value: (f) => f.sameUserRun, threshold: (s) => s.sameUserChallenges, when: null,
    summary: (s) => `${s.sameUserChallenges} requests in a row for one user, each within ${humanSeconds(s.answerTimeoutSeconds)} of the last (a phone sends one at a time)`,
    reason: (f, s) => `${f.sameUserRun} requests in a row for user ${f.sameUserRunUser}, each within ${humanSeconds(s.answerTimeoutSeconds)} of the last, from ${who(f)}: a pipelined password cracker (a phone sends one at a time)`,
    explain: (f, s) => `challenges in a row for user ${quoted(f.sameUserRunUser)}, each within ${humanSeconds(s.answerTimeoutSeconds)} of the last`,
    nearMiss: false, answeredFailures: false,
    situation: 'a cracker pipelining requests (1000/s) is banned before its answers arrive',
  },
  {
    // Nothing is concluded before an answer could have come back: the oldest challenge must
    // have waited longer than the slowest link answers (challengeFloodAgeSeconds), or, for a
    // source that answered before, longer than slowLinkFactor × its own slowest answer. A
    // source whose answers keep coming (a site on a congested link) is no flood at all.
    id: 'challenge_flood', scope: 'unproven_source', fact: 'pendingChallenges', keys: ['challengeFloodOutstanding', 'challengeFloodAgeSeconds', 'slowLinkFactor'],
    value: (f) => f.pendingChallenges, threshold: (s) => s.challengeFloodOutstanding,
    when: (f) => !f.answeringNow && f.oldestPendingAgeUs >= f.answerWaitUs,
    summary: (s) => `${s.challengeFloodOutstanding} challenges outstanding with the oldest unanswered for ${humanSeconds(s.challengeFloodAgeSeconds)} (or ${s.slowLinkFactor} × the source's slowest answer) and no answer within the short window`,
    reason: (f) => `${f.pendingChallenges} challenges outstanding, the oldest unanswered for ${humanSeconds(Math.round(f.oldestPendingAgeUs / 1000) / 1000)}, longer than any answer of its link, from ${who(f)}: a scanner or INVITE flood`,
    explain: (f) => `challenges outstanding, none answered lately, the oldest for ${humanSeconds(Math.round(f.oldestPendingAgeUs / 1000) / 1000)} (counts from ${humanSeconds(Math.round(f.answerWaitUs / 1000) / 1000)})`,
    nearMiss: false, answeredFailures: false,
    situation: 'scanners and INVITE floods that never answer, banned as soon as an answer over the slowest link (RTT 1.5 s, and one resend of a lost packet) is overdue; a site on a congested link keeps answering, so it never is',
  },
  {
    id: 'unanswered_challenges', scope: 'unproven_source', fact: 'unansweredShort', keys: ['unansweredChallenges', 'shortWindowSeconds', 'answerTimeoutSeconds'],
    value: (f) => f.unansweredShort, threshold: (s) => s.unansweredChallenges, when: null,
    summary: (s) => `${s.unansweredChallenges} challenges unanswered after ${humanSeconds(s.answerTimeoutSeconds)} within about ${humanSeconds(s.shortWindowSeconds)} (an answer arriving later takes its count back)`,
    reason: (_f, s) => `${s.unansweredChallenges} challenges left unanswered within ${humanSeconds(s.shortWindowSeconds)} from a source that never proved itself legitimate: an extension scanner or toll-fraud INVITE flood`,
    explain: (_f, s) => `challenges unanswered after ${humanSeconds(s.answerTimeoutSeconds)}, in the last ${humanSeconds(s.shortWindowSeconds)}`,
    nearMiss: true, answeredFailures: false,
    situation: 'extension scanners and toll-fraud INVITE floods, which never answer the 401/407',
  },
  {
    id: 'slow_unanswered_challenges', scope: 'unproven_source', fact: 'unansweredLong', keys: ['slowUnansweredChallenges', 'longWindowSeconds'],
    value: (f) => f.unansweredLong, threshold: (s) => s.slowUnansweredChallenges, when: (f) => !f.inProvenPrefix,
    summary: (s) => `${s.slowUnansweredChallenges} unanswered challenges within about ${humanSeconds(s.longWindowSeconds)}`,
    reason: (_f, s) => `${s.slowUnansweredChallenges} challenges left unanswered within ${humanSeconds(s.longWindowSeconds)} from a source that never proved itself legitimate: a slow scanner`,
    explain: (_f, s) => `unanswered challenges, in the last ${humanSeconds(s.longWindowSeconds)}`,
    nearMiss: true, answeredFailures: false,
    situation: 'a slow scanner',
  },
  {
    id: 'foothold_credential_scan', scope: 'proven_site', fact: 'failingUsers', keys: ['credentialScanUsers', 'credentialScanUsersPerSiteUser', 'longWindowSeconds'],
    value: (f) => f.failingUsers, threshold: (s, f) => credentialScanTolerance(s, f.workingUsers), when: null,
    summary: (s) => `failures spread over more distinct users than the site explains: ${s.credentialScanUsers} + ${s.credentialScanUsersPerSiteUser} per user that works there (a stolen account used as a foothold)`,
    reason: (f, s) => `${f.failingUsers} distinct users failed authentication from ${f.key} and never succeeded there, more than a site with ${f.workingUsers} working users explains (tolerance ${credentialScanTolerance(s, f.workingUsers) - 1}): a scan through a foothold account`,
    explain: (f, s) => `distinct users failing and never succeeding here (${s.credentialScanUsers} + ${s.credentialScanUsersPerSiteUser} × ${f.workingUsers} working users)`,
    nearMiss: true, answeredFailures: true,
    situation: 'a stolen account used as a foothold to scan other extensions; a 500-phone site with a few stale phones, or a shift start where one in five mistypes, stays far below',
  },
  {
    id: 'proven_source_brute_force', scope: 'proven_site', fact: 'worstUserFailuresShort', keys: ['provenBruteForceFailures', 'shortWindowSeconds'],
    value: (f) => f.worstUserFailuresShort, threshold: (s) => s.provenBruteForceFailures, when: (_f, s) => s.provenBruteForceFailures > 0,
    summary: (s) => (s.provenBruteForceFailures > 0 ? `one user failing ${s.provenBruteForceFailures} times within about ${humanSeconds(s.shortWindowSeconds)} (no phone retries that fast)` : 'disabled (provenBruteForceFailures 0)'),
    reason: (f, s) => `user ${f.worstUser} failed authentication about ${s.provenBruteForceFailures} times within ${humanSeconds(s.shortWindowSeconds)} from ${f.key}, far faster than any phone retries: password cracking through a site address`,
    explain: (_f, s) => `failures of one user at a proven site, in the last ${humanSeconds(s.shortWindowSeconds)}`,
    nearMiss: false, answeredFailures: true,
    situation: 'password cracking through the address of a site: no phone retries that fast',
  },
  // ---- calls (lib/policy/calls): only sources no answered call proved (carriers, trunks)
  {
    id: 'call_scanner_user_agent', scope: 'unproven_source', fact: 'callScannerUserAgent', keys: ['scannerUserAgents'],
    value: (f) => (f.callScannerUserAgent !== '' ? 1 : 0), threshold: () => 1, when: (f) => !f.provenByCalls,
    summary: () => 'one unauthenticated call whose user agent names an attack tool',
    reason: (f) => `an unauthenticated call from ${f.key} carried the attack-tool user agent ${quoted(f.callScannerUserAgent)}`,
    explain: (f) => (f.callScannerUserAgent !== '' ? `attack-tool user agent ${quoted(f.callScannerUserAgent)} on a call` : 'no attack-tool user agent on its calls'),
    situation: 'a SIP scanner calling the public profile announces itself (friendly-scanner, sipvicious, …): banned at its first call; never a source proven by answered calls',
    nearMiss: false, answeredFailures: false,
  },
  {
    id: 'call_probing_international', scope: 'unproven_source', fact: 'callCostlyNumbersShort', keys: ['callProbeInternational', 'shortWindowSeconds', 'callInternationalPrefixes', 'callPremiumPrefixes'],
    value: (f) => f.callCostlyNumbersShort, threshold: (s) => s.callProbeInternational, when: (f) => !f.provenByCalls,
    summary: (s) => `${s.callProbeInternational} distinct international/premium numbers within about ${humanSeconds(s.shortWindowSeconds)}, ${PROBING}`,
    reason: (f, s) => `${f.key} dialled ${f.callCostlyNumbersShort} distinct international/premium numbers within ${humanSeconds(s.shortWindowSeconds)} (${f.sampleNumbers.slice(0, 4).join(', ')}), ${PROBING}: probing the dialplan for a route out`,
    explain: (_f, s) => `distinct international/premium numbers of probing calls, in the last ${humanSeconds(s.shortWindowSeconds)}`,
    situation: 'a scanner dialling 00…, 011…, 9011…, +… on the public profile to find a route out (no sofia auth event exists there): banned at its third number',
    nearMiss: true, answeredFailures: false,
  },
  {
    id: 'call_probing', scope: 'unproven_source', fact: 'callNumbersShort', keys: ['callProbeDestinations', 'shortWindowSeconds', 'callPublicContexts'],
    value: (f) => f.callNumbersShort, threshold: (s) => s.callProbeDestinations, when: (f) => !f.provenByCalls,
    summary: (s) => `${s.callProbeDestinations} distinct numbers within about ${humanSeconds(s.shortWindowSeconds)}, ${PROBING}`,
    reason: (f, s) => `${f.key} dialled ${f.callNumbersShort} distinct numbers within ${humanSeconds(s.shortWindowSeconds)} (${f.sampleNumbers.slice(0, 4).join(', ')}), ${PROBING}: scanning the dialplan`,
    explain: (_f, s) => `distinct numbers of probing calls, in the last ${humanSeconds(s.shortWindowSeconds)}`,
    situation: "a dialplan scan walking numbers or extensions on the public profile; a carrier's misdials never reach it (its answered calls prove it)",
    nearMiss: true, answeredFailures: false,
  },
  {
    id: 'slow_call_probing_international', scope: 'unproven_source', fact: 'callCostlyNumbersLong', keys: ['slowCallProbeInternational', 'longWindowSeconds'],
    value: (f) => f.callCostlyNumbersLong, threshold: (s) => s.slowCallProbeInternational, when: (f) => !f.provenByCalls,
    summary: (s) => `${s.slowCallProbeInternational} distinct international/premium numbers within about ${humanSeconds(s.longWindowSeconds)} (slow probing)`,
    reason: (f, s) => `${f.key} dialled ${f.callCostlyNumbersLong} distinct international/premium numbers within ${humanSeconds(s.longWindowSeconds)} (${f.sampleNumbers.slice(0, 4).join(', ')}), ${PROBING}: slow probing for a route out`,
    explain: (_f, s) => `distinct international/premium numbers of probing calls, in the last ${humanSeconds(s.longWindowSeconds)}`,
    situation: 'the same probe spread over hours (one call every few minutes) to stay under any short window',
    nearMiss: true, answeredFailures: false,
  },
  {
    id: 'slow_call_probing', scope: 'unproven_source', fact: 'callNumbersLong', keys: ['slowCallProbeDestinations', 'longWindowSeconds'],
    value: (f) => f.callNumbersLong, threshold: (s) => s.slowCallProbeDestinations, when: (f) => !f.provenByCalls,
    summary: (s) => `${s.slowCallProbeDestinations} distinct numbers within about ${humanSeconds(s.longWindowSeconds)} (slow dialplan scan)`,
    reason: (f, s) => `${f.key} dialled ${f.callNumbersLong} distinct numbers within ${humanSeconds(s.longWindowSeconds)} (${f.sampleNumbers.slice(0, 4).join(', ')}), ${PROBING}: slow dialplan scan`,
    explain: (_f, s) => `distinct numbers of probing calls, in the last ${humanSeconds(s.longWindowSeconds)}`,
    situation: 'a slow dialplan scan: one call every few minutes for a day',
    nearMiss: true, answeredFailures: false,
  },
];

/** Prefix rules: the host rules' thresholds, over evidence from several unproven addresses. */
export const PREFIX_RULES: readonly PrefixRule[] = [
  {
    id: 'ipv6_prefix_scanner_user_agent', scope: 'ipv6_prefix', fact: 'scannerAddresses', keys: ['scannerUserAgents', 'prefixMinAddresses'],
    value: (f) => f.scannerAddresses, threshold: (s) => s.prefixMinAddresses, when: null,
    summary: (s) => `an attack-tool user agent from ${s.prefixMinAddresses} addresses`,
    reason: (f) => `attack-tool user agent ${quoted(f.scannerUserAgent)} from ${f.scannerAddresses} addresses of ${f.key}, none proven legitimate: address rotation`,
    explain: () => 'addresses with an attack-tool user agent',
    nearMiss: false, answeredFailures: false,
    situation: 'an attack tool rotating addresses inside its /64',
  },
  {
    id: 'ipv6_prefix_brute_force', scope: 'ipv6_prefix', fact: 'failuresShort', keys: ['bruteForceFailures', 'shortWindowSeconds'],
    value: (f) => f.failuresShort, threshold: (s) => s.bruteForceFailures, when: null,
    summary: (s) => `${s.bruteForceFailures} answered failures within about ${humanSeconds(s.shortWindowSeconds)}`,
    reason: (f, s) => `${s.bruteForceFailures} answered authentication failures within ${humanSeconds(s.shortWindowSeconds)} ${spread(f)}: address rotation`,
    explain: (_f, s) => `answered failures in the last ${humanSeconds(s.shortWindowSeconds)}`,
    nearMiss: true, answeredFailures: true,
    situation: 'a cracker rotating addresses inside its /64',
  },
  {
    id: 'ipv6_prefix_credential_scan', scope: 'ipv6_prefix', fact: 'failingUsers', keys: ['credentialScanUsers', 'longWindowSeconds'],
    value: (f) => f.failingUsers, threshold: (s) => s.credentialScanUsers, when: null,
    summary: (s) => `${s.credentialScanUsers} distinct failing users within ${humanSeconds(s.longWindowSeconds)}`,
    reason: (f) => `${f.failingUsers} distinct users failed authentication ${spread(f)}: address rotation`,
    explain: (_f, s) => `distinct failing users, in the last ${humanSeconds(s.longWindowSeconds)}`,
    nearMiss: true, answeredFailures: true,
    situation: 'a credential scan rotating addresses',
  },
  {
    id: 'ipv6_prefix_slow_guessing', scope: 'ipv6_prefix', fact: 'failuresLong', keys: ['slowGuessingFailures', 'longWindowSeconds'],
    value: (f) => f.failuresLong, threshold: (s) => s.slowGuessingFailures, when: null,
    summary: (s) => `${s.slowGuessingFailures} answered failures within about ${humanSeconds(s.longWindowSeconds)}`,
    reason: (f, s) => `${s.slowGuessingFailures} answered authentication failures within ${humanSeconds(s.longWindowSeconds)} ${spread(f)}: slow guessing with address rotation`,
    explain: (_f, s) => `answered failures in the last ${humanSeconds(s.longWindowSeconds)}`,
    nearMiss: true, answeredFailures: true,
    situation: 'slow guessing rotating addresses',
  },
  {
    id: 'ipv6_prefix_unanswered_challenges', scope: 'ipv6_prefix', fact: 'unansweredShort', keys: ['unansweredChallenges', 'shortWindowSeconds'],
    value: (f) => f.unansweredShort, threshold: (s) => s.unansweredChallenges, when: null,
    summary: (s) => `${s.unansweredChallenges} unanswered challenges within about ${humanSeconds(s.shortWindowSeconds)}`,
    reason: (f, s) => `${s.unansweredChallenges} challenges left unanswered within ${humanSeconds(s.shortWindowSeconds)} ${spread(f)}: scanning with address rotation`,
    explain: (_f, s) => `unanswered challenges in the last ${humanSeconds(s.shortWindowSeconds)}`,
    nearMiss: true, answeredFailures: false,
    situation: 'a scanner rotating addresses',
  },
  {
    id: 'ipv6_prefix_slow_unanswered_challenges', scope: 'ipv6_prefix', fact: 'unansweredLong', keys: ['slowUnansweredChallenges', 'longWindowSeconds'],
    value: (f) => f.unansweredLong, threshold: (s) => s.slowUnansweredChallenges, when: null,
    summary: (s) => `${s.slowUnansweredChallenges} unanswered challenges within about ${humanSeconds(s.longWindowSeconds)}`,
    reason: (f, s) => `${s.slowUnansweredChallenges} challenges left unanswered within ${humanSeconds(s.longWindowSeconds)} ${spread(f)}`,
    explain: (_f, s) => `unanswered challenges in the last ${humanSeconds(s.longWindowSeconds)}`,
    nearMiss: true, answeredFailures: false,
    situation: 'a slow scanner rotating addresses',
  },
  {
    id: 'ipv6_prefix_call_probing_international', scope: 'ipv6_prefix', fact: 'callCostlyNumbersLong', keys: ['callProbeInternational', 'longWindowSeconds', 'prefixMinAddresses'],
    value: (f) => f.callCostlyNumbersLong, threshold: (s) => s.callProbeInternational, when: (f) => !f.provenByCalls,
    summary: (s) => `${s.callProbeInternational} distinct international/premium numbers of probing calls within about ${humanSeconds(s.longWindowSeconds)}`,
    reason: (f, s) => `${f.callCostlyNumbersLong} distinct international/premium numbers dialled within ${humanSeconds(s.longWindowSeconds)} ${spread(f)}, ${PROBING}: probing with address rotation`,
    explain: (_f, s) => `distinct international/premium numbers of probing calls, in the last ${humanSeconds(s.longWindowSeconds)}`,
    situation: 'a prober rotating addresses inside its /64, one call each',
    nearMiss: false, answeredFailures: false,
  },
  {
    id: 'ipv6_prefix_call_probing', scope: 'ipv6_prefix', fact: 'callNumbersLong', keys: ['callProbeDestinations', 'longWindowSeconds', 'prefixMinAddresses'],
    value: (f) => f.callNumbersLong, threshold: (s) => s.callProbeDestinations, when: (f) => !f.provenByCalls,
    summary: (s) => `${s.callProbeDestinations} distinct numbers of probing calls within about ${humanSeconds(s.longWindowSeconds)}`,
    reason: (f, s) => `${f.callNumbersLong} distinct numbers dialled within ${humanSeconds(s.longWindowSeconds)} ${spread(f)}, ${PROBING}: scanning with address rotation`,
    explain: (_f, s) => `distinct numbers of probing calls, in the last ${humanSeconds(s.longWindowSeconds)}`,
    situation: 'a dialplan scan rotating addresses inside its /64',
    nearMiss: false, answeredFailures: false,
  },
];

/** The host rules by scope, in table order (the verdict reads only the rows that can apply). */
const UNPROVEN_RULES: readonly HostRule[] = HOST_RULES.filter((r) => r.scope === 'unproven_source');
const SITE_RULES: readonly HostRule[] = HOST_RULES.filter((r) => r.scope === 'proven_site');

/** The whole table, host rules first (docs and `fsguard policy` list it in this order). */
export const RULES: readonly Rule[] = [...HOST_RULES, ...PREFIX_RULES];

export const RULE_IDS: readonly RuleId[] = RULES.map((r) => r.id);

export function isRuleId(text: string): text is RuleId {
  return (RULE_IDS as readonly string[]).includes(text);
}

/** A rule that holds: which, and why. */
export interface Verdict {
  readonly rule: RuleId;
  readonly reason: string;
}

/** How close one target is to one rule (explain, near-miss alerts, status). */
export interface RuleStatus {
  readonly rule: RuleId;
  readonly scope: RuleScope;
  /** Whether the rule can ban this target now (its scope and condition hold). */
  readonly applies: boolean;
  readonly value: number;
  /** Its window has no count kept in this profile's length: `value` (0) is no count (HostFacts.uncounted). */
  readonly uncounted: boolean;
  readonly threshold: number;
  readonly description: string;
}

function hostScopeHolds(r: HostRule, f: HostFacts): boolean {
  return r.scope === 'proven_site' ? f.proven : !f.proven;
}

/** A prefix is judged only when no proven host lives in it and its evidence is spread. */
export function prefixJudged(f: PrefixFacts, s: PolicySettings): boolean {
  return !f.proven && f.addresses >= s.prefixMinAddresses;
}

/**
 * The first host rule that holds, or null. `skipAnsweredFailures`: the site is shielded from
 * bans on answered failures (they can be forged), so rules reading only them do not ban.
 */
export function hostVerdict(f: HostFacts, s: PolicySettings, skipAnsweredFailures = false): Verdict | null {
  const rules = f.proven ? SITE_RULES : UNPROVEN_RULES;
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i]!;
    if (skipAnsweredFailures && r.answeredFailures) continue;
    if (r.value(f) >= r.threshold(s, f) && (r.when === null || r.when(f, s))) return { rule: r.id, reason: r.reason(f, s) };
  }
  return null;
}

/** The host rules that would hold if the site were not shielded (the forged_failures alert). */
export function shieldedVerdict(f: HostFacts, s: PolicySettings): Verdict | null {
  const rules = f.proven ? SITE_RULES : UNPROVEN_RULES;
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i]!;
    if (!r.answeredFailures) continue;
    if (r.value(f) >= r.threshold(s, f) && (r.when === null || r.when(f, s))) return { rule: r.id, reason: r.reason(f, s) };
  }
  return null;
}

export function prefixVerdict(f: PrefixFacts, s: PolicySettings): Verdict | null {
  if (!prefixJudged(f, s)) return null;
  for (const r of PREFIX_RULES) {
    if (r.value(f) >= r.threshold(s, f) && (r.when === null || r.when(f, s))) return { rule: r.id, reason: r.reason(f, s) };
  }
  return null;
}

/**
 * The first near-miss: a counting rule of the target's scope at nearMissFraction of its
 * threshold (and at least 2), not yet over it. The same numbers explain prints.
 */
export function hostNearMiss(f: HostFacts, s: PolicySettings): RuleStatus | null {
  const rules = f.proven ? SITE_RULES : UNPROVEN_RULES;
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i]!;
    if (!r.nearMiss) continue;
    const v = r.value(f);
    const t = r.threshold(s, f);
    // A near miss is a count of 2 or more: counted.
    if (v >= 2 && v >= s.nearMissFraction * t && v < t && (r.when === null || r.when(f, s))) {
      return { rule: r.id, scope: r.scope, applies: true, value: v, uncounted: false, threshold: t, description: r.explain(f, s) };
    }
  }
  return null;
}

export function prefixNearMiss(f: PrefixFacts, s: PolicySettings): RuleStatus | null {
  if (!prefixJudged(f, s)) return null;
  for (const r of PREFIX_RULES) {
    if (!r.nearMiss) continue;
    const v = r.value(f);
    const t = r.threshold(s, f);
    if (v >= 2 && v >= s.nearMissFraction * t && v < t) return { rule: r.id, scope: r.scope, applies: true, value: v, uncounted: false, threshold: t, description: r.explain(f, s) };
  }
  return null;
}

/** Every host rule with its value and threshold now. */
export function hostRuleStatus(f: HostFacts, s: PolicySettings): RuleStatus[] {
  return HOST_RULES.map((r) => ({
    rule: r.id, scope: r.scope,
    applies: hostScopeHolds(r, f) && (r.when === null || r.when(f, s)),
    value: r.value(f), uncounted: f.uncounted(r.value), threshold: r.threshold(s, f), description: r.explain(f, s),
  }));
}

export function prefixRuleStatus(f: PrefixFacts, s: PolicySettings): RuleStatus[] {
  const judged = prefixJudged(f, s);
  return PREFIX_RULES.map((r) => ({
    rule: r.id, scope: r.scope,
    applies: judged && (r.when === null || r.when(f, s)),
    value: r.value(f), uncounted: f.uncounted(r.value), threshold: r.threshold(s, f), description: r.explain(f, s),
  }));
}

/** The near-miss line of an alert: "brute_force at 5 of 6". */
export function nearMissText(st: RuleStatus): string {
  return `${st.rule} at ${fmt(st.value)} of ${st.threshold}`;
}

/** Scope names in words (docs, `fsguard policy`). */
export const SCOPE_WORDS: Readonly<Record<RuleScope, string>> = {
  unproven_source: 'source not proven legitimate',
  proven_site: 'proven site',
  ipv6_prefix: 'IPv6 prefix',
};
