// The call rules: one test per rule, the numbering-plan classification, and the variant
// traces of issue 12 — a carrier with 5,000 answered calls and 2 % misdials is never banned, a
// prober at one call a second is banned within 10 calls, a slow prober (one call every 2
// minutes for a day) within an hour, a stolen account's 30 international calls in 5 minutes
// from a new address raise a toll_fraud alert.
import t from 'tap';
import { classifyNumber } from '../lib/policy/calls/numbers.js';
import { RULES } from '../lib/policy/rules.js';
import { describePolicy } from '../lib/policy/describe.js';
import { DEFAULT_POLICY_SETTINGS, parsePolicyOverride, policySettingsProblems, type PolicySettings } from '../lib/policy/settings.js';
import { CallTraceBuilder, carrier, judgeMixed, prober, randomNumber, replayMixed } from './support/call-traces.js';
import { site } from './support/policy-traces.js';
import { RecordingLogger } from './support/esl-test-helpers.js';
import { Guard } from '../lib/daemon/guard.js';
import { FsguardMetrics } from '../lib/obs/metrics.js';
import { createPolicy } from '../lib/policy/engine.js';
import { normalizeEvent } from '../lib/events/normalize.js';
import { netnsTestOptions } from './support/netns.js';
import { kernelWriter } from './support/nft-kernel.js';

const S = DEFAULT_POLICY_SETTINGS;
const PROBER = '203.0.113.71';
const CARRIER = ['198.51.100.40', '198.51.100.42', '198.51.100.43'];
const OFFICE = '198.51.100.30';
const THIEF = '203.0.113.90';

const rulesOf = (r: ReturnType<typeof replayMixed>): string[] => r.bans.map((b) => `${b.decision.target.cidr.text} ${b.decision.rule}`);

t.test('numbers: international and premium by prefix, never a short extension', async (t) => {
  const p = { international: S.callInternationalPrefixes, premium: S.callPremiumPrefixes };
  for (const n of ['00972592123456', '9011441234567', '+442071234567', '0046812345678', '011972599999999', '90044123456789', '810495123456']) t.equal(classifyNumber(n, p), 'international', n);
  for (const n of ['19005551234', '09001234567', '09061234567']) t.equal(classifyNumber(n, p), 'premium', n);
  for (const n of ['100', '1001', '5551000', '5559999', '0301234567', '8101', '9001', '+4930', '00']) t.equal(classifyNumber(n, p), 'other', n);
});

t.test('the call knobs are policy keys: validated, per profile', async (t) => {
  t.same(policySettingsProblems(S), []);
  t.match(policySettingsProblems({ ...S, slowCallProbeDestinations: 2 }).join(), /slowCallProbeDestinations: must be at least callProbeDestinations/);
  t.match(policySettingsProblems({ ...S, tollFraudBanSites: true }).join(), /tollFraudBanSites: needs tollFraudBan/);
  t.same(parsePolicyOverride({ tollFraudBan: true, callPublicContexts: ['public', 'from-carrier'] }, 'profiles.external'), { tollFraudBan: true, callPublicContexts: ['public', 'from-carrier'] });
  t.throws(() => parsePolicyOverride({ tollFraudBan: 'yes' }, 'profiles.external'), /profiles\.external\.tollFraudBan = "yes": expected true or false/);
  t.throws(() => parsePolicyOverride({ callInternationalPrefixes: [''] }, 'profiles.external'), /callInternationalPrefixes\[0\]/);
});

t.test('fsguard policy describes every call rule from the table', async (t) => {
  const text = describePolicy(S).join('\n');
  const callRules = RULES.filter((r) => r.id.includes('call_'));
  t.equal(callRules.length, 7, 'the call rules are rows of the one rule table');
  for (const r of callRules) t.match(text, r.id, r.id);
  t.match(text, /toll_fraud/);
  t.match(text, /the dialplan must still refuse/);
});

