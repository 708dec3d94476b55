// The status's parts without a daemon: closeness to thresholds through the seam (fallback and
// agreed method), the last-minute window on an injected clock, and hostile text escaped in
// the rendered screen.
import t from 'tap';
import { normalizeEvent } from '../lib/events/normalize.js';
import { FsguardMetrics } from '../lib/obs/metrics.js';
import { createPolicy } from '../lib/policy/engine.js';
import { DEFAULT_POLICY_SETTINGS } from '../lib/policy/settings.js';
import { renderStatus } from '../lib/status/render.js';
import { StatusCollector, type StatusReport } from '../lib/status/report.js';
import { terminalSafe } from '../lib/status/terminal-safe.js';
import { thresholdInspection } from '../lib/status/thresholds.js';
import { FakeTimers } from './support/fake-timers.js';
import { bruteForce, site, TraceBuilder } from './support/policy-traces.js';

t.test('nearest thresholds through the seam: a source a few guesses short of a ban is listed, with how close', async (t) => {
  const b = new TraceBuilder(7);
  site(b, { ip: '198.51.100.60', phones: 5, bootSpreadS: 5, durationS: 120 });
  bruteForce(b, { ip: '203.0.113.50', ratePerS: 0.2, count: 2, ua: 'Zoiper 5', startS: 10 });
  let policy = createPolicy(DEFAULT_POLICY_SETTINGS);
  const seam = thresholdInspection(() => policy);
  for (const h of b.build()) {
    const r = normalizeEvent(h, { profiles: null });
    if (!r.ok) continue;
    t.equal(policy.observe(r.event).bans.length, 0, 'nobody banned');
  }
  const near = seam.nearestThresholds(5);
  const guesser = near.find((n) => n.source === '203.0.113.50');
  t.ok(guesser, `the guesser is listed: ${JSON.stringify(near)}`);
  t.ok(guesser && guesser.fraction > 0 && guesser.fraction < 1 && guesser.value < guesser.threshold, 'below its threshold, with the fraction');
  t.equal(guesser?.profile, 'internal');
  t.ok(near.every((n, i) => i === 0 || near[i - 1]!.fraction >= n.fraction), 'closest first');
  t.same(seam.nearestThresholds(1), near.slice(0, 1), 'at most the limit');
  policy = createPolicy(DEFAULT_POLICY_SETTINGS);
  t.same(seam.nearestThresholds(5), [], 'a reloaded policy is the one asked');
});

t.test('events in the last minute come from counter samples on the injected clock', async (t) => {
  const timers = new FakeTimers();
  const metrics = new FsguardMetrics(false);
  const status = new StatusCollector({
    metrics, clock: timers.clock, pid: 1,
    configSource: () => 'test', eslEndpoint: () => '127.0.0.1:8021', watchedProfiles: () => [], nftTable: () => 'inet fsguard',
    bansInForce: () => ({ ipv4Hosts: 0, ipv6Hosts: 0, ipv4Prefixes: 0, ipv6Prefixes: 0, unwritten: 0 }), nftQueued: () => 0,
    thresholds: { nearestThresholds: () => [] }, notifications: () => [],
  });
  const tick = async (): Promise<void> => { status.tick(); await new Promise((r) => setImmediate(r)); };
  for (let i = 0; i < 100; i++) metrics.eventReceived('sofia::pre_register', 'internal');
  for (let s = 1; s <= 30; s++) { timers.advance(1000); await tick(); }
  for (let i = 0; i < 50; i++) metrics.eventReceived('sofia::register_failure', 'external');
  let r = await status.report();
  t.equal(r.events.windowSeconds, 30, 'in the first minute: since start');
  t.same(r.events.lastMinute.byKind, { 'sofia::pre_register': 100, 'sofia::register_failure': 50 });
  for (let s = 31; s <= 66; s++) { timers.advance(1000); await tick(); }
  r = await status.report();
  t.ok(r.events.windowSeconds >= 60 && r.events.windowSeconds < 66, `a minute's window (${r.events.windowSeconds} s)`);
  t.same(r.events.lastMinute.byKind, { 'sofia::register_failure': 50 }, 'the first 100 are older than the window');
  t.same(r.events.lastMinute.byProfile, { external: { 'sofia::register_failure': 50 } });
  t.equal(r.events.sinceStart, 150);
  for (let s = 67; s <= 200; s++) { timers.advance(1000); await tick(); }
  r = await status.report();
  t.same(r.events.lastMinute.byKind, {}, 'a quiet minute');
  t.same(r.profiles.seen, ['external', 'internal']);

  status.connection('connected', '', timers.now);
  status.connection('disconnected', 'connection reset by peer', timers.now + 5000);
  timers.advance(10_000);
  r = await status.report();
  t.match(r.eventSocket, { state: 'disconnected', lastProblem: 'connection reset by peer', since: new Date(timers.now - 5000).toISOString() });
});

