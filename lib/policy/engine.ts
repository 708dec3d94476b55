// The rate policy: sofia auth events in, BanDecisions and PolicyAlerts out. Pure and
// deterministic: its only clock is the events' own timestamps, so `fsguard policy simulate`
// replays a trace to exactly the decisions the daemon would have taken.
//
// The model (docs/policy.md explains each rule and the real-world situation it answers):
//   - A source is PROVEN legitimate by a successful authentication from it (or a live
//     registration FreeSWITCH reports). A proven source is a site: its unanswered challenges
//     prove nothing (UDP can be forged), its users' failures are misprovisioned phones (alert),
//     and only failures spread over more users than the site can explain ban it.
//   - A source is REAL once it answered one challenge (a register_attempt of any result): the
//     401 reached it, so its failures are attributable evidence.
//   - An UNPROVEN source is judged on answered failures (brute force, slow guessing, credential
//     scan), on challenges it never answers (scanners and toll-fraud INVITE floods), and on an
//     attack-tool user agent.
//   - IPv6 evidence from unproven hosts is also aggregated per prefix (/64 by default), so an
//     attacker rotating addresses is banned as a prefix unless a proven host lives in it.
import type { AuthEvent, LiveRegistration } from '../events/auth-event.js';
import type { CallEvent } from '../events/call-event.js';
import { CallPolicy, type CallEvidenceSummary } from './calls/call-policy.js';
import { cidrContainsIp, cidrsOverlap, ipv6PrefixText, parseCidr, parseIp, type Cidr, type IpAddress } from '../net/ip.js';
import { countOf, fnv1a32, WindowCounter } from './counters.js';
import { settingsForProfile, policySettingsProblems, type PolicySettings } from './settings.js';
import type {
  AlertKind, BanDecision, BanEvidence, ExistingBan, Policy, PolicyAlert, PolicyOutput,
} from './types.js';

const US = 1_000_000;
/** A register_failure this close after a FORBIDDEN attempt from the same source is its echo. */
const FAILURE_PAIR_US = 2 * US;
/** Samples kept for the ban's log line. */
const SAMPLE_USERS = 8;
const SAMPLE_AGENTS = 4;
/** Distinct addresses remembered per prefix (beyond that only the count matters). */
const PREFIX_ADDRESS_CAP = 256;
/** Distinct failing users remembered per prefix. */
const PREFIX_USER_CAP = 256;
/** Call-ids remembered per source as already counted unanswered (retransmissions count once). */
const COUNTED_CALL_IDS = 64;
/** Size of the user-agent → is-scanner memo (cleared when full, so a UA flood cannot grow it). */
const UA_MEMO_CAP = 4096;
/**
 * A full LRU map is cut to this fraction of its cap at once: finding a Map's oldest entry walks
 * over the holes earlier deletions left at its front, so evicting one entry per insert cost
 * O(cap) per new source under a spray (40 % of the CPU); one pass per cap/10 inserts is O(1) each.
 */
const EVICT_TO_FRACTION = 0.9;
/** Idle entries are looked for at the old end of each LRU map once per this many inserts. */
const IDLE_CHECK_INSERTS = 1024;

const EMPTY_OUTPUT: PolicyOutput = Object.freeze({ bans: Object.freeze([]) as readonly BanDecision[], alerts: Object.freeze([]) as readonly PolicyAlert[] });

/** Thresholds of one profile, pre-computed in µs and drain rates. */
interface RuleSettings {
  readonly profile: string;
  readonly raw: PolicySettings;
  readonly allow: readonly Cidr[];
  readonly scannerPatterns: readonly string[];
  readonly shortWindowUs: number;
  readonly longWindowUs: number;
  readonly alertIntervalUs: number;
  readonly legitimacyUs: number;
  readonly offenceMemoryUs: number;
  readonly graceUs: number;
}

function compileSettings(profile: string, s: PolicySettings): RuleSettings {
  const problems = policySettingsProblems(s, profile === '' ? 'policy' : `profiles.${profile}`);
  if (problems.length) throw new Error(`invalid policy settings: ${problems.join('; ')}`);
  const allow: Cidr[] = [];
  for (const a of s.allow) {
    const c = parseCidr(a);
    if (c) allow.push(c);
  }
  const shortWindowUs = s.shortWindowSeconds * US;
  const longWindowUs = s.longWindowSeconds * US;
  return {
    profile,
    raw: s,
    allow,
    scannerPatterns: s.scannerUserAgents.map((p) => p.toLowerCase()),
    shortWindowUs,
    longWindowUs,
    alertIntervalUs: s.alertIntervalSeconds * US,
    legitimacyUs: s.legitimacySeconds * US,
    offenceMemoryUs: s.offenceMemorySeconds * US,
    graceUs: s.unbanGraceSeconds * US,
  };
}

/** What one user did at one source. */
interface UserRecord {
  /** Answered failures since its last success (the stale-password streak). */
  streak: number;
  lastFailureUs: number;
  /** Last success at this source, 0 if never. */
  succeededUs: number;
  /** Counted in SourceState.failingUsers (failed, never succeeded, within the long horizon). */
  countedFailing: boolean;
  /** Counted in SourceState.succeededUsers. */
  countedSucceeded: boolean;
  lastAlertUs: number;
  userAgent: string;
  /** Rate of this user's failures, for brute force through a proven site. */
  rate: WindowCounter | null;
}

/**
 * A few distinct strings in arrival order (the first ones kept): null, one string, or an array
 * from the second on. A sprayed source has one user and one user agent; an array for each cost
 * about 80 bytes on every tracked source.
 */
type Few = string | string[] | null;

/** `f` with `v` added unless present or `cap` is reached (cap ≥ 2). */
function fewAdd(f: Few, v: string, cap: number): Few {
  if (f === null) return v;
  if (typeof f === 'string') return f === v ? f : [f, v];
  if (f.length < cap && !f.includes(v)) f.push(v);
  return f;
}

function fewList(f: Few): string[] {
  return f === null ? [] : typeof f === 'string' ? [f] : [...f];
}

function fewSize(f: Few): number {
  return f === null ? 0 : typeof f === 'string' ? 1 : f.length;
}

function fewFirst(f: Few): string | undefined {
  return f === null ? undefined : typeof f === 'string' ? f : f[0];
}

/**
 * Evidence most tracked states never get: answered failures, successes, an attack-tool user
 * agent, a ban rule, a near-miss. Allocated on the first write of anything but the default.
 * Under an address spray a source only ever sends challenges, and every field kept inline
 * cost 8 bytes (24 for a time, which V8 keeps in a separate box) on each of the 100,000
 * tracked sources, and again as old-generation garbage for each evicted one.
 */
class RareEvidence {
  answeredFailures = 0;
  successes = 0;
  bannedRule = '';
  /** Answered failures: short window (brute force) and long horizon (slow guessing). */
  failShort: WindowCounter | null = null;
  failLong: WindowCounter | null = null;
  /** First attack-tool user agent seen (empty if none). */
  scannerUa = '';
  lastNearMissUs = -Infinity;
}

/** Evidence shared by hosts and prefixes. */
abstract class EvidenceState {
  lruUs = 0;
  firstSeenUs = 0;
  lastSeenUs = 0;
  events = 0;
  challenges = 0;
  bannedUntilUs = 0;
  /** Challenges that went unanswered: short window and long horizon (a spray's only evidence). */
  unansShort: WindowCounter | null = null;
  unansLong: WindowCounter | null = null;
  userSample: Few = null;
  agentSample: Few = null;
  /** Bumped on every change (explain prints the state after each change). */
  version = 0;
  private rare: RareEvidence | null = null;

  constructor(readonly key: string) {}

  private more(): RareEvidence {
    return (this.rare ??= new RareEvidence());
  }

  // The rare fields read as plain properties (defaults while nothing was written); a write of
  // the default allocates nothing, so resets and unbans of a sprayed source stay free.
  get answeredFailures(): number { return this.rare !== null ? this.rare.answeredFailures : 0; }
  set answeredFailures(v: number) { if (this.rare !== null || v !== 0) this.more().answeredFailures = v; }
  get successes(): number { return this.rare !== null ? this.rare.successes : 0; }
  set successes(v: number) { if (this.rare !== null || v !== 0) this.more().successes = v; }
  get bannedRule(): string { return this.rare !== null ? this.rare.bannedRule : ''; }
  set bannedRule(v: string) { if (this.rare !== null || v !== '') this.more().bannedRule = v; }
  get failShort(): WindowCounter | null { return this.rare !== null ? this.rare.failShort : null; }
  set failShort(v: WindowCounter | null) { if (this.rare !== null || v !== null) this.more().failShort = v; }
  get failLong(): WindowCounter | null { return this.rare !== null ? this.rare.failLong : null; }
  set failLong(v: WindowCounter | null) { if (this.rare !== null || v !== null) this.more().failLong = v; }
  get scannerUa(): string { return this.rare !== null ? this.rare.scannerUa : ''; }
  set scannerUa(v: string) { if (this.rare !== null || v !== '') this.more().scannerUa = v; }
  get lastNearMissUs(): number { return this.rare !== null ? this.rare.lastNearMissUs : -Infinity; }
  set lastNearMissUs(v: number) { if (this.rare !== null || v !== -Infinity) this.more().lastNearMissUs = v; }