t.test('call_scanner_user_agent: the first unauthenticated call with an attack-tool user agent', async (t) => {
  const b = new CallTraceBuilder(1);
  b.call({ ip: '203.0.113.70', atS: 0, number: '00972592123456', outcome: 'unrouted', ua: 'friendly-scanner' });
  const r = replayMixed(b.build());
  t.same(rulesOf(r), ['203.0.113.70 call_scanner_user_agent']);
  t.same(r.bans[0]!.decision.evidence.calls?.numbers, ['00972592123456'], 'the ban carries the numbers');
  // A source proven by an answered call is not banned for it (the user agent may be forged).
  const c = new CallTraceBuilder(2);
  c.call({ ip: '198.51.100.40', atS: 0, number: '5551000', outcome: 'answered', seconds: 30 });
  c.call({ ip: '198.51.100.40', atS: 5, number: '5559999', outcome: 'unrouted', ua: 'friendly-scanner' });
  t.same(rulesOf(replayMixed(c.build())), []);
});

t.test('call_probing_international: three distinct international numbers within the short window', async (t) => {
  const b = new CallTraceBuilder(3);
  for (const [i, n] of ['9011441234567', '+442071234567', '0046812345678', '011972599999999', '100'].entries()) b.call({ ip: PROBER, atS: i * 0.8, number: n, outcome: 'unrouted', ua: 'Zoiper rv2.10.19.4' });
  const r = replayMixed(b.build());
  t.same(rulesOf(r), [`${PROBER} call_probing_international`]);
  t.equal(r.bans[0]!.index, 2, 'at the third call');
  // One number dialled again and again is one number.
  const c = new CallTraceBuilder(4);
  for (let i = 0; i < 10; i++) c.call({ ip: PROBER, atS: i, number: '+442071234567', outcome: 'unrouted' });
  t.same(rulesOf(replayMixed(c.build())), []);
});

t.test('call_probing: five distinct numbers within the short window, refused or unrouted, in a public context only', async (t) => {
  const b = new CallTraceBuilder(5);
  for (let i = 0; i < 5; i++) b.call({ ip: PROBER, atS: i * 2, number: String(100 + i), outcome: i % 2 ? 'refused' : 'unrouted' });
  const r = replayMixed(b.build());
  t.same(rulesOf(r), [`${PROBER} call_probing`]);
  t.equal(r.bans[0]!.index, 4);
  const c = new CallTraceBuilder(6);
  for (let i = 0; i < 20; i++) c.call({ ip: PROBER, atS: i * 2, number: String(100 + i), outcome: 'unrouted', context: 'default' });
  for (let i = 0; i < 20; i++) c.call({ ip: '203.0.113.80', atS: i * 2, number: String(100 + i), outcome: 'unanswered' });
  t.same(rulesOf(replayMixed(c.build())), [], 'not in another context (ACL-trusted callers), nor calls that were routed');
  const d = new CallTraceBuilder(7);
  for (let i = 0; i < 20; i++) d.call({ ip: PROBER, atS: i * 2, number: String(100 + i), outcome: 'unrouted', context: 'from-carrier' });
  t.same(rulesOf(replayMixed(d.build(), S, { external: { callPublicContexts: ['public', 'from-carrier'] } })), [`${PROBER} call_probing`], 'public contexts are per-profile configuration');
});

t.test('slow_call_probing and slow_call_probing_international: the same spread over hours', async (t) => {
  const b = new CallTraceBuilder(8);
  for (let i = 0; i < 30; i++) b.call({ ip: PROBER, atS: i * 300, number: String(2000 + i), outcome: 'unrouted' });
  const r = replayMixed(b.build());
  t.same(rulesOf(r)[0], `${PROBER} slow_call_probing`);
  t.equal(r.bans[0]!.index, S.slowCallProbeDestinations - 1);
  const c = new CallTraceBuilder(9);
  prober(c, { ip: PROBER, count: 30, ratePerS: 1 / 300 });
  const rc = replayMixed(c.build());
  t.same(rulesOf(rc)[0], `${PROBER} slow_call_probing_international`, 'and again when the ban ends and it goes on');
  t.equal(rc.bans[0]!.index, S.slowCallProbeInternational - 1);
});

