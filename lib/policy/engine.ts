// The rate policy: sofia auth events in, BanDecisions and PolicyAlerts out. Pure and
// deterministic: its only clock is the events' own time (clock.ts), and its only timer is the
// challenge queue's deadlines, processed in deadline order before any later event — so
// `fsguard policy simulate` replays a trace to exactly the decisions the daemon took.
//
// Where things are (docs/policy.md explains each rule and the situation it answers):
//   rules.ts            the rule table: every ban, its fact, threshold, reason, explain line
//   facts.ts            the facts values the rules read (views over the evidence)
//   source-state.ts     per-source and per-prefix evidence, and its memory layout
//   challenge-queue.ts  challenges awaiting an answer: the deadlines
//   tracking.ts         which sources are tracked, LRU caps and eviction
//   ban-ledger.ts       bans, repeat offences, grace periods, what is never banned
//   switch-addresses.ts FreeSWITCH's own addresses (never judged or banned)
//   alerts.ts           alerts (stale phones, forged challenges and failures, near misses)
//   inspect.ts          explain's snapshots and status's nearest thresholds
//   clock.ts            the one clock, bounded against single events and clock steps
//   this file           the evidence each event adds, and the judging
//
// What each event proves:
//   - A success (or a live registration FreeSWITCH reports) PROVES the source legitimate: a
//     site. Its unanswered challenges prove nothing (UDP can be forged), its users' failures
//     are misprovisioned phones (alert), and only failures spread over more users than the
//     site can explain ban it — unless the site holds live registrations of several users and
//     its profile takes UDP: then even answered failures can be forged (FreeSWITCH does not
//     bind a nonce to an address), and they raise a forged_failures alert instead.
//   - An answer to a challenge (a register_attempt of any result) shows the source is REAL.
//   - An UNPROVEN source is judged on answered failures, on challenges it never answers (only
//     once an answer could have come back over the slowest link), and on attack-tool agents.
//   - IPv6 evidence from unproven hosts is also added up per prefix (/64 by default).
import type { AuthEvent, LiveRegistration } from '../events/auth-event.js';
import type { CallEvent } from '../events/call-event.js';
import { ACCOUNT_NOTE_US, CallPolicy } from './calls/call-policy.js';
import { ipv6PrefixText, parseCidr, type Cidr, type IpAddress } from '../net/ip.js';
import { AlertDesk } from './alerts.js';
import { BanLedger } from './ban-ledger.js';
import { SwitchAddresses } from './switch-addresses.js';
import { ChallengeQueue } from './challenge-queue.js';
import { PolicyClock, type ClockReading, type ClockStats } from './clock.js';
import { compileSettings, US, type RuleSettings } from './compiled-settings.js';
import { counted, takeBack } from './counters.js';
import { HostFactsView, PrefixFactsView } from './facts.js';
import {
  hostSnapshot, nearestHostThreshold, nearestPrefixThreshold, prefixSnapshot, type EvidenceSnapshot, type NearThreshold,
} from './inspect.js';
import { hostVerdict, prefixVerdict, shieldedVerdict, type Verdict } from './rules.js';
import { allowedEverywhere, longestLongWindowSeconds, settingsForProfile, type PolicySettings } from './settings.js';
import { fewList, fewSize, PrefixState, SourceState, userSweepDue, userSweepPoint, type EvidenceState, type UserRecord } from './source-state.js';
import { SourceTracker } from './tracking.js';
import { BoundedMemo } from '../util/bounded-memo.js';
import type {
  BanDecision, CapacityStats, BanEvidence, EventGap, ExistingBan, Policy, PolicyAlert, PolicyOutput,
} from './types.js';

export type { EvidenceSnapshot, NearThreshold, RuleStatus } from './inspect.js';

/** A register_failure this close to a FORBIDDEN attempt from the same source is its echo. */
const FAILURE_PAIR_US = 2 * US;
/** Size of the user-agent → is-scanner memo (cleared when full, so a UA flood cannot grow it). */
const UA_MEMO_CAP = 4096;
/** Distinct user names shared at once (see userNames). */
const USER_NAME_POOL_CAP = 4096;
/** Profiles seen without an override of their own get a copy of the base under their name. */
const PROFILE_CAP = 256;
/** Event gaps remembered (challenges whose answer may have been lost in one are excused). */
const GAP_MEMORY = 16;
/** The timer looks through every tracked source's and prefix's users at most this often (policy time). */
const USER_TIMER_SWEEP_US = 60 * US;

/**
 * What most events decide: nothing. Shared, so never changed (readonly in its type), but its
 * arrays are not Object.freeze'd: V8 (Node 20) has no fast path for for-of over a frozen
 * array, and each such loop allocates an iterator — the guard's two loops over every event's
 * output did, twice an event (bench/RESULTS.md, session 10). The same holds for the other
 * shared empty arrays and FreeSWITCH's address lists.
 */
export const EMPTY_OUTPUT: PolicyOutput = Object.freeze({ bans: [] as readonly BanDecision[], alerts: [] as readonly PolicyAlert[] });

