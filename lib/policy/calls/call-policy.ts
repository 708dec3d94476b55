// The call half of the policy: CallEvents in, ban verdicts and alerts out. Pure and clocked by
// the events' own time, like the auth half; it knows nothing of bans in force, the allow-list
// or auth proof — the engine asks it only about sources it may still judge, passes what the
// auth evidence proves (CallContext), and books the bans (one owner of what is banned).
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
import { WindowCounter, countOf } from '../counters.js';
// engine.js imports this module too: only functions cross the cycle, used after both loaded.
import { matchesScannerPattern } from '../engine.js';
import { settingsForProfile, type PolicySettings } from '../settings.js';
import { classifyNumber, isCostly, type NumberClass, type NumberPatterns } from './numbers.js';
import { CALL_RULES, NO_FACTS, type CallFacts, type CallRule, type CallRuleId } from './rules.js';

const US = 1_000_000;
/** Destinations remembered per host or prefix (beyond that a new one still counts). */
const HOST_DESTINATIONS = 256;
/** Numbers remembered per account (its history), oldest forgotten first. */
const ACCOUNT_NUMBERS = 512;
/** Addresses remembered per account. */
const ACCOUNT_ADDRESSES = 32;
/** Addresses remembered per prefix. */
const PREFIX_ADDRESSES = 256;
/** Numbers and user agents kept for a ban's log line or an alert. */
const SAMPLE = 10;
const EVICT_TO_FRACTION = 0.9;

/** What the auth evidence says about a call's source (the engine owns it). */
export interface CallContext {
  /** A successful authentication or live registration from it: a site. */
  readonly provenByAuth: boolean;
  /** Its IPv6 prefix holds a host proven by auth. */
  readonly prefixProvenByAuth: boolean;
  /** Accounts that authenticated successfully at it (2+: a multi-phone site). */
  readonly siteAccounts: number;
}

/** Summary of the call evidence behind a verdict (logged with the ban, shown by explain). */
export interface CallEvidenceSummary {
  readonly calls: number;
  readonly probingCalls: number;
  readonly answeredCalls: number;
  readonly distinctNumbers: number;
  readonly numbers: readonly string[];
  readonly userAgents: readonly string[];
  /** Prefix verdicts: addresses the evidence came from. */
  readonly addresses?: number;
}

export interface CallVerdict {
  readonly scope: 'host' | 'prefix';
  /** The address or prefix text. */
  readonly target: string;
  readonly rule: CallRuleId;
  readonly reason: string;
  readonly evidence: CallEvidenceSummary;
}

export interface CallAlert {
  readonly kind: 'toll_fraud' | 'near_miss';
  readonly source: string;
  readonly profile: string;
  /** toll_fraud: `user@realm`. */
  readonly account?: string;
  readonly numbers?: readonly string[];
  readonly userAgent?: string;
  readonly message: string;
  readonly atUs: number;
}

export interface CallDecisions {
  readonly verdicts: readonly CallVerdict[];
  readonly alerts: readonly CallAlert[];
}

const NOTHING: CallDecisions = Object.freeze({ verdicts: Object.freeze([]) as readonly CallVerdict[], alerts: Object.freeze([]) as readonly CallAlert[] });

/** One profile's settings, compiled. */
interface CallRuleSettings {
  readonly raw: PolicySettings;
  readonly publicContexts: ReadonlySet<string>;
  readonly patterns: NumberPatterns;
  readonly scannerPatterns: readonly string[];
  readonly shortUs: number;
  readonly longUs: number;
  readonly tollWindowUs: number;
  readonly historyUs: number;
  readonly legitimacyUs: number;
  readonly alertIntervalUs: number;
}

function compile(s: PolicySettings): CallRuleSettings {
  return {
    raw: s,
    publicContexts: new Set(s.callPublicContexts),
    patterns: { international: s.callInternationalPrefixes, premium: s.callPremiumPrefixes },
    scannerPatterns: s.scannerUserAgents.map((p) => p.toLowerCase()),
    shortUs: s.shortWindowSeconds * US,
    longUs: s.longWindowSeconds * US,
    tollWindowUs: s.tollFraudWindowSeconds * US,
    historyUs: s.tollFraudHistorySeconds * US,
    legitimacyUs: s.legitimacySeconds * US,
    alertIntervalUs: s.alertIntervalSeconds * US,
  };
}

function addSample(list: string[], v: string): void {
  if (v !== '' && list.length < SAMPLE && !list.includes(v)) list.push(v);
}

