// Per-source and per-prefix evidence state, and its memory layout. A tracked source costs a
// few dozen bytes while it only sends challenges (an address spray): everything only a real
// client or an attacker that answers needs (users, failure counters, a second pending
// challenge) lives in side objects allocated on the first write of anything but the default.
import { parseCidr, type Cidr, type IpAddress } from '../net/ip.js';
import type { Counter } from './counters.js';

/** Samples kept for the ban's log line. */
const SAMPLE_USERS = 8;
const SAMPLE_AGENTS = 4;
/** Distinct addresses remembered per prefix (beyond that only the count matters). */
const PREFIX_ADDRESS_CAP = 256;
/** Distinct failing users remembered per prefix. */
const PREFIX_USER_CAP = 256;
/** Call-ids remembered per source as already counted unanswered (retransmissions count once). */
const COUNTED_CALL_IDS = 64;
/** Failing users are looked through for those past the long window once per this part of it. */
const USER_SWEEP_PARTS = 12;

/**
 * The moment users are looked through as of at `now`: the start of the twelfth of the long
 * window (counted from the epoch) that `now` falls in. A user whose last failure is past the
 * long window at that moment stops counting (at a source and at its prefix alike), late by at
 * most a twelfth of the window. The moment depends on `now` only, not on when the users were
 * last looked through: the timer's look (without events) and an event's find the same users
 * past it, so the timer changes no decision (simulate, which has no timer, decides alike).
 */
export function userSweepPoint(now: number, longWindowUs: number): number {
  const part = longWindowUs / USER_SWEEP_PARTS;
  return Math.floor(now / part) * part;
}

/** Whether users last looked through as of `sweptUs` are due to be again at `now` (see userSweepPoint). */
export function userSweepDue(sweptUs: number, now: number, longWindowUs: number): boolean {
  return userSweepPoint(now, longWindowUs) > sweptUs;
}

/** What one user did at one source. */
export interface UserRecord {
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
  rate: Counter | null;
  /** When a success of this user here was last told to the toll-fraud table (see ACCOUNT_NOTE_US). */
  accountNotedUs: number;
}

/**
 * A few distinct strings in arrival order (the first ones kept): null, one string, or an array
 * from the second on. A sprayed source has one user and one user agent; an array for each cost
 * about 80 bytes on every tracked source.
 */
export type Few = string | string[] | null;

/** `f` with `v` added unless present or `cap` is reached (cap ≥ 2). */
export function fewAdd(f: Few, v: string, cap: number): Few {
  if (f === null) return v;
  if (typeof f === 'string') return f === v ? f : [f, v];
  if (f.length < cap && !f.includes(v)) f.push(v);
  return f;
}

export function fewList(f: Few): string[] {
  return f === null ? [] : typeof f === 'string' ? [f] : [...f];
}

export function fewSize(f: Few): number {
  return f === null ? 0 : typeof f === 'string' ? 1 : f.length;
}

export function fewFirst(f: Few): string | undefined {
  return f === null ? undefined : typeof f === 'string' ? f : f[0];
}

/**
 * Evidence most tracked states never get: answered failures, successes, an attack-tool user
 * agent, a ban rule, a near-miss. Allocated on the first write of anything but the default.
 * Under an address spray a source only ever sends challenges, and every field kept inline
 * cost 8 bytes (24 for a time, which V8 keeps in a separate box) on each of the 100,000
 * tracked sources, and again as old-generation garbage for each evicted one.
 */
export class RareEvidence {
  answeredFailures = 0;
  successes = 0;
  bannedRule = '';
  /** Answered failures: short window (brute force) and long horizon (slow guessing). */
  failShort: Counter | null = null;
  failLong: Counter | null = null;
  /** First attack-tool user agent seen (empty if none). */
  scannerUa = '';
  lastNearMissUs = -Infinity;
}

/** Evidence shared by hosts and prefixes. */
export abstract class EvidenceState {
  lruUs = 0;
  firstSeenUs = 0;
  lastSeenUs = 0;
  events = 0;
  challenges = 0;
  bannedUntilUs = 0;
  /** Challenges that went unanswered: short window and long horizon (a spray's only evidence). */
  unansShort: Counter | null = null;
  unansLong: Counter | null = null;
  userSample: Few = null;
  agentSample: Few = null;
  /** The profile it was last judged with, or of its last event (status and explain judge it with its settings). */
  lastProfile = '';
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
  get failShort(): Counter | null { return this.rare !== null ? this.rare.failShort : null; }
  set failShort(v: Counter | null) { if (this.rare !== null || v !== null) this.more().failShort = v; }
  get failLong(): Counter | null { return this.rare !== null ? this.rare.failLong : null; }
  set failLong(v: Counter | null) { if (this.rare !== null || v !== null) this.more().failLong = v; }
  get scannerUa(): string { return this.rare !== null ? this.rare.scannerUa : ''; }
  set scannerUa(v: string) { if (this.rare !== null || v !== '') this.more().scannerUa = v; }
  get lastNearMissUs(): number { return this.rare !== null ? this.rare.lastNearMissUs : -Infinity; }
  set lastNearMissUs(v: number) { if (this.rare !== null || v !== -Infinity) this.more().lastNearMissUs = v; }

