// Pure parts of lib/nft (comments, output parsing, error classification, layout checks)
// and the failure paths a real nft cannot be made to produce on demand (transient netlink
// errors, EMSGSIZE), driven through a scripted runner. No nft or namespace needed.
import t from 'tap';
import { parseCidr, type Cidr } from '../lib/net/ip.js';
import {
  classifyRun,
  formatBanComment,
  MAX_COMMENT_BYTES,
  NftLayoutError,
  NftSetWriter,
  parseBanComment,
  parseListOutput,
  resolveNftLayout,
  sanitizeCommentText,
  setRoleFor,
  createTableScript,
  type NftError,
  type NftRunResult,
} from '../lib/nft/index.js';
import type { NftCommand } from '../lib/nft/schema.js';
import { ImmediateScheduler, ScriptedRunner } from './support/nft-kernel.js';

function cidr(text: string): Cidr {
  const c = parseCidr(text);
  if (!c) throw new Error(`bad cidr in test: ${text}`);
  return c;
}

const ok: NftRunResult = { kind: 'completed', ok: true, output: '', error: '' };
function failed(error: string): NftRunResult {
  return { kind: 'completed', ok: false, output: '', error };
}

/** Elements a transaction writes: created ones, plus each set's add+delete+add counted once. */
function addedElements(commands: readonly NftCommand[]): number {
  let created = 0;
  const replaced = new Map<string, number>();
  for (const c of commands) {
    if ('create' in c) created += c.create.element.elem.length;
    if ('add' in c && 'element' in c.add) replaced.set(c.add.element.name, c.add.element.elem.length);
  }
  return created + [...replaced.values()].reduce((a, b) => a + b, 0);
}

t.test('comment format round-trips and stays within 128 printable bytes', async (t) => {
  t.equal(formatBanComment({ rule: 'brute-force', offences: 3 }), 'fsguard rule=brute-force n=3');
  t.same(parseBanComment('fsguard rule=brute-force n=3'), { rule: 'brute-force', offences: 3 });
  const withNote = formatBanComment({ rule: 'manual', offences: 1, note: 'asked by "ops"\n' });
  t.equal(withNote, 'fsguard rule=manual n=1 note=asked by ?ops??');
  t.same(parseBanComment(withNote), { rule: 'manual', offences: 1, note: 'asked by ?ops??' });
  t.equal(formatBanComment({ rule: '', offences: 0 }), 'fsguard rule=unknown n=1', 'empty rule and n<1 normalized');
  t.equal(formatBanComment({ rule: 'x'.repeat(500), offences: 1e12 }).length, 'fsguard rule= n=999999999'.length + 48);
  const big = formatBanComment({ rule: 'r'.repeat(48), offences: 999_999_999, note: '\u00e9'.repeat(70_000) });
  t.ok(Buffer.byteLength(big) <= MAX_COMMENT_BYTES, `${Buffer.byteLength(big)} bytes`);
  t.ok(/^[\x20-\x7e]+$/.test(big));
  for (const foreign of ['', 'theirs', 'fsguard', 'fsguard rule=a', 'fsguard rule=a n=x', 'fsguard rule=a b n=1', 'fsguard rule=a n=1 extra']) {
    t.equal(parseBanComment(foreign), null, `not ours: ${JSON.stringify(foreign)}`);
  }
  t.equal(sanitizeCommentText('a\u0000b\u001b[0m\u007f"\'\\c\u2028'), 'a?b?[0m????c?');
  t.equal(sanitizeCommentText('x'.repeat(65536)).length, MAX_COMMENT_BYTES);
});

