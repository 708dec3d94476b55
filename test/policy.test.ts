// Unit tests per policy rule, including the edge cases of issue 3: FORBIDDEN + register_failure
// counted once, STALE is not a failure, RENEWED proves, forged challenges never ban a proven
// site, retransmissions, allow-list and FreeSWITCH's own address, grace after unban, restored
// bans, bantime increment with deterministic jitter, bounded memory under an IPv6 spray.
import t from 'tap';
import convict from 'convict';
import type { AuthEvent, AttemptResult } from '../lib/events/auth-event.js';
import type { CallEvent } from '../lib/events/call-event.js';
import { parseCidr, parseIp } from '../lib/net/ip.js';
import { createPolicy, matchesScannerPattern, type RatePolicy } from '../lib/policy/engine.js';
import {
  DEFAULT_POLICY_SETTINGS, parsePolicyOverride, policySchema, policySettingsProblems, settingsForProfile,
  type PolicySettings,
} from '../lib/policy/settings.js';
import type { BanDecision, PolicyAlert } from '../lib/policy/types.js';

const S = 1_000_000;
const T0 = 1_793_610_000_000_000;
let ids = 0;

interface Opts { ua?: string; callId?: string; profile?: string; to?: string }

function common(ip: string, atS: number, o: Opts) {
  const source = parseIp(ip);
  if (!source) throw new Error(ip);
  return {
    profile: o.profile ?? 'internal', source, port: 5060, userAgent: o.ua ?? 'Yealink SIP-T46S 66.86.0.15',
    callId: o.callId ?? `c${++ids}`, timeUs: T0 + Math.round(atS * S), switchAddresses: ['192.0.2.10', '::1'],
  };
}
const challenge = (ip: string, atS: number, user: string, o: Opts = {}): AuthEvent => ({ ...common(ip, atS, o), kind: 'challenge', fromUser: user, toUser: o.to ?? user });
const attempt = (ip: string, atS: number, user: string, result: AttemptResult, o: Opts = {}): AuthEvent => ({ ...common(ip, atS, o), kind: 'attempt', result, authUser: user, fromUser: user, toUser: user, realm: 'pbx' });
const failure = (ip: string, atS: number, user: string, o: Opts = {}): AuthEvent => ({ ...common(ip, atS, { ...o, callId: '' }), kind: 'failure', method: 'REGISTER', toUser: user });
const registered = (ip: string, atS: number, user: string, o: Opts = {}): AuthEvent => ({ ...common(ip, atS, o), kind: 'registered', authUser: user, expires: 120 });

/** A full authentication: challenge, answer, register or 403, with one call-id. */
function login(ip: string, atS: number, user: string, result: AttemptResult, o: Opts = {}): AuthEvent[] {
  const callId = o.callId ?? `c${++ids}`;
  const out = [challenge(ip, atS, user, { ...o, callId }), attempt(ip, atS + 0.05, user, result, { ...o, callId })];
  if (result === 'forbidden') out.push(failure(ip, atS + 0.05, user, o));
  if (result === 'success') out.push(registered(ip, atS + 0.051, user, { ...o, callId }));
  return out;
}

interface Run { bans: BanDecision[]; alerts: PolicyAlert[]; banIndex: number[] }
function feed(p: RatePolicy, events: readonly AuthEvent[]): Run {
  const r: Run = { bans: [], alerts: [], banIndex: [] };
  events.forEach((e, i) => {
    const out = p.observe(e);
    for (const b of out.bans) { r.bans.push(b); r.banIndex.push(i); }
    r.alerts.push(...out.alerts);
  });
  return r;
}
const policy = (o: Partial<PolicySettings> = {}, profiles: Record<string, Partial<PolicySettings>> = {}): RatePolicy => createPolicy({ ...DEFAULT_POLICY_SETTINGS, ...o }, profiles);
const site = (ip: string, users: number, atS = 0): AuthEvent[] => Array.from({ length: users }, (_, i) => login(ip, atS + i * 0.2, String(1000 + i), 'success')).flat();

const ATT = '203.0.113.66';
const OFFICE = '198.51.100.10';

