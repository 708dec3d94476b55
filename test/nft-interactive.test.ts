// InteractiveNftRunner against the real nft in the private test namespace: one long-lived
// `nft -j -i`, a marker after every request, replies matched in order, listings answered on
// stdout; big batches and a process that is down or unusable go to the spawn runner.
import { chmodSync, existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import {
  classifyRun, InteractiveNftRunner, nftJson, SpawnNftRunner, type InteractiveNftStatus, type NftRunResult,
} from '../lib/nft/index.js';
import type { NftCommand } from '../lib/nft/schema.js';
import { netnsTestOptions } from './support/netns.js';
import { deleteTableIfExists, kernelElements, RecordingRunner, uniqueTableName } from './support/nft-kernel.js';

const nsOptions = netnsTestOptions();

function setupCommands(table: string): NftCommand[] {
  return [
    nftJson.addTable('inet', table),
    nftJson.addSet({ family: 'inet', table, name: 's', type: 'ipv4_addr', flags: ['timeout'] }),
  ];
}

function create(table: string, ...ips: string[]): NftCommand[] {
  return [nftJson.createElements(nftJson.elements('inet', table, 's', ips.map((ip) => nftJson.element(ip, { timeout: 600, comment: 'fsguard rule=test n=1' }))))];
}

const kind = (r: NftRunResult): string => classifyRun(r, 'nft')?.kind ?? 'ok';

function fixture(t: { teardown(fn: () => void | Promise<void>): void }, label: string, options: ConstructorParameters<typeof InteractiveNftRunner>[0] = {}) {
  const table = uniqueTableName(label);
  const fallback = new RecordingRunner(new SpawnNftRunner());
  const statuses: InteractiveNftStatus[] = [];
  const runner = new InteractiveNftRunner({ fallback, onStatus: (s) => statuses.push(s), ...options });
  t.teardown(async () => {
    await runner.close();
    deleteTableIfExists('inet', table);
  });
  return { table, fallback, statuses, runner };
}

t.test('writes go through one process; a refused line is reported with nft\'s error and changes nothing', nsOptions, async (t) => {
  const { table, fallback, statuses, runner } = fixture(t, 'i_basic');
  t.equal(kind(await runner.run(setupCommands(table))), 'ok');
  t.equal(kind(await runner.run(create(table, '192.0.2.1'))), 'ok');
  const refused = await runner.run([...create(table, '192.0.2.2'), ...create(table, '192.0.2.1')]);
  t.equal(kind(refused), 'exists', 'EEXIST classified as for the spawn runner');
  t.match(refused.kind === 'exited' ? refused.stderr : '', /File exists/);
  t.equal(kind(await runner.run(create(table, '192.0.2.3'))), 'ok', 'the next line is answered on its own');
  t.same(kernelElements(table, 's').map((e) => e.key).sort(), ['192.0.2.1', '192.0.2.3'], 'the refused line was one atomic transaction: 192.0.2.2 is not there');
  t.same(fallback.runs, [], 'nothing was spawned');
  t.same(statuses.map((s) => s.kind), ['started'], 'one process');
  t.ok(runner.interactive);
});

t.test('pipelined requests are answered in order, each with its own errors', nsOptions, async (t) => {
  const { table, runner } = fixture(t, 'i_pipe');
  await runner.run(setupCommands(table));
  await runner.run(create(table, '198.51.100.5'));
  const results = await Promise.all([
    runner.run(create(table, '198.51.100.1')),
    runner.run(create(table, '198.51.100.5')),
    runner.run([nftJson.createElements(nftJson.elements('inet', table, 'missing', ['198.51.100.9']))]),
    runner.run(create(table, '198.51.100.2')),
  ]);
  t.same(results.map(kind), ['ok', 'exists', 'missing-table', 'ok']);
  t.same(kernelElements(table, 's').map((e) => e.key).sort(), ['198.51.100.1', '198.51.100.2', '198.51.100.5']);
});

t.test('lines over maxLineBytes go to the spawn runner; a listing is answered by the process, as the spawn runner answers it', nsOptions, async (t) => {
  const { table, fallback, runner } = fixture(t, 'i_route', { maxLineBytes: 2000 });
  await runner.run(setupCommands(table));
  const big = Array.from({ length: 40 }, (_, i) => `203.0.113.${i + 1}`);
  t.equal(kind(await runner.run(create(table, ...big))), 'ok');
  t.equal(fallback.runs.length, 1, 'the big batch was spawned');
  const listed = await runner.run([nftJson.listSet('inet', table, 's')]);
  t.equal(kind(listed), 'ok');
  const spawned = await new SpawnNftRunner().run([nftJson.listSet('inet', table, 's')]);
  // The same document but for `expires`, which counts down between the two listings.
  const elements = (r: NftRunResult): unknown => (r.kind === 'exited' ? JSON.parse(r.stdout, (k, v: unknown) => (k === 'expires' ? undefined : v)) : null);
  t.same(elements(listed), elements(spawned), 'the same JSON as a spawned nft -j list (but for expires)');
  t.equal(fallback.runs.length, 1, 'the listing was not spawned');
  // A listing that fails, between writes, and a listing after it: each gets its own answer.
  const [w1, missing, w2, again] = await Promise.all([
    runner.run(create(table, '198.51.100.1')),
    runner.run([nftJson.listSet('inet', table, 'nonexistent')]),
    runner.run(create(table, '198.51.100.2')),
    runner.run([nftJson.listSet('inet', table, 's')]),
  ]);
  t.same([kind(w1), kind(missing), kind(w2)], ['ok', 'missing-table', 'ok']);
  t.equal(missing.kind === 'exited' ? missing.stdout : 'x', '', 'a failed listing has no output');
  t.match(again.kind === 'exited' ? again.stdout : '', /198\.51\.100\.2/, 'the listing after it sees both writes');
  t.equal(fallback.runs.length, 2, 'the second listing, sent while the first was in flight, was spawned');
  // Two listings one after the other: both through the process.
  for (let i = 0; i < 2; i++) t.match((await runner.run([nftJson.listSet('inet', table, 's')])) as { stdout: string }, { stdout: /198\.51\.100\.1/ });
  t.equal(fallback.runs.length, 2);
  t.equal(kernelElements(table, 's').length, 42);
});

t.test('a killed process fails what it had (transient), the spawn runner bridges the restart delay, then a new process', nsOptions, async (t) => {
  const { table, fallback, statuses, runner } = fixture(t, 'i_kill', { restartDelayMs: 300 });
  await runner.run(setupCommands(table));
  const pid = statuses.find((s) => s.kind === 'started')?.pid ?? 0;
  t.ok(pid > 0);
  const pending = runner.run(create(table, '192.0.2.10'));
  process.kill(pid, 'SIGKILL');
  const result = await pending;
  // It may have committed before the kill; either way the writer's retry makes it right.
  if (result.kind === 'killed') t.equal(kind(result), 'transient', 'a kill is transient, retried by executeNft');
  else t.equal(kind(result), 'ok');
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.equal(kind(await runner.run(create(table, '192.0.2.11'))), 'ok', 'written by the fallback meanwhile');
  t.equal(fallback.runs.length, 1);
  await new Promise((resolve) => setTimeout(resolve, 350));
  t.equal(kind(await runner.run(create(table, '192.0.2.12'))), 'ok');
  t.equal(fallback.runs.length, 1, 'a new interactive process answered');
  t.same(statuses.map((s) => s.kind), ['started', 'ended', 'started']);
  t.ok(kernelElements(table, 's').some((e) => e.key === '192.0.2.12'));
});

t.test('a binary without interactive mode: every request is spawned, and interactive mode is given up', nsOptions, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fsguard-noi-'));
  const wrapper = join(dir, 'nft');
  writeFileSync(wrapper, '#!/bin/sh\nif [ "$2" = "-i" ]; then echo "Error: no interactive mode" >&2; exit 1; fi\nexec nft "$@"\n');
  chmodSync(wrapper, 0o755);
  const fallback = new RecordingRunner(new SpawnNftRunner({ binary: wrapper }));
  const { table, statuses, runner } = fixture(t, 'i_noi', { binary: wrapper, fallback, restartDelayMs: 1, maxRestartDelayMs: 1, maxStartFailures: 2 });
  t.equal(kind(await runner.run(setupCommands(table))), 'ok');
  for (let i = 1; i <= 4; i++) {
    t.equal(kind(await runner.run(create(table, `192.0.2.${i}`))), 'ok');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  t.equal(fallback.runs.length, 5, 'every request ran through the spawn runner');
  t.equal(statuses.filter((s) => s.kind === 'given-up').length, 1, 'given up once');
  t.equal(kernelElements(table, 's').length, 4);
});

t.test('a process that never answers is killed after timeoutMs: the request fails as a timeout', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fsguard-mute-'));
  const fake = join(dir, 'nft');
  // Answers its first marker (the start-up probe), then swallows everything.
  writeFileSync(fake, '#!/bin/sh\nread -r probe\nprintf "Error: syntax error\\n%s\\n   ^\\n" "$probe" >&2\nexec cat > /dev/null\n');
  chmodSync(fake, 0o755);
  const runner = new InteractiveNftRunner({ binary: fake, timeoutMs: 300, fallback: new RecordingRunner(new SpawnNftRunner({ binary: fake })) });
  t.teardown(() => runner.close());
  const result = await runner.run(create('x', '192.0.2.1'));
  t.equal(result.kind, 'killed');
  t.ok(result.kind === 'killed' && result.timedOut, 'reported as timed out');
  t.equal(kind(result), 'transient');
});

