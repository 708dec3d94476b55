// The ban journal across a restart, with the real library in the test namespace (the kernel's
// refusals injected where the runner calls it) and the real CLI as a child process: what a
// stop leaves in it, and what a replay at the next start writes back.
import t, { type Test } from 'tap';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { appendUnban, BanJournal, banJournalPath } from '../lib/daemon/ban-journal.js';
import { Guard } from '../lib/daemon/guard.js';
import type { AuthEvent } from '../lib/events/auth-event.js';
import { parseCidr, parseIp, type Cidr } from '../lib/net/ip.js';
import type { NftSetWriter } from '../lib/nft/index.js';
import { FsguardMetrics } from '../lib/obs/metrics.js';
import { createPolicy } from '../lib/policy/engine.js';
import { DEFAULT_POLICY_SETTINGS, type PolicySettings } from '../lib/policy/settings.js';
import { fsguardCli, writeConfig } from './support/daemon-process.js';
import { RecordingLogger } from './support/esl-test-helpers.js';
import { FaultyBackend, refuseHostWrites } from './support/faulty-nft.js';
import { netnsTestOptions } from './support/netns.js';
import { ImmediateScheduler, kernelElement, kernelWriter, nftCli, uniqueTableName } from './support/nft-kernel.js';

const ns = netnsTestOptions();
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A guard as `fsguard run` makes it, on `writer`, journaling into `path`. */
function guardWith(t: Test, writer: NftSetWriter, path: string, settings: PolicySettings = DEFAULT_POLICY_SETTINGS): { guard: Guard; logger: RecordingLogger } {
  const logger = new RecordingLogger();
  const journal = new BanJournal({ path, onError: (m) => t.fail(m) });
  return { guard: new Guard(createPolicy(settings), writer, logger, new FsguardMetrics(false), { allow: [], journal }), logger };
}

/** The table of `label`, a config naming it and a journal folder of its own, and that journal's path: what `fsguard unban` reads. */
function journalRig(label: string): { table: string; config: string; path: string } {
  const table = uniqueTableName(label);
  const journalDir = mkdtempSync(join(tmpdir(), 'fsguard-journal-'));
  const config = writeConfig({ esl: { host: '127.0.0.1', port: 1 }, nft: { table, journalDir }, metrics: { enabled: false } });
  return { table, config, path: banJournalPath({ journalDir, table }) };
}

/** A guard journaling into a folder of its own whose nft refused a cluster's manual ban of `ip` (it is left unwritten). */
async function refusedManualBan(t: Test, label: string, ip: string): Promise<{ table: string; path: string; first: ReturnType<typeof guardWith>; target: Cidr }> {
  const table = uniqueTableName(label);
  const path = join(mkdtempSync(join(tmpdir(), 'fsguard-journal-')), `${table}.bans.jsonl`);
  const backend = new FaultyBackend();
  const writer = kernelWriter(t, label, { backend, scheduler: new ImmediateScheduler() });
  const first = guardWith(t, writer, path);
  await first.guard.start();
  refuseHostWrites(backend, true);
  const target = parseCidr(ip)!;
  first.guard.manualBan(target, 3600, 'from the cluster');
  await writer.flush();
  await turn();
  t.equal(first.guard.unwrittenBans, 1, 'nft refused it');
  return { table, path, first, target };
}

/** The next start, on the library as it is, journaling into `path`: it must write the manual ban of `target` back. */
async function nextStartWritesBack(t: Test, label: string, path: string, table: string, target: Cidr): Promise<ReturnType<typeof guardWith>> {
  const second = guardWith(t, kernelWriter(t, label), path);
  await second.guard.start();
  await turn();
  const element = kernelElement(table, 'banned4', target.text);
  t.ok((element?.timeout ?? 0) > 3500, `written at the next start for its time left (${element?.timeout} s)`);
  t.match(element?.comment ?? '', /rule=manual/, 'as the manual ban it was');
  return second;
}

let n = 0;
const scanner = (ip: string): AuthEvent => ({
  kind: 'challenge', profile: 'internal', source: parseIp(ip)!, port: 5060, userAgent: 'friendly-scanner', callId: `jr${++n}`,
  timeUs: Date.now() * 1000, switchAddresses: ['192.0.2.10'], fromUser: '100', toUser: '100',
});

t.test('at stop, a ban nft failed to write stays in the journal and the next start writes it, also one never journaled before', ns, async (t) => {
  const label = 'jstop';
  // A cluster's manual ban, nft refusing it.
  const { table, path, first, target } = await refusedManualBan(t, label, '198.51.100.50');
  await first.guard.flush(); // SIGTERM: the last try fails too
  t.equal(kernelElement(table, 'banned4', target.text), undefined, 'not in the kernel at exit');
  t.ok(first.logger.records.some((r) => /in the journal: the next start writes them/.test(r.msg)), 'the stop says where it is');
  await nextStartWritesBack(t, label, path, table, target);
});

t.test('a cluster\'s manual ban is journaled when it is made: a daemon killed before nft wrote it writes it at the next start', ns, async (t) => {
  const label = 'jkill';
  const { table, path, target } = await refusedManualBan(t, label, '198.51.100.52');
  // kill -9: no flush, no closeJournal; what write() handed the kernel is all the next start has.
  const second = await nextStartWritesBack(t, label, path, table, target);
  t.ok(second.logger.records.some((r) => /not in the kernel \(the daemon was killed\?\)/.test(r.msg)), 'from the journal\'s replay');
});

