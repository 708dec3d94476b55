// Generator of call traces for the call rules: CHANNEL_HANGUP_COMPLETE bodies built on the one
// captured from a real FreeSWITCH 1.10.9 (case a of ../shared/esl/esl_json_CHANNEL_calls.raw,
// every header kept, the call's own ones replaced), mixed with the auth events of
// policy-traces.ts's TraceBuilder: carriers, probers at any pace, accounts and their thieves.
import { normalizeCallEvent } from '../../lib/events/call-event.js';
import { normalizeEvent } from '../../lib/events/normalize.js';
import { cidrContainsIp, cidrsOverlap, parseCidr, parseIp } from '../../lib/net/ip.js';
import { createPolicy } from '../../lib/policy/engine.js';
import { DEFAULT_POLICY_SETTINGS, type PolicySettings } from '../../lib/policy/settings.js';
import { captureEventFrames } from './esl-test-helpers.js';
import { TraceBuilder, type RawEvent, type Replay, type MustBan } from './policy-traces.js';

/** The captured CHANNEL_HANGUP_COMPLETE of case a (JSON.parse keeps one Hangup-Cause). */
function template(): RawEvent {
  const f = captureEventFrames('esl_json_CHANNEL_calls.raw').find((x) => x.name === 'CHANNEL_HANGUP_COMPLETE')!;
  return JSON.parse(f.body.toString('utf8')) as RawEvent;
}
const TEMPLATE = template();

export type Outcome = 'answered' | 'unrouted' | 'refused' | 'unanswered';

const CAUSE: Record<Outcome, [string, string]> = {
  answered: ['NORMAL_CLEARING', '16'],
  unrouted: ['NO_ROUTE_DESTINATION', '3'],
  refused: ['CALL_REJECTED', '21'],
  unanswered: ['ORIGINATOR_CANCEL', '487'],
};

export interface CallSpec {
  ip: string;
  /** Hangup time, seconds from the trace start. */
  atS: number;
  number: string;
  outcome: Outcome;
  /** Billed seconds of an answered call. */
  seconds?: number;
  ua?: string;
  port?: number;
  context?: string;
  profile?: string;
  /** An authenticated call's account (realm pbx.example.com, as TraceBuilder's digests). */
  account?: string;
}

/** Auth events (TraceBuilder) and calls, merged in time order. */
export class CallTraceBuilder {
  readonly auth: TraceBuilder;
  private readonly calls: { t: number; seq: number; h: RawEvent }[] = [];
  private seq = 0;

  constructor(seed: number, readonly profile = 'external') {
    this.auth = new TraceBuilder(seed, 'internal');
  }

  get random(): () => number {
    return this.auth.random;
  }

  call(c: CallSpec): void {
    const t = this.auth.at(c.atS);
    const [cause, q850] = CAUSE[c.outcome];
    const answered = c.outcome === 'answered';
    const billUs = answered ? Math.round((c.seconds ?? 60) * 1e6) : 0;
    const uuid = `${this.auth.callId()}-call`;
    const h: RawEvent = {
      ...TEMPLATE,
      'Event-Date-Timestamp': String(t),
      'FreeSWITCH-IPv4': '192.0.2.10',
      'Unique-ID': uuid,
      'Caller-Network-Addr': c.ip,
      variable_sip_network_ip: c.ip,
      variable_sip_received_ip: c.ip,
      variable_sip_network_port: String(c.port ?? 5060),
      variable_sofia_profile_name: c.profile ?? (c.account !== undefined ? 'internal' : this.profile),
      'Caller-Context': c.context ?? (c.account !== undefined ? 'default' : 'public'),
      'Caller-Destination-Number': c.number,
      variable_sip_req_user: c.number,
      variable_sip_to_user: c.number,
      'Hangup-Cause': cause,
      variable_hangup_cause: cause,
      variable_hangup_cause_q850: q850,
      variable_answer_uepoch: answered ? String(t - billUs) : '0',
      variable_billusec: String(billUs),
      variable_billsec: String(Math.round(billUs / 1e6)),
      variable_sip_user_agent: c.ua ?? 'carrier-sbc/4.2',
      variable_sip_call_id: this.auth.callId(),
    };
    if (c.account !== undefined) {
      h.variable_sip_authorized = 'true';
      h.variable_sip_auth_username = c.account;
      h.variable_sip_auth_realm = 'pbx.example.com';
    }
    this.calls.push({ t, seq: this.seq++, h });
  }

  build(): RawEvent[] {
    const auth = this.auth.build().map((h, i) => ({ t: Number(h['Event-Date-Timestamp']), seq: i, h, k: 0 }));
    const calls = this.calls.sort((a, b) => a.t - b.t || a.seq - b.seq).map((c) => ({ ...c, k: 1 }));
    return [...auth, ...calls].sort((a, b) => a.t - b.t || a.k - b.k || a.seq - b.seq).map((x) => x.h);
  }
}

/** A number of `digits` random digits after `prefix`. */
export function randomNumber(b: CallTraceBuilder, prefix: string, digits: number): string {
  let s = prefix;
  for (let i = 0; i < digits; i++) s += String(Math.floor(b.random() * 10));
  return s;
}