t.test('ipv6_prefix_call_*: a prober rotating addresses inside a /64 is banned as the prefix', async (t) => {
  const b = new CallTraceBuilder(10);
  for (let i = 0; i < 12; i++) b.call({ ip: `2001:db8:bad:1::${(i + 1).toString(16)}`, atS: i * 600, number: randomNumber(b, '00972', 9), outcome: 'unrouted' });
  const r = replayMixed(b.build());
  t.same(new Set(rulesOf(r)), new Set(['2001:db8:bad:1::/64 ipv6_prefix_call_probing_international']), 'one call per address, one every 10 min: only the prefix sees it');
  t.equal(r.bans[0]!.index, 2, 'at the third address');
  const s = new CallTraceBuilder(11);
  for (let i = 0; i < 5; i++) s.call({ ip: `2001:db8:bad:2::${i + 1}`, atS: i * 60, number: '5551000', outcome: 'unrouted', ua: 'sipvicious' });
  t.same(rulesOf(replayMixed(s.build())).at(-1), '2001:db8:bad:2::/64 ipv6_prefix_scanner_user_agent', 'attack-tool user agents on calls count for the prefix like those on registrations');
  // A /64 where a carrier's answered calls come from is never banned as a whole.
  const c = new CallTraceBuilder(12);
  c.call({ ip: '2001:db8:ca:1::1', atS: 0, number: '5551000', outcome: 'answered', seconds: 60 });
  for (let i = 0; i < 12; i++) c.call({ ip: `2001:db8:ca:1::${(i + 2).toString(16)}`, atS: 10 + i * 600, number: randomNumber(c, '+4930', 8), outcome: 'unrouted' });
  t.same(rulesOf(replayMixed(c.build())).filter((x) => x.includes('/64')), []);
});

t.test('toll_fraud: an account dialling many new international numbers; alert names account, address, numbers', async (t) => {
  const b = new CallTraceBuilder(13);
  // The account's own history: it calls two relatives abroad every day, from the office.
  b.auth.auth({ ip: OFFICE, port: 5062, user: '1001', ua: 'Yealink SIP-T46S 66.86.0.15', atS: 0, answer: 'RENEWED' });
  for (let d = 0; d < 3; d++) for (const n of ['0044207123456', '0033142123456']) b.call({ ip: OFFICE, atS: 60 + d * 86400, number: n, outcome: 'answered', seconds: 600, account: '1001' });
  // A burst far beyond it, from the same address.
  for (let i = 0; i < 15; i++) b.call({ ip: OFFICE, atS: 3 * 86400 + i * 10, number: randomNumber(b, '00882', 8), outcome: i % 3 ? 'refused' : 'answered', seconds: 30, account: '1001' });
  const r = replayMixed(b.build());
  const alerts = r.alerts.filter((a) => a.alert.kind === 'toll_fraud');
  t.equal(alerts.length, 1, 'one alert (rate-limited)');
  t.match(alerts[0]!.alert, { source: OFFICE, account: '1001@pbx.example.com', profile: 'internal' });
  t.equal(alerts[0]!.alert.numbers!.length, S.tollFraudDestinations);
  t.ok(alerts[0]!.alert.numbers!.every((n) => n.startsWith('00882')), 'the new numbers, not its usual ones');
  t.same(rulesOf(r), [], 'not banned: banning is opt-in');
  t.same(rulesOf(replayMixed(b.build(), S, { internal: { tollFraudBan: true } })), [`${OFFICE} toll_fraud`], 'tollFraudBan: the address is banned');
});