/** Probing evidence of a host or a prefix. */
class ProbeEvidence {
  lruUs = 0;
  calls = 0;
  probingCalls = 0;
  answeredCalls = 0;
  /** Proven by an answered call until then. */
  provenUntilUs = 0;
  scannerUa = '';
  /** Number → when it was last counted as distinct. */
  destinations: Map<string, number> | null = null;
  distinctShort: WindowCounter | null = null;
  distinctLong: WindowCounter | null = null;
  intlShort: WindowCounter | null = null;
  intlLong: WindowCounter | null = null;
  numbers: string[] = [];
  agents: string[] = [];
  lastNearMissUs = -Infinity;

  constructor(readonly key: string) {}

  /** Counts a probing call to `number`; a number already counted within the long horizon counts once. */
  probe(number: string, cls: NumberClass, now: number, rs: CallRuleSettings): void {
    this.probingCalls++;
    const d = (this.destinations ??= new Map());
    const last = d.get(number);
    if (last !== undefined && now - last <= rs.longUs) return;
    if (last !== undefined) d.delete(number);
    else if (d.size >= HOST_DESTINATIONS) d.delete(d.keys().next().value!);
    d.set(number, now);
    addSample(this.numbers, number);
    (this.distinctShort ??= new WindowCounter()).add(now, rs.shortUs);
    (this.distinctLong ??= new WindowCounter()).add(now, rs.longUs);
    if (isCostly(cls)) {
      (this.intlShort ??= new WindowCounter()).add(now, rs.shortUs);
      (this.intlLong ??= new WindowCounter()).add(now, rs.longUs);
    }
  }

  facts(now: number, rs: CallRuleSettings, scanner: number): CallFacts {
    return {
      scannerUserAgent: scanner,
      distinctShort: countOf(this.distinctShort, now, rs.shortUs),
      distinctLong: countOf(this.distinctLong, now, rs.longUs),
      internationalShort: countOf(this.intlShort, now, rs.shortUs),
      internationalLong: countOf(this.intlLong, now, rs.longUs),
      newCostlyNumbers: 0,
    };
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

  summary(addresses?: number): CallEvidenceSummary {
    return {
      calls: this.calls,
      probingCalls: this.probingCalls,
      answeredCalls: this.answeredCalls,
      distinctNumbers: this.destinations !== null ? this.destinations.size : 0,
      numbers: [...this.numbers],
      userAgents: [...this.agents],
      ...(addresses !== undefined ? { addresses } : {}),
    };
  }
}

class PrefixEvidence extends ProbeEvidence {
  private addresses: Set<string> | null = null;
  addressCount = 0;
  private scannerAddresses: Set<string> | null = null;

  noteAddress(a: string): void {
    const s = (this.addresses ??= new Set());
    if (s.has(a)) return;
    this.addressCount++;
    if (s.size < PREFIX_ADDRESSES) s.add(a);
  }

  noteScanner(a: string): void {
    const s = (this.scannerAddresses ??= new Set());
    if (s.size < PREFIX_ADDRESSES) s.add(a);
  }

  get scannerAddressCount(): number {
    return this.scannerAddresses !== null ? this.scannerAddresses.size : 0;
  }

  override reset(): void {
    super.reset();
    this.addresses = null;
    this.addressCount = 0;
    this.scannerAddresses = null;
  }
}

/** What one authenticated account did, for toll fraud. */
class AccountState {
  lruUs = 0;
  /** Address → when the account first used it. */
  readonly addresses = new Map<string, number>();
  /** International/premium number → when it last dialled it (its history). */
  readonly numbers = new Map<string, number>();
  /** Costly numbers new to it, in the toll-fraud window. */
  newCostly: WindowCounter | null = null;
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

  constructor(readonly key: string) {}

  /** Remembers an address (its first use is kept). */
  noteAddress(address: string, now: number): void {
    if (this.addresses.has(address)) return;
    if (this.addresses.size >= ACCOUNT_ADDRESSES) this.addresses.delete(this.addresses.keys().next().value!);
    this.addresses.set(address, now);
  }

  /** True when `address` is one the account did not use before this window (and it used others). */
  isNewAddress(address: string, now: number, rs: CallRuleSettings): boolean {
    const first = this.addresses.get(address);
    if (first === undefined) return this.addresses.size > 0;
    if (now - first >= rs.tollWindowUs) return false;
    for (const [a, t] of this.addresses) if (a !== address && t < first) return true;
    return false;
  }

