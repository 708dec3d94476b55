// End to end, with everything real: the `fsguard run` process, nft in a private network
// namespace, and a TCP event socket speaking FreeSWITCH's protocol replaying a trace.
import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EslTestServer } from './support/esl-server.js';
import { DaemonProcess, fsguardCli, writeConfig, type LogLine, startDaemonWith } from './support/daemon-process.js';
import { netnsTestOptions } from './support/netns.js';
import { deleteTableIfExists, kernelElement, kernelElements, uniqueTableName } from './support/nft-kernel.js';

const SCENARIOS = new URL('../../../shared/scenarios/', import.meta.url).pathname;
const trace = (name: string): string[] => readFileSync(join(SCENARIOS, `${name}.jsonl`), 'utf8').split('\n').filter(Boolean);

const ATTACKER = '203.0.113.66';
const OFFICE = '198.51.100.30';

interface Rig {
  server: EslTestServer;
  table: string;
  config: string;
  daemon: DaemonProcess;
}

async function rig(t: Test, label: string, overrides: { esl?: object; nft?: object; metrics?: object } = {}): Promise<Rig> {
  const server = await EslTestServer.start({ heartbeatIntervalMs: 1000 });
  const table = uniqueTableName(label);
  const config = writeConfig({
    esl: { host: '127.0.0.1', port: server.port, password: 'ClueCon', authRetrySeconds: 1, ...overrides.esl },
    nft: { table, reconcileSeconds: 0.5, ...overrides.nft },
    metrics: { enabled: false, ...overrides.metrics },
    log: { level: 'debug' },
  });
  const daemon = startDaemonWith(t, config, server, table);
  return { server, table, config, daemon };
}

/** The element, or undefined when it (or its table) is not there. */
function elementIfAny(table: string, set: string, key: string): ReturnType<typeof kernelElement> {
  try {
    return kernelElement(table, set, key);
  } catch {
    return undefined;
  }
}

