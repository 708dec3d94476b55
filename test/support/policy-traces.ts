// Generator of hidden-style scenario traces for the policy tests: sites of any size booting
// with any spread, stale-password phones, shift starts, and attackers at any rate with any
// user agent, as FreeSWITCH `event json` bodies (the same header names and quirks as the
// real ones in ../shared: from-/to-user swapped, register_failure without username/call-id).
// A seeded PRNG makes every trace reproducible. The judge mirrors ../shared/scenarios/check.mjs.
import { normalizeEvent } from '../../lib/events/normalize.js';
import { cidrContainsIp, cidrsOverlap, parseCidr, parseIp } from '../../lib/net/ip.js';
import { createPolicy, type RatePolicy } from '../../lib/policy/engine.js';
import { DEFAULT_POLICY_SETTINGS, type PolicySettings } from '../../lib/policy/settings.js';
import type { BanDecision, PolicyAlert } from '../../lib/policy/types.js';

export type RawEvent = Record<string, string>;

export const PHONE_AGENTS = [
  'Yealink SIP-T46S 66.86.0.15', 'Yealink SIP-T54W 96.86.0.100', 'Polycom/5.9.5.0614 PolycomVVX-VVX_450-UA/5.9.5.0614',
  'snom D785/10.1.54.13', 'Cisco/SPA504G-7.6.2c', 'Grandstream GXP2170 1.0.11.23', 'Zoiper rv2.10.19.4',
  'Linphone/5.2.0 (belle-sip/5.2.0)', 'MicroSIP/3.21.3', 'Bria 6 release 6.5.2', 'Fanvil X6U 2.12.1',
];
/** Legitimate devices with unusual user agents: none must trip the scanner patterns. */
export const ODD_AGENTS = ['', 'Asmapp Softphone 1.0', 'Kiwarf-UA/2', 'PBX-Gulpstream/1', '%C3', 'x'.repeat(300), 'SIP Phone', 'UNKNOWN/0.0'];
export const SCANNER_AGENTS = ['friendly-scanner', 'sipvicious', 'sipcli/v1.8', 'VaxSIPUserAgent/3.1', 'pplsip', 'SIVuS', 'sundayddr', 'iWar'];

/** mulberry32: a small deterministic PRNG. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const T0 = 1_793_610_000_000_000; // 2026-11-02 09:00 UTC, µs

/**
 * The network between a client and FreeSWITCH. A REGISTER (or INVITE) that gets no response
 * is resent after 0.5, 1, 2 and 4 s (SIP timer T1 doubling) and the transaction gives up
 * after the fifth send. FreeSWITCH's transaction layer absorbs a resent request: no second
 * challenge event, the client just gets the 401 (or its answer lands) later.
 */
export interface LinkModel {
  /** Round-trip time, seconds, drawn per transaction from [lo, hi]. */
  readonly rttS: readonly [number, number];
  /** Probability that one packet (either direction) is lost. */
  readonly loss?: number;
  /**
   * sofia emits events from several threads: each Event-Date-Timestamp is off by up to this
   * many ms (either way), so the stream is not in timestamp order.
   */
  readonly reorderMs?: number;
}

/** Send times (s after the first) of a request and its retransmissions. */
const RESEND_AT = [0, 0.5, 1.5, 3.5, 7.5];

export class TraceBuilder {
  private readonly items: { t: number; seq: number; h: RawEvent }[] = [];
  private seq = 0;
  private ids = 0;
  readonly random: () => number;
  /** Transactions that gave up (every resend lost): the client tries again later. */
  lostTransactions = 0;

  constructor(seed: number, readonly profile = 'internal', readonly link: LinkModel | null = null) {
    this.random = rng(seed);
  }

  /** Whether one packet gets through the link. */
  private through(): boolean {
    return this.link === null || this.random() >= (this.link.loss ?? 0);
  }

  /**
   * Over the link: when (s after the client first sends) FreeSWITCH sees the request (the
   * challenge event), and when it sees the answer to its 401 (the attempt); null where every
   * resend was lost.
   */
  private transaction(): { challengeS: number; answerS: number | null } | null {
    const l = this.link!;
    const rtt = this.between(l.rttS[0], l.rttS[1]);
    let seen = -1;
    let got401 = -1;
    for (const at of RESEND_AT) {
      if (!this.through()) continue; // the request was lost
      if (seen < 0) seen = at + rtt / 2;
      if (this.through()) { got401 = at + rtt; break; } // else the 401 was lost: the client resends
    }
    if (seen < 0) return null;
    if (got401 < 0) return { challengeS: seen, answerS: null };
    for (const at of RESEND_AT) if (this.through()) return { challengeS: seen, answerS: got401 + at + rtt / 2 };
    return { challengeS: seen, answerS: null };
  }