t.test('parses nft 1.0.6 list output: strings, elem objects, prefixes, ranges', async (t) => {
  const layout = resolveNftLayout({ table: 'fsguard' });
  // Verbatim shape of `nft -j list table inet fsguard` (nft 1.0.6), plus a foreign table.
  const output = JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } },
      { table: { family: 'inet', name: 'fsguard', handle: 1 } },
      { set: { family: 'inet', name: 'banned4', table: 'fsguard', type: 'ipv4_addr', handle: 1, flags: ['timeout'],
        elem: [{ elem: { val: '192.0.2.1', timeout: 3600, expires: 3599, comment: 'fsguard rule=x n=1' } }, '192.0.2.2'] } },
      { set: { family: 'inet', name: 'banned6', table: 'fsguard', type: 'ipv6_addr', handle: 2, flags: ['timeout'] } },
      { set: { family: 'inet', name: 'banned6p64', table: 'fsguard', type: 'ipv6_addr', handle: 5, flags: ['timeout'],
        elem: [{ elem: { val: '2001:db8:64::', timeout: 600, expires: 5, comment: 'fsguard rule=y n=2' } }, '2001:db8:64::1'] } },
      { set: { family: 'inet', name: 'banned6net', table: 'fsguard', type: 'ipv6_addr', handle: 3, flags: ['interval', 'timeout'],
        elem: [
          { elem: { val: { prefix: { addr: '2001:db8::', len: 64 } }, timeout: 3600, expires: 10, comment: 'p' } },
          { elem: { val: { range: ['2001:db8:1::', '2001:db8:1::ff'] }, timeout: 60, expires: 59 } },
          { elem: { val: { range: ['2001:db8:1::1', '2001:db8:1::5'] }, timeout: 60, expires: 59 } },
          { elem: { val: { weird: true } } },
        ] } },
      { set: { family: 'inet', name: 'other', table: 'fsguard', type: 'ipv4_addr', elem: ['10.0.0.1'] } },
      { set: { family: 'ip', name: 'banned4', table: 'fsguard', type: 'ipv4_addr', elem: ['10.0.0.2'] } },
      { chain: { family: 'inet', table: 'fsguard', name: 'input', handle: 4, type: 'filter', hook: 'input', prio: -10, policy: 'accept' } },
    ],
  });
  const list = parseListOutput(output, layout, 5_000);
  t.same(list.bans.map((b) => [b.set, b.target.text, b.timeoutSeconds, b.expiresSeconds, b.expiresAtMs, b.comment, b.rule, b.offences]), [
    ['set4', '192.0.2.1', 3600, 3599, 5_000 + 3_599_000, 'fsguard rule=x n=1', 'x', 1],
    ['set4', '192.0.2.2', null, null, null, null, undefined, undefined],
    ['set6p64', '2001:db8:64::/64', 600, 5, 10_000, 'fsguard rule=y n=2', 'y', 2],
    ['set6net', '2001:db8::/64', 3600, 10, 15_000, 'p', undefined, undefined],
    ['set6net', '2001:db8:1::/120', 60, 59, 64_000, null, undefined, undefined],
  ]);
  t.equal(list.unrecognized.length, 3, 'non-prefix range, unknown shape and a host in the /64 set reported');
  t.throws(() => parseListOutput('not json', layout, 0), { name: 'NftError' });
  t.throws(() => parseListOutput('{"x":1}', layout, 0), { name: 'NftError' });
});

