// `fsguard status`, end to end: the real daemon in the private network namespace, a TCP
// event socket replaying recorded traces, the real CLI reading the status socket — and the
// same CLI once the daemon has stopped, when only the kernel's bans are left to show.
import t from 'tap';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EslTestServer } from './support/esl-server.js';
import { DaemonProcess, fsguardCli, writeConfig, type LogLine, startDaemonWith } from './support/daemon-process.js';
import { netnsTestOptions } from './support/netns.js';
import { deleteTableIfExists, kernelElements, uniqueTableName } from './support/nft-kernel.js';
import type { StatusReport } from '../lib/status/report.js';

const SCENARIOS = new URL('../../../shared/scenarios/', import.meta.url).pathname;
const trace = (name: string): string[] => readFileSync(join(SCENARIOS, `${name}.jsonl`), 'utf8').split('\n').filter(Boolean);

const ATTACKER = '203.0.113.66';

function countBy<T>(items: readonly T[], key: (x: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of items) out[key(x)] = (out[key(x)] ?? 0) + 1;
  return out;
}

async function status(config: string): Promise<StatusReport & { running: boolean }> {
  const r = await fsguardCli(['status', '--json', '--config', config]);
  if (r.status !== 0) throw new Error(`status exit ${r.status}: ${r.stdout} ${r.stderr}`);
  return JSON.parse(r.stdout) as StatusReport & { running: boolean };
}

/** Polls `fsguard status --json` until `done` holds (bounded). */
async function statusWhen(config: string, what: string, done: (s: StatusReport) => boolean, timeoutMs = 60_000): Promise<StatusReport> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await status(config);
    if (done(s)) return s;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(s).slice(0, 600)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

