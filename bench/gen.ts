// Deterministic synthetic traffic for the benchmark: FreeSWITCH sofia auth events as
// `event json` bodies (the same header set, order and sizes as the captures in
// ../shared/scenarios), plus the FreeSWITCH log lines fail2ban's `freeswitch` filter reads for
// the same attack events. Seeded PRNG, so every run replays the same bytes.
//
// Event time (Event-Date-Timestamp) starts at `startUs` and advances at `eventsPerSecond` of
// *event* time. It must not lag the wall clock: the daemon's 1 s tick advances the policy's
// clock to wall time, and events stamped earlier than that would all be judged "now".

// mulberry32, shared with the policy's variant traces: small, fast, good enough to pick
// users and addresses.
import { rng as prng } from '../test/support/policy-traces.js';
import { captureEventFrames } from '../test/support/esl-test-helpers.js';

export { prng };

export type Subclass = 'sofia::pre_register' | 'sofia::register_attempt' | 'sofia::register_failure' | 'sofia::register' | 'CHANNEL_HANGUP_COMPLETE';

/** What one event says; the body is rendered from it by `eventBody`. */
export interface SynthEvent {
  readonly subclass: Subclass;
  readonly timeUs: number;
  readonly ip: string;
  readonly port: number;
  readonly user: string;
  readonly userAgent: string;
  readonly callId: string;
  /** register_attempt only. */
  readonly authResult?: 'SUCCESS' | 'RENEWED' | 'FORBIDDEN';
  /** CHANNEL_HANGUP_COMPLETE only: the number dialled; answered (an account's call) or a probe (unrouted). */
  readonly number?: string;
  readonly answered?: boolean;
  /** True for events an attacker caused (they also become fail2ban log lines). */
  readonly attack: boolean;
}

const REALM = 'pbx.example.com';
const CORE = '"Event-Name":"CUSTOM","Core-UUID":"db5b5fab-8f4d-3e27-dda1-494c73cf256d","FreeSWITCH-Hostname":"pbx1","FreeSWITCH-Switchname":"pbx1","FreeSWITCH-IPv4":"192.0.2.10","FreeSWITCH-IPv6":"::1"';
const LINE: Record<Subclass, string> = {
  'sofia::pre_register': '1999',
  'sofia::register_attempt': '1870',
  'sofia::register_failure': '1960',
  'sofia::register': '2180',
  CHANNEL_HANGUP_COMPLETE: '943',
};

const pad2 = (n: number): string => (n < 10 ? `0${n}` : String(n));
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** Date strings change once a second; rendering them per event would dominate generation. */
class DateCache {
  private second = -1;
  local = '';
  gmt = '';

  at(timeUs: number): this {
    const s = Math.floor(timeUs / 1_000_000);
    if (s !== this.second) {
      this.second = s;
      const d = new Date(s * 1000);
      this.local = `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())} ${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}`;
      this.gmt = `${DAYS[d.getUTCDay()]}, ${pad2(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()} ${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())} GMT`;
    }
    return this;
  }
}

/**
 * A captured CHANNEL_HANGUP_COMPLETE (../shared/esl, ~7-10 KB, every header and the duplicate
 * Hangup-Cause as FreeSWITCH wrote them) with the values of some headers swapped per call.
 */
class CallTemplate {
  private readonly pieces: string[] = [];
  private readonly slots: string[] = [];

  constructor(json: string, keys: readonly string[]) {
    const at: Array<{ start: number; end: number; key: string }> = [];
    for (const key of keys) {
      const needle = `"${key}":"`;
      for (let i = json.indexOf(needle); i !== -1; i = json.indexOf(needle, i + 1)) {
        const start = i + needle.length;
        at.push({ start, end: json.indexOf('"', start), key });
      }
    }
    at.sort((a, b) => a.start - b.start);
    let from = 0;
    for (const a of at) { this.pieces.push(json.slice(from, a.start)); this.slots.push(a.key); from = a.end; }
    this.pieces.push(json.slice(from));
  }

  render(values: Readonly<Record<string, string>>): string {
    let out = this.pieces[0]!;
    for (let i = 0; i < this.slots.length; i++) out += values[this.slots[i]!]! + this.pieces[i + 1]!;
    return out;
  }
}