t.test('classifies libnftables failures by what libnftables 1.0.6 reports', async (t) => {
  const kind = (r: NftRunResult): string | undefined => classifyRun(r, 'libnftables.so.1')?.kind;
  t.equal(kind(ok), undefined);
  t.equal(kind({ kind: 'unavailable', message: 'libnftables.so.1: cannot open shared object file', permission: false }), 'not-installed');
  t.equal(kind({ kind: 'unavailable', message: 'Operation not permitted', permission: true }), 'permission');
  t.equal(kind({ kind: 'timed-out', afterMs: 5000, hungCalls: 1 }), 'timeout');
  t.equal(kind({ kind: 'overloaded', hungCalls: 2 }), 'transient');
  t.equal(kind(failed('netlink: Error: cache initialization failed: Operation not permitted\n')), 'permission');
  t.equal(kind(failed('Operation not permitted (you must be root)\n')), 'permission');
  t.equal(kind(failed('netlink: Error: Could not process rule: Message too long\n')), 'too-large');
  t.equal(kind(failed('internal:0:0-0: Error: Could not process rule: Resource temporarily unavailable\n')), 'transient');
  t.equal(kind(failed('netlink: Error: Could not receive: No buffer space available\n')), 'transient');
  t.equal(kind(failed('internal:0:0-0: Error: Could not process rule: Device or resource busy\n')), 'busy');
  t.equal(kind(failed('internal:0:0-0: Error: No such file or directory\n\n')), 'missing-table');
  t.equal(kind(failed("internal:0:0-0: Error: No such file or directory; did you mean set 'banned6' in table inet 'fsguard'?\n")), 'missing-table');
  t.equal(kind(failed('internal:0:0-0: Error: Could not process rule: No such file or directory\n')), 'missing-element');
  t.equal(kind(failed('internal:0:0-0: Error: element does not exist\n')), 'missing-element');
  t.equal(kind(failed('internal:0:0-0: Error: interval overlaps with an existing one\n')), 'overlap');
  t.equal(kind(failed('netlink.c:186: Memory allocation failure\n')), 'rejected');
  const e = classifyRun(failed('internal:0:0-0: Error: interval overlaps with an existing one\n\ninternal:0:0-0: Error: interval overlaps with an existing one\n'), 'nft');
  t.equal(e?.detail, 'Error: interval overlaps with an existing one', 'detail is the first error line, location noise removed');
  t.equal(e?.fatal, false);
  t.equal(classifyRun({ kind: 'timed-out', afterMs: 5000, hungCalls: 1 }, 'x')?.retryable, true, 'a timeout is retried');
  t.equal(classifyRun(failed('Error: Could not process rule: Device or resource busy\n'), 'x')?.retryable, true, 'busy is retried');
});

t.test('layout validation and set choice', async (t) => {
  const layout = resolveNftLayout();
  t.same(layout, { family: 'inet', table: 'fsguard', set4: 'banned4', set4net: 'banned4net', set6: 'banned6', set6net: 'banned6net', set6p64: 'banned6p64', switch4: 'freeswitch4', switch6: 'freeswitch6', chain: 'input', chainPriority: -10, ports: [] });
  t.same(resolveNftLayout({ ports: [5080, 5060, 5060] }).ports, [5060, 5080]);
  for (const bad of [{ table: 'x y' }, { table: 'fsguard; flush ruleset' }, { chain: '' }, { set4: 'a'.repeat(33) }, { ports: [0] }, { ports: [65536] }, { ports: [5060.5] }, { chainPriority: 1.5 }, { set6: 'banned4' }, { set4net: 'freeswitch4' }, { set6net: 'banned6p64' }]) {
    t.throws(() => resolveNftLayout(bad), NftLayoutError, `rejects ${JSON.stringify(bad)}`);
  }
  t.equal(setRoleFor(cidr('192.0.2.1')), 'set4');
  t.equal(setRoleFor(cidr('192.0.2.0/24')), 'set4net');
  t.equal(setRoleFor(cidr('2001:db8::1')), 'set6');
  t.equal(setRoleFor(cidr('2001:db8::/64')), 'set6p64', 'a /64 in the hash set of /64s');
  t.equal(setRoleFor(cidr('2001:db8::/56')), 'set6net');
  t.equal(setRoleFor(cidr('2001:db8::/80')), 'set6net');
  // Every command of the create transaction names our table and nothing else, and never
  // flushes or deletes anything.
  const script = createTableScript(resolveNftLayout({ table: 'mine', ports: [5060] })).script;
  t.ok(script.split('\n').every((l) => l.startsWith('add ') && / inet mine /.test(`${l} `)), script);
  t.notMatch(script, /flush|delete|destroy|owner/);
});