t.test('settings: defaults are valid, overrides are checked key by key', async (t) => {
  t.same(policySettingsProblems(DEFAULT_POLICY_SETTINGS), []);
  t.throws(() => parsePolicyOverride({ bruteForce: 3 }, 'profiles.internal'), /profiles\.internal\.bruteForce: unknown policy key/);
  t.throws(() => parsePolicyOverride({ bruteForceFailures: 2.5 }, 'profiles.internal'), /profiles\.internal\.bruteForceFailures = 2\.5: must be a whole number/);
  t.throws(() => parsePolicyOverride({ banSeconds: '1 hour' }, 'profiles.x'), /profiles\.x\.banSeconds = "1 hour": expected a duration/);
  t.same(parsePolicyOverride({ banSeconds: '1h', banMaxSeconds: '7d' }, 'profiles.x'), { banSeconds: 3600, banMaxSeconds: 604800 }, 'durations with a unit');
  t.throws(() => parsePolicyOverride({ allow: ['10.0.0.0/8', 'nope'] }, 'profiles.x'), /profiles\.x\.allow\[1\]: not an address or CIDR/);
  t.throws(() => parsePolicyOverride({ ipv6PrefixLength: 48 }, 'profiles.x'), /profiles\.x\.ipv6PrefixLength: set it in policy, not per profile/);
  t.throws(() => parsePolicyOverride({ answerTimeoutSeconds: 3 }, 'profiles.x'), /profiles\.x\.answerTimeoutSeconds: set it in policy, not per profile/);
  t.throws(() => parsePolicyOverride({ failuresForgeable: 'no' }, 'profiles.x'), /profiles\.x\.failuresForgeable = "no": expected true or false/);
  t.same(parsePolicyOverride({ failuresForgeable: false }, 'profiles.tls'), { failuresForgeable: false });
  t.throws(() => parsePolicyOverride([], 'profiles.x'), /profiles\.x: must be an object/);
  t.same(parsePolicyOverride({ bruteForceFailures: 3, allow: ['10.0.0.0/8'] }, 'p'), { bruteForceFailures: 3, allow: ['10.0.0.0/8'] });
  const eff = settingsForProfile(DEFAULT_POLICY_SETTINGS, { external: { banSeconds: 60 } }, 'external');
  t.equal(eff.banSeconds, 60);
  t.equal(settingsForProfile(DEFAULT_POLICY_SETTINGS, { external: { banSeconds: 60 } }, 'internal').banSeconds, DEFAULT_POLICY_SETTINGS.banSeconds);
  t.throws(() => createPolicy({ ...DEFAULT_POLICY_SETTINGS, banMaxSeconds: 10 }), /banMaxSeconds: must be at least banSeconds/);
});

t.test('settings: the convict schema validates, and env overrides apply', async (t) => {
  const c = convict({ policy: policySchema }, { env: { FSGUARD_POLICY_BAN_SECONDS: '120', FSGUARD_POLICY_ALLOW: '10.0.0.0/8,192.0.2.0/24', FSGUARD_POLICY_FAILURES_FORGEABLE: 'false' } });
  c.validate({ allowed: 'strict' });
  const p = c.get('policy') as PolicySettings;
  t.equal(p.failuresForgeable, false, 'a boolean knob from the environment');
  t.equal(p.banSeconds, 120);
  t.same(p.allow, ['10.0.0.0/8', '192.0.2.0/24']);
  t.equal(p.bruteForceFailures, DEFAULT_POLICY_SETTINGS.bruteForceFailures);
  const bad = convict({ policy: policySchema });
  bad.load({ policy: { bruteForceFailures: 0 } });
  t.throws(() => bad.validate({ allowed: 'strict' }), /policy\.bruteForceFailures: must be at least 1/);
});

t.test('brute_force: a FORBIDDEN attempt and its register_failure count once', async (t) => {
  const p = policy();
  const five = Array.from({ length: 5 }, (_, i) => login(ATT, i * 0.5, '1000', 'forbidden')).flat();
  t.equal(feed(p, five).bans.length, 0, '5 failed requests (10 events with their 403s) are below 6');
  const r = feed(p, login(ATT, 2.5, '1000', 'forbidden'));
  t.equal(r.bans.length, 1);
  t.equal(r.bans[0]!.rule, 'brute_force');
  t.equal(r.bans[0]!.target.cidr.text, ATT);
  t.equal(r.bans[0]!.evidence.answeredFailures, 6);
  t.equal(r.bans[0]!.atUs, T0 + 2.55 * S, 'decided by the FORBIDDEN attempt');
});

t.test('brute_force: a register_failure without an attempt still counts', async (t) => {
  const r = feed(policy(), Array.from({ length: 6 }, (_, i) => failure(ATT, i * 0.5, String(1000))));
  t.equal(r.bans[0]?.rule, 'brute_force');
});

t.test('brute_force: a phone retrying every 30-60 s never trips the short window', async (t) => {
  const ev: AuthEvent[] = [];
  for (let s = 0, i = 0; s < 600; s += 30 + (i++ % 3) * 10) ev.push(...login(ATT, s, '1000', 'forbidden'));
  const r = feed(policy({ slowGuessingFailures: 1000 }), ev);
  t.equal(r.bans.length, 0);
});

