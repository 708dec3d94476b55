// Alerts: what an operator should hear about without anyone being banned. A phone with a
// stale password at a working site, forged challenges or forged failures framing a site, a
// source close to a threshold. Each is rate-limited per source (and user).
import type { AuthEvent } from '../events/auth-event.js';
import type { RuleSettings } from './compiled-settings.js';
import { countOf } from './counters.js';
import type { HostFactsView, PrefixFactsView } from './facts.js';
import { hostNearMiss, nearMissText, prefixNearMiss, type Verdict } from './rules.js';
import { fewFirst, fewList, type EvidenceState, type PrefixState, type SourceState } from './source-state.js';
import type { AlertKind, PolicyAlert } from './types.js';
import { fmt, humanSeconds, quoted } from './words.js';

/** Users named in a forged_failures alert. */
const ALERT_USERS = 8;
/** Near misses held at once; past it the oldest is raised early (said, never lost). */
const HELD_NEAR_MISSES_MAX = 20_000;

/** A near miss waiting to see whether its source is banned before the hold passes. */
interface HeldNearMiss {
  /** The target (host or prefix) and, for a host, the prefix a ban of which covers it. */
  readonly key: string;
  readonly prefixKey: string | null;
  readonly profile: string;
  /** What came close: rule, count and threshold, as they were when it did. */
  readonly what: string;
  readonly userAgent: string | undefined;
  readonly notedUs: number;
  readonly dueUs: number;
}

/** Whether `key` was banned after `sinceUs` (its ban, running or over, ends later). */
export type BannedSince = (key: string, sinceUs: number) => boolean;

export class AlertDesk {
  private out: PolicyAlert[] | null = null;
  /** Near misses in due order (the hold is policy-wide), from `heldHead` on. */
  private held: HeldNearMiss[] = [];
  private heldHead = 0;

  /** `holdUs`: nearMissHoldSeconds; `bannedSince`: the ban ledger's answer. */
  constructor(private readonly holdUs: number, private readonly bannedSince: BannedSince) {}

  /** The alerts raised since the last take (null: none). */
  take(): PolicyAlert[] | null {
    const a = this.out;
    this.out = null;
    return a;
  }

  raise(kind: AlertKind, source: string, profile: string, message: string, now: number, user?: string, userAgent?: string): void {
    const a: PolicyAlert = { kind, source, profile, message, atUs: now, ...(user !== undefined ? { user } : {}), ...(userAgent !== undefined ? { userAgent } : {}) };
    (this.out ??= []).push(a);
  }

  /** An alert decided elsewhere (the call evidence's toll_fraud). */
  add(a: PolicyAlert): void {
    (this.out ??= []).push(a);
  }

  /** A host judged and not banned: the alerts its evidence calls for. */
  host(s: SourceState, f: HostFactsView, rs: RuleSettings, now: number, e: AuthEvent | null): void {
    const r = rs.raw;
    const proven = f.proven;
    if (proven || f.inProvenPrefix) {
      // A phone with a stale password at a working site: tell the admin, do not ban the site.
      if (e !== null && e.kind === 'attempt' && e.result === 'forbidden' && s.users !== null) {
        const user = e.authUser !== '' && e.authUser !== 'unknown' ? e.authUser : e.fromUser;
        const rec = s.users.get(user);
        if (rec !== undefined && rec.streak >= r.misprovisionedFailures && now - rec.lastAlertUs >= rs.alertIntervalUs) {
          rec.lastAlertUs = now;
          const since = rec.succeededUs > 0 ? 'since its last success' : 'and it never succeeded here';
          this.raise('misprovisioned_device', s.key, rs.profile,
            `user ${user} at ${s.key} (${rec.userAgent || 'no user agent'}) failed authentication ${rec.streak} times ${since}: a device with a stale or wrong password; the site is not banned`,
            now, user, rec.userAgent);
        }
      }
      if (!proven) return;
      // Unanswered challenges at a proven site: someone forges its address (or phones lose 401s).
      if (e === null && now - s.lastSpoofAlertUs >= rs.alertIntervalUs && countOf(s.unansShort, now, rs.shortWindow) >= r.unansweredChallenges) {
        s.lastSpoofAlertUs = now;
        this.raise('spoofed_challenges', s.key, rs.profile,
          `${r.unansweredChallenges}+ challenges to ${s.key} went unanswered within ${humanSeconds(r.shortWindowSeconds)} although it is a proven site: forged requests (last user agent ${quoted(s.lastUa)}); not banned`,
          now, undefined, s.lastUa || undefined);
      }
    }
    // Rate-limited anyway: not even looked for while the last one is recent, nor where no
    // counting rule has anything to count (a sprayed address's one challenge).
    if (now - s.lastNearMissUs < rs.alertIntervalUs) return;
    if (s.failShort === null && s.failLong === null && s.unansShort === null && s.unansLong === null && s.failingUsers === 0) return;
    const near = hostNearMiss(f, r);
    if (near !== null) this.nearMiss(s, s.prefixKey, rs, now, `${nearMissText(near)} (${near.description})`);
  }