const CALL_KEYS = [
  'Event-Date-Local', 'Event-Date-GMT', 'Event-Date-Timestamp', 'Event-Sequence', 'FreeSWITCH-IPv4', 'Unique-ID',
  'Caller-Network-Addr', 'variable_sip_network_ip', 'variable_sip_received_ip', 'variable_sip_network_port',
  'Caller-Destination-Number', 'variable_sip_req_user', 'variable_sip_user_agent', 'variable_sip_call_id',
  'variable_sip_auth_username', 'variable_sip_auth_realm',
];

/** Case a (an unauthenticated probe, unrouted) and case d1 (an account's answered call). */
function callTemplates(): { probe: CallTemplate; answered: CallTemplate } {
  const hangups = captureEventFrames('esl_json_CHANNEL_calls.raw').filter((f) => f.name === 'CHANNEL_HANGUP_COMPLETE').map((f) => f.body.toString('utf8'));
  const probe = hangups.find((b) => b.includes('"variable_sip_user_agent":"friendly-scanner"'));
  const answered = hangups.find((b) => b.includes('"variable_sip_authorized":"true"') && b.includes('"Hangup-Cause":"NORMAL_CLEARING"'));
  if (!probe || !answered) throw new Error('../shared/esl/esl_json_CHANNEL_calls.raw lacks the calls of cases a and d1');
  return { probe: new CallTemplate(probe, CALL_KEYS), answered: new CallTemplate(answered, CALL_KEYS) };
}

/** Renders `event json` bodies (as FreeSWITCH prints them: compact, header order kept). */
export class EventRenderer {
  private readonly dates = new DateCache();
  private sequence = 1000;
  private calls: ReturnType<typeof callTemplates> | null = null;

  body(e: SynthEvent): string {
    const d = this.dates.at(e.timeUs);
    if (e.subclass === 'CHANNEL_HANGUP_COMPLETE') {
      const t = (this.calls ??= callTemplates());
      return (e.answered ? t.answered : t.probe).render({
        'Event-Date-Local': d.local, 'Event-Date-GMT': d.gmt, 'Event-Date-Timestamp': String(e.timeUs),
        'Event-Sequence': String(this.sequence++), 'FreeSWITCH-IPv4': '192.0.2.10', 'Unique-ID': e.callId.slice(0, 32),
        'Caller-Network-Addr': e.ip, variable_sip_network_ip: e.ip, variable_sip_received_ip: e.ip, variable_sip_network_port: String(e.port),
        'Caller-Destination-Number': e.number ?? '', variable_sip_req_user: e.number ?? '', variable_sip_user_agent: e.userAgent,
        variable_sip_call_id: e.callId, variable_sip_auth_username: e.user, variable_sip_auth_realm: REALM,
      });
    }
    const head = `{${CORE},"Event-Date-Local":"${d.local}","Event-Date-GMT":"${d.gmt}","Event-Date-Timestamp":"${e.timeUs}","Event-Calling-File":"sofia_reg.c","Event-Calling-Function":"sofia_reg_handle_register_token","Event-Calling-Line-Number":"${LINE[e.subclass]}","Event-Sequence":"${this.sequence++}","Event-Subclass":"${e.subclass}","profile-name":"internal"`;
    const contact = `"contact":"\\"${e.user}\\" <sip:${e.user}@10.1.${e.port & 255}.${(e.port >> 8) & 255}:${e.port}>"`;
    switch (e.subclass) {
      case 'sofia::pre_register':
        return `${head},"from-user":"${e.user}","from-host":"${REALM}",${contact},"call-id":"${e.callId}","rpid":"unknown","status":"Registered(UDP)","expires":"120","to-user":"${e.user}","to-host":"${REALM}","network-ip":"${e.ip}","network-port":"${e.port}","user-agent":"${e.userAgent}"}`;
      case 'sofia::register_attempt':
        return `${head},"from-user":"${e.user}","from-host":"${REALM}",${contact},"call-id":"${e.callId}","rpid":"unknown","status":"Registered(UDP)","expires":"120","to-user":"${e.user}","to-host":"${REALM}","network-ip":"${e.ip}","network-port":"${e.port}","username":"${e.user}","realm":"${REALM}","auth-result":"${e.authResult ?? 'FORBIDDEN'}","user-agent":"${e.userAgent}"}`;
      case 'sofia::register_failure':
        return `${head},"to-user":"${e.user}","to-host":"${REALM}","network-ip":"${e.ip}","user-agent":"${e.userAgent}","network-port":"${e.port}","registration-type":"REGISTER"}`;
      case 'sofia::register':
        return `${head},"from-user":"${e.user}","from-host":"${REALM}",${contact},"call-id":"${e.callId}","rpid":"unknown","status":"Registered(UDP)","expires":"120","to-user":"${e.user}","to-host":"${REALM}","network-ip":"${e.ip}","network-port":"${e.port}","user-agent":"${e.userAgent}","presence-hosts":"${REALM}","username":"${e.user}","realm":"${REALM}"}`;
    }
  }
}