export interface PolicyOptions {
  /** Called for every ban as it is decided (the daemon logs through it). */
  readonly onDecision?: (decision: BanDecision) => void;
  /**
   * FreeSWITCH's addresses: the daemon's, which its guard (this node's events) and its cluster
   * (the node registry) fill and the policy only reads. Without: the policy's own, learnt from
   * the events it is fed (a replay, a test).
   */
  readonly switchAddresses?: SwitchAddresses;
}

function isLetter(code: number): boolean {
  return code >= 97 && code <= 122;
}

function isWordChar(code: number): boolean {
  return isLetter(code) || (code >= 48 && code <= 57);
}

/**
 * True when a pattern occurs in `lowerUa` as a word of its own: not inside another word
 * ("asmapp" is not `smap`) and not the start of a longer one ("pbx-gulpstream" is not `gulp`:
 * the scanner rule bans an unproven source at its first packet, so a phone whose product name
 * merely starts with a tool's would lock its whole office out before it could prove itself).
 * A digit may follow at once: tools glue versions to their names.
 */
export function matchesScannerPattern(lowerUa: string, patterns: readonly string[]): boolean {
  for (const p of patterns) {
    let at = lowerUa.indexOf(p);
    while (at !== -1) {
      const end = at + p.length;
      if ((at === 0 || !isWordChar(lowerUa.charCodeAt(at - 1))) && (end === lowerUa.length || !isLetter(lowerUa.charCodeAt(end)))) return true;
      at = lowerUa.indexOf(p, at + 1);
    }
  }
  return false;
}

/** The user an attempt is about: the digest username, or the From user when sofia has none. */
function attemptUser(e: { readonly authUser: string; readonly fromUser: string }): string {
  return e.authUser !== '' && e.authUser !== 'unknown' ? e.authUser : e.fromUser;
}

export class RatePolicy implements Policy {
  private readonly base: RuleSettings;
  private readonly byProfile = new Map<string, RuleSettings>();
  private readonly answerTimeoutUs: number;
  /**
   * The daemon's timer processes a deadline this long (maxSourceSkewSeconds) after it is due by
   * its monotonic clock: events still in flight, stamped before it (late threads, other nodes),
   * are judged first, as simulate judges them.
   */
  private readonly timerSlackUs: number;
  private readonly prefixLength: number;
  private readonly clock: PolicyClock;
  private readonly queue = new ChallengeQueue();
  private readonly ledger: BanLedger;
  private readonly switchAddresses: SwitchAddresses;
  /** Whether the policy learns FreeSWITCH's addresses from its events itself (see PolicyOptions). */
  private readonly learnsSwitchAddresses: boolean;
  private readonly tracker: SourceTracker;
  private readonly alerts: AlertDesk;
  private readonly hostFacts: HostFactsView;
  private readonly prefixFacts: PrefixFactsView;
  /** Call evidence (lib/policy/calls): the call rows of the rule table read it through the facts views. */
  private readonly calls: CallPolicy;
  private readonly uaMemo = new BoundedMemo<string, boolean>(UA_MEMO_CAP);
  /**
   * One shared copy of each user name a challenge stores in a source's sample: each event brings
   * string objects of its own, and 100,000 sprayed sources naming the same few hundred users
   * each kept its own copy (2.3 MB of the heap under the bench's spray).
   */
  private readonly userNames = new BoundedMemo<string, string>(USER_NAME_POOL_CAP);
  /** Recent event gaps, in policy time. */
  private readonly gaps: { fromUs: number; toUs: number }[] = [];
  private bans: BanDecision[] | null = null;
  /** When the timer last looked through every tracked source's and prefix's users (sweepAllUsers). */
  private lastTimerSweepUs = -Infinity;
  /** Gaps noted and events they lacked, since the start. */
  readonly gapStats = { gaps: 0, missing: 0, excusedChallenges: 0 };

  constructor(
    settings: PolicySettings,
    overrides: Readonly<Record<string, Partial<PolicySettings>>> = {},
    private readonly options: PolicyOptions = {},
  ) {
    this.base = compileSettings('', settings);
    for (const name of Object.keys(overrides)) this.byProfile.set(name, compileSettings(name, settingsForProfile(settings, overrides, name), this.base));
    // Shared by every profile (settings.ts refuses them per profile): one queue, one clock.
    this.answerTimeoutUs = settings.answerTimeoutSeconds * US;
    this.timerSlackUs = settings.maxSourceSkewSeconds * US;
    this.prefixLength = settings.ipv6PrefixLength;
    this.clock = new PolicyClock({
      maxEventLeadUs: settings.maxEventLeadSeconds * US,
      maxSourceSkewUs: settings.maxSourceSkewSeconds * US,
      clockStepUs: settings.clockStepSeconds * US,
    });
    this.learnsSwitchAddresses = options.switchAddresses === undefined;
    this.switchAddresses = options.switchAddresses ?? new SwitchAddresses();
    this.ledger = new BanLedger(this.base, this.switchAddresses, allowedEverywhere(settings, overrides));
    this.alerts = new AlertDesk(settings.nearMissHoldSeconds * US, (key, sinceUs) => this.ledger.bannedAfter(key, sinceUs));
    this.tracker = new SourceTracker(this.base, longestLongWindowSeconds(settings, overrides) * US, this.prefixLength, this.queue, this.ledger);
    this.calls = new CallPolicy(settings, overrides);
    this.hostFacts = new HostFactsView(this.queue, this.calls);
    this.prefixFacts = new PrefixFactsView(this.calls);
  }