t.test('transient failures are retried with backoff, reported, then given up', async (t) => {
  const failures: Array<[string, boolean]> = [];
  const scheduler = new ImmediateScheduler();
  const runner = new ScriptedRunner((_, call) => (call < 2 ? failed('netlink: Error: Could not process rule: Resource temporarily unavailable\n') : ok));
  const writer = new NftSetWriter(runner, resolveNftLayout(), {
    scheduler,
    batchMs: 0,
    retry: { maxRetries: 3, baseDelayMs: 10, maxDelayMs: 15 },
    observer: { runFailed: (e, willRetry) => failures.push([e.kind, willRetry]) },
  });
  t.same(await writer.ban(cidr('192.0.2.1'), 60, { rule: 'r', offences: 1 }), { status: 'written' });
  t.equal(runner.runs.length, 3, 'two failures, then success');
  t.same(failures, [['transient', true], ['transient', true]]);
  t.same(scheduler.delays, [10, 15], 'sent at once, then backoff 10 ms doubling, capped at 15');

  const always = new ScriptedRunner(() => ({ kind: 'overloaded', hungCalls: 2 }));
  const reported: Array<[string, boolean]> = [];
  const giveUp = new NftSetWriter(always, resolveNftLayout(), {
    scheduler: new ImmediateScheduler(),
    retry: { maxRetries: 2, baseDelayMs: 1, maxDelayMs: 1 },
    observer: { runFailed: (e, willRetry) => reported.push([e.kind, willRetry]) },
  });
  const outcome = await giveUp.ban(cidr('192.0.2.1'), 60, { rule: 'r', offences: 1 });
  t.equal(outcome.status, 'failed');
  t.equal(outcome.status === 'failed' && (outcome.error as NftError).kind, 'transient');
  t.equal(always.runs.length, 3, 'first attempt + 2 retries, not forever');
  t.same(reported, [['transient', true], ['transient', true], ['transient', false]], 'the last failure is reported as final');
});

t.test('EMSGSIZE splits the batch and lowers the cap for the next ones', async (t) => {
  // As in a user namespace without SO_SNDBUFFORCE: the batch must fit the socket buffer.
  const fits = 40;
  const runner = new ScriptedRunner((commands) => (addedElements(commands) > fits ? failed('netlink: Error: Could not process rule: Message too long\n') : ok));
  const refused: string[] = [];
  const writer = new NftSetWriter(runner, resolveNftLayout(), {
    scheduler: new ImmediateScheduler(),
    maxBatch: 1000,
    observer: { elementRefused: (target) => refused.push(target.text) },
  });
  const first = [];
  for (let i = 0; i < 100; i++) first.push(writer.ban(cidr(`10.0.0.${i}`), 60, { rule: 'r', offences: 1 }));
  t.ok((await Promise.all(first)).every((o) => o.status === 'written'), 'all written after splitting');
  t.same(refused, []);
  const runsBefore = runner.runs.length;
  const second = [];
  for (let i = 0; i < 100; i++) second.push(writer.ban(cidr(`10.0.1.${i}`), 60, { rule: 'r', offences: 1 }));
  t.ok((await Promise.all(second)).every((o) => o.status === 'written'));
  const later = runner.runs.slice(runsBefore);
  t.ok(later.every((c) => addedElements(c) <= fits), 'later batches are sent small enough at once');
  // The first of them goes alone (the writer was quiet), the other 99 in batches that fit.
  t.ok(later.length <= 5, `${later.length} runs for the second 100`);
});

t.test('bans arriving while nft runs accumulate into the next single batch', async (t) => {
  let release: (() => void) | null = null;
  const runs: number[] = [];
  const runner = {
    library: 'gated',
    hungCalls: 0,
    run(commands: readonly NftCommand[]): Promise<NftRunResult> {
      runs.push(addedElements(commands));
      return new Promise((resolve) => { release = () => resolve(ok); });
    },
  };
  const writer = new NftSetWriter(runner, resolveNftLayout(), { scheduler: new ImmediateScheduler() });
  const a = writer.ban(cidr('192.0.2.1'), 60, { rule: 'r', offences: 1 });
  await new Promise((r) => setImmediate(r));
  await new Promise((r) => setImmediate(r));
  t.same(runs, [1], 'first batch running');
  const more = [];
  for (let i = 0; i < 50; i++) more.push(writer.ban(cidr(`192.0.3.${i}`), 60, { rule: 'r', offences: 1 }));
  await new Promise((r) => setImmediate(r));
  t.same(runs, [1], 'no second nft process while one runs');
  release!();
  t.same(await a, { status: 'written' });
  await new Promise((r) => setImmediate(r));
  t.same(runs, [1, 50], 'the 50 that arrived meanwhile go as one batch');
  release!();
  await Promise.all(more);
});

