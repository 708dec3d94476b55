// "Sources closest to a threshold", behind one seam. The policy is gaining
// nearestThresholds(limit) in its inspection (TEAM.md); until a policy has it, the same
// answer is computed from what every RatePolicy has: inspect() of the sources seen most
// recently (a small ring the guard fills, two array stores per event). The status code only
// ever calls ThresholdInspection.
import type { EvidenceSnapshot } from '../policy/engine.js';

export interface NearThreshold {
  readonly source: string;
  readonly profile: string;
  readonly rule: string;
  readonly value: number;
  readonly threshold: number;
  /** value / threshold, below 1 (at 1 the rule bans). */
  readonly fraction: number;
}

export interface ThresholdInspection {
  nearestThresholds(limit: number): NearThreshold[];
}

/** What the status needs of a policy: the agreed method when it has it, else inspect(). */
export interface InspectablePolicy {
  inspect(target: string, profile?: string): EvidenceSnapshot | null;
  nearestThresholds?(limit: number): ReadonlyArray<NearThreshold>;
}

/** The last RING_SIZE (source, profile) pairs the guard saw: the fallback's candidates. */
export class RecentSources {
  static readonly RING_SIZE = 512;
  private readonly sources: string[] = new Array<string>(RecentSources.RING_SIZE).fill('');
  private readonly profiles: string[] = new Array<string>(RecentSources.RING_SIZE).fill('');
  private next = 0;

  /** Hot path: two stores and an increment. */
  note(source: string, profile: string): void {
    const i = this.next;
    this.sources[i] = source;
    this.profiles[i] = profile;
    this.next = (i + 1) & (RecentSources.RING_SIZE - 1);
  }

  /** Distinct pairs, most recent first. */
  distinct(): Array<{ source: string; profile: string }> {
    const seen = new Set<string>();
    const out: Array<{ source: string; profile: string }> = [];
    for (let k = 1; k <= RecentSources.RING_SIZE; k++) {
      const i = (this.next - k + RecentSources.RING_SIZE) & (RecentSources.RING_SIZE - 1);
      const source = this.sources[i]!;
      if (!source) break;
      const key = `${source} ${this.profiles[i]!}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ source, profile: this.profiles[i]! });
    }
    return out;
  }
}

/** From one snapshot: the rule (among those that can ban it now) it is closest to. */
export function closestRule(snapshot: EvidenceSnapshot, profile: string, nowUs: number): NearThreshold | null {
  // Banned already, or never bannable: not "close" to anything.
  if (snapshot.allowed || snapshot.bannedUntilUs > nowUs) return null;
  let best: NearThreshold | null = null;
  for (const r of snapshot.rules) {
    if (!r.applies || !(r.threshold > 0) || r.value <= 0 || r.value >= r.threshold) continue;
    const fraction = r.value / r.threshold;
    if (!best || fraction > best.fraction) best = { source: snapshot.target, profile, rule: r.rule, value: r.value, threshold: r.threshold, fraction };
  }
  return best;
}

/** The one seam: `policy` is read on every call (a config reload replaces it). */
export function thresholdInspection(policy: () => InspectablePolicy, recent: RecentSources, nowMs: () => number): ThresholdInspection {
  return {
    nearestThresholds(limit: number): NearThreshold[] {
      const p = policy();
      if (typeof p.nearestThresholds === 'function') return [...p.nearestThresholds(limit)].slice(0, limit);
      const found: NearThreshold[] = [];
      const nowUs = nowMs() * 1000;
      for (const { source, profile } of recent.distinct()) {
        const snap = p.inspect(source, profile);
        const near = snap ? closestRule(snap, profile, nowUs) : null;
        if (near) found.push(near);
      }
      return found.sort((a, b) => b.fraction - a.fraction || a.source.localeCompare(b.source)).slice(0, limit);
    },
  };
}