/**
 * The FreeSWITCH log line (sofia_reg.c with `log-auth-failures`) fail2ban's `freeswitch`
 * filter matches for this event, or null when FreeSWITCH logs nothing it would match.
 */
export function logLine(e: SynthEvent): string | null {
  // fail2ban's freeswitch filter has no line for a dialplan probe: it never sees one.
  if (e.subclass === 'CHANNEL_HANGUP_COMPLETE') return null;
  const d = new Date(Math.floor(e.timeUs / 1000));
  const stamp = `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())} ${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())}.${String(e.timeUs % 1_000_000).padStart(6, '0')}`;
  if (e.subclass === 'sofia::pre_register') {
    return `${stamp} [WARNING] sofia_reg.c:1999 SIP auth challenge (REGISTER) on sofia profile 'internal' for [${e.user}@${REALM}] from ip ${e.ip}`;
  }
  if (e.subclass === 'sofia::register_failure') {
    return `${stamp} [WARNING] sofia_reg.c:1960 SIP auth failure (REGISTER) on sofia profile 'internal' for [${e.user}@${REALM}] from ip ${e.ip}`;
  }
  return null;
}

const PHONE_AGENTS = ['Yealink SIP-T46S 66.86.0.15', 'Cisco/SPA504G-7.6.2c', 'PolycomVVX-VVX_411-UA/6.4.3.5018', 'Grandstream GXP2170 1.0.11.3', 'snom D785/10.1.141.13'];
const ATTACK_AGENTS = ['friendly-scanner', 'sipvicious', 'VaxSIPUserAgent/3.1', 'pplsip'];
/** Attackers that do not announce themselves: only their behaviour can ban them. */
const QUIET_AGENTS = ['Asterisk PBX 16.2.1', 'MicroSIP/3.20.7', 'Zoiper rv2.10.18.0'];

function hex32(r: () => number): string {
  return Math.floor(r() * 0x1_0000_0000).toString(16).padStart(8, '0');
}

function callId(r: () => number): string {
  return `${hex32(r)}${hex32(r)}${hex32(r)}${hex32(r)}`;
}