t.test('pipelined_cracker: banned before its answers arrive', async (t) => {
  const ev = Array.from({ length: 30 }, (_, i) => challenge(ATT, i * 0.001, '1000'));
  const r = feed(policy(), ev);
  t.equal(r.bans[0]?.rule, 'pipelined_cracker');
  t.equal(r.banIndex[0], 9, 'at the 10th challenge for the same user');
});

t.test('STALE is a benign re-challenge, never a failure; RENEWED and SUCCESS prove the source', async (t) => {
  const p = policy();
  const ev: AuthEvent[] = [];
  for (let i = 0; i < 40; i++) ev.push(...login(ATT, i * 3, String(1000 + (i % 7)), 'stale'));
  t.equal(feed(p, ev).bans.length, 0);
  t.equal(p.inspect(ATT)!.answeredFailures, 0);
  t.equal(p.inspect(ATT)!.proven, false);
  feed(p, [...login(ATT, 200, '1000', 'success')]);
  t.equal(p.inspect(ATT)!.proven, true);
  const q = policy();
  feed(q, [challenge(OFFICE, 0, '1001', { callId: 'x' }), attempt(OFFICE, 0.05, '1001', 'success', { callId: 'x' })]);
  t.equal(q.inspect(OFFICE)!.proven, true, 'an authenticated INVITE (no register event) proves too');
});

t.test('unanswered_challenges: scanners that never answer, but a retransmission counts once', async (t) => {
  const p = policy();
  const retrans = Array.from({ length: 50 }, (_, i) => challenge(ATT, i * 0.5, '100', { callId: 'same' }));
  t.equal(feed(p, retrans).bans.length, 0, '50 retransmissions of one REGISTER are one challenge');
  const q = policy();
  const scan = Array.from({ length: 20 }, (_, i) => challenge(ATT, i, String(100 + i)));
  const r = feed(q, scan);
  t.equal(r.bans[0]?.rule, 'unanswered_challenges');
  t.ok(r.banIndex[0]! >= 11 && r.banIndex[0]! <= 13, `once about 10 challenges are 1.5 s old (event ${r.banIndex[0]})`);
});

t.test('unanswered_challenges: answered challenges (any result) are not unanswered', async (t) => {
  const ev: AuthEvent[] = [];
  for (let i = 0; i < 40; i++) {
    const callId = `a${i}`;
    ev.push(challenge(ATT, i * 2, String(100 + i), { callId }), attempt(ATT, i * 2 + 0.1, String(100 + i), 'stale', { callId }));
  }
  t.equal(feed(policy(), ev).bans.length, 0);
});

t.test('unanswered_challenges: advance() lets time pass without events (the daemon timer)', async (t) => {
  const p = policy();
  t.equal(feed(p, Array.from({ length: 10 }, (_, i) => challenge(ATT, i * 0.1, String(100 + i)))).bans.length, 0);
  t.equal(p.advance(T0 + 1 * S).bans.length, 0, 'not yet past the answer timeout');
  const out = p.advance(T0 + 3 * S);
  t.equal(out.bans[0]?.rule, 'unanswered_challenges');
});

t.test('challenge_flood: challenges unanswered longer than the slowest link answers', async (t) => {
  const r = feed(policy(), Array.from({ length: 120 }, (_, i) => challenge(ATT, i * 0.02, String(100 + i))));
  t.equal(r.bans[0]?.rule, 'challenge_flood');
  // The oldest is challengeFloodAgeSeconds (2 s) old at the 101st challenge (every 20 ms): no
  // earlier, whatever the count.
  const due = DEFAULT_POLICY_SETTINGS.challengeFloodAgeSeconds / 0.02;
  t.ok(r.banIndex[0]! >= due && r.banIndex[0]! <= due + 2, `banned at event ${r.banIndex[0]}`);
  const slow = feed(policy({ challengeFloodAgeSeconds: 0.4 }), Array.from({ length: 40 }, (_, i) => challenge(ATT, i * 0.02, String(100 + i))));
  t.ok(slow.banIndex[0]! <= 21, `with challengeFloodAgeSeconds 0.4: at event ${slow.banIndex[0]}`);
});

t.test('forged challenges never ban a proven site; they raise one spoofed_challenges alert', async (t) => {
  const p = policy();
  const ev = [...site(OFFICE, 10)];
  for (let i = 0; i < 2000; i++) ev.push(challenge(OFFICE, 5 + i * 0.01, String(100 + i), { ua: i % 2 ? 'friendly-scanner' : 'sipcli/v1.8' }));
  const r = feed(p, ev);
  t.equal(r.bans.length, 0);
  t.equal(p.advance(T0 + 60 * S).bans.length, 0);
  t.equal(r.alerts.filter((a) => a.kind === 'spoofed_challenges').length, 1, 'rate-limited to one');
});