  // ---------------------------------------------------------------- Policy interface

  observe(event: AuthEvent): PolicyOutput {
    const now = this.clock.place(event.timeUs);
    this.expireChallenges(now);
    if (this.fromSwitch(event)) return this.flush();
    const rs = this.settingsFor(event.profile);
    const s = this.tracker.source(event.source, now);
    if (s.allowed || s.bannedUntilUs > now) return this.flush();
    const p = s.prefixKey !== null ? this.tracker.prefixInUse(s, now) : null;
    if (p !== null && p.bannedUntilUs > now) return this.flush();
    this.record(s, p, event, rs, now);
    return this.flush();
  }

  observeCall(event: CallEvent): PolicyOutput {
    const now = this.clock.place(event.timeUs);
    this.expireChallenges(now);
    if (this.fromSwitch(event)) return this.flush();
    const rs = this.settingsFor(event.profile);
    const s = this.tracker.source(event.source, now);
    if (s.allowed || s.bannedUntilUs > now) return this.flush();
    const p = s.prefixKey !== null ? this.tracker.prefixInUse(s, now) : null;
    if (p !== null && p.bannedUntilUs > now) return this.flush();
    s.lastSeenUs = now;
    s.version++;
    if (s.lastProfile !== event.profile) s.lastProfile = event.profile;
    this.sweepUsersOf(s, p, rs, now);
    const proven = s.isProven(now);
    const o = this.calls.observe(event, {
      provenByAuth: proven,
      prefixProvenByAuth: p !== null && p.provenUntilUs > now,
      siteAccounts: s.succeededUsers,
    }, now, p !== null && p.provenUntilUs <= now);
    if (o.feedPrefix && p !== null) {
      // The prefix's address count (and its scanner rule) take call evidence like auth evidence.
      p.noteAddress(s.key);
      if (o.scanner) { p.noteScannerAddress(s.key); if (p.scannerUa === '') p.scannerUa = event.userAgent; }
      p.version++;
      p.lastSeenUs = now;
      if (p.lastProfile !== event.profile) p.lastProfile = event.profile;
    }
    for (const a of o.alerts) this.alerts.add(a);
    for (const v of o.verdicts) {
      if (s.bannedUntilUs <= now) this.ban(s, { rule: v.rule, reason: v.reason }, rs, now);
    }
    if (o.judge) this.judge(s, rs, now, null);
    return this.flush();
  }

  /** True when the event comes from a FreeSWITCH (never judged); learns its addresses if the policy owns them. */
  private fromSwitch(event: AuthEvent | CallEvent): boolean {
    if (this.learnsSwitchAddresses) this.switchAddresses.learn(event.switchAddresses);
    return this.switchAddresses.has(event.source.text);
  }

  advance(toUs: number): PolicyOutput {
    this.expireChallenges(toUs);
    this.sweepAllUsers(toUs);
    return this.flush();
  }

  noteClock(reading: ClockReading): PolicyOutput {
    this.clock.noteReading(reading);
    return this.advance(this.clock.estimateNowUs(reading) - this.timerSlackUs);
  }

  msUntilNextDeadline(reading: ClockReading): number | null {
    const q = this.queue;
    if (q.length === 0) return null;
    const due = q.oldestTime() + this.answerTimeoutUs;
    return Math.max(0, (due + this.timerSlackUs - this.clock.estimateNowUs(reading)) / 1000);
  }

  drain(): PolicyOutput {
    this.expireChallenges(Infinity);
    return this.flush();
  }

  noteEventGap(gap: EventGap): void {
    const off = this.clock.offset;
    const fromUs = gap.fromUs - off;
    const toUs = Math.max(fromUs, gap.toUs - off);
    this.gapStats.gaps++;
    this.gapStats.missing += gap.missing;
    this.gaps.push({ fromUs, toUs });
    if (this.gaps.length > GAP_MEMORY) this.gaps.shift();
    // A refresh lost in the gap would have renewed the proof: the gap does not count against it.
    const span = toUs - fromUs;
    if (span <= 0) return;
    // Proofs left among the unproven sources (a full proven map) are extended too.
    for (const map of [this.tracker.proven, this.tracker.unproven]) for (const s of map.values()) if (s.provenUntilUs > fromUs) s.provenUntilUs += span;
    for (const p of this.tracker.prefixes.values()) if (p.provenUntilUs > fromUs) p.provenUntilUs += span;
  }

  /** Policy time of `nowUs`: the daemon's wall clock at `reading`, or (without one) event time. */
  private policyTimeOf(nowUs: number, reading: ClockReading | undefined): number {
    return Math.max(this.clock.nowUs, reading === undefined ? nowUs - this.clock.offset : this.clock.fromWallUs(nowUs, reading));
  }

  seedRegistrations(registrations: readonly LiveRegistration[], nowUs: number, reading?: ClockReading): void {
    const now = this.policyTimeOf(nowUs, reading);
    for (const r of registrations) {
      const s = this.tracker.source(r.source, now);
      if (s.allowed) continue;
      const expiresUs = r.expiresAtSec !== null ? r.expiresAtSec * US - this.clock.offset : now;
      this.prove(s, Math.max(expiresUs, now), this.base, now);
      if (r.user) this.noteAccount(s, this.userSucceeded(s, r.user, r.userAgent, now, this.base), r.user, r.realm, this.base, now);
      s.sampleUser(r.user);
      s.sampleAgent(r.userAgent);
    }
  }

