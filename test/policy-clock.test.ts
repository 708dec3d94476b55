// The policy clock (issue 9): no single event moves it, a step of FreeSWITCH's host clock
// forward or back neither bans anyone nor stops banning, event time never runs ahead of the
// daemon's wall clock by more than maxEventLeadSeconds, and an Event-Sequence gap (events
// lost) neither expires a proof nor counts a challenge unanswered because its answer is lost.
import t from 'tap';
import type { AttemptResult, AuthEvent } from '../lib/events/auth-event.js';
import { parseCidr, parseIp } from '../lib/net/ip.js';
import { createPolicy, type RatePolicy } from '../lib/policy/engine.js';
import { DEFAULT_POLICY_SETTINGS, type PolicySettings } from '../lib/policy/settings.js';
import type { BanDecision, ClockReading, PolicyAlert } from '../lib/policy/types.js';
import { Guard } from '../lib/daemon/guard.js';
import type { GuardClock } from '../lib/daemon/seeding-hold.js';
import { FsguardMetrics } from '../lib/obs/metrics.js';
import { RecordingLogger } from './support/esl-test-helpers.js';
import { FakeTimers } from './support/fake-timers.js';
import { netnsTestOptions } from './support/netns.js';
import { kernelWriter } from './support/nft-kernel.js';

const S = 1_000_000;
const T0 = 1_793_610_000_000_000;
const DAY = 86_400 * S;
const ATT = '203.0.113.66';
const PROBER = '203.0.113.77';
const OFFICE = '198.51.100.10';
let ids = 0;

/** An event stamped `stampUs` (absolute µs), as FreeSWITCH would. */
function ev(kind: 'challenge' | 'forbidden' | 'success', ip: string, stampUs: number, user: string, callId = `c${++ids}`): AuthEvent[] {
  const common = { profile: 'internal', source: parseIp(ip)!, port: 5060, userAgent: 'Yealink SIP-T46S', callId, timeUs: stampUs, switchAddresses: ['192.0.2.10'] };
  if (kind === 'challenge') return [{ ...common, kind: 'challenge', fromUser: user, toUser: user }];
  const result: AttemptResult = kind === 'success' ? 'success' : 'forbidden';
  const out: AuthEvent[] = [{ ...common, kind: 'challenge', fromUser: user, toUser: user }, { ...common, timeUs: stampUs + 50_000, kind: 'attempt', result, authUser: user, fromUser: user, toUser: user, realm: 'pbx' }];
  if (kind === 'forbidden') out.push({ ...common, callId: '', timeUs: stampUs + 50_000, kind: 'failure', method: 'REGISTER', toUser: user });
  else out.push({ ...common, timeUs: stampUs + 51_000, kind: 'registered', authUser: user, expires: 120 });
  return out;
}

interface Run { bans: BanDecision[]; alerts: PolicyAlert[] }
function feed(p: RatePolicy, events: readonly AuthEvent[], run: Run = { bans: [], alerts: [] }): Run {
  for (const e of events) { const o = p.observe(e); run.bans.push(...o.bans); run.alerts.push(...o.alerts); }
  return run;
}
const policy = (o: Partial<PolicySettings> = {}): RatePolicy => createPolicy({ ...DEFAULT_POLICY_SETTINGS, ...o });
/** A site of `n` users proven at `atUs`. */
const office = (atUs: number, n = 10): AuthEvent[] => Array.from({ length: n }, (_, i) => ev('success', OFFICE, atUs + i * 100_000, String(1000 + i))).flat();
const bansOf = (r: Run, ip: string): BanDecision[] => r.bans.filter((b) => b.target.cidr.text === ip);

