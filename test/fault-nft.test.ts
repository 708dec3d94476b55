// Faults on the kernel side, with the real daemon, real nft in the test namespace and the test
// event socket: the ruleset flushed or reloaded by an admin, the daemon killed with SIGKILL,
// libnftables missing or not permitted, SIGTERM during a flood. (Faults of the library itself:
// test/fault-libnftables.test.ts.)
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DaemonProcess, FSGUARD, fsguardCli, type LogLine } from './support/daemon-process.js';
import { EslTestServer } from './support/esl-server.js';
import { netnsTestOptions } from './support/netns.js';
import { BAN_SETS, banTargetOf, chainRules, kernelElements, nftCli } from './support/nft-kernel.js';
import {
  allBannedKeys, elementIfAny, elementsIfAny, ipv4Of, rigConfig, scannerEvents, sleep,
  startDaemon, waitFor,
} from './support/fault-rig.js';

const BAN_LINE = (l: LogLine): boolean => l.event === 'ban';

/** Bans `n` scanner sources (plus one IPv6 host and one manual /64) and waits for all of them. */
async function banSome(server: EslTestServer, table: string, base: number, n: number): Promise<string[]> {
  const ips = Array.from({ length: n }, (_, i) => ipv4Of(base + i));
  await server.replay(scannerEvents([...ips, '2001:db8:77::5']));
  await waitFor(`${n} bans`, () => ips.every((ip) => elementIfAny(table, 'banned4', ip)) && elementIfAny(table, 'banned6', '2001:db8:77::5'), 15_000);
  return ips;
}

/**
 * A daemon on the shipped reconcile interval (the rebuild promises are for the shipped config)
 * beside its own event-socket server, with `n` scanner sources banned (see banSome).
 */
async function daemonWithBans(t: Test, label: string, base: number, n: number): Promise<{ table: string; config: string; daemon: DaemonProcess }> {
  const server = await EslTestServer.start({ heartbeatIntervalMs: 1000 });
  t.teardown(() => server.close());
  const { table, config } = rigConfig(t, label, server.port, { nft: { reconcileSeconds: undefined } });
  const daemon = startDaemon(t, config);
  await server.waitForSubscriptions(1);
  await banSome(server, table, base, n);
  return { table, config, daemon };
}

/** Every element with its seconds left, across the ban sets. */
function snapshot(table: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const set of BAN_SETS) {
    for (const e of elementsIfAny(table, set)) out.set(banTargetOf(set, e.key), e.expires ?? -1);
  }
  return out;
}

async function restoredWithin2s(t: Test, table: string, before: Map<string, number>, since: number): Promise<void> {
  const deadline = since + 2000;
  let now = snapshot(table);
  while ([...before.keys()].some((k) => !now.has(k)) && Date.now() < deadline) {
    await sleep(20);
    now = snapshot(table);
  }
  const took = Date.now() - since;
  const missing = [...before.keys()].filter((k) => !now.has(k));
  t.same(missing, [], `every ban back within 2 s (${before.size} bans, ${took} ms)`);
  const wrongTime = [...before].filter(([k, left]) => {
    const after = now.get(k);
    // Remaining time, not a fresh full ban: at most what was left (plus rounding), and not much less.
    return after === undefined || after > left + 2 || after < left - 5;
  });
  t.same(wrongTime.map(([k, left]) => `${k}: ${left}s left before, ${now.get(k)}s after`), [], 'each with its remaining time');
}