t.test('toll_fraud: the usual international calls of an account raise nothing', async (t) => {
  const b = new CallTraceBuilder(14);
  b.auth.auth({ ip: OFFICE, port: 5062, user: '1001', ua: 'Yealink SIP-T46S 66.86.0.15', atS: 0, answer: 'RENEWED' });
  const customers = Array.from({ length: 40 }, () => randomNumber(b, '0049', 10));
  // An export desk: 40 customers abroad, 8 of them a day, for 5 days, the same customers again.
  for (let d = 0; d < 5; d++) for (let k = 0; k < 8; k++) b.call({ ip: OFFICE, atS: 3600 + d * 86400 + k * 120, number: customers[(d * 8 + k) % 40]!, outcome: 'answered', seconds: 300, account: '1001' });
  const r = replayMixed(b.build());
  t.same(r.alerts.filter((a) => a.alert.kind === 'toll_fraud'), []);
});

t.test('variant: a carrier with 5,000 answered calls and 2 % misdials is never banned', async (t) => {
  for (const [seed, e164, hours] of [[20, true, 8], [21, false, 8], [22, true, 2]] as const) {
    const b = new CallTraceBuilder(seed);
    carrier(b, { ips: CARRIER, calls: 5000, misdialShare: 0.02, durationS: hours * 3600, e164 });
    prober(b, { ip: PROBER, count: 20, ratePerS: 1, startS: 1800 });
    const events = b.build();
    const r = replayMixed(events);
    t.same(judgeMixed(events, r, [{ source: PROBER, withinEvents: 10, withinSeconds: 60 }], CARRIER), [], `${e164 ? 'E.164' : 'national'} DIDs over ${hours} h, a prober among them`);
  }
});

t.test('a spray of probing calls from new addresses does not take a carrier\'s proof: its misdials after it never ban it', async (t) => {
  const b = new CallTraceBuilder(23);
  // The carrier's answered calls for the first hour: proven.
  for (let k = 0; k < 60; k++) b.call({ ip: CARRIER[0]!, atS: k * 60, number: `+493012340${String(k % 100).padStart(2, '0')}`, outcome: 'answered', seconds: 60, ua: 'carrier-sbc/4.2' });
  // Then 500 addresses probe once each (a botnet), twice the room for call sources.
  for (let i = 0; i < 500; i++) b.call({ ip: `203.0.${113 + (i >> 8)}.${i & 255}`, atS: 3700 + i, number: randomNumber(b, '00972', 9), outcome: 'unrouted', ua: 'Zoiper rv2.10.19.4' });
  // Then the carrier misdials six numbers within a minute (a burst of wrong DIDs).
  for (let k = 0; k < 6; k++) b.call({ ip: CARRIER[0]!, atS: 4300 + k * 10, number: randomNumber(b, '+4930123', 5), outcome: 'unrouted', ua: 'carrier-sbc/4.2' });
  const events = b.build();
  const r = replayMixed(events, { ...S, maxTrackedSources: 200 });
  t.same(judgeMixed(events, r, [], [CARRIER[0]!]), [], 'the carrier is not banned');
  // 501 IPv4 sources, each in the auth tracker and the call tables: without eviction 1,002.
  const tracked = r.policy.trackedSources();
  t.ok(tracked <= 2 * 200 + 2, `the spray was still evicted (memory bounded): ${tracked} tracked, room for 200 in each table`);
});

t.test('variant: a prober dialling 20 international numbers at one a second is banned within 10 calls', async (t) => {
  for (const [seed, prefix] of [[30, '00'], [31, '011'], [32, '+'], [33, '9011'], [34, '1900']] as const) {
    const b = new CallTraceBuilder(seed);
    prober(b, { ip: PROBER, count: 20, ratePerS: 1, prefix, digits: 11 });
    const events = b.build();
    t.same(judgeMixed(events, replayMixed(events), [{ source: PROBER, withinEvents: 10, withinSeconds: 10 }]), [], prefix);
  }
});

