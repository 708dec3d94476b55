// The facts values the rules read: views over a source's (or prefix's) evidence at one moment,
// judged with one profile's settings. One view of each kind per policy, re-bound for every
// judgement, so judging allocates nothing; each fact is computed only when a rule reads it.
import type { CallEvidenceLookup, ProbeEvidence } from './calls/call-policy.js';
import type { ChallengeQueue } from './challenge-queue.js';
import type { RuleSettings } from './compiled-settings.js';
import { countOf, countsIn, type Counter, type CounterWindow } from './counters.js';
import type { HostFacts, PrefixFacts } from './rules.js';
import { fewList, type PrefixState, type SourceState } from './source-state.js';

/**
 * What both views read windowed counts with: the moment judged, and whether the values must be
 * exact (explain and status; the verdict may skip work that cannot ban). An exact reading also
 * notes a window with no count kept in its length (see HostFacts.uncounted); the verdict's
 * reading is countOf, nothing more.
 */
abstract class WindowedFacts {
  protected now = 0;
  protected exact = false;
  /** An exact reading read a window with no count kept in its length since this was last cleared. */
  protected missedCount = false;

  protected count(c: Counter | null, w: CounterWindow): number {
    if (this.exact && !countsIn(c, w)) this.missedCount = true;
    return countOf(c, this.now, w);
  }

  /** Whether `read` reads a window with no count kept in its length (exact readings only). */
  protected readsUncounted(read: () => number): boolean {
    this.missedCount = false;
    read();
    return this.missedCount;
  }
}

export class HostFactsView extends WindowedFacts implements HostFacts {
  private s!: SourceState;
  private rs!: RuleSettings;
  private prefix: PrefixState | null = null;
  private worstDone = false;
  /** The worst user's count read a rate with no count kept in the short window's length. */
  private worstUncounted = false;
  /** Read by every rule's scope: computed once per judgement. */
  private provenNow = false;
  private worstUserValue = '';
  private worstValue = 0;
  /** The host's call evidence, looked up when a call rule first reads it (undefined: not yet). */
  private callEvidence: ProbeEvidence | null | undefined = undefined;

  constructor(private readonly queue: ChallengeQueue, private readonly calls: CallEvidenceLookup) {
    super();
  }

  bind(s: SourceState, rs: RuleSettings, now: number, prefix: PrefixState | null, exact: boolean): this {
    this.s = s;
    this.rs = rs;
    this.now = now;
    this.prefix = prefix;
    this.exact = exact;
    this.worstDone = false;
    this.callEvidence = undefined;
    this.provenNow = s.provenUntilUs > now;
    return this;
  }

  private get call(): ProbeEvidence | null {
    if (this.callEvidence === undefined) this.callEvidence = this.calls.hostEvidence(this.s.key);
    return this.callEvidence;
  }

  get provenByCalls(): boolean { const c = this.call; return c !== null && c.provenUntilUs > this.now; }
  get callScannerUserAgent(): string { const c = this.call; return c !== null ? c.scannerUa : ''; }
  get callNumbersShort(): number { const c = this.call; return c !== null ? this.count(c.distinctShort, this.rs.shortWindow) : 0; }
  get callNumbersLong(): number { const c = this.call; return c !== null ? this.count(c.distinctLong, this.rs.longWindow) : 0; }
  get callCostlyNumbersShort(): number { const c = this.call; return c !== null ? this.count(c.intlShort, this.rs.shortWindow) : 0; }
  get callCostlyNumbersLong(): number { const c = this.call; return c !== null ? this.count(c.intlLong, this.rs.longWindow) : 0; }
  get sampleNumbers(): readonly string[] { const c = this.call; return c !== null ? c.numbers : []; }