  rollBucket(now: number, rs: CallRuleSettings): void {
    if (this.peakUs > 0 && now - this.peakUs > rs.historyUs) { this.peak = 0; this.peakUs = 0; }
    if (now - this.bucketStartUs < rs.tollWindowUs) return;
    if (!this.bucketAlerted && this.bucketMax > this.peak) { this.peak = this.bucketMax; this.peakUs = now; }
    this.bucketStartUs = now;
    this.bucketMax = 0;
    this.bucketAlerted = false;
  }
}

/** An LRU map's oldest entries dropped down to 90 % of `cap` once it is over it. */
function trim<T>(map: Map<string, T>, cap: number): void {
  if (map.size <= cap) return;
  const target = Math.floor(cap * EVICT_TO_FRACTION);
  for (const k of map.keys()) {
    if (map.size <= target) break;
    map.delete(k);
  }
}

function touch<T extends { lruUs: number }>(map: Map<string, T>, key: string, make: () => T, now: number, cap: number): T {
  let v = map.get(key);
  if (v === undefined) {
    v = make();
    map.set(key, v);
    trim(map, cap);
  } else {
    map.delete(key);
    map.set(key, v);
  }
  v.lruUs = now;
  return v;
}

export class CallPolicy {
  private readonly base: CallRuleSettings;
  private readonly byProfile = new Map<string, CallRuleSettings>();
  private readonly hosts = new Map<string, ProbeEvidence>();
  private readonly prefixes = new Map<string, PrefixEvidence>();
  private readonly accounts = new Map<string, AccountState>();
  private readonly prefixLength: number;

  constructor(settings: PolicySettings, overrides: Readonly<Record<string, Partial<PolicySettings>>> = {}) {
    this.base = compile(settings);
    for (const name of Object.keys(overrides)) this.byProfile.set(name, compile(settingsForProfile(settings, overrides, name)));
    this.prefixLength = settings.ipv6PrefixLength;
  }

  private settingsFor(profile: string): CallRuleSettings {
    return this.byProfile.get(profile) ?? this.base;
  }

  /** A successful authentication of `account@realm` from `source`: the account uses that address. */
  noteAuthSuccess(account: string, realm: string, source: string, nowUs: number): void {
    if (account === '') return;
    const a = touch(this.accounts, accountKey(account, realm), () => new AccountState(accountKey(account, realm)), nowUs, this.base.raw.maxTrackedAccounts);
    a.noteAddress(source, nowUs);
  }

  /** Whether answered calls prove this host (or prefix) at `nowUs`. */
  provenByCalls(target: string, nowUs: number): boolean {
    const h = this.hosts.get(target) ?? this.prefixes.get(target);
    return h !== undefined && h.provenUntilUs > nowUs;
  }

  /** An operator unbanned it: its call evidence starts afresh. */
  forget(target: string): void {
    this.hosts.get(target)?.reset();
    this.prefixes.get(target)?.reset();
  }

  /** Hosts, prefixes and accounts with call state. */
  tracked(): number {
    return this.hosts.size + this.prefixes.size + this.accounts.size;
  }