async function waitForElement(table: string, set: string, key: string, timeoutMs = 10_000): Promise<ReturnType<typeof kernelElement>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const el = elementIfAny(table, set, key);
    if (el || Date.now() > deadline) return el;
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function waitForCondition(check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a condition');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const isBanOf = (target: string) => (l: LogLine): boolean => l.event === 'ban' && l.target === target;

t.test('brute force against a working office: attacker in the kernel set, office not; bans/unban/restart', netnsTestOptions(), async (t) => {
  const { server, table, config, daemon } = await rig(t, 'e2e_bf');
  await server.waitForSubscriptions(1);
  await server.replay(trace('brute-force-one-user'));

  const el = await waitForElement(table, 'banned4', ATTACKER);
  t.ok(el, `${ATTACKER} is in inet ${table} banned4`);
  t.ok((el?.timeout ?? 0) > 0 && (el?.expires ?? 0) > 0, 'with a timeout and time left');
  t.match(el?.comment ?? '', /^fsguard rule=\w+ n=1/, 'comment names the rule');
  const banLine = await daemon.waitForLog('ban log line', isBanOf(ATTACKER));
  t.type(banLine.rule, 'string');
  t.type(banLine.reason, 'string');
  t.type((banLine.evidence as { answeredFailures?: unknown }).answeredFailures, 'number', 'evidence summary logged');
  t.notOk(kernelElements(table, 'banned4').some((e) => e.key === OFFICE), 'the office is not banned');
  t.same(daemon.strayStdout, [], 'every stdout line is JSON');

  // fsguard bans reads the kernel.
  const bans = await fsguardCli(['bans', '--json', '--config', config]);
  t.equal(bans.status, 0, bans.stderr);
  const listed = JSON.parse(bans.stdout) as { bans: Array<{ target: string; seconds_left: number; rule: string }> };
  const row = listed.bans.find((b) => b.target === ATTACKER);
  t.ok(row && row.seconds_left > 0 && row.rule === banLine.rule, 'fsguard bans lists it with time left and rule');
  const human = await fsguardCli(['bans', '--config', config]);
  t.match(human.stdout, new RegExp(`${ATTACKER.replace(/\./g, '\\.')}\\s+\\d`));

  // A restart keeps it (it lives in the kernel) and the daemon reads it back.
  t.equal(await daemon.stop('SIGTERM'), 0, 'SIGTERM exits 0');
  t.ok(kernelElement(table, 'banned4', ATTACKER), 'still banned while fsguard is down');
  const again = DaemonProcess.start(config);
  t.teardown(() => again.stop('SIGKILL'));
  const ready = await again.waitForLog('read-back line', (l) => typeof l.bans === 'number' && /read back/.test(l.msg ?? ''));
  t.equal(ready.bans, 1, 'the restarted daemon read the ban back');
  t.ok(kernelElement(table, 'banned4', ATTACKER), 'still banned after the restart');

  // fsguard unban removes it; the running daemon notices and grants a grace period.
  const unban = await fsguardCli(['unban', ATTACKER, '--config', config]);
  t.equal(unban.status, 0, unban.stderr);
  t.notOk(kernelElement(table, 'banned4', ATTACKER), 'unban removed it from the kernel');
  await again.waitForLog('daemon notices the manual unban', (l) => l.target === ATTACKER && /lifted outside fsguard/.test(l.msg ?? ''));
  const missing = await fsguardCli(['unban', ATTACKER, '--config', config]);
  t.equal(missing.status, 1, 'unbanning what is not banned says so');
  t.match(missing.stderr, /not banned/);

  // Manual ban with a duration and reason.
  const ban = await fsguardCli(['ban', '2001:db8:bad:1::/64', '--for', '2h', '--reason', 'test "quoted"\nreason', '--config', config]);
  t.equal(ban.status, 0, ban.stderr);
  const prefix = kernelElement(table, 'banned6p64', '2001:db8:bad:1::');
  t.ok(prefix && (prefix.timeout ?? 0) >= 7000, 'manual prefix ban with its duration');
  t.match(prefix?.comment ?? '', /rule=manual/);
  const manualList = await fsguardCli(['bans', '--config', config]);
  const manualRow = manualList.stdout.split('\n').find((l) => l.startsWith('2001:db8:bad:1::/64'));
  // The comment holds printable ASCII without quotes (comment.ts): the rest became '?'.
  t.match(manualRow, /manual: test \?quoted\?\?reason$/, `fsguard bans shows the reason as the kernel keeps it (${manualRow})`);
  const listedJson = JSON.parse((await fsguardCli(['bans', '--json', '--config', config])).stdout) as { bans: Array<{ target: string; note: string | null }> };
  t.equal(listedJson.bans.find((b) => b.target === '2001:db8:bad:1::/64')?.note, 'test ?quoted??reason', 'and --json has it as note');
  const refused = await fsguardCli(['ban', '127.0.0.1', '--config', config]);
  t.equal(refused.status, 2, 'banning an allow-listed address is refused');
  t.match(refused.stderr, /allow-list/);
});

t.test('the connection drops mid-trace: reconnect, re-subscribe, keep banning', netnsTestOptions(), async (t) => {
  const { server, table, daemon } = await rig(t, 'e2e_rc');
  await server.waitForSubscriptions(1);
  await server.replay(trace('scanner-user-agent'));
  t.ok(await waitForElement(table, 'banned4', '203.0.113.5'), 'banned before the drop');
  server.dropConnections();
  await server.waitForSubscriptions(2);
  const subscriptions = server.sessions.flatMap((s) => s.subscribeCommands);
  t.equal(subscriptions.length, 2, 'subscribed again after the reconnect');
  t.equal(subscriptions[0], subscriptions[1], 'with the same subscription');
  await server.replay(trace('brute-force-one-user'));
  t.ok(await waitForElement(table, 'banned4', ATTACKER), 'banned after the reconnect');
  t.ok(daemon.running, 'daemon alive');
});

t.test('wrong password: a clear error, slow bounded retries, no crash', netnsTestOptions(), async (t) => {
  const { server, daemon } = await rig(t, 'e2e_pw', { esl: { password: 'wrong' } });
  const line = await daemon.waitForLog('auth error', (l) => l.level === 'error' && /password/.test(l.msg ?? ''));
  t.notMatch(JSON.stringify(line), /wrong/, 'the password itself is not logged');
  // The retry interval is exact under fake timers (test/esl-reconnect.test.ts); here: it is
  // the configured one, and a retry happens.
  const refusal = await daemon.waitForLog('retry interval', (l) => typeof l.retryInMs === 'number');
  t.equal(refusal.retryInMs, 1000, 'retries every authRetrySeconds (1 s), not by the fast backoff');
  await waitForCondition(() => server.authLog.length >= 2);
  t.ok(server.authLog.every((a) => !a.accepted), `it retries (${server.authLog.length} attempts), each refused`);
  t.ok(daemon.running, 'daemon alive');
  t.notOk(daemon.lines.some((l) => JSON.stringify(l).includes('"wrong"')), 'no log line holds the password');
});

t.test('hostile input is counted and skipped; the daemon keeps working', netnsTestOptions(), async (t) => {
  const { server, table, daemon } = await rig(t, 'e2e_bad', { metrics: { enabled: true, port: 0 } });
  const metricsLine = await daemon.waitForLog('metrics port', (l) => typeof l.port === 'number' && /metrics/.test(l.msg ?? ''));
  await server.waitForSubscriptions(1);
  const base = JSON.parse(trace('scanner-user-agent').find((l) => l.includes('203.0.113.5'))!) as Record<string, string>;
  const event = (patch: Record<string, string | undefined>): string => JSON.stringify({ ...base, ...patch });
  server.sendRaw('Content-Length: 12\nContent-Type: text/event-json\n\n{"not": json');
  server.sendRaw('Content-Length: zz\nContent-Type: text/event-json\n\n');
  server.sendRaw('garbage without headers\n\n');
  server.sendRaw(Buffer.from([0x43, 0x6f, 0x6e, 0xff, 0xfe, 0x0a, 0x0a]));
  await server.replay([
    event({ 'network-ip': undefined }),
    event({ 'network-ip': 'not-an-ip' }),
    event({ 'network-ip': '999.1.1.1' }),
    event({ 'network-ip': '203.0.113.200', 'user-agent': '%C3' }),
    event({ 'network-ip': '203.0.113.201', 'user-agent': `x${'A'.repeat(64 * 1024)}\n{"forged":"line"}\u001b[31m` }),
  ]);
  server.sendRaw('Content-Length: 7\nContent-Type: text/event-json\n\n[1,2,3]');
  // Then a good scanner event must still be acted on.
  await server.replay([event({ 'network-ip': '203.0.113.42' })]);
  t.ok(await waitForElement(table, 'banned4', '203.0.113.42'), 'a good event after the garbage is still acted on');
  t.ok(daemon.running, 'daemon alive');
  t.same(daemon.strayStdout, [], 'hostile strings never broke a log line');
  const res = await fetch(`http://127.0.0.1:${metricsLine.port as number}/metrics`);
  const body = await res.text();
  const dropped = [...body.matchAll(/^fsguard_events_dropped_total\{reason="([a-z_]+)"\} (\d+)/gm)].map((m) => [m[1], Number(m[2])] as const);
  const byReason = new Map(dropped);
  t.ok((byReason.get('missing_address') ?? 0) >= 1, 'missing network-ip counted');
  t.ok((byReason.get('bad_address') ?? 0) >= 2, 'garbage addresses counted');
  t.ok([...byReason.values()].reduce((a, b) => a + b, 0) >= 6, `malformed frames counted too: ${JSON.stringify(dropped)}`);
  t.match(body, /fsguard_events_total\{subclass="sofia::pre_register",profile="[^"]+"\} \d+/);
  t.match(body, /fsguard_esl_connected 1/);
  t.match(body, /fsguard_nft_batches_total [1-9]/);
});

t.test('fsguard check: ok against a live event socket, one line per problem otherwise', netnsTestOptions(), async (t) => {
  const server = await EslTestServer.start({});
  t.teardown(() => server.close());
  const table = uniqueTableName('e2e_chk');
  t.teardown(() => deleteTableIfExists('inet', table));
  const good = writeConfig({ esl: { port: server.port }, nft: { table }, metrics: { enabled: false } });
  const ok = await fsguardCli(['check', '--config', good]);
  t.equal(ok.status, 0, ok.stderr);
  t.match(ok.stdout, /config: ok/);
  t.match(ok.stdout, /nft: ok/);
  t.match(ok.stdout, /esl: ok/);

  const wrong = writeConfig({ esl: { port: server.port, password: 'NotThePassword' }, nft: { table } });
  const bad = await fsguardCli(['check', '--config', wrong]);
  t.equal(bad.status, 1);
  t.match(bad.stderr, /^esl: .*refused the password/m);
  t.notMatch(bad.stdout + bad.stderr, /NotThePassword/, 'the password is never printed');

  const broken = writeConfig({ esl: { port: 'x' }, nft: { tabel: 'x' } });
  const cfg = await fsguardCli(['check', '--config', broken]);
  t.equal(cfg.status, 1);
  t.match(cfg.stderr, /esl\.port/);
  t.match(cfg.stderr, /nft\.tabel/);
});

t.test('SIGHUP reloads the config; a broken one is refused and the daemon keeps running', netnsTestOptions(), async (t) => {
  const { server, table, config, daemon } = await rig(t, 'e2e_hup');
  await server.waitForSubscriptions(1);
  const { writeFileSync } = await import('node:fs');
  writeFileSync(config, JSON.stringify({
    esl: { host: '127.0.0.1', port: server.port, authRetrySeconds: 1 },
    nft: { table, reconcileSeconds: 0.5 },
    metrics: { enabled: false },
    policy: { banSeconds: 600 },
    log: { level: 'debug' },
  }));
  daemon.child.kill('SIGHUP');
  await daemon.waitForLog('reloaded', (l) => l.msg === 'config reloaded');
  await server.replay(trace('brute-force-one-user'));
  const el = await waitForElement(table, 'banned4', ATTACKER);
  const timeout = el?.timeout;
  t.ok(typeof timeout === 'number' && timeout >= 590 && timeout <= 600 * 1.5, `the reloaded ban length applies (timeout ${timeout})`);

  writeFileSync(config, '{ "esl": { "port": "nope" } }');
  daemon.child.kill('SIGHUP');
  const refused = await daemon.waitForLog('reload refused', (l) => /reload refused/.test(l.msg ?? ''));
  t.match(JSON.stringify(refused.problems), /esl\.port/);
  t.ok(daemon.running, 'still running on the previous config');
});

t.test('two SIGHUPs in a row move the event socket once; a SIGTERM during a reload stops cleanly', netnsTestOptions(), async (t) => {
  const { server, table, config, daemon } = await rig(t, 'e2e_hup2');
  await server.waitForSubscriptions(1);
  const moved = await EslTestServer.start({ heartbeatIntervalMs: 1000 });
  t.teardown(() => moved.close());
  const { writeFileSync } = await import('node:fs');
  // reconcileSeconds changes too: its warning is logged before the reload stops the old source.
  const configFor = (port: number, reconcileSeconds: number): string => JSON.stringify({
    esl: { host: '127.0.0.1', port, authRetrySeconds: 1 },
    nft: { table, reconcileSeconds },
    metrics: { enabled: false },
    log: { level: 'debug' },
  });
  writeFileSync(config, configFor(moved.port, 0.6));
  const from = daemon.lines.length;
  daemon.child.kill('SIGHUP');
  // The second while the first is under way (two signals sent at once arrive as one).
  await daemon.waitForLog('the first reload under way', (l) => daemon.lines.indexOf(l) >= from && /nft settings changed/.test(l.msg ?? ''));
  daemon.child.kill('SIGHUP');
  await daemon.waitForLog('both reloads done', () => daemon.lines.slice(from).filter((l) => l.msg === 'config reloaded').length === 2);
  await moved.waitForSubscriptions(1);
  // One more reconcile pass of the daemon's loop: a second source would have connected by now.
  await daemon.waitForReconciles(daemon.lines.length);
  t.equal(moved.connectionLog.length, 1, 'one event source on the new address, not two');

  // A reload that moves the socket back, and the stop signal while it runs.
  writeFileSync(config, configFor(server.port, 0.5));
  daemon.child.kill('SIGHUP');
  const code = await daemon.stop('SIGTERM');
  t.equal(code, 0, `stopped with status 0 (got ${String(code)}, signal ${String(daemon.child.signalCode)}): ${daemon.lines.slice(-4).map((l) => l.msg).join(' | ')} ${daemon.stderr.slice(-300)}`);
});

t.test('nft flush ruleset by an admin: table, chain and bans are back within 2 s with their time left', netnsTestOptions(), async (t) => {
  const { server, table, daemon } = await rig(t, 'e2e_flush');
  await server.waitForSubscriptions(1);
  await server.replay(trace('brute-force-one-user'));
  const before = await waitForElement(table, 'banned4', ATTACKER);
  t.ok(before, 'banned');
  await daemon.waitForLog('ban confirmed', isBanOf(ATTACKER));
  await daemon.waitForReconciles(daemon.lines.length); // a reconcile saw it in the kernel
  const { nftCli } = await import('./support/nft-kernel.js');
  const flushedAt = Date.now();
  const linesBefore = daemon.lines.length;
  // What `flush ruleset` does to fsguard: its table is deleted. Only ours is deleted here: the
  // namespace is shared with the test files running beside this one, whose tables a real
  // flush would take too (their bans vanished mid-test).
  nftCli(['delete', 'table', 'inet', table]);
  // fsguard notices the deletion at once and may have restored it before a check here could
  // run: the deletion is proven by the daemon's reaction instead.
  await daemon.waitForLog('the flush noticed', (l) => daemon.lines.indexOf(l) >= linesBefore && /restoring every ban/.test(l.msg ?? ''), 2000);
  const after = await waitForElement(table, 'banned4', ATTACKER, 2000);
  t.ok(after, `restored within 2 s (${Date.now() - flushedAt} ms)`);
  t.ok((after?.timeout ?? 0) > 0 && (after?.timeout ?? 0) <= (before?.expires ?? 0) + 2, `with its remaining time (${after?.timeout}s of ${before?.expires}s left)`);
  const { chainRules } = await import('./support/nft-kernel.js');
  t.ok(chainRules(table, 'input').length > 0, 'the drop rules are back');
  t.ok(daemon.running);
});
