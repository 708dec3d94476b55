// The call evidence of the policy: what CallEvents say about hosts, IPv6 prefixes and accounts.
// Pure and clocked by the events' own time, like the auth half. The probing rules are rows of
// the one rule table (rules.ts) and read this evidence through the facts views (facts.ts); the
// engine judges and books the bans (one owner of what is banned). Toll fraud is about an
// account, not a source: its alert (and opt-in ban verdict) is decided here.
//
// What a call proves (docs/policy.md, "Calls"):
//   - An unauthenticated call in a public context that ends unrouted or refused is the trace of
//     a dialplan probe: scanners dial 00972…, 9011…, +44… to find a route out. One such call
//     proves nothing (carriers misdial); several distinct numbers do, quickly or over hours.
//     A call's source is real (FreeSWITCH answered the INVITE and the caller's ACK came back,
//     or the 404 was sent to it after a TCP/UDP exchange): unlike an unanswered challenge,
//     forging one from someone else's address takes a full SIP transaction.
//   - An answered call proves its source: a carrier or an ITSP trunk delivering DIDs. Its
//     misdials never ban it, whatever they look like (carriers deliver DIDs in E.164).
//   - An authenticated call belongs to an account. An account dialling many international or
//     premium numbers it never dialled before, within minutes, beyond its own usual peak — or
//     from an address it never used — is toll fraud with a stolen password: an alert naming
//     the account, the address and the numbers; banning the address is opt-in per profile and
//     never hits a proven multi-account site unless asked.
import type { CallEvent } from '../../events/call-event.js';
import { ipv6PrefixText } from '../../net/ip.js';
import { counted, counterWindow, countOf, type Counter, type CounterWindow } from '../counters.js';
import { cutSparing } from '../eviction.js';
import { LruList, type LruEntry } from '../lru-list.js';
// engine.js imports this module too: only functions cross the cycle, used after both loaded.
import { matchesScannerPattern } from '../engine.js';
import type { RuleId } from '../rules.js';
import { settingsForProfile, type PolicySettings } from '../settings.js';
import type { FullTableStats } from '../types.js';
import { classifyNumber, isCostly, type NumberClass, type NumberPatterns } from './numbers.js';

const US = 1_000_000;
/** Destinations remembered per host or prefix (beyond that a new one still counts). */
const HOST_DESTINATIONS = 256;
/** Numbers remembered per account (its history), oldest forgotten first. */
const ACCOUNT_NUMBERS = 512;
/** Addresses remembered per account. */
const ACCOUNT_ADDRESSES = 32;
/** Numbers and user agents kept for a ban's log line or an alert. */
const SAMPLE = 10;
const EVICT_TO_FRACTION = 0.9;
/** A full account table looks for accounts gone idle at most this often (event time). */
const IDLE_SWEEP_US = 60 * US;
/**
 * The same account authenticating again from the same address is told to noteAuthSuccess at
 * most this often (the engine keeps the time per user and source). What a note does is already
 * done by the first one: the address is known, and the table's use order and liveness are about
 * hours (legitimacySeconds). A phone refreshes every minute or two, and finding its account among
 * tens of thousands walks entries gone cold since its last refresh. It can differ only for an
 * account evicted in between (back at its next note, or made by its next call) or one that used
 * more than ACCOUNT_ADDRESSES addresses in this time.
 */
export const ACCOUNT_NOTE_US = 10 * 60 * US;

/** What the auth evidence says about a call's source (the engine owns it). */
export interface CallContext {
  /** A successful authentication or live registration from it: a site. */
  readonly provenByAuth: boolean;
  /** Its IPv6 prefix holds a host proven by auth. */
  readonly prefixProvenByAuth: boolean;
  /** Accounts that authenticated successfully at it (2+: a multi-phone site). */
  readonly siteAccounts: number;
}

