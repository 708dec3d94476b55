// Inspection: what explain, `fsguard status` and tests read about a target, built from the
// same facts values and rule table as the verdict (so explain cannot disagree with a ban).
import type { RuleSettings } from './compiled-settings.js';
import type { HostFactsView, PrefixFactsView } from './facts.js';
import { HOST_RULES, hostRuleStatus, prefixJudged, PREFIX_RULES, prefixRuleStatus, type RuleId, type RuleStatus } from './rules.js';
import type { PrefixState, SourceState } from './source-state.js';

export type { RuleStatus } from './rules.js';

export interface EvidenceSnapshot {
  readonly target: string;
  readonly kind: 'host' | 'prefix';
  readonly proven: boolean;
  readonly provenUntilUs: number;
  readonly answered: boolean;
  readonly allowed: boolean;
  readonly bannedUntilUs: number;
  readonly bannedRule: string;
  readonly graceUntilUs: number;
  readonly events: number;
  readonly challenges: number;
  readonly answeredFailures: number;
  readonly successes: number;
  readonly pendingChallenges: number;
  readonly failingUsers: number;
  readonly succeededUsers: number;
  readonly addresses: number;
  readonly scannerUserAgent: string;
  readonly rules: readonly RuleStatus[];
}

/** One target's distance to its nearest threshold (`fsguard status`). */
export interface NearThreshold {
  readonly source: string;
  readonly profile: string;
  readonly rule: RuleId;
  readonly value: number;
  readonly threshold: number;
  /** value / threshold, below 1 (a target at its threshold is banned, not near). */
  readonly fraction: number;
}

export function hostSnapshot(s: SourceState, f: HostFactsView, rs: RuleSettings, graceUntilUs: number): EvidenceSnapshot {
  return {
    target: s.key,
    kind: 'host',
    proven: f.proven,
    provenUntilUs: s.provenUntilUs,
    answered: s.answered,
    allowed: s.allowed,
    bannedUntilUs: s.bannedUntilUs,
    bannedRule: s.bannedRule,
    graceUntilUs,
    events: s.events,
    challenges: s.challenges,
    answeredFailures: s.answeredFailures,
    successes: s.successes,
    pendingChallenges: s.pendingSize(),
    failingUsers: s.failingUsers,
    succeededUsers: s.succeededUsers,
    addresses: 1,
    scannerUserAgent: s.scannerUa,
    rules: hostRuleStatus(f, rs.raw),
  };
}

export function prefixSnapshot(p: PrefixState, f: PrefixFactsView, rs: RuleSettings, graceUntilUs: number): EvidenceSnapshot {
  return {
    target: p.key,
    kind: 'prefix',
    proven: f.proven,
    provenUntilUs: p.provenUntilUs,
    answered: false,
    allowed: false,
    bannedUntilUs: p.bannedUntilUs,
    bannedRule: p.bannedRule,
    graceUntilUs,
    events: p.events,
    challenges: p.challenges,
    answeredFailures: p.answeredFailures,
    successes: p.successes,
    pendingChallenges: 0,
    failingUsers: p.failingUserCount,
    succeededUsers: 0,
    addresses: p.addressCount,
    scannerUserAgent: p.scannerUa,
    rules: prefixRuleStatus(f, rs.raw),
  };
}

/** The host's rule closest to banning it (that can ban it now), or null. */
export function nearestHostThreshold(s: SourceState, f: HostFactsView, rs: RuleSettings, profile: string): NearThreshold | null {
  let best: NearThreshold | null = null;
  const proven = f.proven;
  for (const r of HOST_RULES) {
    if ((r.scope === 'proven_site') !== proven) continue;
    const t = r.threshold(rs.raw, f);
    if (t <= 0) continue;
    const v = r.value(f);
    const fraction = v / t;
    if (v <= 0 || fraction >= 1 || (best !== null && fraction <= best.fraction)) continue;
    if (r.when !== null && !r.when(f, rs.raw) && r.id !== 'challenge_flood') continue;
    best = { source: s.key, profile, rule: r.id, value: v, threshold: t, fraction };
  }
  return best;
}

export function nearestPrefixThreshold(p: PrefixState, f: PrefixFactsView, rs: RuleSettings, profile: string): NearThreshold | null {
  if (f.proven) return null;
  let best: NearThreshold | null = null;
  const judged = prefixJudged(f, rs.raw);
  for (const r of PREFIX_RULES) {
    const t = r.threshold(rs.raw, f);
    const v = r.value(f);
    // Below prefixMinAddresses the prefix cannot be banned: it is as near as its address count allows.
    const fraction = judged ? v / t : Math.min(v / t, f.addresses / rs.raw.prefixMinAddresses);
    if (v <= 0 || fraction >= 1 || (best !== null && fraction <= best.fraction)) continue;
    best = { source: p.key, profile, rule: r.id, value: v, threshold: t, fraction };
  }
  return best;
}