  restoreBans(wallBans: readonly ExistingBan[], reading?: ClockReading): void {
    const bans = reading === undefined ? wallBans : wallBans.map((b) => ({ ...b, expiresAtUs: this.clock.fromWallUs(b.expiresAtUs, reading) }));
    this.ledger.restore(bans);
    for (const b of bans) {
      const key = b.target.cidr.text;
      const st = b.target.host ? this.tracker.host(key) : this.tracker.prefixes.get(key);
      if (st) { st.bannedUntilUs = b.expiresAtUs; st.bannedRule = b.rule; }
    }
  }

  manualUnban(target: Cidr, nowUs: number, reading?: ClockReading): void {
    const now = this.policyTimeOf(nowUs, reading);
    for (const key of this.ledger.unban(target, now)) {
      for (const st of [this.tracker.unproven.get(key), this.tracker.proven.get(key), this.tracker.prefixes.get(key)]) {
        if (!st) continue;
        st.bannedUntilUs = 0;
        st.bannedRule = '';
        st.resetEvidence();
        st.version++;
      }
      this.calls.forget(key);
    }
  }

  trackedSources(): number {
    return this.tracker.size + this.calls.tracked();
  }

  /** The toll-fraud accounts (maxTrackedAccounts) and the proven sources (maxLegitimateSources). */
  capacityStats(): CapacityStats {
    return {
      accounts: this.calls.accountStats(),
      provenSources: { tracked: this.tracker.proven.size, leftOut: this.tracker.provenLeftOut },
    };
  }

  // ---------------------------------------------------------------- inspection

  /** Policy time now (µs). */
  clockUs(): number {
    return this.clock.nowUs;
  }

  /** Events the clock held out of bound, and absorbed clock steps. */
  clockStats(): Readonly<ClockStats> {
    return this.clock.stats;
  }

  /** Change counter of a host or prefix's state (0 when untracked); explain diffs on it. */
  stateVersion(target: string): number {
    const st = this.tracker.any(target);
    return st ? st.version : 0;
  }

  /** The prefix key (e.g. `2001:db8:1::/64`) an IPv6 address aggregates into. */
  prefixOf(addr: IpAddress): string | null {
    return addr.family === 6 ? ipv6PrefixText(addr, this.prefixLength) : null;
  }

  /**
   * Evidence and distance to every rule for a host or prefix, judged with a profile's settings:
   * by default the profile the verdict last judged it with (its lastProfile), so what explain
   * shows is what the verdict read.
   */
  inspect(target: string, profile?: string): EvidenceSnapshot | null {
    const now = this.clock.nowUs;
    const grace = this.ledger.graceUntil(target);
    const host = this.tracker.host(target);
    if (host) {
      const rs = this.settingsFor(profile ?? host.lastProfile);
      return hostSnapshot(host, this.hostFacts.bind(host, rs, now, this.tracker.linkedPrefix(host), true), rs, grace);
    }
    const p = this.tracker.prefixes.get(target);
    if (p === undefined) return null;
    const rs = this.settingsFor(profile ?? p.lastProfile);
    return prefixSnapshot(p, this.prefixFacts.bind(p, rs, now, true), rs, grace);
  }

  /**
   * The `limit` tracked targets nearest to a ban (highest share of a threshold, not yet over
   * it), each judged with the settings of the profile its last event came from.
   */
  nearestThresholds(limit: number): NearThreshold[] {
    const now = this.clock.nowUs;
    const out: NearThreshold[] = [];
    const consider = (n: NearThreshold | null): void => { if (n !== null) out.push(n); };
    for (const map of [this.tracker.unproven, this.tracker.proven]) {
      for (const s of map.values()) {
        if (s.allowed || s.bannedUntilUs > now) continue;
        const rs = this.settingsFor(s.lastProfile);
        consider(nearestHostThreshold(s, this.hostFacts.bind(s, rs, now, this.tracker.linkedPrefix(s), true), rs, s.lastProfile));
      }
    }
    for (const p of this.tracker.prefixes.values()) {
      if (p.bannedUntilUs > now) continue;
      const rs = this.settingsFor(p.lastProfile);
      consider(nearestPrefixThreshold(p, this.prefixFacts.bind(p, rs, now, true), rs, p.lastProfile));
    }
    out.sort((a, b) => b.fraction - a.fraction || (a.source < b.source ? -1 : 1));
    return out.slice(0, Math.max(0, limit));
  }

  // ---------------------------------------------------------------- state

  private settingsFor(profile: string): RuleSettings {
    const rs = this.byProfile.get(profile);
    if (rs !== undefined) return rs;
    if (profile === '' || this.byProfile.size >= PROFILE_CAP) return this.base;
    // A profile without an override: the base settings under its name (alerts carry it).
    const named: RuleSettings = { ...this.base, profile };
    this.byProfile.set(profile, named);
    return named;
  }