  /** Seconds from the trace start → µs timestamp. */
  at(seconds: number): number {
    return T0 + Math.round(seconds * 1e6);
  }

  pick<T>(list: readonly T[]): T {
    return list[Math.floor(this.random() * list.length)]!;
  }

  between(lo: number, hi: number): number {
    return lo + (hi - lo) * this.random();
  }

  callId(): string {
    this.ids++;
    return `${Math.floor(this.random() * 0xffffffff).toString(16)}${this.ids.toString(16)}`;
  }

  private push(sub: string, tUs: number, ip: string, port: number, ua: string, extra: RawEvent): void {
    const jitter = this.link?.reorderMs ? Math.round((this.random() * 2 - 1) * this.link.reorderMs * 1000) : 0;
    const h: RawEvent = {
      'Event-Name': 'CUSTOM',
      'Event-Subclass': `sofia::${sub}`,
      'Event-Date-Timestamp': String(tUs + jitter),
      'FreeSWITCH-IPv4': '192.0.2.10',
      'FreeSWITCH-IPv6': '::1',
      'profile-name': this.profile,
      'network-ip': ip,
      'network-port': String(port),
      'user-agent': ua,
      ...extra,
    };
    this.items.push({ t: tUs, seq: this.seq++, h });
  }

  /**
   * One authentication: challenge, then (unless `answer` is null) the attempt `latency` later,
   * then register (REGISTER success) or register_failure (FORBIDDEN).
   */
  auth(o: {
    ip: string; port: number; user: string; ua: string; atS: number;
    answer: 'RENEWED' | 'SUCCESS' | 'FORBIDDEN' | null;
    method?: 'REGISTER' | 'INVITE'; dialled?: string; latencyS?: number; challenge?: boolean;
  }): void {
    const method = o.method ?? 'REGISTER';
    const cid = this.callId();
    let t = this.at(o.atS);
    let latencyS = o.latencyS;
    let answer = o.answer;
    if (this.link !== null && o.latencyS === undefined) {
      const tx = this.transaction();
      if (tx === null) { this.lostTransactions++; return; }
      t += Math.round(tx.challengeS * 1e6);
      if (tx.answerS === null) { this.lostTransactions++; answer = null; } else latencyS = tx.answerS - tx.challengeS;
    }
    const to = method === 'INVITE' ? (o.dialled ?? '0044123456789') : o.user;
    const common = { 'call-id': cid, 'from-host': 'pbx.example.com', 'to-host': 'pbx.example.com' };
    if (o.challenge !== false) {
      this.push('pre_register', t, o.ip, o.port, o.ua, {
        ...common, 'from-user': to, 'to-user': o.user, ...(method === 'REGISTER' ? { expires: '120' } : {}),
      });
    }
    if (answer === null) return;
    const ta = t + Math.round((latencyS ?? this.between(0.02, 0.15)) * 1e6);
    this.push('register_attempt', ta, o.ip, o.port, o.ua, {
      ...common, 'from-user': to, 'to-user': o.user, username: o.user, realm: 'pbx.example.com', 'auth-result': answer,
    });
    if (answer === 'FORBIDDEN') {
      this.push('register_failure', ta, o.ip, o.port, o.ua, { 'to-user': to, 'to-host': 'pbx.example.com', 'registration-type': method });
    } else if (method === 'REGISTER') {
      this.push('register', ta + 300, o.ip, o.port, o.ua, { ...common, 'from-user': o.user, username: o.user, realm: 'pbx.example.com', expires: '120' });
    }
  }

  /** Events sorted by time (stable for equal timestamps), as raw `event json` bodies. */
  build(): RawEvent[] {
    return this.items.sort((a, b) => a.t - b.t || a.seq - b.seq).map((x) => x.h);
  }
}

export interface SiteOptions {
  ip: string;
  phones: number;
  bootAtS?: number;
  bootSpreadS: number;
  durationS: number;
  refreshS?: number;
  /** Phones with a stale password: they retry every 30-60 s forever. */
  stale?: number;
  /** Phones whose user mistypes once or twice before succeeding. */
  mistypers?: number;
  /** Authenticated calls per phone per hour. */
  callsPerHour?: number;
  userBase?: number;
  agents?: readonly string[];
  /** A steady-state site already registered: the trace starts mid refresh cycle. */
  midCycle?: boolean;
}