  /**
   * Judges one call from a source the engine may still ban (not allowed, not FreeSWITCH, not
   * banned). `prefixBanned`: its IPv6 prefix is banned already (no prefix verdict then).
   */
  observe(e: CallEvent, ctx: CallContext, nowUs: number, prefixBanned = false): CallDecisions {
    const rs = this.settingsFor(e.profile);
    const key = e.source.text;
    const host = touch(this.hosts, key, () => new ProbeEvidence(key), nowUs, this.base.raw.maxTrackedSources);
    const prefixKey = e.source.family === 6 ? ipv6PrefixText(e.source, this.prefixLength) : null;
    const prefix = prefixKey !== null
      ? touch(this.prefixes, prefixKey, () => new PrefixEvidence(prefixKey), nowUs, this.base.raw.maxTrackedPrefixes)
      : null;
    host.calls++;
    if (prefix !== null) prefix.calls++;
    addSample(host.agents, e.userAgent);
    if (e.account !== null) return this.accountCall(e, ctx, host, rs, nowUs);

    if (e.outcome === 'answered' && e.answeredSeconds >= rs.raw.callProofMinSeconds) {
      // A carrier or trunk: its calls reach someone. Its prefix is a live site too.
      host.answeredCalls++;
      host.provenUntilUs = Math.max(host.provenUntilUs, nowUs + rs.legitimacyUs);
      if (prefix !== null) { prefix.answeredCalls++; prefix.provenUntilUs = Math.max(prefix.provenUntilUs, host.provenUntilUs); }
      return NOTHING;
    }
    const proven = ctx.provenByAuth || host.provenUntilUs > nowUs;
    if (proven) return NOTHING;
    const prefixOpen = prefix !== null && !prefixBanned && !ctx.prefixProvenByAuth && prefix.provenUntilUs <= nowUs;
    if (prefixOpen) prefix.noteAddress(key);

    const scanner = e.userAgent !== '' && matchesScannerPattern(e.userAgent.toLowerCase(), rs.scannerPatterns);
    if (scanner && host.scannerUa === '') host.scannerUa = e.userAgent;
    if (scanner && prefixOpen) { prefix.noteScanner(key); if (prefix.scannerUa === '') prefix.scannerUa = e.userAgent; }
    const probing = rs.publicContexts.has(e.context) && (e.outcome === 'unrouted' || e.outcome === 'refused');
    if (probing) {
      const cls = classifyNumber(e.destination, rs.patterns);
      host.probe(e.destination, cls, nowUs, rs);
      if (prefixOpen) prefix.probe(e.destination, cls, nowUs, rs);
    } else if (!scanner) {
      return NOTHING;
    }

    const verdicts: CallVerdict[] = [];
    const alerts: CallAlert[] = [];
    const hostFacts = host.facts(nowUs, rs, host.scannerUa !== '' ? 1 : 0);
    const hostRule = firstReached('host', hostFacts, rs);
    if (hostRule !== null) {
      verdicts.push({ scope: 'host', target: key, rule: hostRule.id, reason: hostRule.reason(key, hostFacts[hostRule.fact], rs.raw), evidence: host.summary() });
      host.reset();
    } else {
      const near = nearMiss('host', hostFacts, rs);
      if (near !== null && nowUs - host.lastNearMissUs >= rs.alertIntervalUs) {
        host.lastNearMissUs = nowUs;
        alerts.push({ kind: 'near_miss', source: key, profile: e.profile, message: `${key} came close to a ban: ${near.id} at ${hostFacts[near.fact]} of ${near.threshold(rs.raw)}`, atUs: nowUs, ...(e.userAgent ? { userAgent: e.userAgent } : {}) });
      }
    }
    if (prefixOpen && prefix.addressCount >= rs.raw.prefixMinAddresses) {
      const pf = prefix.facts(nowUs, rs, prefix.scannerAddressCount);
      const prefixRule = firstReached('prefix', pf, rs);
      if (prefixRule !== null) {
        verdicts.push({ scope: 'prefix', target: prefix.key, rule: prefixRule.id, reason: prefixRule.reason(prefix.key, pf[prefixRule.fact], rs.raw), evidence: prefix.summary(prefix.addressCount) });
        prefix.reset();
      }
    }
    return verdicts.length === 0 && alerts.length === 0 ? NOTHING : { verdicts, alerts };
  }