t.test('one event stamped days ahead moves nothing: proofs hold, bans still expire and recur', async (t) => {
  const p = policy({ forgedFailureShieldUsers: 0 });
  const r = feed(p, office(T0));
  feed(p, ev('challenge', '192.0.2.200', T0 + 3 * DAY, 'x'), r); // the lone bad stamp
  t.equal(p.clockStats().unconfirmedJumps + (p.clockUs() < T0 + DAY ? 0 : 1), 0, 'not yet counted: it waits for a confirmation');
  // The office, proven a second earlier, is still proven: one forged failure does not ban it.
  feed(p, ev('forbidden', OFFICE, T0 + 2 * S, '1000'), r);
  t.equal(p.clockStats().unconfirmedJumps, 1, 'the next event did not confirm it: counted');
  t.ok(p.clockUs() < T0 + 10 * S, 'the clock did not move');
  t.same(bansOf(r, OFFICE), []);
  // A brute forcer is banned, its ban ends an hour later, and it is banned again.
  for (let i = 0; i < 6; i++) feed(p, ev('forbidden', ATT, T0 + 10 * S + i * S, '1000'), r);
  t.equal(bansOf(r, ATT).length, 1);
  const after = T0 + 10 * S + (bansOf(r, ATT)[0]!.seconds + 60) * S;
  // Events keep flowing meanwhile (the office refreshes), so the clock runs.
  for (let k = 1; k * 120 * S < after - T0; k++) feed(p, ev('success', OFFICE, T0 + k * 120 * S, '1000'), r);
  for (let i = 0; i < 6; i++) feed(p, ev('forbidden', ATT, after + i * S, '1000'), r);
  t.equal(bansOf(r, ATT).length, 2, 'banned again after the first ban ended');
  t.equal(bansOf(r, ATT)[1]!.previousOffences, 1);
});

/** Feeds events with a reading of the daemon's clocks before each: wall = monotonic = `realUs`. */
function live(p: RatePolicy, run: Run, realUs: number, events: readonly AuthEvent[]): void {
  const reading: ClockReading = { wallUs: realUs, monotonicUs: realUs - T0 };
  const o = p.noteClock(reading);
  run.bans.push(...o.bans);
  feed(p, events, run);
}

t.test('the host clock steps a day forward: no proof expires, no one is banned, attackers still are', async (t) => {
  const p = policy({ forgedFailureShieldUsers: 0 });
  const r: Run = { bans: [], alerts: [] };
  live(p, r, T0, office(T0));
  live(p, r, T0 + 5 * S, []);
  // From here on FreeSWITCH stamps everything a day ahead; real time moves on by seconds.
  const step = DAY;
  live(p, r, T0 + 10 * S, ev('forbidden', OFFICE, T0 + 10 * S + step, '1003'));
  live(p, r, T0 + 11 * S, ev('forbidden', OFFICE, T0 + 11 * S + step, '1004'));
  t.equal(p.clockStats().steps, 1, 'a step, absorbed');
  t.ok(p.clockUs() < T0 + 60 * S, 'policy time moved by seconds, not a day');
  t.same(bansOf(r, OFFICE), [], 'the office is still proven: two failing phones are not a ban');
  t.equal(p.inspect(OFFICE)?.proven, true);
  for (let i = 0; i < 6; i++) live(p, r, T0 + (20 + i) * S, ev('forbidden', ATT, T0 + (20 + i) * S + step, '1000'));
  t.equal(bansOf(r, ATT)[0]?.rule, 'brute_force', 'a brute forcer after the step is banned');
  t.ok(Math.abs(bansOf(r, ATT)[0]!.atUs - (T0 + 25 * S + step)) < 2 * S, 'the ban is reported in FreeSWITCH\'s (event) time');
});

t.test('the host clock steps a day back: timers keep running, probers are still banned', async (t) => {
  const p = policy();
  const r: Run = { bans: [], alerts: [] };
  live(p, r, T0, office(T0));
  const back = -DAY;
  live(p, r, T0 + 10 * S, ev('success', OFFICE, T0 + 10 * S + back, '1000'));
  live(p, r, T0 + 11 * S, ev('success', OFFICE, T0 + 11 * S + back, '1001'));
  t.equal(p.clockStats().steps, 1, 'a step back, absorbed');
  // A prober that never answers, after the step, silent afterwards: only the timers can ban it.
  for (let i = 0; i < 12; i++) live(p, r, T0 + (20 + i * 0.5) * S, ev('challenge', PROBER, T0 + (20 + i * 0.5) * S + back, String(100 + i)));
  for (let k = 0; k < 10; k++) live(p, r, T0 + (30 + k) * S, []);
  t.ok(bansOf(r, PROBER).length === 1, `the prober is banned by the deadlines (${bansOf(r, PROBER)[0]?.rule})`);
  t.same(bansOf(r, OFFICE), []);
});