t.test('scanner_user_agent: unproven at once, proven never, whole words only, case-insensitive', async (t) => {
  t.equal(feed(policy(), [challenge(ATT, 0, '100', { ua: 'FRIENDLY-SCANNER' })]).bans[0]?.rule, 'scanner_user_agent');
  t.equal(feed(policy(), [attempt(ATT, 0, '100', 'forbidden', { ua: 'sipvicious 0.3.4' })]).bans[0]?.rule, 'scanner_user_agent', 'a real but unproven source too');
  const p = policy();
  t.equal(feed(p, [...site(OFFICE, 2), challenge(OFFICE, 10, '100', { ua: 'sipvicious' })]).bans.length, 0);
  t.ok(matchesScannerPattern('smap/1.0', ['smap']));
  t.notOk(matchesScannerPattern('asmapp softphone', ['smap']));
  t.ok(matchesScannerPattern('vaxsipuseragent/3.1', ['vaxsipuseragent']));
  t.ok(matchesScannerPattern('sipcli/v1.8', ['sipcli']), 'followed by punctuation');
  t.ok(matchesScannerPattern('smap2', ['smap']), 'a version glued to the name');
  t.ok(matchesScannerPattern('my smap', ['smap']), 'at the end');
  t.notOk(matchesScannerPattern('pbx-gulpstream/1', ['gulp']), 'the start of a longer word is another name');
  t.ok(matchesScannerPattern('gulpstream gulp/1', ['gulp']), 'a later whole-word occurrence still counts');
  t.equal(feed(policy({ scannerUserAgents: ['evil-tool'] }), [challenge(ATT, 0, '1', { ua: 'friendly-scanner' })]).bans.length, 0, 'the list is configurable');
});

t.test('allow-list and FreeSWITCH\'s own addresses are never banned', async (t) => {
  t.equal(feed(policy(), [challenge('127.0.0.1', 0, '1', { ua: 'sipvicious' })]).bans.length, 0, 'loopback');
  t.equal(feed(policy(), [challenge('192.0.2.10', 0, '1', { ua: 'sipvicious' })]).bans.length, 0, 'switch address from the event');
  t.equal(feed(policy({ allow: ['203.0.113.0/24'] }), [challenge(ATT, 0, '1', { ua: 'sipvicious' })]).bans.length, 0, 'configured CIDR');
  t.equal(feed(policy({}, { external: { allow: ['203.0.113.0/24'] } }), [challenge(ATT, 0, '1', { ua: 'sipvicious', profile: 'external' })]).bans.length, 0, 'per-profile allow');
});

t.test('credential_scan: tolerance grows with the site, a foothold account does not buy much', async (t) => {
  const p = policy();
  const ev = [...login(ATT, 0, '1005', 'success')];
  for (let i = 0; i < 10; i++) ev.push(...login(ATT, 5 + i * 20, String(2000 + i), 'forbidden'));
  const r = feed(p, ev);
  t.equal(r.bans[0]?.rule, 'foothold_credential_scan');
  t.equal(r.bans[0]?.evidence.distinctUsers, 6);
  const big = policy();
  const ev2 = [...site(OFFICE, 100)];
  for (let i = 0; i < 20; i++) ev2.push(...login(OFFICE, 30 + i * 20, String(3000 + i), 'forbidden'));
  t.equal(feed(big, ev2).bans.length, 0, '20 failing users at a 100-user site are within 5 + 25');
  const more: AuthEvent[] = [];
  for (let i = 20; i < 31; i++) more.push(...login(OFFICE, 30 + i * 20, String(3000 + i), 'forbidden'));
  const beyond = feed(big, more);
  t.equal(beyond.bans.length, 0, '30 at a site holding 100 live registrations: answered failures alone never ban it (forgeable over UDP)');
  t.ok(beyond.alerts.some((a) => a.kind === 'forged_failures' && /100 users/.test(a.message) && /forge/.test(a.message) && /compromised/.test(a.message)), 'a forged_failures alert with both explanations');
  const tls = policy({}, { internal: { failuresForgeable: false } });
  feed(tls, ev2);
  t.equal(feed(tls, more).bans[0]?.rule, 'foothold_credential_scan', 'on a TCP/TLS-only profile 30 are too many');
});

t.test('shift start: a user who fails then succeeds no longer counts as failing', async (t) => {
  const p = policy();
  feed(p, [...site(OFFICE, 3), ...login(OFFICE, 5, '1500', 'forbidden'), ...login(OFFICE, 10, '1500', 'forbidden')]);
  t.equal(p.inspect(OFFICE)!.failingUsers, 1);
  feed(p, login(OFFICE, 15, '1500', 'success'));
  t.equal(p.inspect(OFFICE)!.failingUsers, 0);
});

