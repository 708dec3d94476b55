// Every policy key a profile may override takes effect in every rule and window fed by that
// profile's events, the timer-driven ones included (issue 9: a base-level shortWindowSeconds
// of 300 banned a scanner at 200 s; the same key on the profile banned it at 600 s by another
// rule). One test per window key: the key set on the profile decides exactly as the key set
// at the base, and differently from the default.
import t from 'tap';
import type { AttemptResult, AuthEvent } from '../lib/events/auth-event.js';
import type { CallEvent } from '../lib/events/call-event.js';
import { parseIp } from '../lib/net/ip.js';
import { createPolicy } from '../lib/policy/engine.js';
import { DEFAULT_POLICY_SETTINGS, type PolicySettings } from '../lib/policy/settings.js';

const S = 1_000_000;
const T0 = 1_793_610_000_000_000;
const ATT = '203.0.113.66';
const OFFICE = '198.51.100.10';
let ids = 0;

function ev(kind: 'challenge' | 'forbidden' | 'success', ip: string, atS: number, user: string, profile = 'external'): AuthEvent[] {
  const callId = `p${++ids}`;
  const common = { profile, source: parseIp(ip)!, port: 5080, userAgent: 'Yealink SIP-T46S', callId, timeUs: T0 + Math.round(atS * S), switchAddresses: ['192.0.2.10'] };
  if (kind === 'challenge') return [{ ...common, kind: 'challenge', fromUser: user, toUser: user }];
  const result: AttemptResult = kind === 'success' ? 'success' : 'forbidden';
  const at = common.timeUs + 50_000;
  const out: AuthEvent[] = [{ ...common, kind: 'challenge', fromUser: user, toUser: user }, { ...common, timeUs: at, kind: 'attempt', result, authUser: user, fromUser: user, toUser: user, realm: 'pbx' }];
  if (kind === 'forbidden') out.push({ ...common, callId: '', timeUs: at, kind: 'failure', method: 'REGISTER', toUser: user });
  return out;
}

/** An answered call of `account` (realm pbx, as ev's successes) to `number`. */
function call(ip: string, atS: number, account: string, number: string, profile = 'external'): CallEvent {
  return {
    kind: 'call', profile, source: parseIp(ip)!, port: 5080, context: 'default', destination: number, hangupCause: 'NORMAL_CLEARING',
    outcome: 'answered', answeredSeconds: 60, account, realm: 'pbx', userAgent: 'Yealink SIP-T46S', callId: `c${++ids}`, uuid: `u${ids}`,
    timeUs: T0 + Math.round(atS * S), switchAddresses: ['192.0.2.10'],
  };
}

/** Everything decided, as comparable text. */
function decisions(settings: PolicySettings, overrides: Record<string, Partial<PolicySettings>>, events: readonly (AuthEvent | CallEvent)[]): string[] {
  const p = createPolicy(settings, overrides);
  const out: string[] = [];
  const take = (o: ReturnType<typeof p.observe>): void => {
    for (const b of o.bans) out.push(`ban ${b.target.cidr.text} ${b.rule} ${b.seconds}s at ${(b.atUs - T0) / S} prev ${b.previousOffences}`);
    for (const a of o.alerts) out.push(`alert ${a.kind} ${a.source} ${a.profile} at ${(a.atUs - T0) / S}`);
  };
  for (const e of events) take(e.kind === 'call' ? p.observeCall(e) : p.observe(e));
  take(p.drain());
  return out;
}

/**
 * Ten phones authenticate at 0 (a table of ten is full); one dials ten numbers abroad, one an
 * hour; `idleS` after the last a newcomer authenticates, and then the phone dials the same ten
 * within five minutes. Forgotten for the newcomer, its own numbers are new again: a toll_fraud
 * alert. Kept, its history says they are its own.
 */
function idleAccount(idleS: number): (AuthEvent | CallEvent)[] {
  const numbers = Array.from({ length: 10 }, (_, i) => `0049301234${String(i).padStart(4, '0')}`);
  const back = 10 * 3600 + idleS;
  return [
    ...Array.from({ length: 10 }, (_, i) => ev('success', `198.51.100.${20 + i}`, i, String(3000 + i))).flat(),
    ...numbers.map((n, i) => call('198.51.100.20', 3600 * (i + 1), '3000', n)),
    ...ev('success', '198.51.100.40', back, '4000'),
    ...numbers.map((n, i) => call('198.51.100.20', back + 60 + i * 30, '3000', n)),
  ];
}