  sampleUser(user: string): void {
    if (user !== '') this.userSample = fewAdd(this.userSample, user, SAMPLE_USERS);
  }

  /** The user sample takes no more names: a new name is kept only as the current run's. */
  get userSampleFull(): boolean {
    return fewSize(this.userSample) >= SAMPLE_USERS;
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
export class HostDetail {
  /** Pending challenges beyond the first (see SourceState.pendingAdd). */
  pendingMore: Map<string, number> | null = null;
  users: Map<string, UserRecord> | null = null;
  failingUsers = 0;
  succeededUsers = 0;
  maxUserStreak = 0;
  lastSweepUs = 0;
  unpairedForbidden = 0;
  lastForbiddenUs = 0;
  /** register_failure events that came before their FORBIDDEN attempt (sofia threads reorder). */
  unpairedFailures = 0;
  lastUnpairedFailureUs = 0;
  lastSpoofAlertUs = -Infinity;
  lastShieldAlertUs = -Infinity;
  /** The link: its slowest answer so far (µs) and when it last answered a challenge. */
  slowestAnswerUs = 0;
  lastAnswerUs = -Infinity;
  /** When a challenge of this source was last counted unanswered (a late answer takes it back). */
  lastCountedUs = 0;
  /**
   * The call-id of the last answer: a challenge event arriving after its own answer (sofia
   * threads reorder) is no challenge. The string itself, as the pending and counted call-ids
   * are: the readers make each value a string of its own (never a slice of the event's body),
   * and hashing it cost more than comparing it (fnv1a32 was 2 % of the daemon's main thread).
   */
  lastAnsweredCall = '';
}

export class SourceState extends EvidenceState {
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

  /** The detail object, allocated now (callers that write link or pairing state). */
  detail(): HostDetail {
    return (this.detailValue ??= new HostDetail());
  }

  /** The detail object if anything but defaults was ever written. */
  get detailOrNull(): HostDetail | null {
    return this.detailValue;
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

  /** Forgets a call-id counted unanswered (its answer came late); true if it was there. */
  uncount(callId: string): boolean {
    const c = this.counted;
    if (c === null) return false;
    if (typeof c === 'string') { if (c !== callId) return false; this.counted = null; return true; }
    const i = c.indexOf(callId);
    if (i < 0) return false;
    c.splice(i, 1);
    return true;
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

/**
 * Whether `addr` counts as an address new to `seen`, which keeps at most PREFIX_ADDRESS_CAP of
 * them: past the cap an address not kept is counted (a spray's are all new), not stored.
 */
function tally(seen: Set<string>, addr: string): boolean {
  if (seen.has(addr)) return false;
  if (seen.size < PREFIX_ADDRESS_CAP) seen.add(addr);
  return true;
}

/** A prefix's failing users, each with its last failure there, and as of when they were last swept. */
class PrefixUsers {
  readonly lastFailureUs = new Map<string, number>();
  sweptUs = 0;
}

export class PrefixState extends EvidenceState {
  /** Tells this prefix from an earlier one of the same key that was evicted. */
  serial = 0;
  /** Latest legitimacy of any host inside: a proven prefix is never banned as a whole. */
  provenUntilUs = 0;
  /** The sets are allocated on first use: under a spray most prefixes see one address. */
  private addresses: Set<string> | null = null;
  addressCount = 0;
  private scannerAddresses: Set<string> | null = null;
  scannerAddressCount = 0;
  private failingUsers: PrefixUsers | null = null;
  private cidrValue: Cidr | null = null;

  /** Parsed when first needed (a ban, explain): most prefixes are never banned. */
  get cidr(): Cidr {
    return (this.cidrValue ??= parseCidr(this.key)!);
  }

  noteAddress(addr: string): void {
    if (tally(this.addresses ??= new Set(), addr)) this.addressCount++;
  }

  /**
   * Tallied as addresses are: a prefix holding a proven host is never banned, so scanner user
   * agents forged from ever new addresses inside it would otherwise grow the set without end.
   */
  noteScannerAddress(addr: string): void {
    if (tally(this.scannerAddresses ??= new Set(), addr)) this.scannerAddressCount++;
  }

  noteFailingUser(user: string, now: number): void {
    const last = (this.failingUsers ??= new PrefixUsers()).lastFailureUs;
    if (last.size < PREFIX_USER_CAP || last.has(user)) last.set(user, now);
  }

  /** Forgets the failing users whose last failure is past the long window (as a source does), when due. */
  sweepFailingUsers(now: number, longWindowUs: number): void {
    const u = this.failingUsers;
    if (u === null || !userSweepDue(u.sweptUs, now, longWindowUs)) return;
    const asOf = userSweepPoint(now, longWindowUs);
    u.sweptUs = asOf;
    for (const [user, at] of u.lastFailureUs) if (asOf - at > longWindowUs) u.lastFailureUs.delete(user);
  }

  get failingUserCount(): number {
    return this.failingUsers !== null ? this.failingUsers.lastFailureUs.size : 0;
  }

  override resetEvidence(): void {
    super.resetEvidence();
    this.addresses = null;
    this.addressCount = 0;
    this.scannerAddresses = null;
    this.scannerAddressCount = 0;
    this.failingUsers = null;
  }
}