  get key(): string { return this.s.key; }
  get proven(): boolean { return this.provenNow; }
  get answered(): boolean { return this.s.answered; }
  get inProvenPrefix(): boolean { return this.prefix !== null && this.prefix.provenUntilUs > this.now; }
  get scannerUserAgent(): string { return this.s.scannerUa; }
  get failuresShort(): number { return this.count(this.s.failShort, this.rs.shortWindow); }
  get failuresLong(): number { return this.count(this.s.failLong, this.rs.longWindow); }
  get failingUsers(): number { return this.s.failingUsers; }
  get workingUsers(): number { return this.s.succeededUsers; }
  get sameUserRun(): number { return this.s.runCount; }
  get sameUserRunUser(): string { return this.s.runUser; }
  get pendingChallenges(): number { return this.s.pendingSize(); }
  get oldestPendingAgeUs(): number {
    const seq = this.s.pendingOldestSeq();
    return seq < 0 ? 0 : this.now - this.queue.timeOf(seq);
  }
  get answerWaitUs(): number {
    const d = this.s.detailOrNull;
    const slowest = d !== null ? d.slowestAnswerUs * this.rs.raw.slowLinkFactor : 0;
    return slowest > this.rs.floodAgeUs ? slowest : this.rs.floodAgeUs;
  }
  get answeringNow(): boolean {
    const d = this.s.detailOrNull;
    return d !== null && this.now - d.lastAnswerUs <= this.rs.shortWindow.us;
  }
  get unansweredShort(): number { return this.count(this.s.unansShort, this.rs.shortWindow); }
  get unansweredLong(): number { return this.count(this.s.unansLong, this.rs.longWindow); }
  get worstUser(): string { this.findWorst(); return this.worstUserValue; }
  get worstUserFailuresShort(): number {
    this.findWorst();
    if (this.worstUncounted) this.missedCount = true;
    return this.worstValue;
  }
  get sampleUsers(): readonly string[] { return fewList(this.s.userSample); }

  uncounted(value: (f: HostFacts) => number): boolean {
    return this.readsUncounted(() => value(this));
  }

  /**
   * The user failing fastest: failures within the short window, counted only as far as its
   * streak (failures since its last success) goes. Every user is looked at only when one
   * can reach the threshold (maxUserStreak), not on every event of a site.
   */
  private findWorst(): void {
    if (this.worstDone) return;
    this.worstDone = true;
    this.worstUserValue = '';
    this.worstValue = 0;
    this.worstUncounted = false;
    const s = this.s;
    const users = s.users;
    if (users === null) return;
    const need = this.rs.raw.provenBruteForceFailures;
    if (!this.exact && (need <= 0 || s.maxUserStreak < need)) return;
    let longest = 0;
    for (const [u, rec] of users) {
      if (rec.streak > longest) longest = rec.streak;
      if (this.exact && rec.streak > 0 && !countsIn(rec.rate, this.rs.shortWindow)) this.worstUncounted = true;
      const v = Math.min(rec.streak, countOf(rec.rate, this.now, this.rs.shortWindow));
      if (v > this.worstValue) { this.worstValue = v; this.worstUserValue = u; }
    }
    s.maxUserStreak = longest;
  }
}

export class PrefixFactsView extends WindowedFacts implements PrefixFacts {
  private p!: PrefixState;
  private rs!: RuleSettings;
  private callEvidence: ProbeEvidence | null | undefined = undefined;

  constructor(private readonly calls: CallEvidenceLookup) {
    super();
  }

  /** `exact`: for explain and status (see WindowedFacts). */
  bind(p: PrefixState, rs: RuleSettings, now: number, exact: boolean): this {
    this.p = p;
    this.rs = rs;
    this.now = now;
    this.exact = exact;
    this.callEvidence = undefined;
    return this;
  }

  private get call(): ProbeEvidence | null {
    if (this.callEvidence === undefined) this.callEvidence = this.calls.prefixEvidence(this.p.key);
    return this.callEvidence;
  }

  get provenByCalls(): boolean { const c = this.call; return c !== null && c.provenUntilUs > this.now; }
  get callNumbersLong(): number { const c = this.call; return c !== null ? this.count(c.distinctLong, this.rs.longWindow) : 0; }
  get callCostlyNumbersLong(): number { const c = this.call; return c !== null ? this.count(c.intlLong, this.rs.longWindow) : 0; }

  get key(): string { return this.p.key; }
  get proven(): boolean { return this.p.provenUntilUs > this.now; }
  get addresses(): number { return this.p.addressCount; }
  get scannerAddresses(): number { return this.p.scannerAddressCount; }
  get scannerUserAgent(): string { return this.p.scannerUa; }
  get failuresShort(): number { return this.count(this.p.failShort, this.rs.shortWindow); }
  get failuresLong(): number { return this.count(this.p.failLong, this.rs.longWindow); }
  get failingUsers(): number { return this.p.failingUserCount; }
  get unansweredShort(): number { return this.count(this.p.unansShort, this.rs.shortWindow); }
  get unansweredLong(): number { return this.count(this.p.unansLong, this.rs.longWindow); }

  uncounted(value: (f: PrefixFacts) => number): boolean {
    return this.readsUncounted(() => value(this));
  }
}