/** The step at 10 s of real time: of FreeSWITCH's stamps, of the daemon's wall clock, or of both (one host). */
const STEP_MODELS = [
  { name: 'one host, its clock a day forward', stamps: DAY, wall: DAY },
  { name: 'one host, its clock a day back', stamps: -DAY, wall: -DAY },
  { name: 'FreeSWITCH\'s host a day forward, fsguard\'s not', stamps: DAY, wall: 0 },
  { name: 'fsguard\'s host a day forward, FreeSWITCH\'s not', stamps: 0, wall: DAY },
] as const;

/**
 * A policy run by the daemon's clocks under a step model: `reading(s)` at `s` s of real time,
 * and `at(s, events)`, those clocks then FreeSWITCH's events stamped by its clock. An office is
 * proven at 0 s and refreshes across the step (10-12 s).
 */
function steppedRun(m: (typeof STEP_MODELS)[number]): { p: RatePolicy; r: Run; reading: (s: number) => ClockReading; at: (s: number, events: (stampUs: number) => AuthEvent[]) => void } {
  const p = policy();
  const r: Run = { bans: [], alerts: [] };
  const reading = (s: number): ClockReading => ({ wallUs: T0 + s * S + (s >= 10 ? m.wall : 0), monotonicUs: s * S });
  const at = (s: number, events: (stampUs: number) => AuthEvent[]): void => {
    r.bans.push(...p.noteClock(reading(s)).bans);
    feed(p, events(T0 + s * S + (s >= 10 ? m.stamps : 0)), r);
  };
  at(0, (us) => office(us));
  for (const sec of [10, 11, 12]) at(sec, (us) => ev('success', OFFICE, us, '1000'));
  return { p, r, reading, at };
}

t.test('a ban restored after a clock step keeps the time it has left by the daemon\'s wall clock, whichever clock stepped', async (t) => {
  for (const m of STEP_MODELS) {
    const { p, r, reading, at } = steppedRun(m);
    t.equal(p.clockStats().steps, m.stamps === 0 ? 0 : 1, `${m.name}: FreeSWITCH's step absorbed, if any`);
    // A ban in the kernel with an hour left (fsguard ban, adopted by the reconcile), by the daemon's clocks at 20 s.
    const now = reading(20);
    p.restoreBans([{ target: { cidr: parseCidr(ATT)!, host: true }, expiresAtUs: now.wallUs + 3600 * S, rule: 'brute_force' }], now);
    for (let i = 0; i < 6; i++) at(30 + i, (us) => ev('forbidden', ATT, us, '1000'));
    t.same(bansOf(r, ATT), [], `${m.name}: within its hour, the ban holds (nothing decided)`);
    // The office refreshes meanwhile (its events move the clock), past the hour.
    for (let s = 120; s < 3700; s += 120) at(s, (us) => ev('success', OFFICE, us, '1000'));
    for (let i = 0; i < 6; i++) at(3700 + i, (us) => ev('forbidden', ATT, us, '1000'));
    t.equal(bansOf(r, ATT).length, 1, `${m.name}: after its hour, the brute forcer is banned again`);
    t.equal(bansOf(r, ATT)[0]?.previousOffences, 1, `${m.name}: the restored ban counted as an offence`);
  }
});