t.test('a policy table full of live entries is reported and shown, with what to raise; none otherwise', async (t) => {
  const metrics = new FsguardMetrics(false);
  const status = new StatusCollector({
    metrics, clock: new FakeTimers().clock, pid: 1,
    configSource: () => 'test', eslEndpoint: () => '127.0.0.1:8021', watchedProfiles: () => [], nftTable: () => 'inet fsguard',
    bansInForce: () => ({ ipv4Hosts: 0, ipv6Hosts: 0, ipv4Prefixes: 0, ipv6Prefixes: 0, unwritten: 0 }), nftQueued: () => 0,
    thresholds: { nearestThresholds: () => [] }, notifications: () => [],
  });
  let r = await status.report();
  t.same(r.fullTables, [], 'nothing left out: nothing to report');
  t.notMatch(renderStatus(r, Date.now()), /TABLE FULL/);
  metrics.proofsLeftOut.inc(12);
  r = await status.report();
  t.same(r.fullTables, [{ table: 'proven sources', setting: 'maxLegitimateSources', leftOut: 12 }]);
  metrics.untrackedAuthentications.inc(3);
  r = await status.report();
  t.equal(r.fullTables.length, 2, 'both tables');
  const out = renderStatus(r, Date.now());
  t.match(out, /^TABLE FULL +proven sources \(policy\.maxLegitimateSources\): 12 proofs kept among the unproven sources since start; raise maxLegitimateSources$/m);
  t.match(out, /^TABLE FULL +toll-fraud accounts \(policy\.maxTrackedAccounts\): 3 authentications of accounts left untracked since start; raise maxTrackedAccounts$/m);
});

t.test('hostile text in the status screen is escaped; nothing can act on the terminal', async (t) => {
  const evil = '\u001b[2J\u001b]0;pwned\u0007\r\nfsguard is NOT RUNNING\u202eevil\u2066';
  const report: StatusReport = {
    format: 1,
    daemon: { pid: 1, startedAt: '2026-12-01T09:00:00.000Z', uptimeSeconds: 60, config: '/etc/fsguard/fsguard.json' },
    eventSocket: { endpoint: '127.0.0.1:8021', state: 'connected', since: '2026-12-01T09:00:00.000Z', lastProblem: null, lastHeartbeatAt: null, freeswitch: { hostname: `pbx${evil}`, version: `1.10${evil}`, uptimeSeconds: 100 } },
    profiles: { watched: 'all', seen: [`internal${evil}`] },
    events: { windowSeconds: 60, lastMinute: { total: 1, byKind: { 'sofia::pre_register': 1 }, byProfile: { [`internal${evil}`]: { 'sofia::pre_register': 1 } } }, sinceStart: 1 },
    bans: { now: { ipv4Hosts: 0, ipv6Hosts: 0, ipv4Prefixes: 0, ipv6Prefixes: 0, total: 0 }, unwritten: 0, sinceStart: { total: 0, byRule: {} } },
    trackedSources: 1,
    fullTables: [],
    nearestThresholds: [{ source: '203.0.113.9', profile: `p${evil}`, rule: 'slow_guessing', value: 5, threshold: 10, fraction: 0.5 }],
    alerts: { sinceStart: { misprovisioned_device: 1 }, latest: [{ at: '2026-12-01T09:00:30.000Z', kind: 'misprovisioned_device', source: '198.51.100.10', profile: 'internal', user: `10${evil}`, userAgent: `UA${evil}`, message: `user 10${evil} at 198.51.100.10 (UA${evil}) failed` }] },
    nftWriter: { table: 'inet fsguard', healthy: true, batches: 1, errors: 0, queued: 0, lastError: null, lastErrorAt: null },
    notifications: [],
    // Node names and digests come from Redis, written by other hosts.
    cluster: { node: 'pbx-a', redis: 'redis://10.0.0.5:6379', state: 'live', downSince: null, lastProblem: null, queued: 0, digest: '0123456789abcdef',
      nodes: [{ node: `pbx-b${evil}`, digest: `feed${evil}`, sameDigest: false, seenAt: '2026-12-01T09:00:55.000Z' }] },
  };
  const out = renderStatus(report, Date.parse('2026-12-01T09:01:00.000Z'));
  t.match(out, /^cluster {11}node pbx-a, live on redis:\/\/10\.0\.0\.5:6379; policy digest 0123456789abcdef; 1 other node: pbx-b/m, 'the cluster line');
  t.match(out, /POLICY DIGEST DIFFERS on pbx-b.*: their bans will differ/, 'a node judging with another policy is called out');
  // eslint-disable-next-line no-control-regex
  t.notMatch(out, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028-\u202e\u2066-\u2069]/, 'no control, C1 or bidi character; only fsguard\'s own line breaks');
  t.notMatch(out, /^fsguard is NOT RUNNING/m, 'a forged line cannot start a line');
  t.ok(out.includes(`user 10${terminalSafe(evil)} at`), 'shown as escapes (terminalSafe)');
  t.ok(out.includes(`FreeSWITCH 1.10${terminalSafe(evil)}`), 'FreeSWITCH\'s own headers too');
  t.ok(out.includes(`p${terminalSafe(evil)}`.slice(0, 20)), 'and the profile of a near miss');
  t.equal(terminalSafe('a\\b'), 'a\\\\b', 'a backslash is escaped, so escapes are unambiguous');
  t.equal(terminalSafe('x'.repeat(30), 10), `${'x'.repeat(10)}…[+20 chars]`, 'long values cut with a marker');
  t.equal(terminalSafe(`${'x'.repeat(9)}😀`, 10), `${'x'.repeat(9)}…[+2 chars]`, 'never half a surrogate pair');
});
