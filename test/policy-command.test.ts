// `fsguard policy`, `policy simulate` and `policy explain` through runPolicyCommand: the JSON
// contract the scenario judge reads, gzip traces, malformed lines, event_index across traces.
import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { runPolicyCommand } from '../lib/cli/policy-command.js';
import { DEFAULT_POLICY_SETTINGS, type PolicySettings } from '../lib/policy/settings.js';
import { bruteForce, extensionScan, site, TraceBuilder, type RawEvent } from './support/policy-traces.js';

async function run(argv: string[], profileOverrides: Record<string, Partial<PolicySettings>> = { external: { bruteForceFailures: 3 } }): Promise<{ code: number; out: string; err: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => { out += d.toString(); });
  stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const code = await runPolicyCommand(argv, { stdout, stderr, settings: DEFAULT_POLICY_SETTINGS, profileOverrides, watchedProfiles: null });
  return { code, out, err };
}

const dir = mkdtempSync(join(tmpdir(), 'fsguard-policy-'));
const b1 = new TraceBuilder(7);
site(b1, { ip: '198.51.100.30', phones: 5, bootSpreadS: 5, durationS: 120 });
const first = b1.build().map((e) => JSON.stringify(e));
const b2 = new TraceBuilder(8);
bruteForce(b2, { ip: '203.0.113.66', ratePerS: 10, count: 20, ua: 'Yealink SIP-T46S 66.86.0.15' });
const second = b2.build().map((e) => JSON.stringify(e));
const plain = join(dir, 'office.jsonl');
writeFileSync(plain, `${first.slice(0, 3).join('\n')}\n{not json\n\n${first.slice(3).join('\n')}\n`);
const gz = join(dir, 'attack.jsonl.gz');
writeFileSync(gz, gzipSync(`${second.join('\n')}\n`));

t.test('simulate --json: one document, malformed lines counted and reported, index continues across traces', async (t) => {
  const r = await run(['simulate', plain, gz, '--json']);
  t.equal(r.code, 0);
  const doc = JSON.parse(r.out) as { events: number; bans: { target: string; event_index: number; at: string; seconds: number; rule: string; reason: string }[]; alerts: unknown[]; malformed: number };
  t.equal(doc.events, first.length + 1 + second.length, 'blank lines are not counted, the malformed one is');
  t.equal(doc.malformed, 1);
  t.match(r.err, new RegExp(`office\\.jsonl:4: malformed line \\(event 3\\)`));
  t.equal(doc.bans.length, 1);
  const ban = doc.bans[0]!;
  t.equal(ban.target, '203.0.113.66');
  t.equal(ban.rule, 'brute_force');
  t.ok(ban.event_index > first.length, 'event_index continues into the second trace');
  t.match(ban.at, /^2026-11-02T09:00:\d\d\.\d{6}Z$/);
  t.type(ban.seconds, 'number');
  t.type(ban.reason, 'string');
});

t.test('simulate without --json prints a table', async (t) => {
  const r = await run(['simulate', gz]);
  t.equal(r.code, 0);
  t.match(r.out, /EVENT\s+TIME\s+TARGET\s+SECONDS\s+RULE\s+REASON/);
  t.match(r.out, /203\.0\.113\.66/);
});

t.test('policy prints the effective policy in plain words, with overrides; --json for machines', async (t) => {
  const r = await run([]);
  t.equal(r.code, 0);
  t.match(r.out, /brute_force\s+6 answered authentication failures within about 1m\b/);
  t.match(r.out, /Profile external:\n\s+bruteForceFailures = 3 \(default 6\)/);
  const j = await run(['--json']);
  const doc = JSON.parse(j.out) as { policy: Record<string, { value: unknown }> };
  t.equal(doc.policy.bruteForceFailures!.value, 6);
});

t.test('explain: the trail of the attacker and why the office was not banned', async (t) => {
  const a = await run(['explain', '203.0.113.66', '--trace', gz]);
  t.equal(a.code, 0);
  t.match(a.out, /counted toward: brute_force 1\/6/);
  t.match(a.out, /BANNED: 203\.0\.113\.66 at event \d+ .* by brute_force/);
  const o = await run(['explain', '198.51.100.30', '--trace', plain, '--json']);
  const doc = JSON.parse(o.out) as { verdict: string[]; final: { proven: boolean } };
  t.equal(doc.final.proven, true);
  t.match(doc.verdict[0], /^NOT BANNED: 198\.51\.100\.30: it is proven legitimate/);
});

/** A trace file of the events of several builders (one per profile), in time order. */
function traceOf(name: string, ...builders: TraceBuilder[]): string {
  const events: RawEvent[] = builders.flatMap((b) => b.build()).sort((a, b) => Number(a['Event-Date-Timestamp']) - Number(b['Event-Date-Timestamp']));
  const path = join(dir, name);
  writeFileSync(path, `${events.map((e) => JSON.stringify(e)).join('\n')}\n`);
  return path;
}