/** Summary of the call evidence behind a ban (logged with it). */
export interface CallEvidenceSummary {
  readonly calls: number;
  readonly probingCalls: number;
  readonly answeredCalls: number;
  readonly distinctNumbers: number;
  readonly numbers: readonly string[];
  readonly userAgents: readonly string[];
}

/** A toll-fraud ban (opt-in): the engine books it like any verdict. */
export interface CallVerdict {
  readonly target: string;
  readonly rule: RuleId;
  readonly reason: string;
  readonly evidence: CallEvidenceSummary;
}

export interface CallAlert {
  readonly kind: 'toll_fraud' | 'near_miss';
  readonly source: string;
  readonly profile: string;
  /** `user@realm`. */
  readonly account: string;
  readonly numbers?: readonly string[];
  readonly userAgent?: string;
  readonly message: string;
  readonly atUs: number;
}

/** What one call changed. */
export interface CallObservation {
  /** Probing evidence or an attack-tool user agent was added: judge the source (and prefix). */
  readonly judge: boolean;
  /** It was a probing call or carried a scanner user agent, from an unproven host: feed its prefix. */
  readonly feedPrefix: boolean;
  readonly scanner: boolean;
  readonly verdicts: readonly CallVerdict[];
  readonly alerts: readonly CallAlert[];
}

// Arrays not frozen: see EMPTY_OUTPUT in ../engine.ts.
const QUIET: CallObservation = Object.freeze({ judge: false, feedPrefix: false, scanner: false, verdicts: [] as readonly CallVerdict[], alerts: [] as readonly CallAlert[] });

/** One profile's settings, compiled. */
interface CallRuleSettings {
  readonly raw: PolicySettings;
  readonly publicContexts: ReadonlySet<string>;
  readonly patterns: NumberPatterns;
  readonly scannerPatterns: readonly string[];
  /** The windows (each with the base settings' length of it: see CounterWindow). */
  readonly shortWindow: CounterWindow;
  readonly longWindow: CounterWindow;
  readonly tollWindow: CounterWindow;
  readonly historyUs: number;
  readonly legitimacyUs: number;
  readonly alertIntervalUs: number;
}

/** A profile's settings (`base`: the base settings', compiled; null when these are the base). */
function compile(s: PolicySettings, base: CallRuleSettings | null): CallRuleSettings {
  return {
    raw: s,
    publicContexts: new Set(s.callPublicContexts),
    patterns: { international: s.callInternationalPrefixes, premium: s.callPremiumPrefixes },
    scannerPatterns: s.scannerUserAgents.map((p) => p.toLowerCase()),
    shortWindow: counterWindow(s.shortWindowSeconds * US, base !== null ? base.shortWindow : null),
    longWindow: counterWindow(s.longWindowSeconds * US, base !== null ? base.longWindow : null),
    tollWindow: counterWindow(s.tollFraudWindowSeconds * US, base !== null ? base.tollWindow : null),
    historyUs: s.tollFraudHistorySeconds * US,
    legitimacyUs: s.legitimacySeconds * US,
    alertIntervalUs: s.alertIntervalSeconds * US,
  };
}

function addSample(list: string[], v: string): void {
  if (v !== '' && list.length < SAMPLE && !list.includes(v)) list.push(v);
}

/** Probing evidence of a host or a prefix (the facts views read it). */
export class ProbeEvidence {
  lruUs = 0;
  calls = 0;
  probingCalls = 0;
  answeredCalls = 0;
  /** Proven by an answered call until then. */
  provenUntilUs = 0;
  scannerUa = '';
  /** Number → when it was last counted as distinct. */
  destinations: Map<string, number> | null = null;
  distinctShort: Counter | null = null;
  distinctLong: Counter | null = null;
  intlShort: Counter | null = null;
  intlLong: Counter | null = null;
  numbers: string[] = [];
  agents: string[] = [];
  lastNearMissUs = -Infinity;

  constructor(readonly key: string) {}