  private flush(): PolicyOutput {
    const bans = this.bans;
    let alerts = this.alerts.take();
    if (bans === null && alerts === null) return EMPTY_OUTPUT;
    this.bans = null;
    // Alerts are raised at policy time; like bans they are reported in event time.
    const off = this.clock.offset;
    if (alerts !== null && off !== 0) alerts = alerts.map((a) => ({ ...a, atUs: a.atUs + off }));
    return { bans: bans ?? [], alerts: alerts ?? [] };
  }

  private prove(s: SourceState, atUs: number, rs: RuleSettings, now: number): void {
    const until = atUs + rs.legitimacyUs;
    if (until > s.provenUntilUs) s.provenUntilUs = until;
    s.answered = true;
    this.tracker.promote(s, now);
    if (s.prefixKey !== null) {
      const p = this.tracker.prefixInUse(s, now);
      if (s.provenUntilUs > p.provenUntilUs) p.provenUntilUs = s.provenUntilUs;
    }
  }

  private userRecord(s: SourceState, user: string, rs: RuleSettings, now: number): UserRecord | null {
    if (s.users === null) s.users = new Map();
    let r = s.users.get(user);
    if (r !== undefined) return r;
    if (s.users.size >= rs.raw.maxUsersPerSource) {
      this.sweepUsers(s, rs, now, true);
      if (s.users.size >= rs.raw.maxUsersPerSource) return null;
    }
    r = newUserRecord();
    s.users.set(user, r);
    return r;
  }

  /**
   * Expires failing users past the long horizon and successes past legitimacy, when due, as of
   * userSweepPoint (`force`: now, for room in a full map).
   */
  private sweepUsers(s: SourceState, rs: RuleSettings, now: number, force: boolean): void {
    if (s.users === null) return;
    if (!force && !userSweepDue(s.lastSweepUs, now, rs.longWindow.us)) return;
    const asOf = force ? now : userSweepPoint(now, rs.longWindow.us);
    s.lastSweepUs = asOf;
    for (const [u, r] of s.users) {
      if (r.countedFailing && asOf - r.lastFailureUs > rs.longWindow.us) { r.countedFailing = false; s.failingUsers--; }
      if (r.countedSucceeded && asOf - r.succeededUs > rs.legitimacyUs) { r.countedSucceeded = false; s.succeededUsers--; }
      if (!r.countedFailing && !r.countedSucceeded && asOf - r.lastFailureUs > rs.longWindow.us) s.users.delete(u);
    }
  }

  /**
   * The users of `s` and the failing users of its prefix `p`, looked through when due: before an
   * event's evidence is added and before a verdict reads them, on every path (auth event, call,
   * challenge timeout) and on the timer, so what they count is bounded by time whatever comes.
   */
  private sweepUsersOf(s: SourceState, p: PrefixState | null, rs: RuleSettings, now: number): void {
    this.sweepUsers(s, rs, now, false);
    if (p !== null) p.sweepFailingUsers(now, rs.longWindow.us);
  }

  /**
   * The timer's look through every tracked source and prefix (at most once per
   * USER_TIMER_SWEEP_US of policy time), each with the settings it was last judged with: with
   * no event at all, users past the long window are still forgotten.
   */
  private sweepAllUsers(now: number): void {
    if (now - this.lastTimerSweepUs < USER_TIMER_SWEEP_US) return;
    this.lastTimerSweepUs = now;
    for (const map of [this.tracker.unproven, this.tracker.proven]) {
      for (const s of map.values()) if (s.users !== null) this.sweepUsers(s, this.settingsFor(s.lastProfile), now, false);
    }
    for (const p of this.tracker.prefixes.values()) p.sweepFailingUsers(now, this.settingsFor(p.lastProfile).longWindow.us);
  }

  /** A success of `user` at `s`; returns its record here (null: the source has too many users). */
  private userSucceeded(s: SourceState, user: string, ua: string, now: number, rs: RuleSettings): UserRecord | null {
    const r = this.userRecord(s, user, rs, now);
    if (r === null) return null;
    if (r.countedFailing) { r.countedFailing = false; s.failingUsers--; }
    if (!r.countedSucceeded) { r.countedSucceeded = true; s.succeededUsers++; }
    r.succeededUs = now;
    r.streak = 0;
    r.rate = null;
    if (ua) r.userAgent = ua;
    return r;
  }

  /**
   * Tells the toll-fraud table that `user@realm` authenticated from `s` over the profile of `rs`,
   * at most once per ACCOUNT_NOTE_US for the same user here (`r`, its record, when the source
   * has room for it).
   */
  private noteAccount(s: SourceState, r: UserRecord | null, user: string, realm: string, rs: RuleSettings, now: number): void {
    if (r !== null) {
      if (now - r.accountNotedUs < ACCOUNT_NOTE_US) return;
      r.accountNotedUs = now;
    }
    this.calls.noteAuthSuccess(user, realm, s.key, rs.profile, now);
  }

  private isScannerUa(ua: string, rs: RuleSettings): boolean {
    if (ua === '') return false;
    const memoKey = rs.scannerPatterns === this.base.scannerPatterns ? ua : `${rs.profile}\u0000${ua}`;
    const hit = this.uaMemo.get(memoKey);
    if (hit !== undefined) return hit;
    const is = matchesScannerPattern(ua.toLowerCase(), rs.scannerPatterns);
    this.uaMemo.set(memoKey, is);
    return is;
  }