t.test('a steady stream of bans goes in fewer transactions; a lone ban still goes at once', async (t) => {
  let nowMs = 1_000_000;
  const runs: number[] = [];
  const runner = {
    library: 'counting',
    hungCalls: 0,
    run(commands: readonly NftCommand[]): Promise<NftRunResult> {
      runs.push(addedElements(commands));
      return Promise.resolve(ok);
    },
  };
  const scheduler = new ImmediateScheduler();
  const writer = new NftSetWriter(runner, resolveNftLayout(), { scheduler, clock: { nowMs: () => nowMs }, batchMs: 2, busyElements: 32, busyBatchMs: 50 });
  const settle = async (): Promise<void> => { for (let i = 0; i < 4; i++) await new Promise((r) => setImmediate(r)); };
  // A lone ban: sent inside the ban() call, nothing scheduled.
  const lone = writer.ban(cidr('192.0.2.1'), 60, { rule: 'r', offences: 1 });
  t.same(runs, [1], 'a lone ban reaches the runner before ban() returns');
  t.same(scheduler.delays, [], 'nothing scheduled for it');
  await lone;
  await settle();
  // One ms later another lone ban: the 2 ms throttle.
  nowMs += 1;
  void writer.ban(cidr('192.0.2.2'), 60, { rule: 'r', offences: 1 });
  t.equal(scheduler.delays.at(-1), 1, 'throttled to batchMs after a small transaction');
  await settle();
  // A stream: 41 bans in one turn (the first goes at once, the other 40 share the next
  // transaction, after the throttle), then more 5 ms later.
  nowMs += 10;
  const stream = [];
  for (let i = 0; i < 41; i++) stream.push(writer.ban(cidr(`198.51.100.${i}`), 60, { rule: 'r', offences: 1 }));
  t.equal(scheduler.delays.at(-1), 2, 'the rest of the turn waits for batchMs from the first');
  await settle();
  nowMs += 5;
  for (let i = 0; i < 10; i++) stream.push(writer.ban(cidr(`203.0.113.${i}`), 60, { rule: 'r', offences: 1 }));
  t.equal(scheduler.delays.at(-1), 45, 'after a transaction of 40, the next waits out busyBatchMs from its start');
  await settle();
  await Promise.all(stream);
  t.same(runs, [1, 1, 1, 40, 10]);
});

t.test('a full batch goes beside a running one, without a target that is still being written', async (t) => {
  const gates: Array<() => void> = [];
  const runs: string[][] = [];
  let running = 0;
  let maxRunning = 0;
  const targetsOf = (commands: readonly NftCommand[]): string[] => commands.flatMap((c) => {
    const verb = 'create' in c ? 'create' : 'delete' in c ? 'delete' : 'add' in c ? 'add' : null;
    if (verb === null) return [];
    const body = (c as Record<string, { element?: { elem: unknown[] } }>)[verb]!;
    return (body.element?.elem ?? []).map((e) => `${verb} ${JSON.stringify(e).match(/\d+\.\d+\.\d+\.\d+/)?.[0]}`);
  });
  const runner = {
    library: 'gated',
    hungCalls: 0,
    run(commands: readonly NftCommand[]): Promise<NftRunResult> {
      runs.push(targetsOf(commands));
      running++;
      maxRunning = Math.max(maxRunning, running);
      return new Promise((resolve) => { gates.push(() => { running--; resolve(ok); }); });
    },
  };
  const writer = new NftSetWriter(runner, resolveNftLayout(), { scheduler: new ImmediateScheduler(), maxBatch: 3, maxConcurrent: 2, batchMs: 0 });
  const turn = async (): Promise<void> => { for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r)); };
  const all = [writer.ban(cidr('192.0.2.9'), 60, { rule: 'r', offences: 1 })];
  t.same(runs, [['create 192.0.2.9']], 'a lone ban on a quiet writer goes at once');
  for (const ip of ['192.0.2.1', '192.0.2.2', '192.0.2.3']) all.push(writer.ban(cidr(ip), 60, { rule: 'r', offences: 1 }));
  await turn();
  t.same(runs[1], ['create 192.0.2.1', 'create 192.0.2.2', 'create 192.0.2.3'], 'a full batch beside the running one');
  all.push(writer.unban(cidr('192.0.2.1')));
  for (const ip of ['192.0.2.4', '192.0.2.5', '192.0.2.6']) all.push(writer.ban(cidr(ip), 60, { rule: 'r', offences: 1 }));
  await turn();
  t.equal(runs.length, 2, 'two running: a third full batch waits');
  gates.shift()!();
  await turn();
  t.equal(runs.length, 3, 'the lone one done: a second full batch went beside the first');
  t.same(runs[2], ['create 192.0.2.4', 'create 192.0.2.5', 'create 192.0.2.6'], 'without 192.0.2.1, whose ban is still being written');
  all.push(writer.ban(cidr('192.0.2.7'), 60, { rule: 'r', offences: 1 }));
  await turn();
  t.equal(runs.length, 3, 'a partial batch waits while transactions run');
  gates.shift()!();
  await turn();
  t.equal(runs.length, 3, 'the first done: the partial batch still waits for the second (a partial one goes alone)');
  gates.shift()!();
  await turn();
  t.equal(runs.length, 4, 'both done: the rest goes');
  t.ok(runs[3]!.includes('delete 192.0.2.1') && runs[3]!.includes('create 192.0.2.7'), `the unban after its ban: ${runs[3]!.join(', ')}`);
  while (gates.length > 0) { gates.shift()!(); await turn(); }
  await Promise.all(all);
  t.equal(maxRunning, 2, 'never more than two at once');
});

