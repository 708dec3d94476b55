// The ban journal across a restart, with the real library in the test namespace (the kernel's
// refusals injected where the runner calls it) and the real CLI as a child process: what a
// stop leaves in it, and what a replay at the next start writes back.
import t, { type Test } from 'tap';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BanJournal } from '../lib/daemon/ban-journal.js';
import { Guard } from '../lib/daemon/guard.js';
import { parseCidr } from '../lib/net/ip.js';
import type { NftSetWriter } from '../lib/nft/index.js';
import { FsguardMetrics } from '../lib/obs/metrics.js';
import { createPolicy } from '../lib/policy/engine.js';
import { DEFAULT_POLICY_SETTINGS, type PolicySettings } from '../lib/policy/settings.js';
import { RecordingLogger } from './support/esl-test-helpers.js';
import { FaultyBackend, refuseHostWrites } from './support/faulty-nft.js';
import { netnsTestOptions } from './support/netns.js';
import { ImmediateScheduler, kernelElement, kernelWriter, uniqueTableName } from './support/nft-kernel.js';

const ns = netnsTestOptions();
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A guard as `fsguard run` makes it, on `writer`, journaling into `path`. */
function guardWith(t: Test, writer: NftSetWriter, path: string, settings: PolicySettings = DEFAULT_POLICY_SETTINGS): { guard: Guard; logger: RecordingLogger } {
  const logger = new RecordingLogger();
  const journal = new BanJournal({ path, onError: (m) => t.fail(m) });
  return { guard: new Guard(createPolicy(settings), writer, logger, new FsguardMetrics(false), { allow: [], journal }), logger };
}

t.test('at stop, a ban nft failed to write stays in the journal and the next start writes it, also one never journaled before', ns, async (t) => {
  const label = 'jstop';
  const table = uniqueTableName(label);
  const path = join(mkdtempSync(join(tmpdir(), 'fsguard-journal-')), `${table}.bans.jsonl`);
  const backend = new FaultyBackend();
  const writer = kernelWriter(t, label, { backend, scheduler: new ImmediateScheduler() });
  const first = guardWith(t, writer, path);
  await first.guard.start();
  refuseHostWrites(backend, true);
  // A cluster's manual ban: the cluster brings it, the journal had no line of it.
  const target = parseCidr('198.51.100.50')!;
  first.guard.manualBan(target, 3600, 'from the cluster');
  await writer.flush();
  await turn();
  t.equal(first.guard.unwrittenBans, 1, 'nft refused it');
  await first.guard.flush(); // SIGTERM: the last try fails too
  t.equal(kernelElement(table, 'banned4', target.text), undefined, 'not in the kernel at exit');
  t.ok(first.logger.records.some((r) => /in the journal: the next start writes them/.test(r.msg)), 'the stop says where it is');

  const second = guardWith(t, kernelWriter(t, label), path);
  await second.guard.start();
  await turn();
  const element = kernelElement(table, 'banned4', target.text);
  t.ok((element?.timeout ?? 0) > 3500, `written at the next start for its time left (${element?.timeout} s)`);
  t.match(element?.comment ?? '', /rule=manual/, 'as the manual ban it was');
});
