// Attacker text through every human-readable command, as a user runs them (child processes):
// ESC, CR, LF, NUL, BEL, C1 and bidi controls and 64 KB values must reach the terminal escaped
// and cut, while --json keeps the exact text.
import t, { type Test } from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliEnv, FSGUARD, runProcess, writeConfig } from './support/daemon-process.js';
import { netnsTestOptions } from './support/netns.js';
import { deleteTableIfExists, nftCli, uniqueTableName } from './support/nft-kernel.js';
import { bruteForce, TraceBuilder } from './support/policy-traces.js';

const HOSTILE = '\u001b[2J\u001b]0;owned\u0007\r\n\u0000FAKE LINE\u009b31m\u202eevil\u2066x\u2069\u200f';
const BIG = 'B'.repeat(65536);
const ATTACKER = '203.0.113.66';

/** What must never reach a terminal raw: C0 (but the layout's own \n), DEL, C1, bidi controls. */
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

function assertTerminalSafe(t: Test, text: string, what: string, maxLine = 3000): void {
  const bad = RAW_CONTROL.exec(text);
  t.equal(bad, null, `${what}: no raw control or bidi character${bad ? ` (U+${bad[0].charCodeAt(0).toString(16)} at ${bad.index})` : ''}`);
  const longest = Math.max(...text.split('\n').map((l) => l.length));
  t.ok(longest <= maxLine, `${what}: no line longer than ${maxLine} characters (longest ${longest})`);
}

const dir = mkdtempSync(join(tmpdir(), 'fsguard-terminal-'));
const b = new TraceBuilder(11);
bruteForce(b, { ip: ATTACKER, ratePerS: 10, count: 12, ua: `Evil${HOSTILE}${BIG}`, user: `u${HOSTILE}` });
const events = b.build();
// A call-id and a second user 64 KB long (normalization keeps 256 characters of each).
events[0]!['call-id'] = `c${HOSTILE}${BIG}`;
events[3]!['to-user'] = `${BIG}${HOSTILE}`;
const trace = join(dir, 'hostile.jsonl');
// …and a malformed line whose text is reported on stderr.
writeFileSync(trace, `${events.map((e) => JSON.stringify(e)).join('\n')}\n{"Event-Name":${JSON.stringify(HOSTILE + BIG)}\n`);
const config = writeConfig({ metrics: { enabled: false } });

t.test('policy simulate: reasons with attacker user names are escaped; --json is exact', async (t) => {
  const r = await runProcess(FSGUARD, ['policy', 'simulate', trace, '--config', config]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /brute_force/);
  t.match(r.stdout, /u\\e\[2J\\e\]0;owned\\a\\r\\n\\0FAKE LINE\\x9b31m\\u\{202e\}evil/, 'the user name is shown, escaped');
  t.notMatch(r.stdout, /^FAKE LINE/m, 'no forged line');
  assertTerminalSafe(t, r.stdout, 'stdout');
  assertTerminalSafe(t, r.stderr, 'stderr');
  t.match(r.stderr, /malformed line/);
  const json = await runProcess(FSGUARD, ['policy', 'simulate', trace, '--json', '--config', config]);
  const doc = JSON.parse(json.stdout) as { bans: Array<{ reason: string }> };
  t.ok(doc.bans[0]!.reason.includes(`u${HOSTILE}`), 'JSON keeps the exact user name');
});

t.test('policy explain: event descriptions, decisions and the verdict are escaped', async (t) => {
  const r = await runProcess(FSGUARD, ['policy', 'explain', ATTACKER, '--trace', trace, '--config', config]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /BANNED/);
  t.match(r.stdout, /ua "Evil\\\\u001b\[2J/, 'the user agent is shown escaped');
  t.match(r.stdout, /…\[\+\d+ chars\]/, 'long values are cut with a marker');
  t.notMatch(r.stdout, /^FAKE LINE/m);
  assertTerminalSafe(t, r.stdout, 'stdout');
  assertTerminalSafe(t, r.stderr, 'stderr');
  const json = await runProcess(FSGUARD, ['policy', 'explain', ATTACKER, '--trace', trace, '--json', '--config', config]);
  t.ok(JSON.parse(json.stdout).verdict.join('\n').includes(`u${HOSTILE}`), 'JSON keeps the exact text');
});

t.test('bans: a kernel comment with control characters is shown escaped; --json is exact', netnsTestOptions(), async (t) => {
  const table = uniqueTableName('term');
  t.teardown(() => deleteTableIfExists('inet', table));
  const cfg = writeConfig({ nft: { table }, metrics: { enabled: false } });
  const setup = await runProcess(FSGUARD, ['ban', '192.0.2.77', '--for', '1h', '--config', cfg], { env: cliEnv() });
  t.equal(setup.status, 0, setup.stderr);
  const comment = `\u001b[2J\r\u0007\u202eevil\nFAKE LINE`;
  const batch = join(dir, 'foreign.json');
  writeFileSync(batch, JSON.stringify({ nftables: [{ add: { element: { family: 'inet', table, name: 'banned4', elem: [{ elem: { val: '198.51.100.9', timeout: 3600, comment } }] } } }] }));
  nftCli(['-j', '-f', batch]);
  const r = await runProcess(FSGUARD, ['bans', '--config', cfg]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /198\.51\.100\.9 .*foreign \(\\e\[2J\\r\\a\\u\{202e\}evil\\nFAKE LINE\)/);
  t.notMatch(r.stdout, /^FAKE LINE/m);
  assertTerminalSafe(t, r.stdout, 'stdout');
  const json = await runProcess(FSGUARD, ['bans', '--json', '--config', cfg]);
  const doc = JSON.parse(json.stdout) as { bans: Array<{ target: string; comment: string | null }> };
  t.equal(doc.bans.find((x) => x.target === '198.51.100.9')?.comment, comment, 'JSON keeps the exact comment');
});

t.test('fsguard logs: the daemon\'s JSON lines for a person, attacker text escaped', async (t) => {
  const { spawn } = await import('node:child_process');
  const lines = [
    JSON.stringify({ level: 'info', time: '2026-11-02T09:00:00.000Z', name: 'fsguard', event: 'ban', target: ATTACKER, rule: 'brute_force', reason: `users u${HOSTILE} from ${ATTACKER}`, evidence: { users: [`u${HOSTILE}`, BIG] }, msg: 'banned' }),
    // (A raw line break would end the input line itself: the rest of the hostile set, without it.)
    `not json ${HOSTILE.replace(/[\r\n]/g, '')}`,
    JSON.stringify({ level: 'warn', time: '2026-11-02T09:00:01.000Z', msg: `ua ${HOSTILE}`, userAgent: BIG }),
  ];
  const child = spawn(FSGUARD, ['logs'], { env: cliEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stdin.end(`${lines.join('\n')}\n`);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  t.equal(code, 0);
  const shown = out.trimEnd().split('\n');
  t.equal(shown.length, 3, 'one line per log line, none forged');
  t.match(shown[0], /^2026-11-02T09:00:00\.000Z INFO  banned event=ban target=203\.0\.113\.66 rule=brute_force reason="users u\\e\[2J/);
  t.match(shown[1], /^not json \\e\[2J/);
  t.match(shown[2], /WARN  ua \\e\[2J.* userAgent="B+…\[\+\d+ chars\]"$/);
  assertTerminalSafe(t, out, 'stdout');
});