t.test('nft flush ruleset: table, sets, chain and every ban back within 2 s with their time left', netnsTestOptions(), async (t) => {
  const { table, config, daemon } = await daemonWithBans(t, 'f_flush', 0x030000, 40);
  t.equal((await fsguardCli(['ban', '2001:db8:bad:1::/64', '--for', '2h', '--config', config])).status, 0, 'manual prefix ban');
  await daemon.waitForReconciles(daemon.lines.length); // the daemon knows every ban, the manual one too
  const rulesBefore = chainRules(table, 'input');
  const before = snapshot(table);
  t.ok(before.size >= 42, `${before.size} bans before the flush`);
  const linesBefore = daemon.lines.length;
  const flushedAt = Date.now();
  // What `flush ruleset` does to fsguard: its table is deleted. Only ours is deleted here: the
  // namespace is shared with the test files running beside this one, whose tables a real
  // flush would take too.
  nftCli(['delete', 'table', 'inet', table]);
  await restoredWithin2s(t, table, before, flushedAt);
  // (Restoring is quicker than a test can look, so the flush is proven by the daemon's reaction.)
  const restoring = await daemon.waitForLog('restoring line', (l) => daemon.lines.indexOf(l) >= linesBefore && /restoring every ban/.test(l.msg ?? ''), 5000);
  t.ok((restoring.bans as number) >= before.size, `the flush removed the table and fsguard restored ${String(restoring.bans)} bans`);
  t.same(chainRules(table, 'input'), rulesBefore, 'the drop rules are back, the same');
  t.match(kernelElements(table, 'banned6p64').find((e) => e.key === '2001:db8:bad:1::')?.comment ?? '', /rule=manual/, 'the manual ban keeps its comment');
  await daemon.waitForReconciles(daemon.lines.indexOf(restoring));
  t.notOk(daemon.lines.some((l) => /lifted outside fsguard/.test(l.msg ?? '')), 'a flush is not mistaken for manual unbans');
  t.ok(daemon.running);
});

t.test('nft delete chain (the table and its sets left): the drop chain is rebuilt, the bans kept', netnsTestOptions(), async (t) => {
  const { table, daemon } = await daemonWithBans(t, 'f_chain', 0x048000, 10);
  await daemon.waitForReconciles(daemon.lines.length);
  const rulesBefore = chainRules(table, 'input');
  const before = snapshot(table);
  nftCli(['delete', 'chain', 'inet', table, 'input']);
  await daemon.waitForLog('chain rebuilt', (l) => /drop chain is gone/.test(l.msg ?? ''));
  await waitFor('the chain back', () => { try { return chainRules(table, 'input').length === rulesBefore.length; } catch { return false; } }, 15_000);
  t.same(chainRules(table, 'input'), rulesBefore, 'the drop rules are back, the same');
  t.same([...snapshot(table).keys()].sort(), [...before.keys()].sort(), 'every ban still there');
  t.notOk(daemon.lines.some((l) => /lifted outside fsguard/.test(l.msg ?? '')), 'nothing taken for a manual unban');
});

t.test('systemctl restart nftables (flush ruleset + another table from a file): fsguard is back within 2 s', netnsTestOptions(), async (t) => {
  const { table, daemon } = await daemonWithBans(t, 'f_reload', 0x040000, 30);
  await daemon.waitForReconciles(daemon.lines.length);
  const before = snapshot(table);
  const dir = mkdtempSync(join(tmpdir(), 'fsguard-nftables-'));
  const conf = join(dir, 'nftables.conf');
  const admin = `f${process.pid}_admin`.slice(0, 30);
  t.teardown(() => { try { nftCli(['delete', 'table', 'inet', admin]); } catch { /* gone */ } });
  // What /etc/nftables.conf looks like on Debian, and what `systemctl restart nftables` runs.
  // (`flush ruleset` there: here only fsguard's table, as above, in the same transaction.)
  writeFileSync(conf, `#!/usr/sbin/nft -f
delete table inet ${table}
table inet ${admin} {
  chain input {
    type filter hook input priority filter; policy accept;
    tcp dport 22 accept
  }
}
`);
  const linesBefore = daemon.lines.length;
  const reloadedAt = Date.now();
  nftCli(['-f', conf]);
  await restoredWithin2s(t, table, before, reloadedAt);
  const restoring = await daemon.waitForLog('restoring line', (l) => daemon.lines.indexOf(l) >= linesBefore && /restoring every ban/.test(l.msg ?? ''), 5000);
  t.ok((restoring.bans as number) >= before.size, `the reload removed fsguard's table and fsguard restored ${String(restoring.bans)} bans`);
  t.ok(chainRules(table, 'input').length > 0, 'fsguard\'s drop rules are back');
  t.match(nftCli(['list', 'table', 'inet', admin]), /tcp dport 22 accept/, 'the admin\'s own table is left alone');
  t.ok(daemon.running);
});