t.test('status shows the figures of a replayed trace; with the daemon stopped, the kernel\'s bans', netnsTestOptions(), async (t) => {
  const server = await EslTestServer.start({ heartbeatIntervalMs: 200 });
  const table = uniqueTableName('st');
  const socket = join(mkdtempSync(join(tmpdir(), 'fsguard-st-')), 'run', 'status.sock');
  const config = writeConfig({
    esl: { host: '127.0.0.1', port: server.port, password: 'ClueCon' },
    nft: { table, reconcileSeconds: 0.5 },
    metrics: { enabled: false },
    status: { socket },
    log: { level: 'info' },
  });
  const daemon = startDaemonWith(t, config, server, table);
  await server.waitForSubscriptions(1);
  // A brute force (bans) beside an office, then a mass reboot with stale passwords (alerts).
  const lines = [...trace('brute-force-one-user'), ...trace('mass-reboot-office')];
  await server.replay(lines);
  const events = lines.map((l) => JSON.parse(l) as Record<string, string>);

  const s = await statusWhen(config, 'every event counted and FreeSWITCH identified', (x) => x.events.sinceStart === events.length && x.eventSocket.freeswitch !== null);
  t.equal(s.eventSocket.state, 'connected');
  t.equal(s.eventSocket.endpoint, `127.0.0.1:${server.port}`);
  t.ok(s.eventSocket.since !== null && Date.parse(s.eventSocket.since) <= Date.now(), 'connected since a moment in the past');
  t.same(s.eventSocket.freeswitch && { hostname: s.eventSocket.freeswitch.hostname, version: s.eventSocket.freeswitch.version }, { hostname: 'test', version: '1.10.9-release~64bit' }, 'host name and version from the HEARTBEAT');
  t.equal(s.daemon.config, config);
  t.ok(s.events.windowSeconds < 60, 'within the first minute the window starts at start');
  t.same(s.events.lastMinute.byKind, countBy(events, (e) => e['Event-Subclass']!), 'events in the last minute by kind, as in the trace');
  t.same(s.profiles.seen, Object.keys(countBy(events, (e) => e['profile-name']!)).sort(), 'profiles seen');
  t.equal(s.profiles.watched, 'all');

  // Bans: since start by rule as the ban log lines say; now, as the kernel holds them.
  const banLines = daemon.lines.filter((l: LogLine) => l.event === 'ban');
  t.ok(banLines.some((l) => l.target === ATTACKER), 'the attacker was banned');
  t.same(s.bans.sinceStart.byRule, countBy(banLines, (l) => String(l.rule)));
  t.equal(s.bans.sinceStart.total, banLines.length);
  const inKernel = kernelElements(table, 'banned4').length;
  t.equal(s.bans.now.ipv4Hosts, inKernel, 'bans now = elements in the kernel set');
  t.equal(s.bans.now.total, inKernel);
  t.equal(s.bans.unwritten, 0);

  // Alerts: the stale-password phones of the reboot, by kind and the latest in full.
  const alertLines = daemon.lines.filter((l: LogLine) => l.event === 'alert');
  t.ok(alertLines.length > 0, 'the trace raised alerts');
  t.same(s.alerts.sinceStart, countBy(alertLines, (l) => String(l.kind)));
  const last = alertLines[alertLines.length - 1]!;
  t.match(s.alerts.latest[0], { kind: last.kind, source: last.source, profile: last.profile, message: last.msg, ...(last.user !== undefined ? { user: last.user } : {}), ...(last.userAgent !== undefined ? { userAgent: last.userAgent } : {}) }, 'the latest alert names user, source and user agent');
  t.ok(s.alerts.latest.length <= 10);

  t.ok(s.nearestThresholds.length > 0, 'the stale-password phones are near a threshold');
  for (const n of s.nearestThresholds) {
    t.ok(n.fraction > 0 && n.fraction < 1 && n.value < n.threshold, `${n.source} ${n.rule} ${n.value}/${n.threshold} is below its threshold`);
    t.ok(events.some((e) => e['network-ip'] === n.source), `${n.source} is a source of the trace`);
  }
  t.match(s.nftWriter, { table: `inet ${table}`, healthy: true, errors: 0 });
  t.ok(s.nftWriter.batches >= 1, 'batches written');
  t.same(s.notifications, [], 'no notification channel configured');

  t.equal(statSync(socket).mode & 0o777, 0o660, 'socket: root and the group only');
  t.equal(statSync(join(socket, '..')).mode & 0o777, 0o750, 'its folder: 0750');

  const human = await fsguardCli(['status', '--config', config]);
  t.equal(human.status, 0, human.stderr);
  if (process.env.SHOW_STATUS) t.comment(human.stdout);
  t.match(human.stdout, /^fsguard is running \(pid \d+/);
  t.match(human.stdout, new RegExp(`connected to 127\\.0\\.0\\.1:${server.port} since .* FreeSWITCH 1\\.10\\.9-release~64bit on test`));
  for (const [rule, n] of Object.entries(s.bans.sinceStart.byRule)) t.match(human.stdout, new RegExp(`bans since start +${s.bans.sinceStart.total}: .*${rule} ${n}`), `ban rule ${rule} shown`);
  t.match(human.stdout, new RegExp(`bans now +${inKernel} \\(${inKernel} IPv4 hosts?\\)`));
  const stale = alertLines.find((l) => l.kind === 'misprovisioned_device')!;
  t.match(human.stdout, new RegExp(`misprovisioned_device \\(${String(stale.profile)}\\): user ${String(stale.user)} at ${String(stale.source).replace(/\./g, '\\.')}`), 'a stale-password phone: user and source');
  t.match(human.stdout, /nft writer +ok:/);

  // Stopped: it says so and why, and still lists what is in the kernel.
  t.equal(await daemon.stop('SIGTERM'), 0);
  const down = await fsguardCli(['status', '--config', config]);
  t.equal(down.status, 3, 'exit 3: not running');
  t.match(down.stdout, /^fsguard is NOT RUNNING: no status socket at /);
  t.match(down.stdout, new RegExp(`${ATTACKER.replace(/\./g, '\\.')}\\s+\\d`), 'the kernel\'s ban of the attacker is listed');
  t.match(down.stdout, new RegExp(`${inKernel} bans?`));
  const downJson = await fsguardCli(['status', '--json', '--config', config]);
  t.equal(downJson.status, 3);
  const dj = JSON.parse(downJson.stdout) as { running: boolean; reason: { socket: string }; kernel: { bans: Array<{ target: string; rule: string }> } };
  t.equal(dj.running, false);
  t.match(dj.reason.socket, /no status socket/);
  t.ok(dj.kernel.bans.some((b) => b.target === ATTACKER), 'JSON: the kernel\'s bans');
  t.equal(dj.kernel.bans.length, inKernel);

  // Killed: the socket is left behind, and nobody answers on it.
  const again = DaemonProcess.start(config);
  t.teardown(() => again.stop('SIGKILL'));
  await again.waitForLog('status socket', (l) => /status at the Unix socket/.test(l.msg ?? ''));
  await again.stop('SIGKILL');
  const staleSocket = await fsguardCli(['status', '--config', config]);
  t.equal(staleSocket.status, 3);
  t.match(staleSocket.stdout, /nobody answers on .* \(left by a daemon that stopped\)/);
  t.match(staleSocket.stdout, new RegExp(ATTACKER.replace(/\./g, '\\.')));
});

t.test('daemon down: the unit\'s state and its last journal line when systemd has them; nothing when it has not', netnsTestOptions(), async (t) => {
  const table = uniqueTableName('stdown');
  t.teardown(() => deleteTableIfExists('inet', table));
  const config = writeConfig({ nft: { table }, metrics: { enabled: false } });
  t.equal((await fsguardCli(['ban', '203.0.113.77', '--for', '1h', '--config', config])).status, 0);

  // This machine has no running systemd (a container): systemctl and journalctl fail, and
  // status says only what it knows.
  const bare = await fsguardCli(['status', '--config', config]);
  t.equal(bare.status, 3);
  t.match(bare.stdout, /^fsguard is NOT RUNNING: no status socket at .*\n {2}config .*\nbans in the kernel/);
  t.match(bare.stdout, /203\.0\.113\.77\s+\d/);

  // With systemd: its answers in the format `systemctl show` and `journalctl -o cat` print
  // (systemd cannot run here; these two print what it would, including a hostile log line).
  const bin = mkdtempSync(join(tmpdir(), 'fsguard-systemd-'));
  const { writeFileSync, chmodSync } = await import('node:fs');
  writeFileSync(join(bin, 'systemctl'), '#!/bin/sh\nprintf "LoadState=loaded\\nActiveState=failed\\nSubState=failed\\nResult=exit-code\\nExecMainStatus=78\\nStateChangeTimestamp=Tue 2026-12-01 09:10:11 UTC\\n"\n');
  writeFileSync(join(bin, 'journalctl'), '#!/bin/sh\nprintf \'{"level":"error","time":1764580211000,"msg":"invalid configuration: notify.mail.to: needed \\\\u001b[31m"}\\n\'\n');
  chmodSync(join(bin, 'systemctl'), 0o755);
  chmodSync(join(bin, 'journalctl'), 0o755);
  const { runProcess, FSGUARD, cliEnv } = await import('./support/daemon-process.js');
  const env = cliEnv({ PATH: `${bin}:${process.env.PATH ?? ''}` });
  const withUnit = await runProcess(FSGUARD, ['status', '--config', config], { env });
  t.equal(withUnit.status, 3);
  t.match(withUnit.stdout, /^ {2}unit fsguard\.service: failed \(failed\), result exit-code, exit status 78 since Tue 2026-12-01 09:10:11 UTC$/m);
  t.match(withUnit.stdout, /^ {2}last log line: 2025-12-01T09:10:11\.000Z invalid configuration: notify\.mail\.to: needed \S+\[31m$/m);
  t.notMatch(withUnit.stdout, /\u001b/, 'the log line is escaped');
  const json = await runProcess(FSGUARD, ['status', '--json', '--config', config], { env });
  const j = JSON.parse(json.stdout) as { running: boolean; reason: { unit: { activeState: string; exitStatus: string }; lastLogLine: string } };
  t.match(j, { running: false, reason: { unit: { activeState: 'failed', exitStatus: '78' } } });
  t.match(j.reason.lastLogLine, /invalid configuration/);
});
