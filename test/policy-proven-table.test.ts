// The proven sources are kept apart (maxLegitimateSources) so a spray cannot evict a site's
// proof. A full proven map must keep the live proofs it holds: cutting its least recently seen
// tenth made sites that register in turn push each other out (more live sites than the cap),
// and every site pushed out lost its proof, so forged challenges "from" it banned it.
import t from 'tap';
import { Guard } from '../lib/daemon/guard.js';
import { normalizeEvent } from '../lib/events/normalize.js';
import { FsguardMetrics } from '../lib/obs/metrics.js';
import { createPolicy } from '../lib/policy/engine.js';
import { BanLedger } from '../lib/policy/ban-ledger.js';
import { ChallengeQueue } from '../lib/policy/challenge-queue.js';
import { compileSettings } from '../lib/policy/compiled-settings.js';
import { SourceTracker } from '../lib/policy/tracking.js';
import { SwitchAddresses } from '../lib/policy/switch-addresses.js';
import { parseIp } from '../lib/net/ip.js';
import { DEFAULT_POLICY_SETTINGS } from '../lib/policy/settings.js';
import { RecordingLogger } from './support/esl-test-helpers.js';
import { netnsTestOptions } from './support/netns.js';
import { kernelWriter } from './support/nft-kernel.js';
import { bruteForce, extensionScan, judge, replay, site, TraceBuilder } from './support/policy-traces.js';

const SITES = Array.from({ length: 14 }, (_, i) => `198.51.100.${10 + i}`);
const S = { ...DEFAULT_POLICY_SETTINGS, maxLegitimateSources: 10 };

t.test('a proven map full of live sites keeps them; the sites beyond it stay proven; forged challenges ban none', async (t) => {
  const b = new TraceBuilder(7300);
  // 14 one-phone sites registering every 2 minutes for an hour, against room for 10.
  for (const ip of SITES) site(b, { ip, phones: 1, bootSpreadS: 60, durationS: 3600 });
  // Half an hour in, an off-path attacker sends REGISTERs "from" every site that never answer
  // their 401 (spoofed UDP): an unproven source would be banned for them within seconds.
  for (const ip of SITES) extensionScan(b, { ip, ratePerS: 5, count: 60, ua: 'Yealink SIP-T46S 66.86.0.15', startS: 1800, port: 5099 });
  const events = b.build();
  const r = replay(events, S);
  t.same(judge(events, r, [], SITES), [], 'no site banned');
  const full = r.policy.capacityStats().provenSources;
  t.equal(full.tracked, 10, 'the proven map holds its cap');
  t.ok(full.leftOut >= 4 * 25, `the four sites beyond it counted at each success (${full.leftOut})`);
  for (const ip of SITES) t.equal(r.policy.inspect(ip)?.proven, true, `${ip} is proven`);
});

t.test('the proofs left among the unproven sources survive a spray of new addresses', async (t) => {
  const b = new TraceBuilder(7303);
  for (const ip of SITES) site(b, { ip, phones: 1, bootSpreadS: 60, durationS: 3600 });
  // 20 minutes in, 3,000 new addresses send one challenge each: 30 times the unproven room.
  for (let i = 0; i < 3000; i++) b.auth({ ip: `203.0.${113 + (i >> 8)}.${i & 255}`, port: 5060, user: String(100 + (i % 50)), ua: 'friendly-scanner', atS: 1200 + i * 0.1, answer: null });
  // Forged challenges from every site while the spray goes on.
  for (const ip of SITES) extensionScan(b, { ip, ratePerS: 5, count: 60, ua: 'Yealink SIP-T46S 66.86.0.15', startS: 1300, port: 5099 });
  const events = b.build();
  const r = replay(events, { ...S, maxTrackedSources: 100 });
  t.same(r.bans.map((x) => x.decision.target.cidr.text).filter((ip) => SITES.includes(ip)), [], 'no site banned (the scanners are)');
  for (const ip of SITES) t.equal(r.policy.inspect(ip)?.proven, true, `${ip} is proven`);
  t.ok(r.policy.trackedSources() <= 100 + 10 + S.maxTrackedPrefixes, `memory bounded (${r.policy.trackedSources()} tracked)`);
});