  /** Counts a probing call to `number`; a number already counted within the long horizon counts once. */
  probe(number: string, cls: NumberClass, now: number, rs: CallRuleSettings): void {
    this.probingCalls++;
    const d = (this.destinations ??= new Map());
    const last = d.get(number);
    if (last !== undefined && now - last <= rs.longWindow.us) return;
    if (last !== undefined) d.delete(number);
    else if (d.size >= HOST_DESTINATIONS) d.delete(d.keys().next().value!);
    d.set(number, now);
    addSample(this.numbers, number);
    this.distinctShort = counted(this.distinctShort, now, rs.shortWindow);
    this.distinctLong = counted(this.distinctLong, now, rs.longWindow);
    if (isCostly(cls)) {
      this.intlShort = counted(this.intlShort, now, rs.shortWindow);
      this.intlLong = counted(this.intlLong, now, rs.longWindow);
    }
  }

  reset(): void {
    this.destinations = null;
    this.distinctShort = null;
    this.distinctLong = null;
    this.intlShort = null;
    this.intlLong = null;
    this.scannerUa = '';
    this.numbers = [];
  }

  summary(): CallEvidenceSummary {
    return {
      calls: this.calls,
      probingCalls: this.probingCalls,
      answeredCalls: this.answeredCalls,
      distinctNumbers: this.destinations !== null ? this.destinations.size : 0,
      numbers: [...this.numbers],
      userAgents: [...this.agents],
    };
  }
}

/** How the facts views find a target's call evidence. */
export interface CallEvidenceLookup {
  hostEvidence(key: string): ProbeEvidence | null;
  prefixEvidence(key: string): ProbeEvidence | null;
}

/**
 * What one authenticated account did, for toll fraud. One is kept per account that
 * authenticates (tens of thousands on a provider's box), most of which never dial out: the
 * addresses are two short arrays (an account uses one or a few) and the number history is made
 * at its first costly call.
 */
class AccountState implements LruEntry<AccountState> {
  lruUs = 0;
  lruPrev: AccountState | null = null;
  lruNext: AccountState | null = null;
  /**
   * Addresses the account used (oldest first), and when it first used each. Made at their first
   * address as arrays of one (a push onto an empty array reserves 17 slots: 170 bytes more per
   * account, tens of thousands of which use one address).
   */
  private addresses: string[] = [];
  private addressFirstUs: number[] = [];
  /** International/premium number → when it last dialled it (its history); made at the first. */
  numbers: Map<string, number> | null = null;
  /** Costly numbers new to it, in the toll-fraud window. */
  newCostly: Counter | null = null;
  /** The most new costly numbers it reached in a window that raised no alert (its usual peak). */
  peak = 0;
  peakUs = 0;
  /** Tumbling window over which `peak` is taken. */
  bucketStartUs = 0;
  bucketMax = 0;
  bucketAlerted = false;
  /** The new costly numbers of the current window, for the alert. */
  recent: string[] = [];
  recentUs = 0;
  lastAlertUs = -Infinity;
  lastNearMissUs = -Infinity;

  /**
   * @param liveFor The settings of the profile with the longest legitimacySeconds of those it
   *   authenticated or called over: in a full table it stays live (keeps its place and its
   *   history) that long after its last use. One reference, not a time: the same for every
   *   account while the profiles keep the base legitimacySeconds.
   */
  constructor(readonly account: string, readonly realm: string, private liveFor: CallRuleSettings) {}

  /** Used over a profile with settings `rs` (see liveFor). */
  usedOver(rs: CallRuleSettings): void {
    if (rs.legitimacyUs > this.liveFor.legitimacyUs) this.liveFor = rs;
  }

  /** Unused for longer than it stays live. */
  idleAt(now: number): boolean {
    return now - this.lruUs > this.liveFor.legitimacyUs;
  }

  /** `user@realm` (as the alerts name it). */
  get key(): string {
    return accountKey(this.account, this.realm);
  }