  sampleUser(user: string): void {
    if (user !== '') this.userSample = fewAdd(this.userSample, user, SAMPLE_USERS);
  }

  sampleAgent(ua: string): void {
    if (ua !== '') this.agentSample = fewAdd(this.agentSample, ua, SAMPLE_AGENTS);
  }

  resetEvidence(): void {
    this.unansShort = null;
    this.unansLong = null;
    const r = this.rare;
    if (r !== null) {
      r.failShort = null;
      r.failLong = null;
      r.scannerUa = '';
    }
  }
}

/**
 * What only a source that answered a challenge, or had two outstanding at once, has: allocated
 * on the first write of anything but the default (see RareEvidence).
 */
class HostDetail {
  /** Pending challenges beyond the first (see SourceState.pendingAdd). */
  pendingMore: Map<string, number> | null = null;
  users: Map<string, UserRecord> | null = null;
  failingUsers = 0;
  succeededUsers = 0;
  maxUserStreak = 0;
  lastSweepUs = 0;
  unpairedForbidden = 0;
  lastForbiddenUs = 0;
  lastSpoofAlertUs = -Infinity;
}

class SourceState extends EvidenceState {
  /** Matches base allow-list or a FreeSWITCH address: never tracked further. */
  allowed = false;
  provenUntilUs = 0;
  /** Answered at least one challenge: its packets are not forged. */
  answered = false;
  /**
   * The PrefixState.serial of the prefix this host was last linked to (0: never). The host
   * finds its prefix by key: a reference would keep evicted prefixes alive (under a spray of
   * /64s every tracked host held its own evicted prefix: 100,000 prefixes for a cap of 20,000).
   */
  prefixSerial = 0;
  /** IPv6 only: the prefix this host aggregates into. */
  readonly prefixKey: string | null;
  /**
   * Challenges awaiting an answer, call-id → sequence number in the ChallengeQueue (which has
   * the time), in arrival order. Most sources have at most one at a time: it is kept inline,
   * and a Map (in the HostDetail) is allocated only for a second one.
   */
  private pendingId: string | null = null;
  private pendingSeq = 0;
  /**
   * Call-ids already counted unanswered (oldest first, at most COUNTED_CALL_IDS; one string
   * until there are two): a REGISTER whose 401 is lost is retransmitted with the same call-id
   * for up to 32 s (and re-sent with it at the next refresh); it counts once.
   */
  private counted: string | string[] | null = null;
  lastUa = '';
  lastUaIsScanner = false;
  /** Challenges in a row for one user (a pipelined password cracker): user, count, last time. */
  runUser = '';
  runCount = 0;
  runLastUs = 0;
  private detailValue: HostDetail | null = null;

  constructor(address: IpAddress, prefixKey: string | null) {
    super(address.text);
    this.prefixKey = prefixKey;
  }

  private detail(): HostDetail {
    return (this.detailValue ??= new HostDetail());
  }

  get users(): Map<string, UserRecord> | null { return this.detailValue !== null ? this.detailValue.users : null; }
  set users(v: Map<string, UserRecord> | null) { if (this.detailValue !== null || v !== null) this.detail().users = v; }
  get failingUsers(): number { return this.detailValue !== null ? this.detailValue.failingUsers : 0; }
  set failingUsers(v: number) { if (this.detailValue !== null || v !== 0) this.detail().failingUsers = v; }
  get succeededUsers(): number { return this.detailValue !== null ? this.detailValue.succeededUsers : 0; }
  set succeededUsers(v: number) { if (this.detailValue !== null || v !== 0) this.detail().succeededUsers = v; }
  /**
   * At least the longest failure streak of any user here (streaks only grow by one failure at
   * a time; resets leave it high until the next full look): the proven-site brute-force rule
   * looks at every user only when one can reach its threshold, not on every event of a site.
   */
  get maxUserStreak(): number { return this.detailValue !== null ? this.detailValue.maxUserStreak : 0; }
  set maxUserStreak(v: number) { if (this.detailValue !== null || v !== 0) this.detail().maxUserStreak = v; }
  get lastSweepUs(): number { return this.detailValue !== null ? this.detailValue.lastSweepUs : 0; }
  set lastSweepUs(v: number) { if (this.detailValue !== null || v !== 0) this.detail().lastSweepUs = v; }
  /** FORBIDDEN attempts whose register_failure echo has not arrived yet. */
  get unpairedForbidden(): number { return this.detailValue !== null ? this.detailValue.unpairedForbidden : 0; }
  set unpairedForbidden(v: number) { if (this.detailValue !== null || v !== 0) this.detail().unpairedForbidden = v; }
  get lastForbiddenUs(): number { return this.detailValue !== null ? this.detailValue.lastForbiddenUs : 0; }
  set lastForbiddenUs(v: number) { if (this.detailValue !== null || v !== 0) this.detail().lastForbiddenUs = v; }
  get lastSpoofAlertUs(): number { return this.detailValue !== null ? this.detailValue.lastSpoofAlertUs : -Infinity; }
  set lastSpoofAlertUs(v: number) { if (this.detailValue !== null || v !== -Infinity) this.detail().lastSpoofAlertUs = v; }

  isProven(nowUs: number): boolean {
    return this.provenUntilUs > nowUs;
  }

  private get pendingMore(): Map<string, number> | null {
    return this.detailValue !== null ? this.detailValue.pendingMore : null;
  }

  pendingSize(): number {
    const more = this.pendingMore;
    return more !== null ? more.size : this.pendingId !== null ? 1 : 0;
  }

  /** Queue sequence number of a pending challenge, or -1. */
  pendingSeqOf(callId: string): number {
    const more = this.pendingMore;
    if (more !== null) {
      const v = more.get(callId);
      return v === undefined ? -1 : v;
    }
    return this.pendingId === callId ? this.pendingSeq : -1;
  }

  pendingAdd(callId: string, seq: number): void {
    const more = this.pendingMore;
    if (more !== null) more.set(callId, seq);
    else if (this.pendingId === null) { this.pendingId = callId; this.pendingSeq = seq; }
    else {
      this.detail().pendingMore = new Map([[this.pendingId, this.pendingSeq], [callId, seq]]);
      this.pendingId = null;
    }
  }

  pendingDelete(callId: string): void {
    const more = this.pendingMore;
    if (more !== null) more.delete(callId);
    else if (this.pendingId === callId) this.pendingId = null;
  }

  /** Sequence number of the oldest pending challenge, or -1. */
  pendingOldestSeq(): number {
    const more = this.pendingMore;
    if (more !== null) {
      for (const v of more.values()) return v;
      return -1;
    }
    return this.pendingId !== null ? this.pendingSeq : -1;
  }

  /** Every pending challenge's sequence number (eviction hands them to the queue as orphans). */
  pendingSeqs(): number[] {
    const more = this.pendingMore;
    if (more !== null) return [...more.values()];
    return this.pendingId !== null ? [this.pendingSeq] : [];
  }

  pendingClear(): void {
    this.pendingId = null;
    const more = this.pendingMore;
    if (more !== null) more.clear();
  }

  /** Whether a call-id was already counted unanswered. */
  wasCounted(callId: string): boolean {
    const c = this.counted;
    return c === null ? false : typeof c === 'string' ? c === callId : c.includes(callId);
  }

  /** Remembers a call-id as counted unanswered, forgetting the oldest beyond COUNTED_CALL_IDS. */
  noteCounted(callId: string): void {
    const c = this.counted;
    if (c === null) { this.counted = callId; return; }
    if (typeof c === 'string') { this.counted = [c, callId]; return; }
    if (c.length >= COUNTED_CALL_IDS) c.shift();
    c.push(callId);
  }

  override resetEvidence(): void {
    super.resetEvidence();
    this.pendingClear();
    this.counted = null;
    const users = this.users;
    if (users !== null) {
      for (const [u, r] of users) {
        if (r.succeededUs === 0) users.delete(u);
        else { r.streak = 0; r.rate = null; }
      }
    }
    this.failingUsers = 0;
    this.unpairedForbidden = 0;
    this.runCount = 0;
  }
}

class PrefixState extends EvidenceState {
  /** Tells this prefix from an earlier one of the same key that was evicted. */
  serial = 0;
  /** Latest legitimacy of any host inside: a proven prefix is never banned as a whole. */
  provenUntilUs = 0;
  /** The sets are allocated on first use: under a spray most prefixes see one address. */
  private addresses: Set<string> | null = null;
  addressCount = 0;
  private scannerAddresses: Set<string> | null = null;
  private failingUsers: Set<string> | null = null;
  private cidrValue: Cidr | null = null;