  private accountCall(e: CallEvent, ctx: CallContext, host: ProbeEvidence, rs: CallRuleSettings, now: number): CallDecisions {
    const key = accountKey(e.account!, e.realm);
    const a = touch(this.accounts, key, () => new AccountState(key), now, this.base.raw.maxTrackedAccounts);
    const source = e.source.text;
    const newAddress = a.isNewAddress(source, now, rs);
    a.noteAddress(source, now);
    a.rollBucket(now, rs);
    const cls = classifyNumber(e.destination, rs.patterns);
    if (!isCostly(cls)) return NOTHING;
    const last = a.numbers.get(e.destination);
    if (last !== undefined && now - last <= rs.historyUs) {
      a.numbers.delete(e.destination);
      a.numbers.set(e.destination, now);
      return NOTHING;
    }
    if (last !== undefined) a.numbers.delete(e.destination);
    else if (a.numbers.size >= ACCOUNT_NUMBERS) a.numbers.delete(a.numbers.keys().next().value!);
    a.numbers.set(e.destination, now);
    if (now - a.recentUs > rs.tollWindowUs) a.recent = [];
    a.recentUs = now;
    addSample(a.recent, e.destination);
    const value = (a.newCostly ??= new WindowCounter()).add(now, rs.tollWindowUs);
    if (value > a.bucketMax) a.bucketMax = value;
    const threshold = tollFraudThreshold(a, newAddress, rs);
    if (value < threshold) {
      const rule = CALL_RULES.find((r) => r.id === 'toll_fraud')!;
      if (value >= 2 && value >= rs.raw.nearMissFraction * threshold && now - host.lastNearMissUs >= rs.alertIntervalUs && rule.nearMiss) {
        host.lastNearMissUs = now;
        return { verdicts: [], alerts: [{ kind: 'near_miss', source, profile: e.profile, account: key, message: `account ${key} at ${source} came close to a toll_fraud alert: ${value} of ${threshold} new international/premium numbers`, atUs: now }] };
      }
      return NOTHING;
    }
    if (now - a.lastAlertUs < rs.alertIntervalUs) return NOTHING;
    a.lastAlertUs = now;
    a.bucketAlerted = true;
    const numbers = [...a.recent];
    const where = newAddress ? `from ${source}, an address it never used before` : `from ${source}`;
    const message = `toll fraud? account ${key} dialled ${value} international/premium numbers new to it within ${rs.raw.tollFraudWindowSeconds} s ${where} (usual peak ${a.peak}): ${numbers.join(', ')}`;
    const alerts: CallAlert[] = [{ kind: 'toll_fraud', source, profile: e.profile, account: key, numbers, message, atUs: now, ...(e.userAgent ? { userAgent: e.userAgent } : {}) }];
    const verdicts: CallVerdict[] = [];
    const site = ctx.siteAccounts >= 2 || this.accountsAt(source) >= 2;
    if (rs.raw.tollFraudBan && (!site || rs.raw.tollFraudBanSites)) {
      verdicts.push({
        scope: 'host', target: source, rule: 'toll_fraud',
        reason: `account ${key} dialled ${value} international/premium numbers new to it within ${rs.raw.tollFraudWindowSeconds} s ${where}: toll fraud with a stolen password`,
        evidence: { ...host.summary(), numbers },
      });
    }
    return { verdicts, alerts };
  }

  /** Accounts this call policy saw at an address (a multi-phone site has several). */
  private accountsAt(source: string): number {
    let n = 0;
    for (const a of this.accounts.values()) if (a.addresses.has(source) && ++n >= 2) return n;
    return n;
  }

  /** Every call rule's value and threshold for a host or prefix (explain). */
  ruleStatus(target: string, profile: string, nowUs: number, ctx: CallContext): Array<{ rule: CallRuleId; applies: boolean; value: number; threshold: number; description: string }> {
    const rs = this.settingsFor(profile);
    const host = this.hosts.get(target);
    const prefix = this.prefixes.get(target);
    const ev = host ?? prefix;
    const scope: 'host' | 'prefix' = prefix !== undefined && host === undefined ? 'prefix' : 'host';
    const proven = ctx.provenByAuth || (ev !== undefined && ev.provenUntilUs > nowUs);
    const facts = ev === undefined ? NO_FACTS
      : ev.facts(nowUs, rs, ev instanceof PrefixEvidence ? ev.scannerAddressCount : ev.scannerUa !== '' ? 1 : 0);
    return CALL_RULES.filter((r) => r.scope === scope).map((r) => ({
      rule: r.id,
      applies: !proven && (scope === 'host' || (prefix !== undefined && prefix.addressCount >= rs.raw.prefixMinAddresses)),
      value: facts[r.fact],
      threshold: r.threshold(rs.raw),
      description: r.explain(rs.raw),
    }));
  }
}

function accountKey(account: string, realm: string): string {
  return realm === '' ? account : `${account}@${realm}`;
}

function tollFraudThreshold(a: AccountState, newAddress: boolean, rs: CallRuleSettings): number {
  const base = newAddress ? Math.min(rs.raw.tollFraudNewAddressDestinations, rs.raw.tollFraudDestinations) : rs.raw.tollFraudDestinations;
  return base + a.peak;
}

/** The first rule of a scope whose fact reached its threshold (table order: the most telling first). */
function firstReached(scope: 'host' | 'prefix', f: CallFacts, rs: CallRuleSettings): CallRule | null {
  for (const r of CALL_RULES) if (r.scope === scope && f[r.fact] >= r.threshold(rs.raw)) return r;
  return null;
}

function nearMiss(scope: 'host' | 'prefix', f: CallFacts, rs: CallRuleSettings): CallRule | null {
  for (const r of CALL_RULES) {
    if (r.scope !== scope || !r.nearMiss) continue;
    const t = r.threshold(rs.raw);
    if (f[r.fact] >= 2 && f[r.fact] >= rs.raw.nearMissFraction * t) return r;
  }
  return null;
}