  /** Remembers an address (its first use is kept). */
  noteAddress(address: string, now: number): void {
    if (this.addresses.length === 0) { this.addresses = [address]; this.addressFirstUs = [now]; return; }
    if (this.addresses.includes(address)) return;
    if (this.addresses.length >= ACCOUNT_ADDRESSES) { this.addresses.shift(); this.addressFirstUs.shift(); }
    this.addresses.push(address);
    this.addressFirstUs.push(now);
  }

  usesAddress(address: string): boolean {
    return this.addresses.includes(address);
  }

  /** True when `address` is one the account first used within this window (and it used others before). */
  isNewAddress(address: string, now: number, rs: CallRuleSettings): boolean {
    const at = this.addresses.indexOf(address);
    if (at < 0) return this.addresses.length > 0;
    const first = this.addressFirstUs[at]!;
    if (now - first >= rs.tollWindow.us) return false;
    for (let i = 0; i < this.addresses.length; i++) if (i !== at && this.addressFirstUs[i]! < first) return true;
    return false;
  }

  rollBucket(now: number, rs: CallRuleSettings): void {
    if (this.peakUs > 0 && now - this.peakUs > rs.historyUs) { this.peak = 0; this.peakUs = 0; }
    if (now - this.bucketStartUs < rs.tollWindow.us) return;
    if (!this.bucketAlerted && this.bucketMax > this.peak) { this.peak = this.bucketMax; this.peakUs = now; }
    this.bucketStartUs = now;
    this.bucketMax = 0;
    this.bucketAlerted = false;
  }
}

/**
 * The evidence of `key` in a map kept in use order, made if new. A map over `cap` is cut to 90 %
 * of it, those proven by answered calls last: a spray of calls from new addresses (a botnet, an
 * IPv6 range) must not take a carrier's proof with it, or its next misdials would count as
 * probing.
 */
function touch(map: Map<string, ProbeEvidence>, key: string, now: number, cap: number): ProbeEvidence {
  let v = map.get(key);
  if (v === undefined) {
    v = new ProbeEvidence(key);
    map.set(key, v);
    if (map.size > cap) cutSparing(map, Math.floor(cap * EVICT_TO_FRACTION), (e) => e.provenUntilUs > now, v);
  } else {
    map.delete(key);
    map.set(key, v);
  }
  v.lruUs = now;
  return v;
}

/**
 * The accounts, by realm then user, in one use order across realms (an LruList: the maps are
 * only for lookup): the keys are the event's own strings (interned by the reader, their hashes
 * cached), so the lookup made for a successful authentication (at most every ACCOUNT_NOTE_US
 * per user and address) builds no `user@realm` string. (Measured against one map of `user@realm` keys and against eviction by time from a
 * sampled cut-off: this was the fastest of the three, bench/RESULTS.md "Session 4".)
 *
 * Full, it keeps the accounts it has rather than cycling through more than it can hold. Phones
 * authenticate in turn, every hour or so: with more live accounts than `cap`, making room for
 * each newcomer by dropping the least recently used dropped exactly the account that came
 * next, so every account's history (its addresses, its usual numbers) was lost within the
 * hour, at the price of an account made and thrown away per authentication. So an
 * authentication takes the place of an idle account only (one unused for longer than the
 * legitimacySeconds of the profiles it was used over: AccountState.liveFor), and is
 * counted as untracked when every account is live (`admit`); a call always gets its account
 * a place (`touch`), at the least recently used one's expense.
 * An attacker cannot fill the table: only a successful authentication or call makes an account.
 */
class AccountTable {
  private readonly byRealm = new Map<string, Map<string, AccountState>>();
  /** All accounts, least recently used first. */
  private readonly order = new LruList<AccountState>();
  size = 0;
  /** Authentications of accounts left untracked because every tracked account was live. */
  untracked = 0;
  private lastIdleSweepUs = -Infinity;

  /** `shortestLiveUs`: the shortest legitimacySeconds of the base and every profile (µs). */
  constructor(private readonly shortestLiveUs: number) {}