interface ExplainRule { rule: string; value: number; threshold: number; uncounted?: boolean }

t.test('explain reads each step with the profile the verdict judged it with, not the first event\'s', async (t) => {
  // One challenge over external (shortWindowSeconds 600), then a password cracker over internal
  // (the base 60 s): brute_force counts its failures in internal's window and bans at the sixth.
  // Explain judged every step with external's windows (the first event's), where the failures
  // have no count: brute_force stayed at 0 until the ban it had never counted toward.
  const ext = new TraceBuilder(11, 'external');
  extensionScan(ext, { ip: '203.0.113.66', ratePerS: 1, count: 1, ua: 'Yealink SIP-T46S 66.86.0.15' });
  const int = new TraceBuilder(12, 'internal');
  bruteForce(int, { ip: '203.0.113.66', ratePerS: 1, count: 8, startS: 5, ua: 'Yealink SIP-T46S 66.86.0.15' });
  const r = await run(['explain', '203.0.113.66', '--trace', traceOf('two-profiles.jsonl', ext, int)], { external: { shortWindowSeconds: 600 } });
  t.equal(r.code, 0);
  for (let n = 1; n <= 5; n++) t.match(r.out, new RegExp(`counted toward: .*brute_force ${n}/6`), `the ${n}. failure counts toward brute_force`);
  t.match(r.out, /BANNED: 203\.0\.113\.66 at event \d+ .* by brute_force/);
});

t.test('explain reads a target after a challenge timed out with the profile of that challenge', async (t) => {
  // A scanner's unanswered challenges over external (shortWindowSeconds 600), one every 20 s,
  // between two answered failures over internal (the base 60 s). The last challenge times out
  // after the second and is judged, as every challenge is, with its own profile's windows: nine
  // unanswered within 600 s. Explain read the end with internal's windows (the first event's,
  // or the last event's), where the unanswered challenges have no count at all.
  const ext = new TraceBuilder(15, 'external');
  extensionScan(ext, { ip: '203.0.113.68', ratePerS: 1 / 20, count: 9, startS: 0.5, ua: 'Yealink SIP-T46S 66.86.0.15' });
  const int = new TraceBuilder(16, 'internal');
  bruteForce(int, { ip: '203.0.113.68', ratePerS: 1 / 161, count: 2, ua: 'Yealink SIP-T46S 66.86.0.15' });
  const j = await run(['explain', '203.0.113.68', '--trace', traceOf('timed-out.jsonl', ext, int), '--json'], { external: { shortWindowSeconds: 600 } });
  const doc = JSON.parse(j.out) as { final: { rules: ExplainRule[] } };
  t.match(doc.final.rules.find((x) => x.rule === 'unanswered_challenges'), { value: 9, threshold: 10, uncounted: false });
});

t.test('explain says when a window has no count in a profile\'s length, rather than showing a count of 0', async (t) => {
  // Three failures over internal, then one unanswered challenge over external (shortWindowSeconds
  // 600), judged last (its deadline) with external's windows: the failures were counted in 60 s
  // only, so the verdict reads no count in 600 s. Explain must say so, not show 0 as a count.
  const int = new TraceBuilder(13, 'internal');
  bruteForce(int, { ip: '203.0.113.67', ratePerS: 1, count: 3, ua: 'Yealink SIP-T46S 66.86.0.15' });
  const ext = new TraceBuilder(14, 'external');
  extensionScan(ext, { ip: '203.0.113.67', ratePerS: 1, count: 1, startS: 10, ua: 'Yealink SIP-T46S 66.86.0.15' });
  const trace = traceOf('no-count.jsonl', int, ext);
  const overrides = { external: { shortWindowSeconds: 600 } };
  const j = await run(['explain', '203.0.113.67', '--trace', trace, '--json'], overrides);
  const doc = JSON.parse(j.out) as { final: { rules: ExplainRule[] } };
  const rule = (id: string): ExplainRule | undefined => doc.final.rules.find((x) => x.rule === id);
  t.match(rule('brute_force'), { value: 0, uncounted: true }, 'brute_force: no count in 600 s, and said');
  t.match(rule('slow_guessing'), { value: 3, uncounted: false }, 'slow_guessing: external keeps the base long window, where the three are counted');
  t.match(rule('unanswered_challenges'), { value: 1, uncounted: false }, 'unanswered_challenges: counted in 600 s from its first challenge over external');
  const text = await run(['explain', '203.0.113.67', '--trace', trace], overrides);
  t.match(text.out, /brute_force +0\/6 +\(no count kept in this window's length\b/);
});

t.test('usage errors exit 2', async (t) => {
  t.equal((await run(['simulate'])).code, 2);
  t.equal((await run(['explain', 'nope', '--trace', gz])).code, 2);
  t.equal((await run(['frobnicate'])).code, 2);
});