  /** Parsed when first needed (a ban, explain): most prefixes are never banned. */
  get cidr(): Cidr {
    return (this.cidrValue ??= parseCidr(this.key)!);
  }

  noteAddress(addr: string): void {
    const a = this.addresses;
    if (a === null) { this.addresses = new Set([addr]); this.addressCount++; return; }
    if (a.has(addr)) return;
    this.addressCount++;
    if (a.size < PREFIX_ADDRESS_CAP) a.add(addr);
  }

  noteScannerAddress(addr: string): void {
    (this.scannerAddresses ??= new Set()).add(addr);
  }

  get scannerAddressCount(): number {
    return this.scannerAddresses !== null ? this.scannerAddresses.size : 0;
  }

  noteFailingUser(user: string): void {
    if (this.failingUsers === null) this.failingUsers = new Set([user]);
    else if (this.failingUsers.size < PREFIX_USER_CAP) this.failingUsers.add(user);
  }

  get failingUserCount(): number {
    return this.failingUsers !== null ? this.failingUsers.size : 0;
  }

  override resetEvidence(): void {
    super.resetEvidence();
    this.addresses = null;
    this.addressCount = 0;
    this.scannerAddresses = null;
    this.failingUsers = null;
  }
}

interface OffenceRecord {
  count: number;
  lastEndUs: number;
}

interface ActiveBan {
  readonly cidr: Cidr;
  readonly untilUs: number;
  readonly rule: string;
}

interface Verdict {
  readonly rule: string;
  readonly reason: string;
}

/** How close one source is to one rule, for explain and near-miss alerts. */
export interface RuleStatus {
  readonly rule: string;
  /** Whether the rule can ban this source now (e.g. unproven-only rules at a proven site). */
  readonly applies: boolean;
  readonly value: number;
  readonly threshold: number;
  readonly description: string;
}

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

export interface PolicyOptions {
  /** Called for every ban and alert as it is decided (the daemon logs through it). */
  readonly onDecision?: (decision: BanDecision) => void;
}

/** Output collector: allocated only when something is decided. */
interface Sink {
  bans: BanDecision[] | null;
  alerts: PolicyAlert[] | null;
}

/**
 * A FIFO of challenges awaiting an answer, in arrival order, across all sources: a ring of
 * parallel arrays indexed by a sequence number. It holds the source's key, not its state, so an
 * evicted source is not kept alive by its pending challenges (under a spray at 100,000 events/s
 * that kept 150,000 evicted sources and their prefixes in memory, beyond every cap). A source
 * that is evicted hands its still-pending challenges over as orphans: they count for its prefix.
 *
 * The queue holds every challenge of the last answerTimeout of event time (150,000 entries
 * under the bench's spray), so an entry is kept small: an orphan's call-id is never looked at
 * again, and its slot holds the prefix key instead (a flag tells which); an orphan that counts
 * for no prefix keeps no strings at all.
 */
class ChallengeQueue {
  private keys: string[] = new Array<string>(1024).fill('');
  /** The call-id, or for an orphan the prefix key it counts for ('' for none). */
  private callIds: string[] = new Array<string>(1024).fill('');
  private orphaned = new Uint8Array(1024);
  private times = new Float64Array(1024);
  private mask = 1023;
  /** Ring index and sequence number of the oldest entry. */
  private headIdx = 0;
  private headSeq = 0;
  private count = 0;

  get length(): number {
    return this.count;
  }

  /** Appends a challenge; returns its sequence number. */
  push(key: string, callId: string, timeUs: number): number {
    if (this.count > this.mask) this.grow();
    const i = (this.headIdx + this.count) & this.mask;
    this.keys[i] = key;
    this.callIds[i] = callId;
    this.orphaned[i] = 0;
    this.times[i] = timeUs;
    return this.headSeq + this.count++;
  }

  private grow(): void {
    const cap = (this.mask + 1) * 2;
    const keys = new Array<string>(cap).fill('');
    const callIds = new Array<string>(cap).fill('');
    const orphaned = new Uint8Array(cap);
    const times = new Float64Array(cap);
    for (let k = 0; k < this.count; k++) {
      const i = (this.headIdx + k) & this.mask;
      keys[k] = this.keys[i]!;
      callIds[k] = this.callIds[i]!;
      orphaned[k] = this.orphaned[i]!;
      times[k] = this.times[i]!;
    }
    this.keys = keys;
    this.callIds = callIds;
    this.orphaned = orphaned;
    this.times = times;
    this.mask = cap - 1;
    this.headIdx = 0;
  }

  private index(seq: number): number {
    const d = seq - this.headSeq;
    return d >= 0 && d < this.count ? (this.headIdx + d) & this.mask : -1;
  }

  /** Time of a queued challenge (every pending challenge is still queued). */
  timeOf(seq: number): number {
    const i = this.index(seq);
    return i < 0 ? 0 : this.times[i]!;
  }

  /** The source of this challenge was evicted: it counts for `prefixKey` ('' for nothing). */
  orphan(seq: number, prefixKey: string): void {
    const i = this.index(seq);
    if (i < 0) return;
    this.orphaned[i] = 1;
    this.callIds[i] = prefixKey;
    if (prefixKey === '') this.keys[i] = '';
  }

  oldestTime(): number {
    return this.times[this.headIdx]!;
  }

  oldestSeq(): number {
    return this.headSeq;
  }

  oldestKey(): string {
    return this.keys[this.headIdx]!;
  }

  /** Call-id of the oldest entry (not an orphan). */
  oldestCallId(): string {
    return this.callIds[this.headIdx]!;
  }

  /** The prefix key an orphaned oldest entry counts for ('' none), or null if not orphaned. */
  oldestOrphan(): string | null {
    const i = this.headIdx;
    return this.orphaned[i] === 1 ? this.callIds[i]! : null;
  }

  dropOldest(): void {
    const i = this.headIdx;
    this.keys[i] = '';
    this.callIds[i] = '';
    this.headIdx = (i + 1) & this.mask;
    this.headSeq++;
    this.count--;
  }
}

function isWordChar(code: number): boolean {
  return (code >= 97 && code <= 122) || (code >= 48 && code <= 57);
}

/** True when a pattern occurs in `lowerUa` where a word starts (not inside another word). */
export function matchesScannerPattern(lowerUa: string, patterns: readonly string[]): boolean {
  for (const p of patterns) {
    let at = lowerUa.indexOf(p);
    while (at !== -1) {
      if (at === 0 || !isWordChar(lowerUa.charCodeAt(at - 1))) return true;
      at = lowerUa.indexOf(p, at + 1);
    }
  }
  return false;
}

function humanSeconds(s: number): string {
  if (s >= 86400 && s % 86400 === 0) return `${s / 86400} d`;
  if (s >= 3600 && s % 3600 === 0) return `${s / 3600} h`;
  if (s >= 60 && s % 60 === 0) return `${s / 60} min`;
  return `${Math.round(s * 100) / 100} s`;
}

function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(1);
}

export class RatePolicy implements Policy {
  private readonly base: RuleSettings;
  private readonly byProfile = new Map<string, RuleSettings>();
  private readonly answerTimeoutUs: number;
  private readonly prefixLength: number;
  /** Unproven sources, least recently seen first. */
  private readonly unproven = new Map<string, SourceState>();
  /** Proven sources, kept apart so a spray of new addresses cannot evict a site's proof. */
  private readonly proven = new Map<string, SourceState>();
  private readonly prefixes = new Map<string, PrefixState>();
  private readonly queue = new ChallengeQueue();
  private readonly activeBans = new Map<string, ActiveBan>();
  /** activeBans is swept of expired entries when it reaches this size (see trimActiveBans). */
  private trimActiveBansAt = 1024;
  private readonly graces = new Map<string, { readonly cidr: Cidr; readonly untilUs: number }>();
  private readonly offences = new Map<string, OffenceRecord>();
  private readonly switchAddresses = new Set<string>();
  private readonly uaMemo = new Map<string, boolean>();
  private nowUs = 0;
  /** The most recently touched entry of each LRU map: a burst from one source skips the re-insert. */
  private youngestUnproven: SourceState | null = null;
  private youngestProven: SourceState | null = null;
  private youngestPrefix: PrefixState | null = null;
  private sink: Sink = { bans: null, alerts: null };
  /** Inserts into each LRU map since its old end was last looked at for idle entries. */
  private unprovenInserts = 0;
  private provenInserts = 0;
  private prefixInserts = 0;
  private prefixSerials = 0;
  /** The call rules (lib/policy/calls): their evidence; bans go through ban() like the rest. */
  private readonly calls: CallPolicy;