t.test('variant: a slow prober, one call every 2 minutes for a day, is banned within an hour', async (t) => {
  for (const [seed, prefix, digits] of [[40, '00', 11], [41, '', 4]] as const) {
    const b = new CallTraceBuilder(seed);
    prober(b, { ip: PROBER, count: 720, ratePerS: 1 / 120, prefix, digits });
    const events = b.build();
    t.same(judgeMixed(events, replayMixed(events), [{ source: PROBER, withinEvents: 30, withinSeconds: 3600 }]), [], prefix ? 'international numbers' : 'extension-like numbers');
  }
});

t.test('variant: a stolen account making 30 international calls in 5 minutes from a new address raises the alert', async (t) => {
  const b = new CallTraceBuilder(50);
  // A 20-phone office registered and calling as usual (a few calls abroad among them).
  site(b.auth, { ip: OFFICE, phones: 20, bootSpreadS: 30, durationS: 4 * 3600 });
  for (let k = 0; k < 60; k++) {
    const user = String(1000 + Math.floor(b.random() * 20));
    b.call({ ip: OFFICE, atS: 120 + k * 200, number: b.random() < 0.1 ? randomNumber(b, '0044', 10) : randomNumber(b, '0301', 6), outcome: 'answered', seconds: 90, account: user });
  }
  // 1007's password leaked: a new address authenticates as 1007 and calls abroad.
  const t0 = 3 * 3600;
  for (let i = 0; i < 30; i++) {
    b.auth.auth({ ip: THIEF, port: 5090, user: '1007', ua: 'Zoiper rv2.10.19.4', atS: t0 + i * 10 - 0.2, answer: 'RENEWED', method: 'INVITE', dialled: '0088213' });
    b.call({ ip: THIEF, atS: t0 + i * 10, number: randomNumber(b, i % 2 ? '00882' : '+53', 9), outcome: 'answered', seconds: 5, account: '1007', ua: 'Zoiper rv2.10.19.4' });
  }
  const events = b.build();
  for (const ban of [false, true]) {
    const r = replayMixed(events, S, ban ? { internal: { tollFraudBan: true } } : {});
    const alert = r.alerts.find((a) => a.alert.kind === 'toll_fraud');
    t.ok(alert, 'a toll_fraud alert');
    t.match(alert?.alert, { source: THIEF, account: '1007@pbx.example.com' });
    t.match(alert?.alert.message, /an address it never used before/);
    // At its third new number from a new address, later by no more than its usual peak: the
    // numbers abroad 1007 itself dialled from the office (its history) raise its threshold.
    const usual = events.filter((e) => e['Caller-Network-Addr'] === OFFICE && e.variable_sip_auth_username === '1007' && String(e['Caller-Destination-Number'] ?? '').startsWith('0044')).length;
    const callsBefore = events.slice(0, alert!.index + 1).filter((e) => e['Caller-Network-Addr'] === THIEF).length;
    t.ok(callsBefore >= S.tollFraudNewAddressDestinations && callsBefore <= S.tollFraudNewAddressDestinations + usual, `at its call ${callsBefore} (threshold ${S.tollFraudNewAddressDestinations}, ${usual} of its own calls abroad before)`);
    t.equal(alert?.alert.numbers?.length, callsBefore, 'names the numbers it dialled');
    t.same(r.alerts.filter((a) => a.alert.kind === 'toll_fraud' && a.alert.source === OFFICE), [], 'the office\'s usual calls abroad raise nothing');
    t.same(rulesOf(r), ban ? [`${THIEF} toll_fraud`] : [], ban ? 'opt-in: the thief\'s address is banned' : 'by default: alert only');
  }
});