/** An office, call centre or site behind one address (NAT) or one IPv6 host. */
export function site(b: TraceBuilder, o: SiteOptions): void {
  const refresh = o.refreshS ?? 120;
  const base = o.userBase ?? 1000;
  const agents = o.agents ?? PHONE_AGENTS;
  const stale = o.stale ?? 0;
  const mistypers = o.mistypers ?? 0;
  const end = (o.bootAtS ?? 0) + o.durationS;
  for (let i = 0; i < o.phones; i++) {
    const user = String(base + i);
    const ua = b.pick(agents);
    const port = 1024 + Math.floor(b.random() * 64000);
    let t = (o.bootAtS ?? 0) + (o.midCycle ? b.random() * refresh : b.random() * o.bootSpreadS);
    if (i < stale) {
      for (; t < end; t += b.between(30, 60)) b.auth({ ip: o.ip, port, user, ua, atS: t, answer: 'FORBIDDEN' });
      continue;
    }
    if (i < stale + mistypers) {
      const tries = 1 + Math.floor(b.random() * 2);
      for (let k = 0; k < tries; k++) { b.auth({ ip: o.ip, port, user, ua, atS: t, answer: 'FORBIDDEN' }); t += b.between(3, 25); }
    }
    for (; t < end; t += refresh * b.between(0.85, 1)) {
      b.auth({ ip: o.ip, port, user, ua, atS: t, answer: b.random() < 0.8 ? 'RENEWED' : 'SUCCESS' });
    }
    if (o.callsPerHour) {
      const n = Math.round((o.callsPerHour * o.durationS) / 3600);
      for (let k = 0; k < n; k++) {
        b.auth({ ip: o.ip, port, user, ua, atS: (o.bootAtS ?? 0) + o.bootSpreadS + b.random() * (o.durationS - o.bootSpreadS), answer: 'RENEWED', method: 'INVITE', dialled: String(2000000 + Math.floor(b.random() * 1e6)) });
      }
    }
  }
}

export interface AttackOptions {
  ip: string;
  ratePerS: number;
  count: number;
  ua: string;
  startS?: number;
  port?: number;
}

/** Password guessing on one user (answered, FORBIDDEN). */
export function bruteForce(b: TraceBuilder, o: AttackOptions & { user?: string }): void {
  for (let i = 0; i < o.count; i++) b.auth({ ip: o.ip, port: o.port ?? 5070, user: o.user ?? '1000', ua: o.ua, atS: (o.startS ?? 0) + i / o.ratePerS, answer: 'FORBIDDEN', latencyS: b.link ? undefined : b.between(0.01, 0.08) });
}

/** One guessed password per user over many users (answered, FORBIDDEN). */
export function credentialScan(b: TraceBuilder, o: AttackOptions & { firstUser?: number }): void {
  for (let i = 0; i < o.count; i++) b.auth({ ip: o.ip, port: o.port ?? 5080, user: String((o.firstUser ?? 1000) + i), ua: o.ua, atS: (o.startS ?? 0) + i / o.ratePerS, answer: 'FORBIDDEN', latencyS: b.link ? undefined : b.between(0.01, 0.08) });
}

/** REGISTERs walking extensions that never answer the 401. */
export function extensionScan(b: TraceBuilder, o: AttackOptions): void {
  for (let i = 0; i < o.count; i++) b.auth({ ip: o.ip, port: o.port ?? 5060, user: String(100 + i), ua: o.ua, atS: (o.startS ?? 0) + i / o.ratePerS, answer: null });
}

/** INVITEs to international numbers that never answer the 407. */
export function tollFraud(b: TraceBuilder, o: AttackOptions): void {
  for (let i = 0; i < o.count; i++) {
    b.auth({ ip: o.ip, port: o.port ?? 5071, user: b.random() < 0.5 ? 'anonymous' : '1000', ua: o.ua, atS: (o.startS ?? 0) + i / o.ratePerS, answer: null, method: 'INVITE', dialled: `011${Math.floor(b.random() * 1e12)}` });
  }
}

/** A new address inside `prefix64` (e.g. "2001:db8:bad:1") for every try. */
export function ipv6Rotation(b: TraceBuilder, o: Omit<AttackOptions, 'ip'> & { prefix64: string; mode: 'brute' | 'scan' | 'unanswered' }): void {
  for (let i = 0; i < o.count; i++) {
    const g = (): string => Math.floor(b.random() * 0x10000).toString(16);
    const ip = `${o.prefix64}:${g()}:${g()}:${g()}:${g()}`;
    const user = o.mode === 'brute' ? '1000' : String(1000 + i);
    b.auth({ ip, port: 5060, user, ua: o.ua, atS: (o.startS ?? 0) + i / o.ratePerS, answer: o.mode === 'unanswered' ? null : 'FORBIDDEN' });
  }
}

// ------------------------------------------------------------------------ replay and judge

export interface Replay {
  readonly bans: { readonly decision: BanDecision; readonly index: number }[];
  readonly alerts: { readonly alert: PolicyAlert; readonly index: number }[];
  readonly policy: RatePolicy;
}