t.test('misprovisioned_device: a stale phone at a site is an alert naming user, source and user agent, rate-limited', async (t) => {
  const p = policy();
  const ev = [...site(OFFICE, 5)];
  for (let s = 2; s < 7200; s += 40) ev.push(...login(OFFICE, s, '1099', 'forbidden', { ua: 'Grandstream GXP2170' }));
  const r = feed(p, ev);
  t.equal(r.bans.length, 0);
  const mis = r.alerts.filter((a) => a.kind === 'misprovisioned_device');
  t.equal(mis.length, 2, 'one per hour over two hours');
  t.equal(mis[0]!.user, '1099');
  t.equal(mis[0]!.source, OFFICE);
  t.equal(mis[0]!.userAgent, 'Grandstream GXP2170');
});

t.test('proven_source_brute_force: no phone fails 60 times a minute', async (t) => {
  const ev = [...site(OFFICE, 5)];
  for (let i = 0; i < 100; i++) ev.push(...login(OFFICE, 5 + i * 0.2, '1000', 'forbidden'));
  const r = feed(policy({ failuresForgeable: false }), ev);
  t.equal(r.bans[0]?.rule, 'proven_source_brute_force');
  t.equal(feed(policy({ provenBruteForceFailures: 0, failuresForgeable: false }), ev).bans.length, 0, '0 disables it');
  const udp = feed(policy(), ev);
  t.equal(udp.bans.length, 0, 'over UDP a 5-user site is shielded: the failures may be forged');
  t.ok(udp.alerts.some((a) => a.kind === 'forged_failures' && a.source === OFFICE && a.user === '1000'), 'forged_failures names the user');
});

t.test('slow_guessing: one guess every 90 s is caught on the long horizon', async (t) => {
  const ev: AuthEvent[] = [];
  for (let i = 0; i < 100; i++) ev.push(...login(ATT, i * 90, '1000', 'forbidden'));
  const r = feed(policy(), ev);
  t.equal(r.bans[0]?.rule, 'slow_guessing');
  const guesses = Math.ceil((r.banIndex[0]! + 1) / 3);
  t.ok(guesses >= 15 && guesses <= 20, `after ${guesses} guesses`);
});

t.test('near_miss: a source that comes close without crossing is reported once the hold has passed without a ban', async (t) => {
  const p = policy();
  const r = feed(p, Array.from({ length: 5 }, (_, i) => login(ATT, i * 2, '1000', 'forbidden')).flat());
  t.equal(r.bans.length, 0);
  t.equal(r.alerts.filter((a) => a.kind === 'near_miss').length, 0, 'not yet: it may still cross');
  // At 4 of 6 failures (8 s in) it came close; the hold (60 s) ends at 68 s.
  t.same(p.advance(T0 + 67.9 * S).alerts, [], 'not before the hold ends');
  const near = p.advance(T0 + 68.1 * S).alerts.filter((a) => a.kind === 'near_miss');
  t.equal(near.length, 1);
  t.equal(near[0]!.source, ATT);
  t.equal(near[0]!.atUs, T0 + 68.05 * S, 'stamped at the end of its hold, in event time');
  t.match(near[0]!.message, /came close to a ban and was not banned 1m later: brute_force at 5 of 6/);
});

t.test('near_miss: an attacker that crosses the threshold within the hold gets the ban only', async (t) => {
  const p = policy();
  const r = feed(p, Array.from({ length: 6 }, (_, i) => login(ATT, i * 2, '1000', 'forbidden')).flat());
  t.equal(r.bans.length, 1, 'banned at its 6th failure');
  t.same([...r.alerts, ...p.drain().alerts].filter((a) => a.kind === 'near_miss'), [], 'and no near_miss for it, ever');
  // The same with no hold: the near miss is said at once, then the ban (the old behaviour).
  const q = policy({ nearMissHoldSeconds: 0 });
  const r0 = feed(q, Array.from({ length: 6 }, (_, i) => login(ATT, i * 2, '1000', 'forbidden')).flat());
  t.equal(r0.alerts.filter((a) => a.kind === 'near_miss').length, 1, 'nearMissHoldSeconds 0: at once');
  t.equal(r0.bans.length, 1);
});