  constructor(
    settings: PolicySettings,
    overrides: Readonly<Record<string, Partial<PolicySettings>>> = {},
    private readonly options: PolicyOptions = {},
  ) {
    this.base = compileSettings('', settings);
    for (const name of Object.keys(overrides)) this.byProfile.set(name, compileSettings(name, settingsForProfile(settings, overrides, name)));
    // Queue-wide and memory knobs come from the base: a packet's answer cannot depend on its profile.
    this.answerTimeoutUs = settings.answerTimeoutSeconds * US;
    this.prefixLength = settings.ipv6PrefixLength;
    this.calls = new CallPolicy(settings, overrides);
  }

  // ---------------------------------------------------------------- Policy interface

  observe(event: AuthEvent): PolicyOutput {
    const now = event.timeUs > this.nowUs ? event.timeUs : this.nowUs;
    this.nowUs = now;
    this.expireChallenges(now);
    const source = event.source.text;
    const sw = event.switchAddresses;
    for (let i = 0; i < sw.length; i++) {
      const a = sw[i]!;
      if (!this.switchAddresses.has(a)) this.switchAddresses.add(a);
      if (a === source) return this.flush();
    }
    const rs = this.settingsFor(event.profile);
    const s = this.sourceState(event.source, now);
    if (s.allowed) return this.flush();
    if (s.bannedUntilUs > now) return this.flush();
    const p = s.prefixKey !== null ? (this.linkedPrefix(s) ?? this.prefixState(s, now)) : null;
    if (p !== null && p.bannedUntilUs > now) return this.flush();
    this.record(s, p, event, rs, now);
    return this.flush();
  }

  observeCall(event: CallEvent): PolicyOutput {
    const now = event.timeUs > this.nowUs ? event.timeUs : this.nowUs;
    this.nowUs = now;
    this.expireChallenges(now);
    const source = event.source.text;
    for (const a of event.switchAddresses) {
      if (!this.switchAddresses.has(a)) this.switchAddresses.add(a);
      if (a === source) return this.flush();
    }
    const rs = this.settingsFor(event.profile);
    const s = this.sourceState(event.source, now);
    if (s.allowed || s.bannedUntilUs > now) return this.flush();
    const p = s.prefixKey !== null ? (this.linkedPrefix(s) ?? this.prefixState(s, now)) : null;
    if (p !== null && p.bannedUntilUs > now) return this.flush();
    s.lastSeenUs = now;
    s.version++;
    const out = this.calls.observe(event, {
      provenByAuth: s.isProven(now),
      prefixProvenByAuth: p !== null && p.provenUntilUs > now,
      siteAccounts: s.succeededUsers,
    }, now);
    for (const v of out.verdicts) {
      const st = v.scope === 'host' ? s : p;
      if (st !== null && st.bannedUntilUs <= now) this.ban(st, { rule: v.rule, reason: v.reason }, rs, now, null, v.evidence);
    }
    for (const a of out.alerts) (this.sink.alerts ??= []).push(a);
    return this.flush();
  }

  advance(nowUs: number): PolicyOutput {
    if (nowUs > this.nowUs) this.nowUs = nowUs;
    this.expireChallenges(this.nowUs);
    return this.flush();
  }

  seedRegistrations(registrations: readonly LiveRegistration[], nowUs: number): void {
    if (nowUs > this.nowUs) this.nowUs = nowUs;
    for (const r of registrations) {
      const s = this.sourceState(r.source, this.nowUs);
      if (s.allowed) continue;
      const expiresUs = r.expiresAtSec !== null ? r.expiresAtSec * US : this.nowUs;
      this.prove(s, Math.max(expiresUs, this.nowUs), this.base);
      if (r.user) this.userSucceeded(s, r.user, r.userAgent, this.nowUs, this.base);
      if (r.user) this.calls.noteAuthSuccess(r.user, r.realm, s.key, this.nowUs);
      s.sampleUser(r.user);
      s.sampleAgent(r.userAgent);
    }
  }

  restoreBans(bans: readonly ExistingBan[]): void {
    for (const b of bans) {
      const key = b.target.cidr.text;
      this.activeBans.set(key, { cidr: b.target.cidr, untilUs: b.expiresAtUs, rule: b.rule });
      const o = this.offences.get(key);
      // A ban in the kernel is at least one offence (its comment may say more): the next one is longer.
      const count = b.offences !== undefined && Number.isSafeInteger(b.offences) && b.offences > 1 ? b.offences : 1;
      if (!o) this.offences.set(key, { count, lastEndUs: b.expiresAtUs });
      else { o.count = Math.max(o.count, count); o.lastEndUs = Math.max(o.lastEndUs, b.expiresAtUs); }
      const st = b.target.host ? (this.unproven.get(key) ?? this.proven.get(key)) : this.prefixes.get(key);
      if (st) { st.bannedUntilUs = b.expiresAtUs; st.bannedRule = b.rule; }
    }
    this.trimOffences();
  }

  manualUnban(target: Cidr, nowUs: number): void {
    if (nowUs > this.nowUs) this.nowUs = nowUs;
    const key = target.text;
    this.activeBans.delete(key);
    this.graces.set(key, { cidr: target, untilUs: this.nowUs + this.base.graceUs });
    const clear = (st: EvidenceState | undefined): void => {
      if (!st) return;
      st.bannedUntilUs = 0;
      st.bannedRule = '';
      st.resetEvidence();
      st.version++;
    };
    clear(this.unproven.get(key));
    clear(this.proven.get(key));
    clear(this.prefixes.get(key));
    this.calls.forget(key);
    for (const [k, b] of this.activeBans) {
      if (cidrsOverlap(b.cidr, target)) {
        this.activeBans.delete(k);
        clear(this.unproven.get(k) ?? this.proven.get(k) ?? this.prefixes.get(k));
        this.calls.forget(k);
      }
    }
  }

  trackedSources(): number {
    return this.unproven.size + this.proven.size + this.prefixes.size + this.calls.tracked();
  }

  // ---------------------------------------------------------------- inspection (explain)

  /** Change counter of a host or prefix's state (0 when untracked); explain diffs on it. */
  stateVersion(target: string): number {
    const st = this.unproven.get(target) ?? this.proven.get(target) ?? this.prefixes.get(target);
    return st ? st.version : 0;
  }

  /** The prefix key (e.g. `2001:db8:1::/64`) an IPv6 address aggregates into. */
  prefixOf(addr: IpAddress): string | null {
    return addr.family === 6 ? ipv6PrefixText(addr, this.prefixLength) : null;
  }

  /** Evidence and distance to every rule for a host or prefix, judged with a profile's settings. */
  inspect(target: string, profile = ''): EvidenceSnapshot | null {
    const rs = this.settingsFor(profile);
    const now = this.nowUs;
    const host = this.unproven.get(target) ?? this.proven.get(target);
    const grace = this.graces.get(target);
    if (host) {
      const proven = host.isProven(now);
      return {
        target,
        kind: 'host',
        proven,
        provenUntilUs: host.provenUntilUs,
        answered: host.answered,
        allowed: host.allowed,
        bannedUntilUs: host.bannedUntilUs,
        bannedRule: host.bannedRule,
        graceUntilUs: grace ? grace.untilUs : 0,
        events: host.events,
        challenges: host.challenges,
        answeredFailures: host.answeredFailures,
        successes: host.successes,
        pendingChallenges: host.pendingSize(),
        failingUsers: host.failingUsers,
        succeededUsers: host.succeededUsers,
        addresses: 1,
        scannerUserAgent: host.scannerUa,
        rules: [...this.hostRuleStatus(host, rs, now), ...this.calls.ruleStatus(target, profile, now, { provenByAuth: proven, prefixProvenByAuth: this.inProvenPrefix(host, now), siteAccounts: host.succeededUsers })],
      };
    }
    const p = this.prefixes.get(target);
    if (!p) return null;
    return {
      target,
      kind: 'prefix',
      proven: p.provenUntilUs > now,
      provenUntilUs: p.provenUntilUs,
      answered: false,
      allowed: false,
      bannedUntilUs: p.bannedUntilUs,
      bannedRule: p.bannedRule,
      graceUntilUs: grace ? grace.untilUs : 0,
      events: p.events,
      challenges: p.challenges,
      answeredFailures: p.answeredFailures,
      successes: p.successes,
      pendingChallenges: 0,
      failingUsers: p.failingUserCount,
      succeededUsers: 0,
      addresses: p.addressCount,
      scannerUserAgent: p.scannerUa,
      rules: [...this.prefixRuleStatus(p, rs, now), ...this.calls.ruleStatus(target, profile, now, { provenByAuth: p.provenUntilUs > now, prefixProvenByAuth: p.provenUntilUs > now, siteAccounts: 0 })],
    };
  }

  // ---------------------------------------------------------------- state management

  private settingsFor(profile: string): RuleSettings {
    return this.byProfile.get(profile) ?? this.base;
  }

  private flush(): PolicyOutput {
    const sink = this.sink;
    if (sink.bans === null && sink.alerts === null) return EMPTY_OUTPUT;
    this.sink = { bans: null, alerts: null };
    return { bans: sink.bans ?? [], alerts: sink.alerts ?? [] };
  }

