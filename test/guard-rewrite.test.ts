// A ban the guard decided and nft failed to write, for a target whose earlier, shorter ban is
// still in the kernel: the element there is not this ban. The reconcile (and the journal's
// replay at start) must write it again — raise the timeout — not take the old element for it,
// or the ban ends at the old, earlier time. Real library in the test namespace, the kernel's
// refusal injected where the runner calls it.
import t, { type Test } from 'tap';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BanJournal } from '../lib/daemon/ban-journal.js';
import { Guard } from '../lib/daemon/guard.js';
import type { AuthEvent } from '../lib/events/auth-event.js';
import { parseCidr, parseIp } from '../lib/net/ip.js';
import type { NftSetWriter } from '../lib/nft/index.js';
import { FsguardMetrics } from '../lib/obs/metrics.js';
import { createPolicy } from '../lib/policy/engine.js';
import { DEFAULT_POLICY_SETTINGS } from '../lib/policy/settings.js';
import { RecordingLogger } from './support/esl-test-helpers.js';
import { FaultyBackend, refuseHostWrites } from './support/faulty-nft.js';
import { netnsTestOptions } from './support/netns.js';
import { ImmediateScheduler, kernelElement, kernelWriter, uniqueTableName } from './support/nft-kernel.js';

const ns = netnsTestOptions();
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A real writer on the table of `label` whose library is `backend`; its retries run on the next turns. */
function faultyWriter(t: Test, label: string, backend: FaultyBackend): { writer: NftSetWriter; table: string } {
  return { writer: kernelWriter(t, label, { backend, scheduler: new ImmediateScheduler() }), table: uniqueTableName(label) };
}

let n = 0;
const scanner = (ip: string): AuthEvent => ({
  kind: 'challenge', profile: 'internal', source: parseIp(ip)!, port: 5060, userAgent: 'friendly-scanner', callId: `rw${++n}`,
  timeUs: Date.now() * 1000, switchAddresses: ['192.0.2.10'], fromUser: '100', toUser: '100',
});

t.test('a longer ban whose write failed is written again by the reconcile although the shorter one is in the kernel', ns, async (t) => {
  const backend = new FaultyBackend();
  const { writer, table } = faultyWriter(t, 'rewrite', backend);
  const guard = new Guard(createPolicy(DEFAULT_POLICY_SETTINGS), writer, new RecordingLogger(), new FsguardMetrics(false), { allow: [] });
  await guard.start();
  const target = parseCidr('198.51.100.40')!;
  // A cluster node's `fsguard ban`, then a longer one for the same address.
  guard.manualBan(target, 600, 'first');
  await writer.flush();
  t.equal(kernelElement(table, 'banned4', target.text)?.timeout, 600, 'the first ban is in the kernel');

  refuseHostWrites(backend, true);
  guard.manualBan(target, 7200, 'longer');
  await writer.flush();
  await turn();
  t.ok(backend.failed > 0, 'the kernel refused the longer ban');
  t.equal(guard.unwrittenBans, 1, 'kept for the next reconcile');
  t.equal(kernelElement(table, 'banned4', target.text)?.timeout, 600, 'the kernel still has the first one');

  refuseHostWrites(backend, false);
  await guard.reconcile();
  await writer.flush();
  await turn();
  const element = kernelElement(table, 'banned4', target.text);
  // Its time left when retried: the decision's 7200 s less the moments since (whole seconds).
  t.ok((element?.timeout ?? 0) > 7100, `the reconcile wrote the longer ban: the timeout is raised (${element?.timeout} s)`);
  t.match(element?.comment ?? '', /longer/, 'with its comment');
  t.equal(guard.unwrittenBans, 0, 'nothing left unwritten');
});

t.test('at start, a journaled ban longer than the element in the kernel raises its timeout', ns, async (t) => {
  const backend = new FaultyBackend();
  const { writer, table } = faultyWriter(t, 'replaylonger', backend);
  const path = join(mkdtempSync(join(tmpdir(), 'fsguard-journal-')), `${table}.bans.jsonl`);
  const journal = new BanJournal({ path, onError: (m) => t.fail(m) });
  const first = new Guard(createPolicy(DEFAULT_POLICY_SETTINGS), writer, new RecordingLogger(), new FsguardMetrics(false), { allow: [], journal });
  await first.start();
  const ip = '198.51.100.41';
  // The element an earlier, shorter ban left (the guard has not read it back yet).
  t.equal((await writer.ban(parseCidr(ip)!, 120, { rule: 'scanner', offences: 1 })).status, 'written');
  refuseHostWrites(backend, true);
  first.onEvent(scanner(ip));
  await writer.flush();
  await turn();
  t.equal(first.unwrittenBans, 1, 'the ban the policy decided (an hour) was not written');
  t.equal(kernelElement(table, 'banned4', ip)?.timeout, 120, 'the kernel has the shorter one');
  // The daemon is killed here: its decision is in the journal only.

  const writer2 = kernelWriter(t, 'replaylonger');
  const second = new Guard(createPolicy(DEFAULT_POLICY_SETTINGS), writer2, new RecordingLogger(), new FsguardMetrics(false), { allow: [], journal: new BanJournal({ path, onError: (m) => t.fail(m) }) });
  await second.start();
  await writer2.flush();
  const timeout = kernelElement(table, 'banned4', ip)?.timeout ?? 0;
  t.ok(timeout > DEFAULT_POLICY_SETTINGS.banSeconds - 100, `the replay wrote the journaled ban over the shorter element (${timeout} s)`);
});