t.test('near_miss: a held one that would be raised after a ban of its /64 is not', async (t) => {
  const p = policy();
  // One host near brute_force, then its /64 banned as a scanner range (sipvicious from many hosts).
  const host = '2001:db8:77:1::5';
  const r = feed(p, [
    ...Array.from({ length: 5 }, (_, i) => login(host, i * 2, '1000', 'forbidden')).flat(),
    ...Array.from({ length: 40 }, (_, i) => challenge(`2001:db8:77:1::${(0x100 + i).toString(16)}`, 10 + i * 0.1, String(i), { ua: 'sipvicious' })),
  ]);
  t.ok(r.bans.some((b) => !b.target.host && b.target.cidr.text === '2001:db8:77:1::/64'), 'the /64 is banned');
  t.same([...r.alerts, ...p.drain().alerts].filter((a) => a.kind === 'near_miss' && a.source === host), [], 'its host\'s near miss is not raised');
});

t.test('alerts are stamped in event time after a step of the event clock, as bans are', async (t) => {
  const p = policy({ nearMissHoldSeconds: 0 });
  const DAY = 86_400;
  // FreeSWITCH's clock steps a day back (two events in a row say so): the policy clock absorbs it.
  feed(p, [challenge(OFFICE, DAY, '1'), challenge(OFFICE, 0, '1'), challenge(OFFICE, 0.1, '1')]);
  const r = feed(p, Array.from({ length: 5 }, (_, i) => login(ATT, 1 + i * 2, '1000', 'forbidden')).flat());
  const near = r.alerts.find((a) => a.kind === 'near_miss');
  t.ok(near, 'a near miss');
  t.equal(near!.atUs, T0 + (1 + 8.05) * S, 'at the time of the event that raised it');
});

t.test('per-profile thresholds', async (t) => {
  const p = policy({}, { external: { bruteForceFailures: 2 } });
  t.equal(feed(p, [...login(ATT, 0, '1', 'forbidden', { profile: 'external' }), ...login(ATT, 0.1, '1', 'forbidden', { profile: 'external' })]).bans[0]?.rule, 'brute_force');
  t.equal(feed(policy({}, { external: { bruteForceFailures: 2 } }), [...login(ATT, 0, '1', 'forbidden'), ...login(ATT, 0.1, '1', 'forbidden')]).bans.length, 0);
});

t.test('repeat offenders: growing, capped, deterministically jittered bans', async (t) => {
  const settings = { banSeconds: 100, banIncrementFactor: 3, banMaxSeconds: 1000, banJitterFraction: 0.1 };
  const run = (): number[] => {
    const p = policy(settings);
    const out: number[] = [];
    let at = 0;
    for (let k = 0; k < 5; k++) {
      // Two events: a lone event far ahead of the last one moves the clock only once confirmed.
      const r = feed(p, [challenge(ATT, at, '1', { ua: 'sipvicious' }), challenge(ATT, at + 0.1, '1', { ua: 'sipvicious' })]);
      out.push(r.bans[0]!.seconds);
      t.equal(r.bans[0]!.previousOffences, k);
      at += r.bans[0]!.seconds + 1;
    }
    return out;
  };
  const a = run();
  t.same(a, run(), 'replays give the same lengths');
  const base = [100, 300, 900, 1000, 1000];
  a.forEach((s, i) => t.ok(s >= base[i]! && s <= Math.min(1000, base[i]! * 1.1), `offence ${i}: ${s} s`));
});

t.test('a banned source is not re-decided while banned; restored kernel bans count as offences', async (t) => {
  const p = policy();
  const r = feed(p, Array.from({ length: 20 }, (_, i) => challenge(ATT, i, '1', { ua: 'sipvicious' })));
  t.equal(r.bans.length, 1);
  const q = policy();
  q.restoreBans([{ target: { cidr: parseCidr(ATT)!, host: true }, expiresAtUs: T0 + 3600 * S, rule: 'brute_force' }]);
  t.equal(feed(q, [challenge(ATT, 10, '1', { ua: 'sipvicious' })]).bans.length, 0, 'still banned in the kernel');
  const after = feed(q, [challenge(ATT, 3700, '1', { ua: 'sipvicious' }), challenge(ATT, 3700.1, '1', { ua: 'sipvicious' })]);
  t.equal(after.bans[0]?.previousOffences, 1);
  t.ok(after.bans[0]!.seconds >= 7200, 'the second offence is longer');
});

t.test('manual unban: a grace period, then fresh evidence is needed', async (t) => {
  const p = policy({ unbanGraceSeconds: 600 });
  t.equal(feed(p, [challenge(ATT, 0, '1', { ua: 'sipvicious' })]).bans.length, 1);
  p.manualUnban(parseCidr(ATT)!, T0 + 10 * S);
  t.equal(feed(p, [challenge(ATT, 20, '1', { ua: 'sipvicious' })]).bans.length, 0, 'within grace');
  const r = feed(p, [challenge(ATT, 700, '1', { ua: 'sipvicious' }), challenge(ATT, 700.1, '1', { ua: 'sipvicious' })]);
  t.equal(r.bans.length, 1, 'after grace');
  t.equal(r.bans[0]!.previousOffences, 1);
});