  /**
   * The state of an account that authenticated over a profile with settings `rs`, or null when
   * the table is full of live ones.
   */
  admit(account: string, realm: string, now: number, cap: number, rs: CallRuleSettings): AccountState | null {
    const a = this.used(account, realm, now, rs);
    if (a !== null) return a;
    if (this.size >= cap) {
      if (now - this.lastIdleSweepUs >= IDLE_SWEEP_US) {
        this.lastIdleSweepUs = now;
        this.dropIdle(now);
      }
      if (this.size >= cap) {
        this.untracked++;
        return null;
      }
    }
    return this.add(account, realm, now, cap, rs);
  }

  /**
   * The state of an account that calls over a profile with settings `rs`: made if new, the
   * least recently used going over `cap`.
   */
  touch(account: string, realm: string, now: number, cap: number, rs: CallRuleSettings): AccountState {
    return this.used(account, realm, now, rs) ?? this.add(account, realm, now, cap, rs);
  }

  /** A tracked account, marked used now over a profile with settings `rs`; null if untracked. */
  private used(account: string, realm: string, now: number, rs: CallRuleSettings): AccountState | null {
    const a = this.byRealm.get(realm)?.get(account);
    if (a === undefined) return null;
    this.order.use(a, now);
    a.usedOver(rs);
    return a;
  }

  private add(account: string, realm: string, now: number, cap: number, rs: CallRuleSettings): AccountState {
    let users = this.byRealm.get(realm);
    if (users === undefined) { users = new Map(); this.byRealm.set(realm, users); }
    const a = new AccountState(account, realm, rs);
    users.set(account, a);
    this.order.push(a, now); // before drop: a newcomer is never the oldest
    // One for one: under the admission rule above only a call from an untracked account
    // gets here over the cap, and a batch cut would take thousands of live histories for it.
    if (++this.size > cap) this.drop(this.order.head!);
    return a;
  }

  *values(): IterableIterator<AccountState> {
    for (let a = this.order.head; a !== null; a = a.lruNext) yield a;
  }

  /**
   * Drops the accounts idle at `now`. Each stays live for at least the shortest legitimacy, so
   * the walk from the least recently used stops at the first account used since then: with one
   * legitimacySeconds for every profile, at the first live one.
   */
  private dropIdle(now: number): void {
    for (let a = this.order.head; a !== null && now - a.lruUs > this.shortestLiveUs;) {
      const next = a.lruNext;
      if (a.idleAt(now)) this.drop(a);
      a = next;
    }
  }

  private drop(a: AccountState): void {
    this.order.remove(a);
    const users = this.byRealm.get(a.realm)!;
    users.delete(a.account);
    if (users.size === 0) this.byRealm.delete(a.realm);
    this.size--;
  }
}

export class CallPolicy implements CallEvidenceLookup {
  private readonly base: CallRuleSettings;
  private readonly byProfile = new Map<string, CallRuleSettings>();
  private readonly hosts = new Map<string, ProbeEvidence>();
  private readonly prefixes = new Map<string, ProbeEvidence>();
  private readonly accounts: AccountTable;
  private readonly prefixLength: number;

  constructor(settings: PolicySettings, overrides: Readonly<Record<string, Partial<PolicySettings>>> = {}) {
    this.base = compile(settings, null);
    for (const name of Object.keys(overrides)) this.byProfile.set(name, compile(settingsForProfile(settings, overrides, name), this.base));
    let shortestLiveUs = this.base.legitimacyUs;
    for (const rs of this.byProfile.values()) if (rs.legitimacyUs < shortestLiveUs) shortestLiveUs = rs.legitimacyUs;
    this.accounts = new AccountTable(shortestLiveUs);
    this.prefixLength = settings.ipv6PrefixLength;
  }

  private settingsFor(profile: string): CallRuleSettings {
    return this.byProfile.get(profile) ?? this.base;
  }

  hostEvidence(key: string): ProbeEvidence | null {
    return this.hosts.size === 0 ? null : this.hosts.get(key) ?? null;
  }