t.test('an unban after a clock step gives its grace period by the daemon\'s clocks, whichever clock stepped', async (t) => {
  const grace = DEFAULT_POLICY_SETTINGS.unbanGraceSeconds;
  for (const m of STEP_MODELS) {
    const { p, r, reading, at } = steppedRun(m);
    for (let i = 0; i < 6; i++) at(20 + i, (us) => ev('forbidden', ATT, us, '1000'));
    t.equal(bansOf(r, ATT).length, 1, `${m.name}: the brute forcer is banned`);
    // `fsguard unban` at 40 s, by the daemon's wall clock then.
    const now = reading(40);
    p.manualUnban(parseCidr(ATT)!, now.wallUs, now);
    for (let i = 0; i < 6; i++) at(100 + i, (us) => ev('forbidden', ATT, us, '1000'));
    t.equal(bansOf(r, ATT).length, 1, `${m.name}: within the grace period, not banned again`);
    for (let s = 120; s < 40 + grace + 60; s += 120) at(s, (us) => ev('success', OFFICE, us, '1000'));
    for (let i = 0; i < 6; i++) at(40 + grace + 100 + i, (us) => ev('forbidden', ATT, us, '1000'));
    t.equal(bansOf(r, ATT).length, 2, `${m.name}: after the grace period (${grace} s, not a day more), banned again`);
  }
});

t.test('the guard hands the policy its bans with its own clocks: after a step of fsguard\'s wall clock, a manual ban lasts its hour', netnsTestOptions(), async (t) => {
  const timers = new FakeTimers(0);
  let stepMs = 0;
  const clock: GuardClock = { monotonicMs: () => timers.now, setTimeout: (fn, ms) => timers.setTimeout(fn, ms), clearTimeout: (h) => timers.clearTimeout(h) };
  const logger = new RecordingLogger();
  const guard = new Guard(policy(), kernelWriter(t, 'clockstep'), logger, new FsguardMetrics(false), { allow: [] }, () => T0 / 1000 + timers.now + stepMs, clock);
  await guard.start();
  /** At `s` s of real time (FreeSWITCH on another host, its clock right): a tick, then its events. */
  const at = (s: number, events: AuthEvent[]): void => {
    timers.advance(s * 1000 - timers.now);
    guard.tick();
    for (const e of events) guard.onEvent(e);
  };
  at(0, office(T0));
  stepMs = DAY / 1000; // fsguard's host clock steps a day forward
  at(10, ev('success', OFFICE, T0 + 10 * S, '1000'));
  // A manual ban from the cluster (fsguard ban on another node), an hour by this node's clock.
  guard.manualBan(parseCidr(ATT)!, 3600, 'by hand');
  const decided = (): number => logger.records.filter((r) => (r.obj as { event?: string; target?: string }).event === 'ban' && (r.obj as { target?: string }).target === ATT).length;
  for (let i = 0; i < 6; i++) at(30 + i, ev('forbidden', ATT, T0 + (30 + i) * S, '1000'));
  t.equal(decided(), 0, 'within its hour: banned still, nothing decided');
  for (let s = 120; s < 3700; s += 120) at(s, ev('success', OFFICE, T0 + s * S, '1000'));
  for (let i = 0; i < 6; i++) at(3700 + i, ev('forbidden', ATT, T0 + (3700 + i) * S, '1000'));
  t.equal(decided(), 1, 'after its hour (not a day and an hour): banned again');
  await guard.flush();
});

t.test('event time runs at most maxEventLeadSeconds ahead of the wall clock', async (t) => {
  const p = policy();
  const r: Run = { bans: [], alerts: [] };
  live(p, r, T0, office(T0));
  // A FreeSWITCH whose clock runs 200 s ahead of fsguard's host (less than a clock step).
  live(p, r, T0 + 1 * S, ev('success', OFFICE, T0 + 201 * S, '1000'));
  live(p, r, T0 + 2 * S, ev('success', OFFICE, T0 + 202 * S, '1001'));
  t.ok(p.clockStats().aheadOfWallClock >= 1, 'counted');
  t.ok(p.clockUs() <= T0 + 2 * S + DEFAULT_POLICY_SETTINGS.maxEventLeadSeconds * S, 'the clock stays within the lead of the wall clock');
  // An hour ahead from one moment on: a step, absorbed; the clock keeps wall time.
  const q = policy();
  live(q, r, T0, office(T0));
  live(q, r, T0 + 1 * S, ev('success', OFFICE, T0 + 3601 * S, '1000'));
  t.equal(q.clockStats().steps, 1);
  t.ok(q.clockUs() <= T0 + 2 * S + DEFAULT_POLICY_SETTINGS.maxEventLeadSeconds * S);
});