t.test('seeded registrations prove a source from the first second', async (t) => {
  const p = policy();
  p.seedRegistrations([{ source: parseIp(OFFICE)!, user: '1000', realm: 'pbx', userAgent: 'Yealink', expiresAtSec: T0 / S + 3600 }], T0);
  const r = feed(p, Array.from({ length: 200 }, (_, i) => challenge(OFFICE, 1 + i * 0.01, String(i), { ua: 'friendly-scanner' })));
  t.equal(r.bans.length, 0);
});

t.test('IPv6: rotation banned as the /64 once spread over addresses; a proven host blocks it', async (t) => {
  const rot = (prefix: string, n: number, at: number): AuthEvent[] => Array.from({ length: n }, (_, i) => login(`${prefix}:${(i + 1).toString(16)}:1:2:3`, at + i, String(1000 + i), 'forbidden')).flat();
  const r = feed(policy(), rot('2001:db8:bad:1', 10, 0));
  t.equal(r.bans.length, 1);
  t.equal(r.bans[0]!.target.cidr.text, '2001:db8:bad:1::/64');
  t.equal(r.bans[0]!.target.host, false);
  t.equal(r.bans[0]!.rule, 'ipv6_prefix_credential_scan');
  t.equal(r.bans[0]!.evidence.addresses, 5);
  const q = policy();
  const r2 = feed(q, [...login('2001:db8:bad:1::10', 0, '900', 'success'), ...rot('2001:db8:bad:1', 10, 5)]);
  t.equal(r2.bans.length, 0, 'one failure per host, and the /64 holds a proven host');
  t.equal(feed(policy({ ipv6PrefixLength: 96 }), rot('2001:db8:bad:1', 10, 0)).bans.length, 0, 'with /96 aggregation the hosts spread over /96s');
});

t.test('IPv6: a /64\'s distinct failing users expire with the long window, as a source\'s do', async (t) => {
  // One failure of a new user from a new address of the /64 every `everyS`.
  const spread = (everyS: number): AuthEvent[] => Array.from({ length: 8 }, (_, i) => login(`2001:db8:bad:1:${(i + 1).toString(16)}:1:2:3`, i * everyS, String(1000 + i), 'forbidden')).flat();
  t.same(feed(policy(), spread(2 * 3600)).bans.map((b) => b.rule), [], 'every 2 h: never five users within 6 h');
  t.same(feed(policy(), spread(3600)).bans.map((b) => b.rule), ['ipv6_prefix_credential_scan'], 'every hour: the fifth within 6 h bans the /64');
});

/** An unauthenticated call to `number` in the public context that ended unrouted (probing evidence). */
function probeCall(ip: string, atS: number, number: string): CallEvent {
  return {
    kind: 'call', profile: 'internal', source: parseIp(ip)!, port: 5060, context: 'public', destination: number,
    hangupCause: 'NO_ROUTE_DESTINATION', outcome: 'unrouted', answeredSeconds: 0, account: null, realm: '',
    userAgent: 'Yealink SIP-T46S 66.86.0.15', callId: `k${++ids}`, uuid: `u${ids}`, timeUs: T0 + Math.round(atS * S), switchAddresses: ['192.0.2.10', '::1'],
  };
}

/** Four users failing at 0-3 s from three addresses of 2001:db8:bad:1::/64, two of them at the first. */
const FIRST = '2001:db8:bad:1::1';
const fourFailing = (): AuthEvent[] => [
  ...login(FIRST, 0, '1000', 'forbidden'), ...login(FIRST, 1, '1001', 'forbidden'),
  ...login('2001:db8:bad:1::2', 2, '1002', 'forbidden'), ...login('2001:db8:bad:1::3', 3, '1003', 'forbidden'),
];

t.test('IPv6: failing users expire with the long window when only calls come, as when auth events do', async (t) => {
  const p = policy();
  const events = fourFailing();
  feed(p, events);
  // Not banned for the hold after it came close: the near miss is raised.
  const held = p.advance(events[events.length - 1]!.timeUs + (DEFAULT_POLICY_SETTINGS.nearMissHoldSeconds + 1) * S);
  t.ok(held.alerts.some((a) => a.kind === 'near_miss' && a.source === '2001:db8:bad:1::/64'), 'four of five: a near miss of the /64');
  // Seven hours later (the long window is 6 h) only calls come: probes from the first address
  // (the second confirms the clock's jump ahead).
  const alerts = [p.observeCall(probeCall(FIRST, 7 * 3600, '1001')), p.observeCall(probeCall(FIRST, 7 * 3600 + 10, '1002'))].flatMap((o) => o.alerts);
  t.same(alerts.filter((a) => a.kind === 'near_miss'), [], 'no near miss on users that failed 7 h ago');
  t.equal(p.inspect('2001:db8:bad:1::/64')?.failingUsers, 0, 'the /64 forgot them');
  t.equal(p.inspect(FIRST)?.failingUsers, 0, 'so did the source');
});