t.test('kill -9 then restart: zero bans lost, state rebuilt from the sets, repeat offences keep growing', netnsTestOptions(), async (t) => {
  const server = await EslTestServer.start({ heartbeatIntervalMs: 1000 });
  t.teardown(() => server.close());
  const { table, config } = rigConfig(t, 'f_kill9', server.port, { policy: { unbanGraceSeconds: 0 } });
  const a = startDaemon(t, config);
  await server.waitForSubscriptions(1);
  const ips = await banSome(server, table, 0x050000, 30);
  const repeat = ips[0]!;
  // A second offence for one of them while the first daemon runs: unban, it attacks again.
  t.equal((await fsguardCli(['unban', repeat, '--config', config])).status, 0);
  await a.waitForLog('manual unban noticed', (l) => l.target === repeat && /lifted outside fsguard/.test(l.msg ?? ''));
  await server.replay(scannerEvents([repeat]));
  const second = await a.waitForLog('second offence', (l) => BAN_LINE(l) && l.target === repeat && l.offence === 2);
  await waitFor('second ban written', () => /n=2/.test(elementIfAny(table, 'banned4', repeat)?.comment ?? ''), 10_000);
  const before = allBannedKeys(table);

  t.equal(await a.stop('SIGKILL'), null, 'killed');
  const b = startDaemon(t, config);
  const readBack = await b.waitForLog('read-back line', (l) => /read back/.test(l.msg ?? ''));
  t.equal(readBack.bans, before.size, `the restarted daemon read every ban back (${before.size})`);
  const after = allBannedKeys(table);
  t.same([...before].filter((k) => !after.has(k)), [], 'zero bans lost');
  await server.waitForSubscriptions(2);

  // Still banned sources are not decided again (state rebuilt): replaying them bans nobody.
  // A new scanner after them, banned by its one event: once its ban is logged, they were judged.
  const control = ipv4Of(0x05ff00);
  await server.replay(scannerEvents([...ips.slice(1, 10), control]));
  await b.waitForLog('the control banned', (l) => BAN_LINE(l) && l.target === control);
  t.same(b.lines.filter(BAN_LINE).map((l) => l.target), [control], 'sources already banned in the kernel are not banned again');

  // The third offence after the restart is longer than the second: the count came from the comment.
  t.equal((await fsguardCli(['unban', repeat, '--config', config])).status, 0);
  await b.waitForLog('manual unban noticed after restart', (l) => l.target === repeat && /lifted outside fsguard/.test(l.msg ?? ''));
  await server.replay(scannerEvents([repeat]));
  const third = await b.waitForLog('third offence', (l) => BAN_LINE(l) && l.target === repeat);
  t.equal(third.offence, 3, 'the offence count survived the restart');
  t.ok((third.seconds as number) > (second.seconds as number) * 1.5, `third ban ${third.seconds}s, longer than the second (${second.seconds}s)`);
  await waitFor('third ban written', () => /n=3/.test(elementIfAny(table, 'banned4', repeat)?.comment ?? ''), 10_000);
});

t.test('libnftables missing: one clear fatal line, non-zero exit', netnsTestOptions(), async (t) => {
  const { config } = rigConfig(t, 'f_nonft', 1, { nft: { library: '/nonexistent/libnftables.so.1' } });
  const d = DaemonProcess.start(config);
  const code = await d.waitExit();
  t.not(code, 0, `exit code ${code}`);
  const lines = d.stderr.trim().split('\n');
  t.equal(lines.length, 1, `one line on stderr: ${d.stderr}`);
  t.match(lines[0], /^fsguard: cannot use libnftables \(\/nonexistent\/libnftables\.so\.1\): .*install nftables/);
  t.same(d.strayStdout, []);
});