t.test('nft\'s line editor never writes a history file into HOME', nsOptions, async (t) => {
  const home = mkdtempSync(join(tmpdir(), 'fsguard-home-'));
  const saved = process.env.HOME;
  process.env.HOME = home;
  t.teardown(() => { process.env.HOME = saved; });
  const { table, runner } = fixture(t, 'i_home');
  await runner.run(setupCommands(table));
  await runner.run(create(table, '192.0.2.1'));
  await runner.close();
  t.notOk(existsSync(join(home, '.nft.history')), 'no ~/.nft.history');
});

t.test('a listing whose output never comes: the process is ended and the spawn runner lists', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fsguard-quiet-'));
  const fake = join(dir, 'nft');
  // Answers every marker as nft does, and prints nothing on stdout, listings included.
  writeFileSync(fake, '#!/bin/sh\nwhile read -r line; do case "$line" in fsguard-sync-*) printf "Error: syntax error\\n%s\\n   ^\\n" "$line" >&2;; esac; done\n');
  chmodSync(fake, 0o755);
  const listed: NftRunResult = { kind: 'exited', exitCode: 0, stdout: '{"nftables":[]}', stderr: '' };
  const spawned: NftCommand[][] = [];
  const fallback = { binary: fake, run: (commands: readonly NftCommand[]) => { spawned.push([...commands]); return Promise.resolve(listed); } };
  const statuses: InteractiveNftStatus[] = [];
  const runner = new InteractiveNftRunner({ binary: fake, fallback, onStatus: (s) => statuses.push(s) });
  t.teardown(() => runner.close());
  t.equal(kind(await runner.run(create('x', '192.0.2.1'))), 'ok', 'a write is answered by its marker');
  const started = Date.now();
  const result = await runner.run([nftJson.listSet('inet', 'x', 's')]);
  t.same(result, listed, 'the spawn runner answered the listing');
  t.ok(Date.now() - started >= 900, 'after waiting for the line');
  t.equal(spawned.length, 1);
  t.ok(statuses.some((s) => s.kind === 'ended' && /listing printed nothing/.test(s.reason)), 'the process was ended');
});