  prefix(p: PrefixState, f: PrefixFactsView, rs: RuleSettings, now: number): void {
    if (now - p.lastNearMissUs < rs.alertIntervalUs) return;
    const near = prefixNearMiss(f, rs.raw);
    if (near !== null) this.nearMiss(p, null, rs, now, `${nearMissText(near)} (${near.description})`);
  }

  /**
   * A shielded site (live registrations of several users, failures that can be forged) would
   * have been banned on answered failures: name the users, the rate, and both explanations.
   */
  forgedFailures(s: SourceState, f: HostFactsView, v: Verdict, rs: RuleSettings, now: number): void {
    const d = s.detail();
    if (now - d.lastShieldAlertUs < rs.alertIntervalUs) return;
    d.lastShieldAlertUs = now;
    const failing: string[] = [];
    if (s.users !== null) {
      for (const [u, rec] of s.users) {
        if (rec.streak > 0 && now - rec.lastFailureUs <= rs.longWindow.us) failing.push(u);
        if (failing.length >= ALERT_USERS) break;
      }
    }
    const users = failing.length ? failing : fewList(s.userSample).slice(0, ALERT_USERS);
    this.raise('forged_failures', s.key, rs.profile,
      `${s.key} holds live registrations of ${f.workingUsers} users, yet ${fmt(f.failuresShort)} answered failures came from it within ${humanSeconds(rs.raw.shortWindowSeconds)} ` +
      `(users ${users.join(', ') || 'unknown'}; ${v.rule} would have banned it: ${v.reason}). Either someone forges them over UDP with a nonce obtained elsewhere ` +
      '(FreeSWITCH does not bind nonces to addresses), or a device inside the site is compromised. Not banned: look at the site, or put its profile on TCP/TLS',
      now, users[0], s.lastUa || undefined);
  }

  private nearMiss(st: EvidenceState, prefixKey: string | null, rs: RuleSettings, now: number, what: string): void {
    if (now - st.lastNearMissUs < rs.alertIntervalUs) return;
    st.lastNearMissUs = now;
    const ua = fewFirst(st.agentSample);
    if (this.holdUs === 0) {
      this.raise('near_miss', st.key, rs.profile, `${st.key} came close to a ban: ${what}`, now, undefined, ua);
      return;
    }
    if (this.held.length - this.heldHead >= HELD_NEAR_MISSES_MAX) this.releaseOne(now);
    this.held.push({ key: st.key, prefixKey, profile: rs.profile, what, userAgent: ua, notedUs: now, dueUs: now + this.holdUs });
  }

  /**
   * Raises the held near misses whose hold ends before `untilUs` and whose source was not banned
   * meanwhile, each at the end of its hold (the engine calls it in time order with the
   * challenges' deadlines, so the result does not depend on when it runs).
   */
  releaseDue(untilUs: number): void {
    const held = this.held;
    while (this.heldHead < held.length && held[this.heldHead]!.dueUs < untilUs) this.releaseOne(untilUs);
    if (this.heldHead === held.length) { if (this.heldHead > 0) { this.held = []; this.heldHead = 0; } }
    else if (this.heldHead > 1024 && this.heldHead * 2 > held.length) { this.held = held.slice(this.heldHead); this.heldHead = 0; }
  }

  /** True when a held near miss's hold ends before `untilUs` (the cheap test before releaseDue). */
  hasDue(untilUs: number): boolean {
    return this.heldHead < this.held.length && this.held[this.heldHead]!.dueUs < untilUs;
  }

  private releaseOne(now: number): void {
    const h = this.held[this.heldHead++]!;
    if (this.bannedSince(h.key, h.notedUs) || (h.prefixKey !== null && this.bannedSince(h.prefixKey, h.notedUs))) return;
    const at = Math.min(h.dueUs, now);
    this.raise('near_miss', h.key, h.profile,
      `${h.key} came close to a ban and was not banned ${humanSeconds((at - h.notedUs) / 1e6)} later: ${h.what}`, at, undefined, h.userAgent);
  }
}