export function replay(events: readonly RawEvent[], settings: PolicySettings = DEFAULT_POLICY_SETTINGS, overrides: Record<string, Partial<PolicySettings>> = {}): Replay {
  const policy = createPolicy(settings, overrides);
  const bans: Replay['bans'] = [];
  const alerts: Replay['alerts'] = [];
  events.forEach((h, index) => {
    const r = normalizeEvent(h, { profiles: null });
    if (!r.ok) throw new Error(`generator produced an event the daemon drops: ${r.detail}`);
    const out = policy.observe(r.event);
    for (const decision of out.bans) bans.push({ decision, index });
    for (const alert of out.alerts) alerts.push({ alert, index });
  });
  // As simulate: the timers run on after the last event (pending challenges time out).
  const tail = policy.drain();
  for (const decision of tail.bans) bans.push({ decision, index: events.length - 1 });
  for (const alert of tail.alerts) alerts.push({ alert, index: events.length - 1 });
  return { bans, alerts, policy };
}

export interface MustBan {
  readonly source: string;
  readonly withinEvents: number;
  readonly withinSeconds: number;
}

/** The scenario judge's checks (../shared/scenarios/check.mjs), as a list of problems. */
export function judge(events: readonly RawEvent[], r: Replay, mustBan: readonly MustBan[], mustNotBan: readonly string[] = []): string[] {
  const problems: string[] = [];
  const bans = r.bans.map((b) => ({ cidr: b.decision.target.cidr, at: b.index, rule: b.decision.rule }));
  const attackers = mustBan.map((m) => ({ ...m, cidr: parseCidr(m.source)! }));
  for (const m of attackers) {
    const idx: number[] = [];
    events.forEach((e, i) => { const ip = parseIp(e['network-ip']!); if (ip && cidrContainsIp(m.cidr, ip)) idx.push(i); });
    if (!idx.length) { problems.push(`no event from ${m.source}`); continue; }
    const limit = idx[Math.min(m.withinEvents, idx.length) - 1]!;
    const covering = bans.filter((b) => cidrsOverlap(b.cidr, m.cidr) && b.cidr.prefixLength <= m.cidr.prefixLength).sort((a, b) => a.at - b.at);
    if (!covering.length) { problems.push(`${m.source} never banned (${idx.length} events)`); continue; }
    const first = covering[0]!;
    const nth = idx.filter((i) => i <= first.at).length;
    const late = (Number(events[first.at]!['Event-Date-Timestamp']) - Number(events[idx[0]!]!['Event-Date-Timestamp'])) / 1e6;
    if (first.at > limit) problems.push(`${m.source} banned (${first.rule}) at its event ${nth}, allowed ${m.withinEvents}`);
    if (late > m.withinSeconds) problems.push(`${m.source} banned (${first.rule}) ${late.toFixed(1)} s after its first event, allowed ${m.withinSeconds} s`);
  }
  for (const s of mustNotBan) {
    const c = parseCidr(s)!;
    for (const b of bans) if (cidrsOverlap(b.cidr, c)) problems.push(`banned ${b.cidr.text} by ${b.rule} at event ${b.at} (protected ${s})`);
  }
  const seen = new Set<string>();
  for (const e of events) {
    const ip = parseIp(e['network-ip']!);
    if (!ip || seen.has(ip.text)) continue;
    seen.add(ip.text);
    if (attackers.some((m) => cidrContainsIp(m.cidr, ip))) continue;
    for (const b of bans) if (cidrContainsIp(b.cidr, ip)) problems.push(`banned ${b.cidr.text} by ${b.rule} at event ${b.at}, which covers innocent ${ip.text}`);
  }
  return [...new Set(problems)];
}

/**
 * Answered failures forged over UDP "from" `o.ip`: the attacker asks for a 401 on its own
 * address (`nonceFrom`, one challenge per nonce it needs), then sends REGISTERs with a wrong
 * digest and that nonce with the victim's address as source. FreeSWITCH looks the nonce up
 * without the address (sofia_reg_parse_auth): no challenge for the forged packet, a FORBIDDEN
 * attempt and a register_failure carrying the victim's address.
 */
export function forgedFailures(b: TraceBuilder, o: AttackOptions & { users: readonly string[]; nonceFrom: string }): void {
  for (let i = 0; i < o.count; i++) {
    const atS = (o.startS ?? 0) + i / o.ratePerS;
    if (i % 20 === 0) b.auth({ ip: o.nonceFrom, port: 5099, user: o.users[0]!, ua: o.ua, atS: atS - 0.2, answer: null, latencyS: 0.01 });
    b.auth({ ip: o.ip, port: o.port ?? 5060, user: o.users[i % o.users.length]!, ua: o.ua, atS, answer: 'FORBIDDEN', challenge: false, latencyS: 0 });
  }
}