t.test('a reordered stream (stamps off by tens of ms) is judged as the ordered one', async (t) => {
  const ordered: AuthEvent[] = [];
  for (let i = 0; i < 200; i++) ordered.push(...(i % 2 ? ev('success', OFFICE, T0 + i * 200_000, String(1000 + (i % 7))) : ev(i % 10 === 0 ? 'forbidden' : 'challenge', ATT, T0 + i * 200_000, String(1000 + (i % 7)))));
  const jittered = ordered.map((e, i) => ({ ...e, timeUs: e.timeUs + ((i * 7919) % 81) * 1000 - 40_000 }));
  const a = feed(policy(), ordered).bans.map((b) => `${b.target.cidr.text} ${b.rule}`);
  const b = feed(policy(), jittered).bans.map((b) => `${b.target.cidr.text} ${b.rule}`);
  t.same(b, a);
  t.ok(a.length > 0, 'the attacker is banned in both');
});

t.test('an event gap: no proof expires and no challenge counts unanswered because of it', async (t) => {
  const p = policy({ legitimacySeconds: 600 });
  const r = feed(p, office(T0, 3));
  // Events were lost between T0+590 s and T0+700 s (the refresh that renewed the proof, say).
  feed(p, ev('success', '198.51.100.99', T0 + 590 * S, '9'), r);
  p.noteEventGap({ fromUs: T0 + 590 * S, toUs: T0 + 700 * S, missing: 400 });
  feed(p, ev('success', '198.51.100.99', T0 + 700 * S, '9'), r);
  t.equal(p.inspect(OFFICE)?.proven, true, 'the office is still proven after the gap');
  // A prober's challenges right before a gap: their answers may be among the lost events.
  const q = policy();
  const rr: Run = { bans: [], alerts: [] };
  for (let i = 0; i < 12; i++) feed(q, ev('challenge', PROBER, T0 + i * 100_000, String(100 + i)), rr);
  q.noteEventGap({ fromUs: T0 + 1.2 * S, toUs: T0 + 5 * S, missing: 1000 });
  feed(q, ev('challenge', '192.0.2.200', T0 + 6 * S, 'x'), rr);
  t.same(bansOf(rr, PROBER), [], 'not banned on challenges whose answers may have been lost');
  t.ok(q.gapStats.excusedChallenges >= 10);
  // The same without the gap is banned.
  const u = policy();
  const ru: Run = { bans: [], alerts: [] };
  for (let i = 0; i < 12; i++) feed(u, ev('challenge', PROBER, T0 + i * 100_000, String(100 + i)), ru);
  feed(u, ev('challenge', '192.0.2.200', T0 + 6 * S, 'x'), ru);
  t.equal(bansOf(ru, PROBER).length, 1);
});

t.test('nearestThresholds: the tracked sources closest to a ban, for fsguard status', async (t) => {
  const p = policy();
  const r = feed(p, office(T0, 5));
  for (let i = 0; i < 4; i++) feed(p, ev('forbidden', ATT, T0 + (1 + i) * S, '1000'), r);
  for (let i = 0; i < 3; i++) feed(p, ev('challenge', PROBER, T0 + 5 * S + i * 100_000, String(100 + i)), r);
  feed(p, ev('challenge', '192.0.2.200', T0 + 10 * S, 'x'), r);
  const near = p.nearestThresholds(2);
  t.equal(near.length, 2);
  t.same(near[0], { source: ATT, profile: 'internal', rule: 'brute_force', value: 4, threshold: 6, fraction: 4 / 6 });
  t.equal(near[1]!.source, PROBER);
  t.equal(near[1]!.rule, 'unanswered_challenges');
  t.ok(near.every((n) => n.fraction > 0 && n.fraction < 1));
  t.same(p.nearestThresholds(0), []);
});