t.test('maxTrackedAccounts: a full table keeps its accounts, newcomers go untracked, an active one keeps its addresses', async (t) => {
  const b = new CallTraceBuilder(51);
  const t0 = 3 * 3600;
  const ua = 'Yealink SIP-T46S';
  // 1007 authenticates first of all, from the office, and goes on renewing until shortly before t0.
  for (let at = 100; at <= t0 - 70; at += 60) b.auth.auth({ ip: OFFICE, port: 5060, user: '1007', ua, atS: at, answer: at === 100 ? 'SUCCESS' : 'RENEWED' });
  // 40 accounts authenticate once, early; 30 new ones just before t0: 71 accounts, 50 tracked.
  for (let i = 0; i < 40; i++) b.auth.auth({ ip: `198.51.100.${100 + i}`, port: 5060, user: String(5000 + i), ua, atS: 200 + i, answer: 'SUCCESS' });
  for (let i = 0; i < 30; i++) b.auth.auth({ ip: `198.51.100.${150 + i}`, port: 5060, user: String(6000 + i), ua, atS: t0 - 60 + i, answer: 'SUCCESS' });
  // An untracked newcomer calls: it gets a place, the least recently used account (5000) gives it up.
  b.call({ ip: '198.51.100.179', atS: t0 - 5, number: '0301234567', outcome: 'answered', seconds: 30, account: '6029' });
  for (let i = 0; i < 10; i++) {
    b.auth.auth({ ip: THIEF, port: 5090, user: '1007', ua: 'Zoiper rv2.10.19.4', atS: t0 + i * 10 - 0.2, answer: 'RENEWED', method: 'INVITE', dialled: '0088213' });
    b.call({ ip: THIEF, atS: t0 + i * 10, number: randomNumber(b, '00882', 9), outcome: 'answered', seconds: 5, account: '1007', ua: 'Zoiper rv2.10.19.4' });
  }
  // 5001 is still tracked; 5000 gave its place to the caller, so the table is full for it.
  for (const user of ['5001', '5000']) b.auth.auth({ ip: '198.51.100.100', port: 5060, user, ua, atS: t0 + 300, answer: 'RENEWED' });
  const r = replayMixed(b.build(), { ...S, maxTrackedAccounts: 50 });
  // 1007 kept its place and its office address, so the thief's is new to it. (Evicting the
  // first inserted would drop 1007 and that with it.)
  const alert = r.alerts.find((a) => a.alert.kind === 'toll_fraud');
  t.match(alert?.alert, { source: THIEF, account: '1007@pbx.example.com' });
  t.match(alert?.alert.message, /an address it never used before/);
  // All 41 earlier accounts are live (seen within legitimacySeconds): 9 of the 30 newcomers
  // fill the table, 21 go untracked rather than push out accounts that come back; the caller
  // took one place for one.
  t.same(r.policy.capacityStats().accounts, { tracked: 50, leftOut: 22 });
  // A day later the early ones are idle: a newcomer takes the place of one of them.
  const later = new CallTraceBuilder(52);
  for (let i = 0; i < 70; i++) later.auth.auth({ ip: `198.51.100.${100 + (i % 50)}`, port: 5060, user: String(5000 + i), ua, atS: i < 50 ? 10 + i : S.legitimacySeconds + 100 + i, answer: 'SUCCESS' });
  const r2 = replayMixed(later.build(), { ...S, maxTrackedAccounts: 50 });
  t.same(r2.policy.capacityStats().accounts, { tracked: 20, leftOut: 0 }, 'the 50 idle accounts made room (all at the first sweep), the 20 newcomers are tracked');
});