t.test('the ban journal: one write per turn, read back last-decision-wins, a torn line skipped, emptied when done', async (t) => {
  const { BanJournal } = await import('../lib/daemon/ban-journal.js');
  const { mkdtempSync, readFileSync, appendFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const path = join(mkdtempSync(join(tmpdir(), 'fsguard-journal-test-')), 'sub', 'fsguard.bans.jsonl');
  const deferred: Array<() => void> = [];
  const errors: string[] = [];
  const journal = new BanJournal({ path, onError: (m) => errors.push(m), defer: (fn) => deferred.push(fn) });
  journal.record({ target: cidr('192.0.2.1'), expiresAtMs: 1000, comment: { rule: 'a', offences: 1 } });
  journal.record({ target: cidr('2001:db8::/64'), expiresAtMs: 2000, comment: { rule: 'b', offences: 2 } });
  journal.record({ target: cidr('192.0.2.1'), expiresAtMs: 3000, comment: { rule: 'c', offences: 2 } });
  t.equal(deferred.length, 1, 'one flush queued for the turn');
  deferred.shift()!();
  t.equal(readFileSync(path, 'utf8').split('\n').length, 4, 'three lines written');
  appendFileSync(path, '{"t":"192.0.2.9","e":');
  const back = new BanJournal({ path, onError: (m) => errors.push(m) }).readBack();
  t.same(back.map((b) => [b.target.text, b.expiresAtMs, b.comment.rule, b.comment.offences]), [['192.0.2.1', 3000, 'c', 2], ['2001:db8::/64', 2000, 'b', 2]]);
  journal.clear();
  t.equal(readFileSync(path, 'utf8'), '', 'emptied');
  journal.record({ target: cidr('192.0.2.2'), expiresAtMs: 1000, comment: { rule: 'a', offences: 1 } });
  deferred.shift()!();
  t.match(readFileSync(path, 'utf8'), /^\{"t":"192\.0\.2\.2"/, 'appends after the truncation');
  journal.record({ target: cidr('192.0.2.3'), expiresAtMs: 1000, comment: { rule: 'a', offences: 1 } });
  journal.clear();
  t.match(readFileSync(path, 'utf8'), /192\.0\.2\.2/, 'not emptied while a record waits for its flush');
  deferred.shift()!();
  journal.close();
  t.same(errors, []);
  const broken = new BanJournal({ path: '/proc/version/nope/x.jsonl', onError: (m) => errors.push(m), defer: (fn) => fn() });
  broken.record({ target: cidr('192.0.2.3'), expiresAtMs: 1, comment: { rule: 'a', offences: 1 } });
  broken.record({ target: cidr('192.0.2.4'), expiresAtMs: 1, comment: { rule: 'a', offences: 1 } });
  t.equal(errors.length, 1, 'a journal that cannot be written says so once');
  t.match(errors[0], /cannot write the ban journal/);
});