  prefixEvidence(key: string): ProbeEvidence | null {
    return this.prefixes.size === 0 ? null : this.prefixes.get(key) ?? null;
  }

  /**
   * A successful authentication of `account@realm` from `source` over `profile` ('' for the
   * base settings): the account uses that address.
   */
  noteAuthSuccess(account: string, realm: string, source: string, profile: string, nowUs: number): void {
    if (account === '') return;
    this.accounts.admit(account, realm, nowUs, this.base.raw.maxTrackedAccounts, this.settingsFor(profile))?.noteAddress(source, nowUs);
  }

  /** A ban or a manual unban: its call evidence starts afresh (proof by answered calls is kept). */
  forget(target: string): void {
    this.hosts.get(target)?.reset();
    this.prefixes.get(target)?.reset();
  }

  /** The call evidence behind a ban of `target`, if it has any. */
  summary(target: string): CallEvidenceSummary | undefined {
    const ev = this.hosts.get(target) ?? this.prefixes.get(target);
    return ev !== undefined && (ev.probingCalls > 0 || ev.scannerUa !== '') ? ev.summary() : undefined;
  }

  /** Hosts, prefixes and accounts with call state. */
  tracked(): number {
    return this.hosts.size + this.prefixes.size + this.accounts.size;
  }

  /** The toll-fraud account table: accounts tracked, and authentications left untracked (full of live accounts). */
  accountStats(): FullTableStats {
    return { tracked: this.accounts.size, leftOut: this.accounts.untracked };
  }

  /**
   * Records one call from a source the engine may still judge (not allowed, not FreeSWITCH,
   * not banned). `prefixOpen`: its IPv6 prefix may still gather evidence (not banned, no host
   * proven by auth inside).
   */
  observe(e: CallEvent, ctx: CallContext, nowUs: number, prefixOpen: boolean): CallObservation {
    const rs = this.settingsFor(e.profile);
    const key = e.source.text;
    const host = touch(this.hosts, key, nowUs, this.base.raw.maxTrackedSources);
    const prefixKey = e.source.family === 6 ? ipv6PrefixText(e.source, this.prefixLength) : null;
    const prefix = prefixKey !== null
      ? touch(this.prefixes, prefixKey, nowUs, this.base.raw.maxTrackedPrefixes)
      : null;
    host.calls++;
    if (prefix !== null) prefix.calls++;
    addSample(host.agents, e.userAgent);
    if (e.account !== null) return this.accountCall(e, ctx, rs, nowUs);

    if (e.outcome === 'answered' && e.answeredSeconds >= rs.raw.callProofMinSeconds) {
      // A carrier or trunk: its calls reach someone. Its prefix is a live site too.
      host.answeredCalls++;
      host.provenUntilUs = Math.max(host.provenUntilUs, nowUs + rs.legitimacyUs);
      if (prefix !== null) { prefix.answeredCalls++; prefix.provenUntilUs = Math.max(prefix.provenUntilUs, host.provenUntilUs); }
      return QUIET;
    }
    if (ctx.provenByAuth || host.provenUntilUs > nowUs) return QUIET;
    const open = prefix !== null && prefixOpen && prefix.provenUntilUs <= nowUs;
    const scanner = e.userAgent !== '' && matchesScannerPattern(e.userAgent.toLowerCase(), rs.scannerPatterns);
    if (scanner && host.scannerUa === '') host.scannerUa = e.userAgent;
    const probing = rs.publicContexts.has(e.context) && (e.outcome === 'unrouted' || e.outcome === 'refused');
    if (probing) {
      const cls = classifyNumber(e.destination, rs.patterns);
      host.probe(e.destination, cls, nowUs, rs);
      if (open) prefix.probe(e.destination, cls, nowUs, rs);
    }
    if (!probing && !scanner) return QUIET;
    return { judge: true, feedPrefix: open, scanner, verdicts: [], alerts: [] };
  }