export interface CarrierOptions {
  ips: readonly string[];
  calls: number;
  misdialShare: number;
  durationS: number;
  /** DIDs as the carrier sends them: E.164 (`+4930…`, which looks international) or national. */
  e164?: boolean;
}

/**
 * A carrier (or ITSP trunk) delivering DIDs from several addresses, in steady state: calls in
 * progress when the trace starts end during it, as after a daemon restart.
 */
export function carrier(b: CallTraceBuilder, o: CarrierOptions): void {
  const prefix = o.e164 === false ? '030123' : '+4930123';
  for (let i = 0; i < o.calls; i++) {
    const ip = b.auth.pick(o.ips);
    const start = -300 + b.random() * (o.durationS + 300);
    if (b.random() < o.misdialShare) {
      if (start >= 0) b.call({ ip, atS: start, number: randomNumber(b, prefix, 5), outcome: 'unrouted', ua: 'carrier-sbc/4.2' });
      continue;
    }
    const seconds = 5 + b.random() * 295;
    const end = start + seconds;
    if (end < 0 || end > o.durationS) continue;
    const did = `${prefix}4${String(Math.floor(b.random() * 100)).padStart(2, '0')}`;
    b.call({ ip, atS: end, number: did, outcome: b.random() < 0.9 ? 'answered' : 'unanswered', seconds, ua: 'carrier-sbc/4.2' });
  }
}

/** Unauthenticated calls to new numbers, one every 1/rate s, ending unrouted. */
export function prober(b: CallTraceBuilder, o: { ip: string; count: number; ratePerS: number; startS?: number; ua?: string; prefix?: string; digits?: number }): void {
  for (let i = 0; i < o.count; i++) {
    b.call({ ip: o.ip, atS: (o.startS ?? 0) + i / o.ratePerS, number: randomNumber(b, o.prefix ?? '00972', o.digits ?? 9), outcome: 'unrouted', ua: o.ua ?? 'Zoiper rv2.10.19.4', port: 1024 + Math.floor(b.random() * 60000) });
  }
}

export function replayMixed(events: readonly RawEvent[], settings: PolicySettings = DEFAULT_POLICY_SETTINGS, overrides: Record<string, Partial<PolicySettings>> = {}): Replay {
  const policy = createPolicy(settings, overrides);
  const bans: Replay['bans'] = [];
  const alerts: Replay['alerts'] = [];
  events.forEach((h, index) => {
    let out;
    if (h['Event-Name'] === 'CHANNEL_HANGUP_COMPLETE') {
      const r = normalizeCallEvent(h, { profiles: null });
      if (!r.ok) throw new Error(`generator produced a call the daemon drops: ${r.detail}`);
      out = policy.observeCall(r.event);
    } else {
      const r = normalizeEvent(h, { profiles: null });
      if (!r.ok) throw new Error(`generator produced an event the daemon drops: ${r.detail}`);
      out = policy.observe(r.event);
    }
    for (const decision of out.bans) bans.push({ decision, index });
    for (const alert of out.alerts) alerts.push({ alert, index });
  });
  return { bans, alerts, policy };
}

function sourceOf(e: RawEvent): string | undefined {
  return e['network-ip'] ?? e['Caller-Network-Addr'];
}

/** policy-traces.ts's judge, for traces that carry calls (a call's source is Caller-Network-Addr). */
export function judgeMixed(events: readonly RawEvent[], r: Replay, mustBan: readonly MustBan[], mustNotBan: readonly string[] = []): string[] {
  const problems: string[] = [];
  const bans = r.bans.map((b) => ({ cidr: b.decision.target.cidr, at: b.index, rule: b.decision.rule }));
  for (const m of mustBan) {
    const cidr = parseCidr(m.source)!;
    const idx: number[] = [];
    events.forEach((e, i) => { const ip = parseIp(sourceOf(e) ?? ''); if (ip && cidrContainsIp(cidr, ip)) idx.push(i); });
    if (!idx.length) { problems.push(`no event from ${m.source}`); continue; }
    const limit = idx[Math.min(m.withinEvents, idx.length) - 1]!;
    const first = bans.filter((b) => cidrsOverlap(b.cidr, cidr) && b.cidr.prefixLength <= cidr.prefixLength).sort((a, b) => a.at - b.at)[0];
    if (!first) { problems.push(`${m.source} never banned (${idx.length} events)`); continue; }
    const late = (Number(events[first.at]!['Event-Date-Timestamp']) - Number(events[idx[0]!]!['Event-Date-Timestamp'])) / 1e6;
    if (first.at > limit) problems.push(`${m.source} banned (${first.rule}) at its event ${idx.filter((i) => i <= first.at).length}, allowed ${m.withinEvents}`);
    if (late > m.withinSeconds) problems.push(`${m.source} banned (${first.rule}) ${late.toFixed(1)} s after its first event, allowed ${m.withinSeconds} s`);
  }
  for (const s of mustNotBan) {
    const c = parseCidr(s)!;
    for (const b of bans) if (cidrsOverlap(b.cidr, c)) problems.push(`banned ${b.cidr.text} by ${b.rule} at event ${b.at} (protected ${s})`);
  }
  return problems;
}