const SCENARIOS: { key: keyof PolicySettings; value: number; base?: Partial<PolicySettings>; events: () => (AuthEvent | CallEvent)[] }[] = [
  // A scanner sending one never-answered REGISTER every 20 s: with a 5 min short window ten of
  // them ban it (unanswered_challenges, decided by the deadlines).
  { key: 'shortWindowSeconds', value: 300, events: () => Array.from({ length: 40 }, (_, i) => ev('challenge', ATT, i * 20, String(100 + i))).flat() },
  // One guess every 30 s: 15 within 6 h (the default) ban it; within 5 min they never do.
  { key: 'longWindowSeconds', value: 300, events: () => Array.from({ length: 30 }, (_, i) => ev('forbidden', ATT, i * 30, '1000')).flat() },
  // A flood every 20 ms: the age at which outstanding challenges count.
  { key: 'challengeFloodAgeSeconds', value: 0.4, events: () => Array.from({ length: 120 }, (_, i) => ev('challenge', ATT, i * 0.02, String(100 + i))).flat() },
  // A site proven at 0, then failures from its address at 100-110 s: still proven for 24 h,
  // or unproven after 60 s (then brute_force).
  { key: 'legitimacySeconds', value: 60, events: () => [...ev('success', OFFICE, 0, '1000'), ...Array.from({ length: 8 }, (_, i) => ev('forbidden', OFFICE, 100 + i, '1001')).flat()] },
  // The toll-fraud account table, full (ten accounts): an account idle for legitimacySeconds
  // gives its place to a newcomer, and its history goes with it (idleAccount). Idle for 40 h, it
  // is kept with 48 h and forgotten with the default 24 h; idle for 2 h, forgotten with 1 h.
  { key: 'legitimacySeconds', value: 48 * 3600, base: { maxTrackedAccounts: 10 }, events: () => idleAccount(40 * 3600) },
  { key: 'legitimacySeconds', value: 3600, base: { maxTrackedAccounts: 10 }, events: () => idleAccount(2 * 3600) },
  // A stale phone at a site, failing every 40 s for an hour: one alert an hour, or one every 10 min.
  { key: 'alertIntervalSeconds', value: 600, events: () => [...ev('success', OFFICE, 0, '1000'), ...Array.from({ length: 90 }, (_, i) => ev('forbidden', OFFICE, 10 + i * 40, '1002')).flat()] },
  // A repeat offender after its first ban ends: remembered (the default 30 d) or not (0).
  {
    key: 'offenceMemorySeconds', value: 0, events: () => {
      const first = Array.from({ length: 6 }, (_, i) => ev('forbidden', ATT, i, '1000')).flat();
      const refresh = Array.from({ length: 40 }, (_, i) => ev('success', OFFICE, 100 + i * 100, '1000')).flat();
      const again = Array.from({ length: 6 }, (_, i) => ev('forbidden', ATT, 4200 + i, '1000')).flat();
      return [...first, ...refresh, ...again].sort((a, b) => a.timeUs - b.timeUs);
    },
  },
];

for (const sc of SCENARIOS) {
  t.test(`profiles.external.${sc.key} = ${sc.value} takes effect in every rule and window`, async (t) => {
    const events = sc.events();
    const base = { ...DEFAULT_POLICY_SETTINGS, ...sc.base };
    const atBase = decisions({ ...base, [sc.key]: sc.value }, {}, events);
    const onProfile = decisions(base, { external: { [sc.key]: sc.value } }, events);
    const byDefault = decisions(base, {}, events);
    t.same(onProfile, atBase, 'on the profile as at the base');
    t.notSame(onProfile, byDefault, 'and not as the default');
    t.ok(onProfile.every((d) => !d.startsWith('alert ') || / external /.test(d)), 'alerts carry the profile, timer-driven ones too');
  });
}

t.test('each window length has its own count: a profile with another window corrupts no other\'s', async (t) => {
  const bans = (overrides: Record<string, Partial<PolicySettings>>, events: AuthEvent[]): string[] =>
    decisions(DEFAULT_POLICY_SETTINGS, overrides, events.sort((a, b) => a.timeUs - b.timeUs)).filter((d) => d.startsWith('ban '));
  // A scanner on external (shortWindowSeconds 600), one unanswered challenge every 30 s, one of
  // them over internal (the base 60 s) at 125 s: counted in both windows, it is the sixth of
  // external's ten, and the tenth is the one at 240 s (deadline 242 s).
  const longer = [...Array.from({ length: 15 }, (_, i) => ev('challenge', ATT, i * 30, String(100 + i))).flat(), ...ev('challenge', ATT, 125, '999', 'internal')];
  t.match(bans({ external: { shortWindowSeconds: 600 } }, longer), [/^ban 203\.0\.113\.66 unanswered_challenges \d+s at 242 /], 'external\'s count kept past the internal challenge');
  // Nine unanswered challenges over internal within 40 s, one over external (shortWindowSeconds
  // 30) at 42 s: counted in both windows, it is internal's tenth, judged at internal's next event (45 s).
  const shorter = [...Array.from({ length: 12 }, (_, i) => ev('challenge', ATT, i < 9 ? i * 5 : 45 + (i - 9) * 5, String(100 + i), 'internal')).flat(), ...ev('challenge', ATT, 42, '999')];
  t.match(bans({ external: { shortWindowSeconds: 30 } }, shorter), [/^ban 203\.0\.113\.66 unanswered_challenges \d+s at 45 /], 'internal\'s count kept past the external challenge');
});