t.test('a listing that may be big is spawned (writes would queue behind it); a small one is not', nsOptions, async (t) => {
  const { table, fallback, runner } = fixture(t, 'i_biglist', { maxListingBytes: 1500 });
  await runner.run(setupCommands(table));
  const list = (): Promise<NftRunResult> => runner.run([nftJson.listSet('inet', table, 's')]);
  t.equal(kind(await list()), 'ok');
  t.equal(fallback.runs.length, 0, 'a small table: the listing went to the process');
  await runner.run(create(table, '192.0.2.1'));
  t.equal(kind(await list()), 'ok');
  t.equal(fallback.runs.length, 0, 'one element written since: still the process');
  const many = Array.from({ length: 30 }, (_, i) => `203.0.113.${i + 1}`);
  await runner.run(create(table, ...many));
  const big = await list();
  t.match(big.kind === 'exited' ? big.stdout : '', /203\.0\.113\.30/);
  t.equal(fallback.runs.length, 1, 'after writes of more than maxListingBytes the listing was spawned');
  await list();
  t.equal(fallback.runs.length, 2, 'and after a listing of more than maxListingBytes too');
  await runner.run([nftJson.deleteElements(nftJson.elements('inet', table, 's', [...many, '192.0.2.1']))]);
  await list();
  t.equal(fallback.runs.length, 3, 'spawned once more (the last was big, and a delete was written since)');
  await list();
  t.equal(fallback.runs.length, 3, 'the spawned one was small and nothing was written since: back to the process');
});

