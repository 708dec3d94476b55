// `fsguard policy`, `policy simulate` and `policy explain` through runPolicyCommand: the JSON
// contract the scenario judge reads, gzip traces, malformed lines, event_index across traces.
import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { runPolicyCommand } from '../lib/cli/policy-command.js';
import { DEFAULT_POLICY_SETTINGS } from '../lib/policy/settings.js';
import { bruteForce, site, TraceBuilder } from './support/policy-traces.js';

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => { out += d.toString(); });
  stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const code = await runPolicyCommand(argv, { stdout, stderr, settings: DEFAULT_POLICY_SETTINGS, profileOverrides: { external: { bruteForceFailures: 3 } }, watchedProfiles: null });
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

t.test('usage errors exit 2', async (t) => {
  t.equal((await run(['simulate'])).code, 2);
  t.equal((await run(['explain', 'nope', '--trace', gz])).code, 2);
  t.equal((await run(['frobnicate'])).code, 2);
});