t.test('nft permission denied (not root, no CAP_NET_ADMIN): one clear fatal line, non-zero exit', {
  ...netnsTestOptions(),
  skip: netnsTestOptions().skip || (process.getuid?.() !== 0 ? 'needs root to drop CAP_NET_ADMIN with setpriv' : false),
}, async (t) => {
  const { table, config } = rigConfig(t, 'f_perm', 1);
  // Still root (so it reads the checkout wherever it lives, even a 0700 folder), but without
  // CAP_NET_ADMIN in the bounding and inheritable sets: what nft sees as an unprivileged user.
  // A clean environment, as a service has.
  const child = spawn('setpriv', ['--inh-caps=-all', '--ambient-caps=-all', '--bounding-set=-net_admin',
    'env', '-i', `PATH=${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`, process.execPath, FSGUARD, 'run', '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  t.not(code, 0, `exit code ${code}`);
  const lines = stderr.trim().split('\n');
  t.equal(lines.length, 1, `one line on stderr: ${stderr}`);
  t.match(lines[0], /^fsguard: nftables \(libnftables\.so\.1\) refused: .*(Operation not permitted|Permission denied).*CAP_NET_ADMIN/);
  for (const line of stdout.split('\n').filter(Boolean)) JSON.parse(line);
  t.notOk(elementsIfAny(table, 'banned4').length, 'nothing was created');
});

t.test('SIGTERM during a flood: every decided ban is in the kernel after exit', netnsTestOptions(), async (t) => {
  const server = await EslTestServer.start({ heartbeatIntervalMs: 1000 });
  t.teardown(() => server.close());
  // A wide batch window makes it likely that a batch is pending at the signal.
  const { table, config } = rigConfig(t, 'f_term', server.port, { nft: { batchMs: 200 }, log: { level: 'info' } });
  const daemon = startDaemon(t, config);
  await server.waitForSubscriptions(1);
  const ips = Array.from({ length: 3000 }, (_, i) => ipv4Of(0x070000 + i));
  const replaying = server.replay(scannerEvents(ips));
  await daemon.waitForLog('first bans', BAN_LINE);
  daemon.child.kill('SIGTERM');
  t.equal(await daemon.waitExit(), 0, 'exit 0');
  await replaying;
  const decided = daemon.lines.filter(BAN_LINE).map((l) => l.target as string);
  t.ok(decided.length >= 1, `${decided.length} bans decided before the stop`);
  const inKernel = allBannedKeys(table);
  const lost = decided.filter((ip) => !inKernel.has(ip));
  t.same(lost.slice(0, 20), [], `no decided ban missing from the kernel (${lost.length} of ${decided.length})`);
  const stopping = daemon.lines.findIndex((l) => /stopping: writing pending bans/.test(l.msg ?? ''));
  t.ok(stopping >= 0 && daemon.lines.slice(stopping).some((l) => /stopped; bans stay/.test(l.msg ?? '')), 'stopped cleanly');
  t.same(daemon.strayStdout, []);
});

t.test('kill -9 during a flood: every ban decided more than 50 ms before the kill is in the kernel after the restart', netnsTestOptions(), async (t) => {
  const server = await EslTestServer.start({ heartbeatIntervalMs: 1000 });
  t.teardown(() => server.close());
  const { table, config } = rigConfig(t, 'f_kill9flood', server.port, { log: { level: 'info' } });
  const a = startDaemon(t, config);
  await server.waitForSubscriptions(1);
  const ips = Array.from({ length: 30_000 }, (_, i) => ipv4Of(0x100000 + i));
  void server.replay(scannerEvents(ips)).catch(() => undefined);
  await waitFor('the flood under way', () => a.lines.filter(BAN_LINE).length >= 4000, 60_000, 2);
  const killedAt = Date.now();
  a.child.kill('SIGKILL');
  await a.waitExit();
  // The ban line is logged right after the decision (its write already queued); time is ISO.
  const decided = a.lines.filter((l) => BAN_LINE(l) && Date.parse(String(l.time)) < killedAt - 50).map((l) => l.target as string);
  const b = startDaemon(t, config);
  await b.waitForLog('read-back line', (l) => /read back/.test(l.msg ?? ''), 30_000);
  const inKernel = allBannedKeys(table);
  const lost = decided.filter((ip) => !inKernel.has(ip));
  t.ok(decided.length >= 2000, `${decided.length} bans decided more than 50 ms before the kill`);
  t.same(lost.slice(0, 10), [], `none lost (${lost.length} of ${decided.length} missing)`);
  if (lost.length > 0) t.comment(JSON.stringify({ inKernel: inKernel.size, restart: b.lines.filter((l) => l.level !== 'debug').slice(0, 12), err: b.stderr }));
});