  private accountCall(e: CallEvent, ctx: CallContext, rs: CallRuleSettings, now: number): CallObservation {
    const a = this.accounts.touch(e.account!, e.realm, now, this.base.raw.maxTrackedAccounts, rs);
    const key = a.key;
    const source = e.source.text;
    const newAddress = a.isNewAddress(source, now, rs);
    a.noteAddress(source, now);
    a.rollBucket(now, rs);
    const cls = classifyNumber(e.destination, rs.patterns);
    if (!isCostly(cls)) return QUIET;
    const numbers = (a.numbers ??= new Map<string, number>());
    const last = numbers.get(e.destination);
    if (last !== undefined && now - last <= rs.historyUs) {
      // One of its own numbers: its history, not fraud.
      numbers.delete(e.destination);
      numbers.set(e.destination, now);
      return QUIET;
    }
    if (last !== undefined) numbers.delete(e.destination);
    else if (numbers.size >= ACCOUNT_NUMBERS) numbers.delete(numbers.keys().next().value!);
    numbers.set(e.destination, now);
    if (now - a.recentUs > rs.tollWindow.us) a.recent = [];
    a.recentUs = now;
    addSample(a.recent, e.destination);
    a.newCostly = counted(a.newCostly, now, rs.tollWindow);
    const value = countOf(a.newCostly, now, rs.tollWindow);
    if (value > a.bucketMax) a.bucketMax = value;
    const base = newAddress ? Math.min(rs.raw.tollFraudNewAddressDestinations, rs.raw.tollFraudDestinations) : rs.raw.tollFraudDestinations;
    const threshold = base + a.peak;
    if (value < threshold) {
      if (value >= 2 && value >= rs.raw.nearMissFraction * threshold && now - a.lastNearMissUs >= rs.alertIntervalUs) {
        a.lastNearMissUs = now;
        return { ...QUIET, alerts: [{ kind: 'near_miss', source, profile: e.profile, account: key, message: `account ${key} at ${source} came close to a toll_fraud alert: toll_fraud at ${value} of ${threshold} new international/premium numbers`, atUs: now }] };
      }
      return QUIET;
    }
    if (now - a.lastAlertUs < rs.alertIntervalUs) return QUIET;
    a.lastAlertUs = now;
    a.bucketAlerted = true;
    const sample = [...a.recent];
    const where = newAddress ? `from ${source}, an address it never used before` : `from ${source}`;
    const alerts: CallAlert[] = [{
      kind: 'toll_fraud', source, profile: e.profile, account: key, numbers: sample, atUs: now,
      message: `toll fraud? account ${key} dialled ${value} international/premium numbers new to it within ${rs.raw.tollFraudWindowSeconds} s ${where} (usual peak ${a.peak}): ${sample.join(', ')}`,
      ...(e.userAgent ? { userAgent: e.userAgent } : {}),
    }];
    const verdicts: CallVerdict[] = [];
    const site = ctx.siteAccounts >= 2 || this.accountsAt(source) >= 2;
    if (rs.raw.tollFraudBan && (!site || rs.raw.tollFraudBanSites)) {
      verdicts.push({
        target: source, rule: 'toll_fraud',
        reason: `account ${key} dialled ${value} international/premium numbers new to it within ${rs.raw.tollFraudWindowSeconds} s ${where}: toll fraud with a stolen password`,
        evidence: { calls: 0, probingCalls: 0, answeredCalls: 0, distinctNumbers: value, numbers: sample, userAgents: e.userAgent ? [e.userAgent] : [] },
      });
    }
    return { judge: false, feedPrefix: false, scanner: false, verdicts, alerts };
  }

  /** Accounts seen at an address (a multi-phone site has several). */
  private accountsAt(source: string): number {
    let n = 0;
    for (const a of this.accounts.values()) if (a.usesAddress(source) && ++n >= 2) return n;
    return n;
  }
}

function accountKey(account: string, realm: string): string {
  return realm === '' ? account : `${account}@${realm}`;
}