t.test('an unproven map full of proofs still tracks a new attacker', async (t) => {
  const b = new TraceBuilder(7304);
  // 130 live sites against room for 10 proven and 100 unproven: the unproven map is all proofs.
  const sites = Array.from({ length: 130 }, (_, i) => `198.51.${100 + (i >> 8)}.${i & 255}`);
  for (const ip of sites) site(b, { ip, phones: 1, bootSpreadS: 60, durationS: 1200 });
  bruteForce(b, { ip: '203.0.113.50', ratePerS: 2, count: 40, ua: 'Zoiper rv2.10.19.4', startS: 600 });
  const events = b.build();
  const r = replay(events, { ...S, maxTrackedSources: 100 });
  t.same(judge(events, r, [{ source: '203.0.113.50', withinEvents: 80, withinSeconds: 30 }]).filter((x) => x.includes('203.0.113.50')), [], 'the brute forcer is banned');
  t.ok(r.policy.trackedSources() <= 100 + 10 + S.maxTrackedPrefixes, `memory bounded (${r.policy.trackedSources()} tracked)`);
});

t.test('the tracker: a source whose insert starts the cut, among proven entries only, is kept', async (t) => {
  const rs = compileSettings('', { ...S, maxTrackedSources: 100 });
  const ledger = new BanLedger(rs, new SwitchAddresses());
  const tracker = new SourceTracker(rs, rs.longWindow.us, 64, new ChallengeQueue(), ledger);
  // 100 unproven-map entries, each proven (as the proofs a full proven map leaves out are).
  for (let i = 0; i < 100; i++) tracker.source(parseIp(`198.51.100.${i}`)!, 1_000).provenUntilUs = 1e15;
  const newcomer = tracker.source(parseIp('203.0.113.50')!, 2_000);
  t.equal(tracker.host('203.0.113.50'), newcomer, 'the newcomer is tracked: its caller records evidence on it');
  t.ok(tracker.unproven.size <= 100, `the map was cut all the same (${tracker.unproven.size})`);
});

t.test('proofs that lapsed make room: their sources go back among the unproven, the newcomers are kept apart', async (t) => {
  const b = new TraceBuilder(7301);
  for (const ip of SITES.slice(0, 10)) site(b, { ip, phones: 1, bootSpreadS: 60, durationS: 600 });
  // A day and more later (legitimacySeconds), four other sites prove themselves.
  for (const ip of SITES.slice(10)) site(b, { ip, phones: 1, bootAtS: 90_000, bootSpreadS: 60, durationS: 600 });
  const r = replay(b.build(), S);
  t.same(r.policy.capacityStats().provenSources, { tracked: 4, leftOut: 0 }, 'the ten lapsed proofs left the proven map at the first newcomer');
  for (const ip of SITES.slice(10)) t.equal(r.policy.inspect(ip)?.proven, true, `${ip} is proven`);
});

t.test('the daemon counts the proofs left out and warns at most once an hour', netnsTestOptions(), async (t) => {
  const policy = createPolicy(S);
  const b = new TraceBuilder(7302);
  for (const ip of SITES) site(b, { ip, phones: 1, bootSpreadS: 60, durationS: 100 });
  const metrics = new FsguardMetrics(false);
  const logger = new RecordingLogger();
  let nowMs = 1_700_000_000_000;
  const guard = new Guard(policy, kernelWriter(t, 'proven'), logger, metrics, { allow: [] }, () => nowMs);
  await guard.start();
  const warnings = (): { msg: string; obj: object }[] => logger.records.filter((r) => r.level === 'warn' && /proven sources are all live/.test(r.msg));
  const events = b.build();
  for (const h of events) {
    const n = normalizeEvent(h, { profiles: null });
    if (n.ok) policy.observe(n.event);
  }
  guard.tick();
  // Each of the four sites beyond the cap proves itself twice (the SUCCESS attempt and its register).
  t.equal(policy.capacityStats().provenSources.leftOut, 8);
  t.equal(warnings().length, 1, 'proofs left out: one warning');
  t.match(warnings()[0]?.msg, /raise maxLegitimateSources/);
  t.match(warnings()[0]?.obj, { provenSources: 10, proofsLeftOut: 8 });
  t.match(await metrics.registry.metrics(), /fsguard_policy_proofs_left_out_total 8/);
  nowMs += 60_000;
  guard.tick();
  t.equal(warnings().length, 1, 'nothing new: no second line');
});

t.test('a prefix counts its scanner addresses past what it keeps of them, and keeps a bounded set', async (t) => {
  const { PrefixState } = await import('../lib/policy/source-state.js');
  const p = new PrefixState('2001:db8:9::/64');
  for (let i = 0; i < 5000; i++) p.noteScannerAddress(`2001:db8:9::${i.toString(16)}`);
  for (let i = 0; i < 10; i++) p.noteScannerAddress('2001:db8:9::1');
  t.equal(p.scannerAddressCount, 5000, 'each new address counted once, repeats not');
  const kept = (p as unknown as { scannerAddresses: Set<string> }).scannerAddresses.size;
  t.ok(kept <= 256, `the set of them stays bounded (${kept} kept)`);
  p.resetEvidence();
  t.equal(p.scannerAddressCount, 0, 'a ban starts it afresh');
});