t.test('an account refreshing every 30 s stays live in the toll-fraud table though only some refreshes reach it', async (t) => {
  // The engine tells the table of the same user at the same address at most once per
  // ACCOUNT_NOTE_US: the table must still see these accounts as live an hour past their first
  // success (legitimacySeconds here), and a newcomer then goes untracked; had they stopped
  // refreshing, it would take an idle one's place.
  const settings: PolicySettings = { ...S, maxTrackedAccounts: 10, legitimacySeconds: 3600 };
  const ua = 'Yealink SIP-T46S 66.86.0.15';
  for (const refreshUntilS of [2 * 3600, 1800]) {
    const b = new CallTraceBuilder(55);
    for (let at = 0; at <= refreshUntilS; at += 30) {
      for (let i = 0; i < 10; i++) b.auth.auth({ ip: OFFICE, port: 5060 + i, user: String(3000 + i), ua, atS: at + i, answer: at === 0 ? 'SUCCESS' : 'RENEWED' });
    }
    b.auth.auth({ ip: '198.51.100.99', port: 5060, user: '4000', ua, atS: 2 * 3600 + 60, answer: 'SUCCESS' });
    const stats = replayMixed(b.build(), settings).policy.capacityStats().accounts;
    if (refreshUntilS > 3600) t.same(stats, { tracked: 10, leftOut: 1 }, 'refreshing for two hours: all ten live, the newcomer untracked');
    else t.same(stats, { tracked: 1, leftOut: 0 }, 'silent for 90 minutes: idle, the newcomer takes a place and the sweep drops them');
  }
});

t.test('maxTrackedAccounts below the live accounts: an account\'s usual numbers are not forgotten in the churn', async (t) => {
  // 61 phones re-register every 20 minutes, in turn, with room for 50. Making room for each by
  // dropping the least recently used would drop the very one coming next: every account's
  // history gone within the hour, and an export desk's usual calls abroad taken for fraud.
  const b = new CallTraceBuilder(53);
  const ua = 'Yealink SIP-T46S 66.86.0.15';
  const days = 3;
  for (let at = 0; at < days * 86400; at += 1200) {
    b.auth.auth({ ip: OFFICE, port: 5062, user: '1001', ua, atS: at, answer: at === 0 ? 'SUCCESS' : 'RENEWED' });
    for (let i = 0; i < 60; i++) b.auth.auth({ ip: `198.51.100.${100 + (i % 50)}`, port: 5060 + i, user: String(2000 + i), ua, atS: at + 1 + i * 19, answer: at === 0 ? 'SUCCESS' : 'RENEWED' });
  }
  const customers = Array.from({ length: 12 }, () => randomNumber(b, '0049', 10));
  // Two days of calls to its 12 customers, one every ~12 minutes (never many new ones in a
  // window); on the third, the same 12 in six minutes (a mailing follow-up).
  for (let d = 0; d < 2; d++) customers.forEach((n, k) => b.call({ ip: OFFICE, atS: d * 86400 + 3600 + k * 700, number: n, outcome: 'answered', seconds: 120, account: '1001' }));
  customers.forEach((n, k) => b.call({ ip: OFFICE, atS: 2 * 86400 + 3600 + k * 30, number: n, outcome: 'answered', seconds: 20, account: '1001' }));
  const r = replayMixed(b.build(), { ...S, maxTrackedAccounts: 50 });
  t.same(r.alerts.filter((a) => a.alert.kind === 'toll_fraud'), [], 'its own customers: no alert');
  t.ok(r.policy.capacityStats().accounts.leftOut > 0, 'the authentications beyond the table are counted');
  // The same burst to 12 numbers it never called is still caught.
  const c = new CallTraceBuilder(54);
  for (let at = 0; at < 86400; at += 1200) {
    c.auth.auth({ ip: OFFICE, port: 5062, user: '1001', ua, atS: at, answer: at === 0 ? 'SUCCESS' : 'RENEWED' });
    for (let i = 0; i < 60; i++) c.auth.auth({ ip: `198.51.100.${100 + (i % 50)}`, port: 5060 + i, user: String(2000 + i), ua, atS: at + 1 + i * 19, answer: at === 0 ? 'SUCCESS' : 'RENEWED' });
  }
  for (let k = 0; k < 12; k++) c.call({ ip: OFFICE, atS: 3600 + k * 30, number: randomNumber(c, '00882', 9), outcome: 'answered', seconds: 20, account: '1001' });
  const fraud = replayMixed(c.build(), { ...S, maxTrackedAccounts: 50 }).alerts.filter((a) => a.alert.kind === 'toll_fraud');
  t.match(fraud[0]?.alert, { source: OFFICE, account: '1001@pbx.example.com' }, 'new numbers in a burst: the alert');
});