t.test('IPv6: failing users expire with the long window when only the timer ticks', async (t) => {
  const p = policy();
  feed(p, fourFailing());
  // The daemon's timer: policy time advanced every minute for 7 h, no event at all.
  for (let m = 1; m <= 7 * 60; m++) p.advance(T0 + m * 60 * S);
  t.equal(p.inspect('2001:db8:bad:1::/64')?.failingUsers, 0, 'the /64 forgot them');
  t.equal(p.inspect(FIRST)?.failingUsers, 0, 'so did the source');
});

t.test('the timer expiring failing users changes no decision: a replay without it decides the same', async (t) => {
  // One new user failing an hour from a new address (a host's users: from one address), a
  // repeat at 5 h 50, and a fifth user at 6 h 15, just after the first one's failure left the
  // long window. Whether its failure still counts at 6 h 15 depends only on event time (the
  // twelfth of the window it falls in), so the daemon, whose timer looks through the users
  // every minute, and simulate, which has no timer, decide alike.
  const at = [0, 3600, 7200, 3 * 3600 + 420];
  const trace = (ip: (i: number) => string): AuthEvent[] => [
    ...at.flatMap((s, i) => login(ip(i), s, String(1000 + i), 'forbidden')),
    ...login(ip(3), 5 * 3600 + 3000, '1003', 'forbidden'),
    ...login(ip(4), 6 * 3600 + 900, '1004', 'forbidden'),
  ];
  const run = (events: readonly AuthEvent[], ticks: boolean): string[] => {
    const p = policy();
    const out: string[] = [];
    // One output's bans and alerts in the order of their times (a held near miss released by
    // the event that bans comes out with that ban, but was raised before it).
    const take = (o: ReturnType<typeof p.advance>): void => {
      const one: [number, string][] = [
        ...o.bans.map((b): [number, string] => [b.atUs, `ban ${b.target.cidr.text} ${b.rule} at ${(b.atUs - T0) / S}`]),
        ...o.alerts.map((a): [number, string] => [a.atUs, `alert ${a.kind} ${a.source} at ${(a.atUs - T0) / S}`]),
      ];
      out.push(...one.sort((x, y) => x[0] - y[0]).map((x) => x[1]));
    };
    let last = events[0]!.timeUs;
    for (const e of events) {
      // The timer every minute, out of step with the events (17 s after the last).
      if (ticks) for (let tick = last + 17 * S; tick < e.timeUs; tick += 60 * S) take(p.advance(tick));
      last = e.timeUs;
      take(p.observe(e));
    }
    take(p.drain());
    return out;
  };
  for (const [what, ip, banned] of [
    ['the /64', (i: number) => `2001:db8:bad:1::${i + 1}`, /^ban 2001:db8:bad:1::\/64 ipv6_prefix_credential_scan at 22500\.05$/],
    ['a source', () => ATT, /^ban 203\.0\.113\.66 credential_scan at 22500\.05$/],
  ] as const) {
    const events = trace(ip);
    const plain = run(events, false);
    t.match(plain.filter((d) => d.startsWith('ban ')), [banned], `${what}: the first user still counts at 6 h 15`);
    t.same(run(events, true), plain, `${what}: the same with the timer`);
  }
});

t.test('bounded memory: an IPv6 spray evicts instead of growing, the prefix still catches it', async (t) => {
  const caps = { maxTrackedSources: 1000, maxTrackedPrefixes: 100 };
  const p = policy(caps);
  let bans = 0;
  let maxTracked = 0;
  for (let i = 0; i < 1_000_000; i++) {
    // 1 in 10 addresses of one /64 (the attacker), the rest sprayed over 5000 other /64s.
    const net = i % 10 === 0 ? 'bad' : (i % 5000).toString(16);
    const e = challenge(`2001:db8:${net}:1:${(i >>> 16).toString(16)}:${(i & 0xffff).toString(16)}::1`, i * 0.0001, String(i), { callId: String(i) });
    bans += p.observe(e).bans.length;
    if (i % 1000 === 0) maxTracked = Math.max(maxTracked, p.trackedSources());
  }
  t.ok(maxTracked <= 1000 + 100 + 2, `tracked at most ${maxTracked}`);
  t.ok(bans >= 1, `${bans} bans`);
});