t.test('a source idle for longer than the base long window but not the profile\'s keeps its evidence', async (t) => {
  // One guess every 5 s in three bursts of five, 7 h apart, on external (longWindowSeconds 24 h):
  // fifteen within 24 h ban it (slow_guessing). Before the second burst 1,100 new addresses
  // arrive, so the tracker looks for idle sources (every 1,024 new ones).
  const guesses = [0, 7, 14].flatMap((h) => Array.from({ length: 5 }, (_, i) => ev('forbidden', ATT, h * 3600 + i * 5, '1000')).flat());
  const spray = Array.from({ length: 1100 }, (_, i) => ev('challenge', `198.18.${i >> 8}.${i & 255}`, 7 * 3600 - 100 + i * 0.05, String(i))).flat();
  const bans = decisions(DEFAULT_POLICY_SETTINGS, { external: { longWindowSeconds: 86400 } }, [...guesses, ...spray].sort((a, b) => a.timeUs - b.timeUs)).filter((d) => d.startsWith('ban '));
  t.match(bans, [/^ban 203\.0\.113\.66 slow_guessing \d+s at 50420\.05 /]);
});

t.test('an address allowed on one profile is banned on none: a ban drops it on every profile', async (t) => {
  const PARTNER = '198.51.100.77';
  const scan = (profile: string, ip: string): AuthEvent => ({
    kind: 'challenge', profile, source: parseIp(ip)!, port: 5060, userAgent: 'friendly-scanner', callId: `a${++ids}`,
    timeUs: T0 + (++ids) * S, switchAddresses: ['192.0.2.10'], fromUser: '100', toUser: '100',
  });
  const overrides = { external: { allow: [...DEFAULT_POLICY_SETTINGS.allow, `${PARTNER}/32`] } };
  // A scanner user agent on the internal profile, forged with the partner's address (UDP).
  t.same(decisions(DEFAULT_POLICY_SETTINGS, overrides, [scan('internal', PARTNER), scan('external', PARTNER)]), [], 'the partner is not banned, on either profile');
  t.match(decisions(DEFAULT_POLICY_SETTINGS, overrides, [scan('internal', ATT)]), [/^ban 203\.0\.113\.66 scanner_user_agent/], 'the same event from another address bans it');
});

t.test('a full toll-fraud table keeps each account for the legitimacySeconds of the profiles it was used over', async (t) => {
  // external keeps a proof 48 h, internal 1 h; room for ten accounts. 3000 authenticates over
  // both (over internal last), 3001 over external only, 3002-3009 over internal only, all in
  // the first minute, 3001 before the others. Three hours later newcomers authenticate: the
  // eight internal-only accounts are idle and make room, though the least recently used of all
  // (3001) is live; 3000 and 3001 keep their places.
  const p = createPolicy({ ...DEFAULT_POLICY_SETTINGS, maxTrackedAccounts: 10 }, { external: { legitimacySeconds: 48 * 3600 }, internal: { legitimacySeconds: 3600 } });
  const events = [
    ...ev('success', '198.51.100.21', 0, '3001', 'external'),
    ...ev('success', '198.51.100.20', 1, '3000', 'external'),
    ...Array.from({ length: 8 }, (_, i) => ev('success', `198.51.100.${22 + i}`, 2 + i, String(3002 + i), 'internal')).flat(),
    ...ev('success', '198.51.100.30', 20, '3000', 'internal'),
    ...Array.from({ length: 8 }, (_, i) => ev('success', `198.51.100.${40 + i}`, 3 * 3600 + i, String(4000 + i), 'internal')).flat(),
  ];
  for (const e of events) p.observe(e);
  t.same(p.capacityStats().accounts, { tracked: 10, leftOut: 0 }, 'the eight newcomers took the eight idle places');
  // Two more: 3000 and 3001 are live, so the table is full for them.
  for (const e of [...ev('success', '198.51.100.50', 3 * 3600 + 100, '4008', 'internal'), ...ev('success', '198.51.100.51', 3 * 3600 + 200, '4009', 'internal')]) p.observe(e);
  t.same(p.capacityStats().accounts, { tracked: 10, leftOut: 2 }, '3000 and 3001 kept their places');
});