t.test('a toll-fraud table full of live accounts: a metric, and a warning at most once an hour', netnsTestOptions(), async (t) => {
  const policy = createPolicy({ ...S, maxTrackedAccounts: 10 });
  const feed = (seed: number, first: number, count: number, atS: number): void => {
    const b = new CallTraceBuilder(seed);
    for (let i = 0; i < count; i++) b.auth.auth({ ip: `198.51.100.${10 + i}`, port: 5060, user: String(first + i), ua: 'Yealink SIP-T46S', atS: atS + i, answer: 'SUCCESS' });
    for (const h of b.build()) {
      const r = normalizeEvent(h, { profiles: null });
      if (r.ok) policy.observe(r.event);
    }
  };
  const metrics = new FsguardMetrics(false);
  const logger = new RecordingLogger();
  let nowMs = 1_700_000_000_000;
  const guard = new Guard(policy, kernelWriter(t, 'accounts'), logger, metrics, { allow: [] }, () => nowMs);
  await guard.start();
  const warnings = (): string[] => logger.records.filter((r) => r.level === 'warn' && /toll-fraud table is full/.test(r.msg)).map((r) => r.msg);
  feed(60, 3000, 10, 0);
  guard.tick();
  t.same(warnings(), [], 'room for all ten: nothing to say');
  feed(61, 4000, 5, 20);
  guard.tick();
  t.equal(warnings().length, 1, 'five accounts left untracked: one warning');
  t.match(warnings()[0], /raise maxTrackedAccounts/);
  t.match(logger.records.find((r) => /toll-fraud table is full/.test(r.msg))?.obj, { trackedAccounts: 10, untrackedAuthentications: 5 });
  t.match(await metrics.registry.metrics(), /fsguard_policy_untracked_account_authentications_total 5/);
  feed(62, 5000, 5, 40);
  nowMs += 60_000;
  guard.tick();
  t.equal(warnings().length, 1, 'more within the hour: counted, not logged again');
  t.match(await metrics.registry.metrics(), /fsguard_policy_untracked_account_authentications_total 10/);
  nowMs += 3_600_000;
  guard.tick();
  t.equal(warnings().length, 2, 'an hour later: logged again');
  t.match(logger.records.filter((r) => /toll-fraud table is full/.test(r.msg))[1]?.obj, { untrackedAuthentications: 5 }, 'the ones since the last line');
  nowMs += 3_600_000;
  guard.tick();
  t.equal(warnings().length, 2, 'none since: nothing new to say');
});

t.test('toll_fraud through a proven multi-phone site: alert, never a ban unless tollFraudBanSites', async (t) => {
  const b = new CallTraceBuilder(60);
  site(b.auth, { ip: OFFICE, phones: 10, bootSpreadS: 10, durationS: 3600 });
  for (let i = 0; i < 20; i++) b.call({ ip: OFFICE, atS: 1800 + i * 5, number: randomNumber(b, '00882', 9), outcome: 'answered', seconds: 20, account: '1003' });
  const events = b.build();
  const opt = (o: Partial<PolicySettings>): ReturnType<typeof replayMixed> => replayMixed(events, S, { internal: o });
  t.ok(opt({ tollFraudBan: true }).alerts.some((a) => a.alert.kind === 'toll_fraud' && a.alert.source === OFFICE));
  t.same(rulesOf(opt({ tollFraudBan: true })), [], 'the site keeps working');
  t.same(rulesOf(opt({ tollFraudBan: true, tollFraudBanSites: true })), [`${OFFICE} toll_fraud`]);
});