  private sourceState(addr: IpAddress, now: number): SourceState {
    const key = addr.text;
    let s = this.unproven.get(key);
    if (s !== undefined) {
      if (this.youngestUnproven !== s) { this.unproven.delete(key); this.unproven.set(key, s); this.youngestUnproven = s; }
      s.lruUs = now;
      return s;
    }
    s = this.proven.get(key);
    if (s !== undefined) {
      if (this.youngestProven !== s) { this.proven.delete(key); this.proven.set(key, s); this.youngestProven = s; }
      s.lruUs = now;
      return s;
    }
    s = new SourceState(addr, addr.family === 6 ? ipv6PrefixText(addr, this.prefixLength) : null);
    s.lruUs = now;
    s.firstSeenUs = now;
    s.allowed = this.switchAddresses.has(key) || this.base.allow.some((c) => cidrContainsIp(c, addr));
    const ban = this.activeBans.get(key);
    if (ban && ban.untilUs > now) { s.bannedUntilUs = ban.untilUs; s.bannedRule = ban.rule; }
    this.unproven.set(key, s);
    this.youngestUnproven = s;
    if (this.unproven.size > this.base.raw.maxTrackedSources || ++this.unprovenInserts >= IDLE_CHECK_INSERTS) {
      this.unprovenInserts = 0;
      this.evict(this.unproven, this.base.raw.maxTrackedSources, now);
    }
    return s;
  }

  private prefixState(s: SourceState, now: number): PrefixState {
    const key = s.prefixKey!;
    let p = this.prefixes.get(key);
    if (p === undefined) {
      p = new PrefixState(key);
      p.serial = ++this.prefixSerials;
      p.firstSeenUs = now;
      p.lruUs = now;
      const ban = this.activeBans.get(key);
      if (ban && ban.untilUs > now) { p.bannedUntilUs = ban.untilUs; p.bannedRule = ban.rule; }
      this.prefixes.set(key, p);
      if (this.prefixes.size > this.base.raw.maxTrackedPrefixes || ++this.prefixInserts >= IDLE_CHECK_INSERTS) {
        this.prefixInserts = 0;
        this.evict(this.prefixes, this.base.raw.maxTrackedPrefixes, now);
      }
    } else if (this.youngestPrefix !== p) {
      this.prefixes.delete(key);
      this.prefixes.set(key, p);
    }
    this.youngestPrefix = p;
    p.lruUs = now;
    if (s.provenUntilUs > p.provenUntilUs) p.provenUntilUs = s.provenUntilUs;
    s.prefixSerial = p.serial;
    return p;
  }

  /**
   * Over `cap`: drops the least recently seen entries down to EVICT_TO_FRACTION of it. Then (and
   * every IDLE_CHECK_INSERTS inserts) drops the idle entries at the old end. One pass over the
   * map's front per call, not per insert (see EVICT_TO_FRACTION).
   */
  private evict<T extends EvidenceState>(map: Map<string, T>, cap: number, now: number): void {
    const idleUs = this.base.longWindowUs;
    const target = map.size > cap ? cap - Math.max(1, Math.floor(cap * (1 - EVICT_TO_FRACTION))) : Infinity;
    for (const [k, v] of map) {
      const over = map.size > target;
      if (!over && !(now - v.lruUs > idleUs && v.bannedUntilUs <= now && !(v instanceof SourceState && v.isProven(now)))) break;
      map.delete(k);
      if (v instanceof SourceState) this.released(v, now);
    }
  }

  /** An evicted source's pending challenges become orphans that count for its prefix. */
  private released(s: SourceState, now: number): void {
    if (s.pendingSize() === 0) return;
    const prefixKey = s.prefixKey !== null && !s.isProven(now) ? s.prefixKey : '';
    for (const seq of s.pendingSeqs()) this.queue.orphan(seq, prefixKey);
    s.pendingClear();
  }