  // ---------------------------------------------------------------- evidence

  /**
   * The copy of a challenge's user name to store at `s`: the shared one (see userNames) while
   * its sample may still keep the name. Once that is full (a credential scanner's first eight
   * names), a new name lives only as the run's, and looking it up would only churn the pool
   * with names that never come back.
   */
  private storedUser(s: SourceState, name: string): string {
    if (name === '' || s.userSampleFull) return name;
    const had = this.userNames.get(name);
    if (had !== undefined) return had;
    this.userNames.set(name, name);
    return name;
  }

  private record(s: SourceState, p: PrefixState | null, e: AuthEvent, rs: RuleSettings, now: number): void {
    s.events++;
    s.version++;
    s.lastSeenUs = now;
    const proven = s.isProven(now);
    // Evidence from a proven host never counts against its prefix (it is part of a live site).
    const feedPrefix = p !== null && !proven;
    this.sweepUsersOf(s, p, rs, now);
    if (feedPrefix) { p.events++; p.version++; p.lastSeenUs = now; if (p.lastProfile !== rs.profile) p.lastProfile = rs.profile; }
    const ua = e.userAgent;
    if (ua !== s.lastUa) {
      s.lastUa = ua;
      s.lastUaIsScanner = this.isScannerUa(ua, rs);
      s.sampleAgent(ua);
    }
    // At a proven site an attack-tool user agent is most likely forged onto its address.
    if (s.lastUaIsScanner && s.scannerUa === '' && !proven) s.scannerUa = ua;
    if (feedPrefix && s.lastUaIsScanner) {
      if (p.scannerUa === '') p.scannerUa = ua;
      p.noteScannerAddress(s.key);
      p.noteAddress(s.key);
      p.sampleAgent(ua);
    }

    switch (e.kind) {
      case 'challenge': {
        s.challenges++;
        const user = e.fromUser === s.runUser ? s.runUser : this.storedUser(s, e.fromUser);
        s.sampleUser(user);
        if (feedPrefix) { p.challenges++; p.sampleUser(user); }
        const callId = e.callId !== '' ? e.callId : `\u0000${e.fromUser}\u0000${e.toUser}`;
        // A retransmission (the 401 was lost) or a re-challenge keeps one pending entry, and a
        // challenge event arriving after its own answer (sofia threads reorder) is answered.
        const d = s.detailOrNull;
        if (s.pendingSeqOf(callId) < 0 && !s.wasCounted(callId) && (d === null || d.lastAnsweredCall !== callId)) {
          if (user === s.runUser && now - s.runLastUs <= this.answerTimeoutUs) s.runCount++;
          else { s.runUser = user; s.runCount = 1; }
          s.runLastUs = now;
          if (s.pendingSize() >= rs.raw.maxPendingChallengesPerSource) {
            this.creditUnanswered(s, now, rs);
          } else {
            s.pendingAdd(callId, this.queue.push(s.key, callId, now, rs));
          }
        }
        break;
      }
      case 'attempt': {
        this.answer(s, p, e.callId, rs, now);
        const user = attemptUser(e);
        s.sampleUser(user);
        if (e.result === 'success') {
          s.successes++;
          if (feedPrefix) p.successes++;
          this.prove(s, now, rs, now);
          this.noteAccount(s, this.userSucceeded(s, user, ua, now, rs), user, e.realm, rs, now);
        } else if (e.result === 'forbidden') {
          const d = s.detail();
          if (d.unpairedFailures > 0 && now - d.lastUnpairedFailureUs <= FAILURE_PAIR_US) {
            // Its register_failure came first and was counted: the same request, counted once.
            d.unpairedFailures--;
            this.attributeFailure(s, user, ua, rs, now);
          } else {
            d.unpairedForbidden = d.unpairedForbidden < 64 ? d.unpairedForbidden + 1 : 64;
            d.lastForbiddenUs = now;
            this.answeredFailure(s, feedPrefix ? p : null, user, ua, rs, now);
          }
        }
        // STALE: a nonce expired (server restart, long-lived dialog); the client re-authenticates.
        break;
      }
      case 'failure': {
        const d = s.detail();
        if (d.unpairedForbidden > 0 && now - d.lastForbiddenUs <= FAILURE_PAIR_US) {
          // The 403 of the FORBIDDEN attempt just counted: the same request, counted once.
          d.unpairedForbidden--;
        } else {
          d.unpairedForbidden = 0;
          d.unpairedFailures = d.unpairedFailures < 64 ? d.unpairedFailures + 1 : 64;
          d.lastUnpairedFailureUs = now;
          s.answered = true;
          this.answeredFailure(s, feedPrefix ? p : null, e.method === 'REGISTER' ? e.toUser : '', ua, rs, now);
        }
        break;
      }
      case 'registered': {
        this.answer(s, p, e.callId, rs, now);
        s.successes++;
        this.prove(s, now, rs, now);
        if (e.authUser) this.userSucceeded(s, e.authUser, ua, now, rs);
        break;
      }
    }
    this.judge(s, rs, now, e);
  }