function ipv4(base: number, n: number): string {
  const v = (base + n) >>> 0;
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/** 100.64.0.0/10 (offices' NAT addresses) and 198.18.0.0/15 (attackers): never the allow-list. */
const OFFICE_BASE = (100 << 24) | (64 << 16);
const ATTACK_BASE = ((198 << 24) | (18 << 16)) >>> 0;

export interface MixedOptions {
  readonly events: number;
  readonly seed: number;
  readonly startUs: number;
  /** Event-time rate; default 2000/s (a busy multi-tenant FreeSWITCH). */
  readonly eventsPerSecond?: number;
  /** Fraction of events caused by attackers; default 0.3. */
  readonly attackFraction?: number;
  /**
   * Fraction of events that are finished calls (CHANNEL_HANGUP_COMPLETE); default 0.05: a phone
   * registering every 120 s (3 events) and making ~5 calls an hour. Of them, attackFraction are
   * dialplan probes (unauthenticated, international numbers, unrouted), the rest answered calls
   * of the offices' accounts.
   */
  readonly callFraction?: number;
}

/**
 * Offices registering and refreshing (each phone: challenge → SUCCESS/RENEWED attempt →
 * register, every 120 s, 8–60 phones behind one NAT address) interleaved with attackers that
 * come and go: password crackers (challenge → FORBIDDEN → failure, 20 guesses a second),
 * extension scanners with an attack-tool user agent, credential scanners that hide their user
 * agent, and IPv6 scanners rotating addresses inside one /64.
 */
export function* mixedTrace(o: MixedOptions): Generator<SynthEvent> {
  const r = prng(o.seed);
  const rate = o.eventsPerSecond ?? 2000;
  const attackFraction = o.attackFraction ?? 0.3;
  const callFraction = o.callFraction ?? 0.05;
  let prober = 0;
  let probes: SynthEvent[] = [];
  const nextProbes = (): SynthEvent[] => {
    // A dialplan prober: six international numbers from one address, a new source port each.
    const n = prober++;
    const ip = ipv4(ATTACK_BASE + 0x8000, n);
    const ua = QUIET_AGENTS[n % QUIET_AGENTS.length]!;
    return Array.from({ length: 6 }, (_, k) => ({
      subclass: 'CHANNEL_HANGUP_COMPLETE' as const, timeUs: 0, ip, port: 1024 + ((n * 31 + k * 977) % 60000), user: '100', userAgent: ua,
      callId: callId(r), number: `${['00', '011', '+', '9011'][k % 4]}${972590000000 + ((n * 7 + k) % 1e6)}`, answered: false, attack: true,
    }));
  };
  const stepUs = 1_000_000 / rate;
  // Enough phones that each refreshes every 120 s of event time at the legitimate rate.
  const phones = Math.max(10, Math.round(((1 - attackFraction) * rate * 120) / 3));
  const officeOf: number[] = [];
  const agentOf: string[] = [];
  for (let p = 0, office = 0; p < phones; office++) {
    const size = 8 + Math.floor(r() * 53);
    const agent = PHONE_AGENTS[office % PHONE_AGENTS.length]!;
    for (let i = 0; i < size && p < phones; i++, p++) { officeOf.push(office); agentOf.push(agent); }
  }
  let phone = 0;
  let registered = 0;
  let legit: SynthEvent[] = [];
  let attack: SynthEvent[] = [];
  let attacker = 0;
  let v6net = 0;
  let t = o.startUs;
  const nextLegit = (): SynthEvent[] => {
    const ip = ipv4(OFFICE_BASE, officeOf[phone]!);
    const user = String(1000 + phone);
    const port = 1024 + ((phone * 7919) % 60000);
    const cid = callId(r);
    const ua = agentOf[phone]!;
    const result = registered >= phones ? 'RENEWED' : 'SUCCESS';
    phone = (phone + 1) % phones;
    registered++;
    return [
      { subclass: 'sofia::pre_register', timeUs: 0, ip, port, user, userAgent: ua, callId: cid, attack: false },
      { subclass: 'sofia::register_attempt', timeUs: 0, ip, port, user, userAgent: ua, callId: cid, authResult: result, attack: false },
      { subclass: 'sofia::register', timeUs: 0, ip, port, user, userAgent: ua, callId: cid, attack: false },
    ];
  };
  const nextAttack = (): SynthEvent[] => {
    const kind = attacker % 4;
    const n = attacker++;
    const port = 5060 + (n % 100);
    const out: SynthEvent[] = [];
    if (kind === 0) {
      // Password cracker on one extension.
      const ip = ipv4(ATTACK_BASE, n);
      const user = String(1000 + (n % 50));
      const ua = QUIET_AGENTS[n % QUIET_AGENTS.length]!;
      for (let g = 0; g < 10; g++) {
        const cid = callId(r);
        out.push({ subclass: 'sofia::pre_register', timeUs: 0, ip, port, user, userAgent: ua, callId: cid, attack: true });
        out.push({ subclass: 'sofia::register_attempt', timeUs: 0, ip, port, user, userAgent: ua, callId: cid, authResult: 'FORBIDDEN', attack: true });
        out.push({ subclass: 'sofia::register_failure', timeUs: 0, ip, port, user, userAgent: ua, callId: cid, attack: true });
      }
    } else if (kind === 1) {
      // Extension scanner announcing itself.
      const ip = ipv4(ATTACK_BASE, n);
      const ua = ATTACK_AGENTS[n % ATTACK_AGENTS.length]!;
      for (let u = 0; u < 12; u++) out.push({ subclass: 'sofia::pre_register', timeUs: 0, ip, port, user: String(100 + u), userAgent: ua, callId: callId(r), attack: true });
    } else if (kind === 2) {
      // Credential scanner: many users, one guess each, quiet user agent.
      const ip = ipv4(ATTACK_BASE, n);
      const ua = QUIET_AGENTS[n % QUIET_AGENTS.length]!;
      for (let u = 0; u < 10; u++) {
        const cid = callId(r);
        const user = String(2000 + u * 7);
        out.push({ subclass: 'sofia::pre_register', timeUs: 0, ip, port, user, userAgent: ua, callId: cid, attack: true });
        out.push({ subclass: 'sofia::register_attempt', timeUs: 0, ip, port, user, userAgent: ua, callId: cid, authResult: 'FORBIDDEN', attack: true });
        out.push({ subclass: 'sofia::register_failure', timeUs: 0, ip, port, user, userAgent: ua, callId: cid, attack: true });
      }
    } else {
      // IPv6 scanner rotating through single-use addresses of one /64.
      const net = (v6net++).toString(16);
      const ua = ATTACK_AGENTS[n % ATTACK_AGENTS.length]!;
      for (let a = 0; a < 12; a++) {
        out.push({ subclass: 'sofia::pre_register', timeUs: 0, ip: `2001:db8:${net}:1::${(a + 1).toString(16)}`, port, user: String(100 + a), userAgent: ua, callId: callId(r), attack: true });
      }
    }
    return out;
  };
  for (let i = 0; i < o.events; i++) {
    t += stepUs;
    const timeUs = Math.round(t);
    let e: SynthEvent;
    if (callFraction > 0 && r() < callFraction) {
      if (r() < attackFraction) {
        if (probes.length === 0) probes = nextProbes().reverse();
        e = probes.pop()!;
      } else {
        const p = Math.floor(r() * phones);
        e = {
          subclass: 'CHANNEL_HANGUP_COMPLETE', timeUs: 0, ip: ipv4(OFFICE_BASE, officeOf[p]!), port: 1024 + ((p * 7919) % 60000),
          user: String(1000 + p), userAgent: agentOf[p]!, callId: callId(r), number: String(2000000 + Math.floor(r() * 8e6)), answered: true, attack: false,
        };
      }
    } else if (r() < attackFraction) {
      if (attack.length === 0) attack = nextAttack().reverse();
      e = attack.pop()!;
    } else {
      if (legit.length === 0) legit = nextLegit().reverse();
      e = legit.pop()!;
    }
    yield { ...e, timeUs };
  }
}

/** One event per attacker, each banned by its first event (attack-tool user agent). */
export function scannerEvent(n: number, timeUs: number, r: () => number): SynthEvent {
  return {
    subclass: 'sofia::pre_register',
    timeUs,
    ip: ipv4(ATTACK_BASE, n),
    port: 5060,
    user: String(100 + (n % 900)),
    userAgent: 'friendly-scanner',
    callId: callId(r),
    attack: true,
  };
}

/** An IPv6 spray: every event from a new address, each in its own /64 (nothing aggregates). */
export function* ipv6Spray(count: number, startUs: number, eventsPerSecond: number, seed: number): Generator<SynthEvent> {
  const r = prng(seed);
  const stepUs = 1_000_000 / eventsPerSecond;
  for (let i = 0; i < count; i++) {
    const a = i >>> 16;
    const b = i & 0xffff;
    yield {
      subclass: 'sofia::pre_register',
      timeUs: Math.round(startUs + i * stepUs),
      ip: `2001:db8:${a.toString(16)}:${b.toString(16)}:${hex32(r).slice(0, 4)}:${hex32(r).slice(0, 4)}:${hex32(r).slice(0, 4)}:1`,
      port: 5060,
      user: String(100 + (i % 900)),
      userAgent: QUIET_AGENTS[i % QUIET_AGENTS.length]!,
      callId: callId(r),
      attack: true,
    };
  }
}