  private prove(s: SourceState, atUs: number, rs: RuleSettings): void {
    const until = atUs + rs.legitimacyUs;
    if (until > s.provenUntilUs) s.provenUntilUs = until;
    s.answered = true;
    if (this.unproven.get(s.key) === s) {
      this.unproven.delete(s.key);
      this.proven.set(s.key, s);
      this.youngestProven = s;
      if (this.proven.size > this.base.raw.maxLegitimateSources || ++this.provenInserts >= IDLE_CHECK_INSERTS) {
        this.provenInserts = 0;
        this.evict(this.proven, this.base.raw.maxLegitimateSources, this.nowUs);
      }
    }
    if (s.prefixKey !== null) {
      const p = this.linkedPrefix(s) ?? this.prefixState(s, this.nowUs);
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
    r = { streak: 0, lastFailureUs: 0, succeededUs: 0, countedFailing: false, countedSucceeded: false, lastAlertUs: -Infinity, userAgent: '', rate: null };
    s.users.set(user, r);
    return r;
  }

  /** Expires failing users past the long horizon and successes past legitimacy. */
  private sweepUsers(s: SourceState, rs: RuleSettings, now: number, force: boolean): void {
    if (s.users === null) return;
    if (!force && now - s.lastSweepUs < rs.longWindowUs / 12) return;
    s.lastSweepUs = now;
    for (const [u, r] of s.users) {
      if (r.countedFailing && now - r.lastFailureUs > rs.longWindowUs) { r.countedFailing = false; s.failingUsers--; }
      if (r.countedSucceeded && now - r.succeededUs > rs.legitimacyUs) { r.countedSucceeded = false; s.succeededUsers--; }
      if (!r.countedFailing && !r.countedSucceeded && now - r.lastFailureUs > rs.longWindowUs) s.users.delete(u);
    }
  }

  private userSucceeded(s: SourceState, user: string, ua: string, now: number, rs: RuleSettings): void {
    const r = this.userRecord(s, user, rs, now);
    if (r === null) return;
    if (r.countedFailing) { r.countedFailing = false; s.failingUsers--; }
    if (!r.countedSucceeded) { r.countedSucceeded = true; s.succeededUsers++; }
    r.succeededUs = now;
    r.streak = 0;
    r.rate = null;
    if (ua) r.userAgent = ua;
  }

  private isScannerUa(ua: string, rs: RuleSettings): boolean {
    if (ua === '') return false;
    const memoKey = rs === this.base ? ua : `${rs.profile}\u0000${ua}`;
    const hit = this.uaMemo.get(memoKey);
    if (hit !== undefined) return hit;
    const is = matchesScannerPattern(ua.toLowerCase(), rs.scannerPatterns);
    if (this.uaMemo.size >= UA_MEMO_CAP) this.uaMemo.clear();
    this.uaMemo.set(memoKey, is);
    return is;
  }

  // ---------------------------------------------------------------- evidence

  private record(s: SourceState, p: PrefixState | null, e: AuthEvent, rs: RuleSettings, now: number): void {
    s.events++;
    s.version++;
    s.lastSeenUs = now;
    const proven = s.isProven(now);
    // Evidence from a proven host never counts against its prefix (it is part of a live site).
    const feedPrefix = p !== null && !proven;
    if (feedPrefix) { p.events++; p.version++; p.lastSeenUs = now; }
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
        s.sampleUser(e.fromUser);
        if (feedPrefix) { p.challenges++; p.sampleUser(e.fromUser); }
        const callId = e.callId !== '' ? e.callId : `\u0000${e.fromUser}\u0000${e.toUser}`;
        // A retransmission (the 401 was lost) or a re-challenge keeps one pending entry.
        if (s.pendingSeqOf(callId) < 0 && !s.wasCounted(callId)) {
          if (e.fromUser === s.runUser && e.timeUs - s.runLastUs <= this.answerTimeoutUs) s.runCount++;
          else { s.runUser = e.fromUser; s.runCount = 1; }
          s.runLastUs = e.timeUs;
          if (s.pendingSize() >= rs.raw.maxPendingChallengesPerSource) {
            this.creditUnanswered(s, now, rs);
          } else {
            s.pendingAdd(callId, this.queue.push(s.key, callId, e.timeUs));
          }
        }
        break;
      }
      case 'attempt': {
        s.answered = true;
        s.pendingDelete(e.callId);
        const user = e.authUser !== '' && e.authUser !== 'unknown' ? e.authUser : e.fromUser;
        s.sampleUser(user);
        if (e.result === 'success') {
          s.successes++;
          if (feedPrefix) p.successes++;
          this.prove(s, now, rs);
          this.userSucceeded(s, user, ua, now, rs);
          this.calls.noteAuthSuccess(user, e.realm, s.key, now);
        } else if (e.result === 'forbidden') {
          s.unpairedForbidden = s.unpairedForbidden < 64 ? s.unpairedForbidden + 1 : 64;
          s.lastForbiddenUs = now;
          this.answeredFailure(s, feedPrefix ? p : null, user, ua, rs, now);
        }
        // STALE: a nonce expired (server restart, long-lived dialog); the client re-authenticates.
        break;
      }
      case 'failure': {
        if (s.unpairedForbidden > 0 && now - s.lastForbiddenUs <= FAILURE_PAIR_US) {
          // The 403 of the FORBIDDEN attempt just counted: the same request, counted once.
          s.unpairedForbidden--;
        } else {
          s.unpairedForbidden = 0;
          s.answered = true;
          this.answeredFailure(s, feedPrefix ? p : null, e.method === 'REGISTER' ? e.toUser : '', ua, rs, now);
        }
        break;
      }
      case 'registered': {
        s.pendingDelete(e.callId);
        s.successes++;
        this.prove(s, now, rs);
        if (e.authUser) this.userSucceeded(s, e.authUser, ua, now, rs);
        break;
      }
    }
    this.sweepUsers(s, rs, now, false);
    this.judge(s, rs, now, e);
  }

  private answeredFailure(s: SourceState, p: PrefixState | null, user: string, ua: string, rs: RuleSettings, now: number): void {
    s.answered = true;
    s.answeredFailures++;
    (s.failShort ??= new WindowCounter()).add(now, rs.shortWindowUs);
    (s.failLong ??= new WindowCounter()).add(now, rs.longWindowUs);
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
        (r.rate ??= new WindowCounter()).add(now, rs.shortWindowUs);
        if (r.succeededUs === 0 && !r.countedFailing) { r.countedFailing = true; s.failingUsers++; }
      }
    }
    if (p !== null) {
      p.answeredFailures++;
      (p.failShort ??= new WindowCounter()).add(now, rs.shortWindowUs);
      (p.failLong ??= new WindowCounter()).add(now, rs.longWindowUs);
      p.noteAddress(s.key);
      if (user !== '') p.noteFailingUser(user);
      p.sampleUser(user);
    }
  }

  private creditUnanswered(s: SourceState, now: number, rs: RuleSettings): void {
    (s.unansShort ??= new WindowCounter()).add(now, rs.shortWindowUs);
    (s.unansLong ??= new WindowCounter()).add(now, rs.longWindowUs);
    s.version++;
    const p = this.linkedPrefix(s);
    if (p !== null && !s.isProven(now)) {
      (p.unansShort ??= new WindowCounter()).add(now, rs.shortWindowUs);
      (p.unansLong ??= new WindowCounter()).add(now, rs.longWindowUs);
      p.noteAddress(s.key);
      p.version++;
    }
  }

  private expireChallenges(now: number): void {
    const q = this.queue;
    const limit = now - this.answerTimeoutUs;
    while (q.length > 0 && q.oldestTime() < limit) {
      const key = q.oldestKey();
      const callId = q.oldestCallId();
      const seq = q.oldestSeq();
      const orphan = q.oldestOrphan();
      q.dropOldest();
      if (orphan === null) {
        const s = this.unproven.get(key) ?? this.proven.get(key);
        if (s !== undefined && s.pendingSeqOf(callId) === seq) this.expireChallenge(s, callId);
      } else if (orphan !== '') {
        this.expireOrphan(key, orphan);
      }
    }
  }

  private expireChallenge(s: SourceState, callId: string): void {
    s.pendingDelete(callId);
    s.noteCounted(callId);
    const now = this.nowUs;
    if (s.bannedUntilUs > now || s.allowed) return;
    const p = this.linkedPrefix(s);
    if (p !== null && p.bannedUntilUs > now) return;
    // Judged with the base settings: the challenge's profile is not kept per pending entry.
    const rs = this.base;
    this.creditUnanswered(s, now, rs);
    this.judge(s, rs, now, null);
  }

  /** A challenge of an evicted host (an address spray) expired: its prefix still gets the evidence. */
  private expireOrphan(key: string, prefixKey: string): void {
    const now = this.nowUs;
    const p = this.prefixes.get(prefixKey);
    if (p === undefined || p.bannedUntilUs > now) return;
    (p.unansShort ??= new WindowCounter()).add(now, this.base.shortWindowUs);
    (p.unansLong ??= new WindowCounter()).add(now, this.base.longWindowUs);
    p.noteAddress(key);
    p.version++;
    const v = this.prefixVerdict(p, this.base, now);
    if (v !== null) this.ban(p, v, this.base, now, null);
  }

  // ---------------------------------------------------------------- rules

  private judge(s: SourceState, rs: RuleSettings, now: number, e: AuthEvent | null): void {
    if (s.bannedUntilUs <= now) {
      const v = this.hostVerdict(s, rs, now);
      if (v !== null) this.ban(s, v, rs, now, e);
      else this.hostAlerts(s, rs, now, e);
    }
    const p = this.linkedPrefix(s);
    if (p !== null && p.bannedUntilUs <= now && !s.isProven(now)) {
      const v = this.prefixVerdict(p, rs, now);
      if (v !== null) this.ban(p, v, rs, now, e);
    }
  }

  /** Age of the oldest unanswered challenge (Map order is arrival order). */
  private oldestPendingAgeUs(s: SourceState, now: number): number {
    const seq = s.pendingOldestSeq();
    return seq < 0 ? 0 : now - this.queue.timeOf(seq);
  }

  /** An unproven IPv6 host inside a prefix where a proven host lives. */
  private inProvenPrefix(s: SourceState, now: number): boolean {
    const p = this.linkedPrefix(s);
    return p !== null && p.provenUntilUs > now;
  }

  /** The tracked prefix this host is linked to (null: IPv4, or its prefix was evicted since). */
  private linkedPrefix(s: SourceState): PrefixState | null {
    if (s.prefixSerial === 0) return null;
    const p = this.prefixes.get(s.prefixKey!);
    return p !== undefined && p.serial === s.prefixSerial ? p : null;
  }

  private credentialScanTolerance(s: SourceState, rs: RuleSettings): number {
    return rs.raw.credentialScanUsers + Math.floor(rs.raw.credentialScanUsersPerSiteUser * s.succeededUsers);
  }

  private hostVerdict(s: SourceState, rs: RuleSettings, now: number): Verdict | null {
    const r = rs.raw;
    const tolerance = this.credentialScanTolerance(s, rs);
    if (s.isProven(now)) {
      // A site: its challenges may be forged and its failing users may be stale phones. Only
      // failures (answered, so not forged) spread over more users than it can explain ban it.
      if (s.failingUsers >= tolerance) {
        return {
          rule: 'credential_scan',
          reason: `${s.failingUsers} distinct users failed authentication from ${s.key} and never succeeded there, more than a site with ${s.succeededUsers} working users explains (tolerance ${tolerance - 1}): a scan through a foothold account`,
        };
      }
      if (r.provenBruteForceFailures > 0 && s.users !== null && s.maxUserStreak >= r.provenBruteForceFailures) {
        let longest = 0;
        for (const [u, rec] of s.users) {
          if (rec.streak > longest) longest = rec.streak;
          if (rec.streak >= r.provenBruteForceFailures && countOf(rec.rate, now, rs.shortWindowUs) >= r.provenBruteForceFailures) {
            return {
              rule: 'proven_source_brute_force',
              reason: `user ${u} failed authentication about ${r.provenBruteForceFailures} times within ${humanSeconds(r.shortWindowSeconds)} from ${s.key}, far faster than any phone retries: password cracking through a site address`,
            };
          }
        }
        s.maxUserStreak = longest;
      }
      return null;
    }
    const unproven = s.answered ? 'a source that answered challenges but never authenticated successfully' : 'a source that never proved itself legitimate';
    if (s.scannerUa !== '') {
      return { rule: 'scanner_user_agent', reason: `user agent ${JSON.stringify(s.scannerUa.slice(0, 64))} is a SIP attack tool, sent from ${unproven}` };
    }
    const short = countOf(s.failShort, now, rs.shortWindowUs);
    if (short >= r.bruteForceFailures) {
      return { rule: 'brute_force', reason: `${r.bruteForceFailures} answered authentication failures within ${humanSeconds(r.shortWindowSeconds)} (users ${s.userSample !== null ? fewList(s.userSample).slice(0, 4).join(', ') : 'unknown'}) from ${unproven}` };
    }
    if (s.failingUsers >= tolerance) {
      return { rule: 'credential_scan', reason: `${s.failingUsers} distinct users failed authentication and none succeeded, from ${unproven} (tolerance ${tolerance - 1})` };
    }
    // A host of an IPv6 subnet where a proven host lives is probably one of the site's own
    // devices (IPv6 sites need no NAT): a slow trickle of failures there is a misprovisioned
    // phone (alerted), not slow guessing. Fast rules above still ban the single host.
    const siteSubnet = this.inProvenPrefix(s, now);
    const long = countOf(s.failLong, now, rs.longWindowUs);
    if (long >= r.slowGuessingFailures && !siteSubnet) {
      return { rule: 'slow_guessing', reason: `${r.slowGuessingFailures} answered authentication failures within ${humanSeconds(r.longWindowSeconds)}, below any short window, from ${unproven}` };
    }
    if (s.runCount >= r.sameUserChallenges) {
      return { rule: 'brute_force', reason: `${s.runCount} requests in a row for user ${s.runUser}, each within ${humanSeconds(r.answerTimeoutSeconds)} of the last, from ${unproven}: a pipelined password cracker (a phone sends one at a time)` };
    }
    const pending = s.pendingSize();
    if (pending >= r.challengeBurst) {
      return { rule: 'unanswered_challenges', reason: `${pending} challenges outstanding at once and none answered yet, from ${unproven}: a scanner or INVITE flood` };
    }
    if (pending >= r.challengeFloodOutstanding) {
      const age = this.oldestPendingAgeUs(s, now);
      if (age >= r.challengeFloodAgeSeconds * US) {
        return { rule: 'unanswered_challenges', reason: `${pending} challenges outstanding, the oldest unanswered for ${humanSeconds(Math.round(age / 1000) / 1000)} (phones answer within 150 ms), from ${unproven}: a scanner or INVITE flood` };
      }
    }
    if (countOf(s.unansShort, now, rs.shortWindowUs) >= r.unansweredChallenges) {
      return { rule: 'unanswered_challenges', reason: `${r.unansweredChallenges} challenges left unanswered within ${humanSeconds(r.shortWindowSeconds)} from ${unproven}: an extension scanner or toll-fraud INVITE flood` };
    }
    if (countOf(s.unansLong, now, rs.longWindowUs) >= r.slowUnansweredChallenges && !siteSubnet) {
      return { rule: 'slow_unanswered_challenges', reason: `${r.slowUnansweredChallenges} challenges left unanswered within ${humanSeconds(r.longWindowSeconds)} from ${unproven}: a slow scanner` };
    }
    return null;
  }

  private prefixVerdict(p: PrefixState, rs: RuleSettings, now: number): Verdict | null {
    const r = rs.raw;
    // Never lump a live site with its neighbours, and only ban a prefix when the evidence is
    // spread over several addresses (one noisy host is banned as a host).
    if (p.provenUntilUs > now || p.addressCount < r.prefixMinAddresses) return null;
    const spread = `spread over ${p.addressCount} addresses of ${p.key}`;
    if (p.scannerAddressCount >= r.prefixMinAddresses) {
      return { rule: 'ipv6_prefix_scanner_user_agent', reason: `attack-tool user agent ${JSON.stringify(p.scannerUa.slice(0, 64))} from ${p.scannerAddressCount} addresses of ${p.key}, none proven legitimate: address rotation` };
    }
    if (countOf(p.failShort, now, rs.shortWindowUs) >= r.bruteForceFailures) {
      return { rule: 'ipv6_prefix_brute_force', reason: `${r.bruteForceFailures} answered authentication failures within ${humanSeconds(r.shortWindowSeconds)} ${spread}, none proven legitimate: address rotation` };
    }
    if (p.failingUserCount >= r.credentialScanUsers) {
      return { rule: 'ipv6_prefix_credential_scan', reason: `${p.failingUserCount} distinct users failed authentication ${spread}, none proven legitimate: address rotation` };
    }
    if (countOf(p.failLong, now, rs.longWindowUs) >= r.slowGuessingFailures) {
      return { rule: 'ipv6_prefix_slow_guessing', reason: `${r.slowGuessingFailures} answered authentication failures within ${humanSeconds(r.longWindowSeconds)} ${spread}: slow guessing with address rotation` };
    }
    if (countOf(p.unansShort, now, rs.shortWindowUs) >= r.unansweredChallenges) {
      return { rule: 'ipv6_prefix_unanswered_challenges', reason: `${r.unansweredChallenges} challenges left unanswered within ${humanSeconds(r.shortWindowSeconds)} ${spread}: scanning with address rotation` };
    }
    if (countOf(p.unansLong, now, rs.longWindowUs) >= r.slowUnansweredChallenges) {
      return { rule: 'ipv6_prefix_slow_unanswered_challenges', reason: `${r.slowUnansweredChallenges} challenges left unanswered within ${humanSeconds(r.longWindowSeconds)} ${spread}` };
    }
    return null;
  }

  /** Every rule with its current value and threshold (explain; near-miss uses the same numbers). */
  private hostRuleStatus(s: SourceState, rs: RuleSettings, now: number): RuleStatus[] {
    const r = rs.raw;
    const proven = s.isProven(now);
    const tolerance = this.credentialScanTolerance(s, rs);
    let worstUser = 0;
    if (s.users !== null) for (const rec of s.users.values()) { const v = countOf(rec.rate, now, rs.shortWindowUs); if (v > worstUser) worstUser = v; }
    return [
      { rule: 'scanner_user_agent', applies: !proven, value: s.scannerUa !== '' ? 1 : 0, threshold: 1, description: s.scannerUa !== '' ? `attack-tool user agent ${JSON.stringify(s.scannerUa.slice(0, 64))} seen` : 'no attack-tool user agent seen' },
      { rule: 'brute_force', applies: !proven, value: countOf(s.failShort, now, rs.shortWindowUs), threshold: r.bruteForceFailures, description: `answered failures, in the last ${humanSeconds(r.shortWindowSeconds)}` },
      { rule: 'credential_scan', applies: true, value: s.failingUsers, threshold: tolerance, description: `distinct users failing and never succeeding here (${r.credentialScanUsers} + ${r.credentialScanUsersPerSiteUser} × ${s.succeededUsers} working users)` },
      { rule: 'slow_guessing', applies: !proven && !this.inProvenPrefix(s, now), value: countOf(s.failLong, now, rs.longWindowUs), threshold: r.slowGuessingFailures, description: `answered failures, in the last ${humanSeconds(r.longWindowSeconds)}` },
      { rule: 'unanswered_challenges', applies: !proven, value: countOf(s.unansShort, now, rs.shortWindowUs), threshold: r.unansweredChallenges, description: `challenges unanswered after ${humanSeconds(r.answerTimeoutSeconds)}, in the last ${humanSeconds(r.shortWindowSeconds)}` },
      { rule: 'unanswered_challenges(burst)', applies: !proven, value: s.pendingSize(), threshold: r.challengeBurst, description: 'challenges outstanding at once' },
      { rule: 'unanswered_challenges(flood)', applies: !proven, value: s.pendingSize(), threshold: r.challengeFloodOutstanding, description: `challenges outstanding with the oldest over ${humanSeconds(r.challengeFloodAgeSeconds)} old (now ${humanSeconds(Math.round(this.oldestPendingAgeUs(s, now) / 1000) / 1000)})` },
      { rule: 'brute_force(same user)', applies: !proven, value: s.runCount, threshold: r.sameUserChallenges, description: `challenges in a row for user ${JSON.stringify(s.runUser)}, each within ${humanSeconds(r.answerTimeoutSeconds)} of the last` },
      { rule: 'slow_unanswered_challenges', applies: !proven && !this.inProvenPrefix(s, now), value: countOf(s.unansLong, now, rs.longWindowUs), threshold: r.slowUnansweredChallenges, description: `unanswered challenges, in the last ${humanSeconds(r.longWindowSeconds)}` },
      { rule: 'proven_source_brute_force', applies: proven && r.provenBruteForceFailures > 0, value: worstUser, threshold: r.provenBruteForceFailures, description: `failures of one user at a proven site, in the last ${humanSeconds(r.shortWindowSeconds)}` },
    ];
  }

  private prefixRuleStatus(p: PrefixState, rs: RuleSettings, now: number): RuleStatus[] {
    const r = rs.raw;
    const applies = p.provenUntilUs <= now && p.addressCount >= r.prefixMinAddresses;
    return [
      { rule: 'ipv6_prefix_addresses', applies: p.provenUntilUs <= now, value: p.addressCount, threshold: r.prefixMinAddresses, description: 'addresses the evidence is spread over (a prefix ban needs this many)' },
      { rule: 'ipv6_prefix_scanner_user_agent', applies, value: p.scannerAddressCount, threshold: r.prefixMinAddresses, description: 'addresses with an attack-tool user agent' },
      { rule: 'ipv6_prefix_brute_force', applies, value: countOf(p.failShort, now, rs.shortWindowUs), threshold: r.bruteForceFailures, description: `answered failures in the last ${humanSeconds(r.shortWindowSeconds)}` },
      { rule: 'ipv6_prefix_credential_scan', applies, value: p.failingUserCount, threshold: r.credentialScanUsers, description: 'distinct failing users' },
      { rule: 'ipv6_prefix_slow_guessing', applies, value: countOf(p.failLong, now, rs.longWindowUs), threshold: r.slowGuessingFailures, description: `answered failures in the last ${humanSeconds(r.longWindowSeconds)}` },
      { rule: 'ipv6_prefix_unanswered_challenges', applies, value: countOf(p.unansShort, now, rs.shortWindowUs), threshold: r.unansweredChallenges, description: `unanswered challenges in the last ${humanSeconds(r.shortWindowSeconds)}` },
      { rule: 'ipv6_prefix_slow_unanswered_challenges', applies, value: countOf(p.unansLong, now, rs.longWindowUs), threshold: r.slowUnansweredChallenges, description: `unanswered challenges in the last ${humanSeconds(r.longWindowSeconds)}` },
    ];
  }

  // ---------------------------------------------------------------- alerts

  private alert(kind: AlertKind, source: string, profile: string, message: string, now: number, user?: string, userAgent?: string): void {
    const a: PolicyAlert = { kind, source, profile, message, atUs: now, ...(user !== undefined ? { user } : {}), ...(userAgent !== undefined ? { userAgent } : {}) };
    (this.sink.alerts ??= []).push(a);
  }

  private hostAlerts(s: SourceState, rs: RuleSettings, now: number, e: AuthEvent | null): void {
    const r = rs.raw;
    const profile = e !== null ? e.profile : '';
    const proven = s.isProven(now);
    if (proven || this.inProvenPrefix(s, now)) {
      // A phone with a stale password at a working site: tell the admin, do not ban the site.
      if (e !== null && (e.kind === 'attempt' && e.result === 'forbidden') && s.users !== null) {
        const user = e.authUser !== '' && e.authUser !== 'unknown' ? e.authUser : e.fromUser;
        const rec = s.users.get(user);
        if (rec !== undefined && rec.streak >= r.misprovisionedFailures && now - rec.lastAlertUs >= rs.alertIntervalUs) {
          rec.lastAlertUs = now;
          const since = rec.succeededUs > 0 ? 'since its last success' : 'and it never succeeded here';
          this.alert('misprovisioned_device', s.key, profile,
            `user ${user} at ${s.key} (${rec.userAgent || 'no user agent'}) failed authentication ${rec.streak} times ${since}: a device with a stale or wrong password; the site is not banned`,
            now, user, rec.userAgent);
        }
      }
      if (!proven) return;
      // Unanswered challenges at a proven site: someone forges its address (or phones lose 401s).
      if (e === null && now - s.lastSpoofAlertUs >= rs.alertIntervalUs && countOf(s.unansShort, now, rs.shortWindowUs) >= r.unansweredChallenges) {
        s.lastSpoofAlertUs = now;
        this.alert('spoofed_challenges', s.key, profile,
          `${r.unansweredChallenges}+ challenges to ${s.key} went unanswered within ${humanSeconds(r.shortWindowSeconds)} although it is a proven site: forged requests (last user agent ${JSON.stringify(s.lastUa.slice(0, 64))}); not banned`,
          now, undefined, s.lastUa || undefined);
      }
      const tol = this.credentialScanTolerance(s, rs);
      if (s.failingUsers >= 2 && s.failingUsers >= r.nearMissFraction * tol) this.nearMiss(s, rs, now, profile, `${s.failingUsers} distinct users failing without success at proven site ${s.key}, credential-scan tolerance ${tol - 1}`);
      return;
    }
    // Unproven: tell when a source comes close to a threshold without crossing it.
    const f = r.nearMissFraction;
    let what = '';
    if (countOf(s.failShort, now, rs.shortWindowUs) >= f * r.bruteForceFailures) what = `brute_force at ${fmt(countOf(s.failShort, now, rs.shortWindowUs))} of ${r.bruteForceFailures}`;
    else if (countOf(s.failLong, now, rs.longWindowUs) >= f * r.slowGuessingFailures) what = `slow_guessing at ${fmt(countOf(s.failLong, now, rs.longWindowUs))} of ${r.slowGuessingFailures}`;
    else if (s.failingUsers >= 2 && s.failingUsers >= f * this.credentialScanTolerance(s, rs)) what = `credential_scan at ${s.failingUsers} of ${this.credentialScanTolerance(s, rs)} users`;
    else if (countOf(s.unansShort, now, rs.shortWindowUs) >= f * r.unansweredChallenges) what = `unanswered_challenges at ${fmt(countOf(s.unansShort, now, rs.shortWindowUs))} of ${r.unansweredChallenges}`;
    else if (countOf(s.unansLong, now, rs.longWindowUs) >= f * r.slowUnansweredChallenges) what = `slow_unanswered_challenges at ${fmt(countOf(s.unansLong, now, rs.longWindowUs))} of ${r.slowUnansweredChallenges}`;
    if (what !== '') this.nearMiss(s, rs, now, profile, `${s.key} came close to a ban: ${what}`);
  }

  private nearMiss(s: EvidenceState, rs: RuleSettings, now: number, profile: string, message: string): void {
    if (now - s.lastNearMissUs < rs.alertIntervalUs) return;
    s.lastNearMissUs = now;
    this.alert('near_miss', s.key, profile, message, now, undefined, fewFirst(s.agentSample));
  }

  // ---------------------------------------------------------------- bans

  private isProtected(cidr: Cidr, rs: RuleSettings, now: number): boolean {
    for (const a of this.switchAddresses) {
      const ip = parseIp(a);
      if (ip && cidrContainsIp(cidr, ip)) return true;
    }
    for (const c of this.base.allow) if (cidrsOverlap(c, cidr)) return true;
    if (rs !== this.base) for (const c of rs.allow) if (cidrsOverlap(c, cidr)) return true;
    for (const [k, g] of this.graces) {
      if (g.untilUs <= now) { this.graces.delete(k); continue; }
      if (cidrsOverlap(g.cidr, cidr)) return true;
    }
    return false;
  }

  private banSeconds(key: string, previous: number, rs: RuleSettings): number {
    const r = rs.raw;
    const grown = r.banSeconds * Math.pow(r.banIncrementFactor, Math.min(previous, 64));
    const u = fnv1a32(`${key}#${previous}`) / 0x1_0000_0000;
    return Math.max(1, Math.round(Math.min(r.banMaxSeconds, grown * (1 + r.banJitterFraction * u))));
  }

  private ban(st: EvidenceState, v: Verdict, rs: RuleSettings, now: number, e: AuthEvent | null, calls?: CallEvidenceSummary): void {
    const cidr = st instanceof PrefixState ? st.cidr : parseCidr(st.key)!;
    if (this.isProtected(cidr, rs, now)) return;
    const active = this.activeBans.get(cidr.text);
    if (active && active.untilUs > now) { st.bannedUntilUs = active.untilUs; return; }
    let o = this.offences.get(cidr.text);
    if (o && now - o.lastEndUs > rs.offenceMemoryUs) { this.offences.delete(cidr.text); o = undefined; }
    const previous = o ? o.count : 0;
    const seconds = this.banSeconds(cidr.text, previous, rs);
    const untilUs = now + seconds * US;
    this.activeBans.set(cidr.text, { cidr, untilUs, rule: v.rule });
    if (o) { this.offences.delete(cidr.text); o.count++; o.lastEndUs = untilUs; } else o = { count: 1, lastEndUs: untilUs };
    this.offences.set(cidr.text, o);
    this.trimOffences();
    this.trimActiveBans(now);
    const evidence = calls !== undefined ? { ...this.evidence(st), calls } : this.evidence(st);
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
      atUs: e !== null ? e.timeUs : now,
      previousOffences: previous,
    };
    (this.sink.bans ??= []).push(decision);
    if (this.options.onDecision) this.options.onDecision(decision);
  }

  private evidence(st: EvidenceState): BanEvidence {
    const host = st instanceof SourceState ? st : null;
    const sampled = fewSize(st.userSample);
    return {
      events: st.events,
      challenges: st.challenges,
      answeredFailures: st.answeredFailures,
      successes: st.successes,
      users: fewList(st.userSample),
      distinctUsers: host !== null ? Math.max(host.users !== null ? host.users.size : 0, sampled) : Math.max((st as PrefixState).failingUserCount, sampled),
      userAgents: fewList(st.agentSample),
      firstSeenUs: st.firstSeenUs,
      lastSeenUs: st.lastSeenUs,
      ...(st instanceof PrefixState ? { addresses: st.addressCount } : {}),
    };
  }

  private trimOffences(): void {
    const cap = this.base.raw.maxOffenceRecords;
    for (const k of this.offences.keys()) {
      if (this.offences.size <= cap) break;
      this.offences.delete(k);
    }
  }

  /**
   * Drops expired bans once the map has doubled since the last sweep: sweeping on every ban
   * past a fixed size made a flood of N bans cost O(N²) (100,000 bans: minutes of CPU).
   */
  private trimActiveBans(now: number): void {
    if (this.activeBans.size < this.trimActiveBansAt) return;
    for (const [k, b] of this.activeBans) if (b.untilUs <= now) this.activeBans.delete(k);
    this.trimActiveBansAt = Math.max(1024, this.activeBans.size * 2);
  }
}

/** The policy the daemon and `fsguard policy simulate` use. */
export function createPolicy(
  settings: PolicySettings,
  profileOverrides: Readonly<Record<string, Partial<PolicySettings>>> = {},
  options: PolicyOptions = {},
): RatePolicy {
  return new RatePolicy(settings, profileOverrides, options);
}