  /**
   * A challenge was answered: the source is real, and its link's latency is known. An answer
   * to a challenge already counted unanswered (a slow or lossy link: the 401 or the answer was
   * resent) takes that count back.
   */
  private answer(s: SourceState, p: PrefixState | null, callId: string, rs: RuleSettings, now: number): void {
    s.answered = true;
    const d = s.detail();
    const seq = callId !== '' ? s.pendingSeqOf(callId) : -1;
    if (seq >= 0) {
      const latency = now - this.queue.timeOf(seq);
      if (latency > d.slowestAnswerUs) d.slowestAnswerUs = latency;
      s.pendingDelete(callId);
    } else if (callId !== '' && s.uncount(callId)) {
      const latency = this.answerTimeoutUs + Math.max(0, now - d.lastCountedUs);
      if (latency > d.slowestAnswerUs) d.slowestAnswerUs = latency;
      takeBack(s.unansShort, now, rs.shortWindow);
      takeBack(s.unansLong, now, rs.longWindow);
      if (p !== null) {
        takeBack(p.unansShort, now, rs.shortWindow);
        takeBack(p.unansLong, now, rs.longWindow);
      }
    }
    d.lastAnswerUs = now;
    if (callId !== '') d.lastAnsweredCall = callId;
  }

  /** The user side of an answered failure whose count was already taken (a reordered pair). */
  private attributeFailure(s: SourceState, user: string, ua: string, rs: RuleSettings, now: number): void {
    if (user === '') return;
    const r = this.userRecord(s, user, rs, now);
    if (r !== null && ua) r.userAgent = ua;
  }

  private answeredFailure(s: SourceState, p: PrefixState | null, user: string, ua: string, rs: RuleSettings, now: number): void {
    s.answered = true;
    s.answeredFailures++;
    s.failShort = counted(s.failShort, now, rs.shortWindow);
    s.failLong = counted(s.failLong, now, rs.longWindow);
    if (user !== '') {
      const r = this.userRecord(s, user, rs, now);
      if (r === null) {
        // Too many users to remember: an unknown user failing counts as a new failing user.
        s.failingUsers++;
      } else {
        r.streak++;
        if (r.streak > s.maxUserStreak) s.maxUserStreak = r.streak;
        r.lastFailureUs = now;
        if (ua) r.userAgent = ua;
        r.rate = counted(r.rate, now, rs.shortWindow);
        if (r.succeededUs === 0 && !r.countedFailing) { r.countedFailing = true; s.failingUsers++; }
      }
    }
    if (p !== null) {
      p.answeredFailures++;
      p.failShort = counted(p.failShort, now, rs.shortWindow);
      p.failLong = counted(p.failLong, now, rs.longWindow);
      p.noteAddress(s.key);
      if (user !== '') p.noteFailingUser(user, now);
      p.sampleUser(user);
    }
  }

  private creditUnanswered(s: SourceState, now: number, rs: RuleSettings): void {
    s.unansShort = counted(s.unansShort, now, rs.shortWindow);
    s.unansLong = counted(s.unansLong, now, rs.longWindow);
    s.version++;
    const p = this.tracker.linkedPrefix(s);
    if (p !== null && !s.isProven(now)) {
      p.unansShort = counted(p.unansShort, now, rs.shortWindow);
      p.unansLong = counted(p.unansLong, now, rs.longWindow);
      p.noteAddress(s.key);
      p.version++;
    }
  }

  /**
   * Processes every challenge whose deadline (its time + the answer timeout) is before `untilUs`,
   * oldest first, each judged at its own deadline: the result does not depend on when it runs.
   */
  private expireChallenges(untilUs: number): void {
    const q = this.queue;
    const timeout = this.answerTimeoutUs;
    const alerts = this.alerts;
    while (q.length > 0) {
      const deadline = q.oldestTime() + timeout;
      if (!(deadline < untilUs)) break;
      // Held near misses whose hold ends first are decided first (nothing after it counts).
      if (alerts.hasDue(deadline)) alerts.releaseDue(deadline);
      const key = q.oldestKey();
      const callId = q.oldestCallId();
      const seq = q.oldestSeq();
      const orphan = q.oldestOrphan();
      const rs = q.oldestSettings();
      const challengedUs = q.oldestTime();
      q.dropOldest();
      this.clock.advanceTo(deadline);
      if (orphan === null) {
        const s = this.tracker.host(key);
        if (s !== undefined && s.pendingSeqOf(callId) === seq) this.expireChallenge(s, callId, rs, deadline, challengedUs);
      } else if (orphan !== '') {
        this.expireOrphan(key, orphan, rs, deadline);
      }
    }
    if (alerts.hasDue(untilUs)) alerts.releaseDue(untilUs);
  }

  /** Whether a challenge's answer may have been among the events lost in a gap. */
  private inGap(challengedUs: number, deadline: number): boolean {
    for (const g of this.gaps) if (deadline >= g.fromUs && challengedUs <= g.toUs) return true;
    return false;
  }

  private expireChallenge(s: SourceState, callId: string, rs: RuleSettings, now: number, challengedUs: number): void {
    s.pendingDelete(callId);
    s.noteCounted(callId);
    if (s.bannedUntilUs > now || s.allowed) return;
    const p = this.tracker.linkedPrefix(s);
    if (p !== null && p.bannedUntilUs > now) return;
    if (this.gaps.length > 0 && this.inGap(challengedUs, now)) { this.gapStats.excusedChallenges++; return; }
    s.detail().lastCountedUs = now;
    this.sweepUsersOf(s, p, rs, now);
    this.creditUnanswered(s, now, rs);
    this.judge(s, rs, now, null);
  }