t.test('a ban lifted by hand is not written back by the replay at the next start; one decided after the unban is', ns, async (t) => {
  const label = 'junban';
  const { table, config, path } = journalRig(label);
  const backend = new FaultyBackend();
  const writer = kernelWriter(t, label, { backend, scheduler: new ImmediateScheduler() });
  // No grace after an unban: the source that attacks again is banned again at once.
  const first = guardWith(t, writer, path, { ...DEFAULT_POLICY_SETTINGS, unbanGraceSeconds: 0 });
  await first.guard.start();
  const [byCliWhileDown, byNft, byCluster, again] = ['198.51.100.71', '198.51.100.72', '198.51.100.74', '198.51.100.73'];
  for (const ip of [byCliWhileDown, byNft, byCluster, again]) first.guard.onEvent(scanner(ip));
  await writer.flush();
  await turn();
  t.ok([byCliWhileDown, byNft, byCluster, again].every((ip) => kernelElement(table, 'banned4', ip)), 'four bans in the kernel (and in the journal)');

  // While the daemon runs: one lifted with `fsguard unban`, one with nft by hand.
  const unban = await fsguardCli(['unban', again, '--config', config]);
  t.equal(unban.status, 0, unban.stderr);
  nftCli(['delete', 'element', 'inet', table, 'banned4', `{ ${byNft} }`]);
  await first.guard.reconcile();
  t.equal(first.logger.records.filter((r) => /lifted outside fsguard/.test(r.msg)).length, 2, 'the daemon noticed both');
  // And one through the cluster (`fsguard unban` on another node).
  first.guard.manualUnban(parseCidr(byCluster)!);
  await writer.flush();
  t.equal(kernelElement(table, 'banned4', byCluster), undefined, 'lifted through the cluster');
  // `again` attacks again; nft refuses the ban, then the daemon is killed: the ban is in the journal only.
  refuseHostWrites(backend, true);
  first.guard.onEvent(scanner(again));
  await writer.flush();
  await turn();
  t.equal(first.guard.unwrittenBans, 1, 'banned again, not written');

  // With the daemon down, the operator lifts the first one.
  const down = await fsguardCli(['unban', byCliWhileDown, '--config', config]);
  t.equal(down.status, 0, down.stderr);
  t.equal(down.stderr, '', 'the journal took the unban');

  const second = guardWith(t, kernelWriter(t, label), path);
  await second.guard.start();
  await turn();
  t.equal(kernelElement(table, 'banned4', byCliWhileDown), undefined, 'the unban by `fsguard unban` with the daemon down stands');
  t.equal(kernelElement(table, 'banned4', byNft), undefined, 'the unban the daemon noticed stands');
  t.equal(kernelElement(table, 'banned4', byCluster), undefined, 'the cluster\'s unban stands');
  t.match(kernelElement(table, 'banned4', again)?.comment ?? '', /n=2/, 'the ban decided after an unban is written back');
});

t.test('`fsguard unban` of a ban only in the journal (the daemon killed before writing it) cancels it', ns, async (t) => {
  const label = 'jonly';
  const { table, config, path } = journalRig(label);
  const writer = kernelWriter(t, label);
  const first = guardWith(t, writer, path);
  await first.guard.start();
  const [pending, other] = ['198.51.100.81', '198.51.100.82'];
  const journal = new BanJournal({ path, onError: (m) => t.fail(m), defer: (fn) => fn() });
  for (const ip of [pending, other]) journal.record({ target: parseCidr(ip)!, expiresAtMs: Date.now() + 3_600_000, comment: { rule: 'scanner_user_agent', offences: 1 } });
  journal.close();
  const unban = await fsguardCli(['unban', pending, '--config', config]);
  t.equal(unban.status, 0, unban.stderr);
  t.match(unban.stdout, /only in the ban journal/, unban.stdout);
  const notBanned = await fsguardCli(['unban', '198.51.100.83', '--config', config]);
  t.equal(notBanned.status, 1, 'a target in neither is still "not banned"');
  t.match(notBanned.stderr, /not banned/);
  const second = guardWith(t, kernelWriter(t, label), path);
  await second.guard.start();
  await turn();
  t.equal(kernelElement(table, 'banned4', pending), undefined, 'the next start leaves the cancelled one out');
  t.ok(kernelElement(table, 'banned4', other), 'and writes the other journaled ban');
});

t.test('the journal\'s unban lines: the last line about a target wins; `fsguard unban` creates no journal', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fsguard-journal-'));
  const path = join(dir, 'fsguard.bans.jsonl');
  const cidr = (s: string) => parseCidr(s)!;
  t.equal(appendUnban(path, cidr('192.0.2.1'), 1), 'no-journal', 'no journal: nothing to honour');
  t.notOk(existsSync(path), 'and none made (root would own it)');
  const deferred: Array<() => void> = [];
  const journal = new BanJournal({ path, onError: (m) => t.fail(m), defer: (fn) => deferred.push(fn) });
  const ban = (target: string, e: number) => journal.record({ target: cidr(target), expiresAtMs: e, comment: { rule: 'scanner', offences: 1 } });
  ban('192.0.2.1', 1000);
  ban('192.0.2.2', 1000);
  ban('2001:db8::/64', 1000);
  journal.recordUnban(cidr('192.0.2.2'), 5);
  deferred.shift()!();
  t.equal(appendUnban(path, cidr('192.0.2.1'), 6), 'recorded', 'another process appends to it');
  ban('192.0.2.1', 2000);
  journal.recordUnban(cidr('2001:db8::/64'), 7);
  deferred.shift()!();
  journal.close();
  t.same(new BanJournal({ path, onError: (m) => t.fail(m) }).readBack().map((b) => [b.target.text, b.expiresAtMs]), [['192.0.2.1', 2000]],
    'unbanned ones left out, a ban after its unban kept');
});