  /** A challenge of an evicted host (an address spray) expired: its prefix still gets the evidence. */
  private expireOrphan(key: string, prefixKey: string, rs: RuleSettings, now: number): void {
    const p = this.tracker.prefixes.get(prefixKey);
    if (p === undefined || p.bannedUntilUs > now) return;
    p.sweepFailingUsers(now, rs.longWindow.us);
    p.unansShort = counted(p.unansShort, now, rs.shortWindow);
    p.unansLong = counted(p.unansLong, now, rs.longWindow);
    p.noteAddress(key);
    p.version++;
    if (p.lastProfile !== rs.profile) p.lastProfile = rs.profile;
    const v = prefixVerdict(this.prefixFacts.bind(p, rs, now, false), rs.raw);
    if (v !== null) this.ban(p, v, rs, now);
  }

  // ---------------------------------------------------------------- judging

  private judge(s: SourceState, rs: RuleSettings, now: number, e: AuthEvent | null): void {
    const p = this.tracker.linkedPrefix(s);
    // Explain and status judge a target with the profile it was last judged with. The profile's
    // own settings object holds one copy of its name: a target keeps that, not the event's
    // string (a slice of the event's body would keep the whole body alive).
    if (s.lastProfile !== rs.profile) s.lastProfile = rs.profile;
    if (s.bannedUntilUs <= now) {
      const f = this.hostFacts.bind(s, rs, now, p, false);
      const r = rs.raw;
      // Live registrations of several users, on a profile that takes UDP: answered failures
      // from this address can be forged, so they alone never ban it.
      const shielded = r.failuresForgeable && r.forgedFailureShieldUsers > 0 && f.proven && f.workingUsers >= r.forgedFailureShieldUsers;
      const v = hostVerdict(f, r, shielded);
      if (v !== null) this.ban(s, v, rs, now);
      else {
        if (shielded) {
          const w = shieldedVerdict(f, r);
          if (w !== null) this.alerts.forgedFailures(s, f, w, rs, now);
        }
        this.alerts.host(s, f, rs, now, e);
      }
    }
    if (p !== null && p.bannedUntilUs <= now && !s.isProven(now)) {
      if (p.lastProfile !== rs.profile) p.lastProfile = rs.profile;
      const pf = this.prefixFacts.bind(p, rs, now, false);
      const v = prefixVerdict(pf, rs.raw);
      if (v !== null) this.ban(p, v, rs, now);
      else this.alerts.prefix(p, pf, rs, now);
    }
  }

  private ban(st: EvidenceState, v: Verdict, rs: RuleSettings, now: number): void {
    const cidr = st instanceof PrefixState ? st.cidr : parseCidr(st.key)!;
    if (this.ledger.isProtected(cidr, now)) return;
    const active = this.ledger.running(cidr.text, now);
    if (active) { st.bannedUntilUs = active.untilUs; return; }
    const { seconds, previous, untilUs } = this.ledger.book(cidr, v.rule, rs, now);
    const calls = this.calls.summary(st.key);
    const evidence = calls !== undefined ? { ...this.evidence(st), calls } : this.evidence(st);
    this.calls.forget(st.key);
    st.bannedUntilUs = untilUs;
    st.bannedRule = v.rule;
    st.resetEvidence();
    st.version++;
    const decision: BanDecision = {
      target: { cidr, host: !(st instanceof PrefixState) },
      seconds,
      rule: v.rule,
      reason: v.reason,
      evidence,
      atUs: now + this.clock.offset,
      previousOffences: previous,
    };
    (this.bans ??= []).push(decision);
    if (this.options.onDecision) this.options.onDecision(decision);
  }

  private evidence(st: EvidenceState): BanEvidence {
    const host = st instanceof SourceState ? st : null;
    const sampled = fewSize(st.userSample);
    const off = this.clock.offset;
    return {
      events: st.events,
      challenges: st.challenges,
      answeredFailures: st.answeredFailures,
      successes: st.successes,
      users: fewList(st.userSample),
      distinctUsers: host !== null ? Math.max(host.users !== null ? host.users.size : 0, sampled) : Math.max((st as PrefixState).failingUserCount, sampled),
      userAgents: fewList(st.agentSample),
      firstSeenUs: st.firstSeenUs + off,
      lastSeenUs: st.lastSeenUs + off,
      ...(st instanceof PrefixState ? { addresses: st.addressCount } : {}),
    };
  }
}

function newUserRecord(): UserRecord {
  return { streak: 0, lastFailureUs: 0, succeededUs: 0, countedFailing: false, countedSucceeded: false, lastAlertUs: -Infinity, userAgent: '', rate: null, accountNotedUs: -Infinity };
}

/** The policy the daemon and `fsguard policy simulate` use. */
export function createPolicy(
  settings: PolicySettings,
  profileOverrides: Readonly<Record<string, Partial<PolicySettings>>> = {},
  options: PolicyOptions = {},
): RatePolicy {
  return new RatePolicy(settings, profileOverrides, options);
}
