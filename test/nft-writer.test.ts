// NftSetWriter against the real nft in the private test namespace: every assertion about
// bans reads the kernel with the nft CLI (test/support/nft-kernel), not the writer.
import t from 'tap';
import { parseCidr, type Cidr } from '../lib/net/ip.js';
import {
  formatBanComment,
  NftSetWriter,
  resolveNftLayout,
  LibnftablesRunner,
  type ElementOutcome,
  type NftElementWrite,
  type NftSetWriterOptions,
  type NftWriterObserver,
  type Scheduler,
} from '../lib/nft/index.js';
import { netnsTestOptions } from './support/netns.js';
import { deleteTableIfExists, kernelElement, kernelElements, nftCli, RecordingRunner, uniqueTableName } from './support/nft-kernel.js';

const nsOptions = netnsTestOptions();

function cidr(text: string): Cidr {
  const c = parseCidr(text);
  if (!c) throw new Error(`bad cidr in test: ${text}`);
  return c;
}

interface ObserverLog extends NftWriterObserver {
  batches: NftElementWrite[][];
  refused: Array<[string, string]>;
  runFailures: string[];
  recreated: number;
}

function observerLog(): ObserverLog {
  const log: ObserverLog = {
    batches: [],
    refused: [],
    runFailures: [],
    recreated: 0,
    batchWritten: (elements) => log.batches.push([...elements]),
    elementRefused: (target, message) => log.refused.push([target.text, message]),
    runFailed: (error) => log.runFailures.push(error.message),
    tableRecreated: () => { log.recreated++; },
  };
  return log;
}

/** A fresh table with our layout, a recording runner and an observer; removed after the test. */
async function fixture(t: { teardown(fn: () => void): void }, label: string, options: NftSetWriterOptions = {}) {
  const table = uniqueTableName(label);
  t.teardown(() => deleteTableIfExists('inet', table));
  const runner = new RecordingRunner(new LibnftablesRunner());
  const log = observerLog();
  const writer = new NftSetWriter(runner, resolveNftLayout({ table }), { observer: log, ...options });
  await writer.setup();
  runner.runs.length = 0;
  return { table, runner, log, writer };
}

/**
 * A ban on a quiet writer goes to the kernel inside the ban() call, alone; the requests made
 * right after it (in the same turn) wait for it and share the next transaction. Tests of what a
 * batch does open with one, so that the requests after it form the batch.
 */
function openBatch(writer: NftSetWriter, ip: string): Promise<ElementOutcome> {
  return writer.ban(cidr(ip), 600, { rule: 'opener', offences: 1 });
}

t.test('IPv4, IPv6 and IPv6-prefix bans land in their sets with timeout and comment', nsOptions, async (t) => {
  const { table, writer, log } = await fixture(t, 'land');
  const outcomes = await Promise.all([
    writer.ban(cidr('203.0.113.66'), 3600, { rule: 'brute-force', offences: 1 }),
    writer.ban(cidr('2001:db8::66'), 600, { rule: 'scanner-ua', offences: 2 }),
    writer.ban(cidr('2001:db8:bad:1::/64'), 86400.2, { rule: 'prefix-aggregate', offences: 3 }),
    writer.ban(cidr('2001:db8:bad:100::/56'), 60, { rule: 'by-hand', offences: 1 }),
  ]);
  t.same(outcomes, [{ status: 'written' }, { status: 'written' }, { status: 'written' }, { status: 'written' }]);
  const v4 = kernelElement(table, 'banned4', '203.0.113.66');
  t.equal(v4?.timeout, 3600);
  t.ok(v4?.expires !== undefined && v4.expires <= 3600 && v4.expires >= 3590, 'expires counts down from the timeout');
  t.equal(v4?.comment, 'fsguard rule=brute-force n=1');
  const v6 = kernelElement(table, 'banned6', '2001:db8::66');
  t.match(v6, { key: '2001:db8::66', timeout: 600, comment: 'fsguard rule=scanner-ua n=2' });
  t.ok(v6?.expires !== undefined && v6.expires <= 600 && v6.expires >= 590, 'expires counts down from the timeout');
  // A /64 goes into the /64 set as its network address; any other prefix into the interval set.
  const net = kernelElement(table, 'banned6p64', '2001:db8:bad:1::');
  t.equal(net?.timeout, 86401, 'fractional seconds round up');
  t.equal(net?.comment, 'fsguard rule=prefix-aggregate n=3');
  t.equal(kernelElement(table, 'banned6net', '2001:db8:bad:100::/56')?.timeout, 60);
  t.equal(['banned4', 'banned6', 'banned6p64', 'banned6net'].reduce((n, set) => n + kernelElements(table, set).length, 0), 4, 'nothing else written');
  t.same(log.refused, []);
  await writer.close();
});

t.test('re-banning replaces timeout and comment (extends a running ban)', nsOptions, async (t) => {
  const { table, writer } = await fixture(t, 'reban');
  await writer.ban(cidr('198.51.100.20'), 100, { rule: 'r1', offences: 1 });
  await writer.ban(cidr('2001:db8:77::/48'), 100, { rule: 'r1', offences: 1 });
  t.equal(kernelElement(table, 'banned4', '198.51.100.20')?.timeout, 100);
  t.same(await writer.ban(cidr('198.51.100.20'), 7200, { rule: 'r2', offences: 2 }), { status: 'written' });
  t.same(await writer.ban(cidr('2001:db8:77::/48'), 7200, { rule: 'r2', offences: 2 }), { status: 'written' });
  const host = kernelElement(table, 'banned4', '198.51.100.20');
  t.equal(host?.timeout, 7200, 'host: the longer timeout took effect');
  t.ok((host?.expires ?? 0) > 7000, 'host: expiry moved forward');
  t.equal(host?.comment, 'fsguard rule=r2 n=2', 'host: comment updated too');
  const net = kernelElement(table, 'banned6net', '2001:db8:77::/48');
  t.equal(net?.timeout, 7200, 'prefix: the longer timeout took effect');
  t.equal(net?.comment, 'fsguard rule=r2 n=2');
  t.equal(kernelElements(table, 'banned6net').length, 1, 'still one prefix element');
  await writer.close();
});

t.test('a ban of an element someone else added replaces it (create, then the full form)', nsOptions, async (t) => {
  const { table, writer, runner } = await fixture(t, 'foreignreban');
  nftCli(['add', 'element', 'inet', table, 'banned4', '{ 192.0.2.40 timeout 30s comment "by hand" }']);
  nftCli(['add', 'element', 'inet', table, 'banned6p64', '{ 2001:db8:40:: timeout 30s }']);
  const opener = openBatch(writer, '192.0.2.39');
  const outcomes = await Promise.all([
    writer.ban(cidr('192.0.2.40'), 5000, { rule: 'r', offences: 1 }),
    writer.ban(cidr('2001:db8:40::/64'), 5000, { rule: 'r', offences: 1 }),
    writer.ban(cidr('192.0.2.41'), 5000, { rule: 'r', offences: 1 }),
  ]);
  t.same(outcomes.map((o) => o.status), ['written', 'written', 'written']);
  t.same(kernelElement(table, 'banned4', '192.0.2.40') && [kernelElement(table, 'banned4', '192.0.2.40')?.timeout, kernelElement(table, 'banned4', '192.0.2.40')?.comment], [5000, 'fsguard rule=r n=1']);
  t.equal(kernelElement(table, 'banned6p64', '2001:db8:40::')?.timeout, 5000);
  t.equal(kernelElement(table, 'banned4', '192.0.2.41')?.timeout, 5000);
  t.same(await opener, { status: 'written' });
  t.equal(runner.runs.length, 3, 'after the opener, the create attempt failed with EEXIST, then one full run');
  t.ok(runner.runs[1]?.some((c) => 'create' in c), 'first attempt used create');
  t.ok(runner.runs[2]?.every((c) => !('create' in c)), 'retry used add + delete + add');

  // Known now (written by us, or read back), a re-ban goes the full way at once.
  runner.runs.length = 0;
  await writer.ban(cidr('192.0.2.41'), 6000, { rule: 'r', offences: 2 });
  nftCli(['add', 'element', 'inet', table, 'banned4', '{ 192.0.2.42 timeout 30s }']);
  await writer.list();
  await writer.ban(cidr('192.0.2.42'), 6000, { rule: 'r', offences: 2 });
  t.equal(runner.runs.filter((r) => r.some((c) => 'create' in c)).length, 0, 'no create for known elements');
  t.equal(kernelElement(table, 'banned4', '192.0.2.41')?.timeout, 6000);
  t.equal(kernelElement(table, 'banned4', '192.0.2.42')?.timeout, 6000);
  await writer.close();
});

t.test('bans within the batch window share one nft process; duplicates coalesce', nsOptions, async (t) => {
  const { table, writer, runner, log } = await fixture(t, 'batch', { batchMs: 20 });
  const pending = [openBatch(writer, '10.8.8.8')];
  for (let i = 0; i < 300; i++) pending.push(writer.ban(cidr(`10.1.${i >> 8}.${i & 255}`), 600, { rule: 'bulk', offences: 1 }));
  // The same target three times: the longest timeout (and its comment) wins.
  pending.push(writer.ban(cidr('10.9.9.9'), 100, { rule: 'short', offences: 1 }));
  pending.push(writer.ban(cidr('10.9.9.9'), 900, { rule: 'long', offences: 2 }));
  pending.push(writer.ban(cidr('10.9.9.9'), 300, { rule: 'mid', offences: 3 }));
  pending.push(writer.ban(cidr('2001:db8::1'), 600, { rule: 'bulk', offences: 1 }));
  await writer.flush();
  t.ok((await Promise.all(pending)).every((o) => o.status === 'written'));
  t.equal(runner.runs.length, 2, 'the opener, then one nft process for the whole batch');
  t.equal(log.batches.length, 2);
  t.equal(log.batches[1]?.length, 302, 'duplicates sent once');
  t.equal(kernelElements(table, 'banned4').length, 302);
  t.equal(kernelElement(table, 'banned4', '10.9.9.9')?.timeout, 900);
  t.equal(kernelElement(table, 'banned4', '10.9.9.9')?.comment, 'fsguard rule=long n=2');
  await writer.close();
});

t.test('the size cap sends full batches at once, two at most side by side, a partial one alone', nsOptions, async (t) => {
  // The window's timer is held (never run) and what is due now runs on the next turn: what
  // reaches the kernel before flush() went without waiting for the window.
  const held: (() => void)[] = [];
  const scheduler: Scheduler = {
    schedule(callback, delayMs) {
      if (delayMs > 0) { held.push(callback); return () => undefined; }
      const immediate = setImmediate(callback);
      return () => clearImmediate(immediate);
    },
  };
  const { table, writer, runner } = await fixture(t, 'cap', { batchMs: 10_000, maxBatch: 100, scheduler });
  const pending = [];
  // The first goes at once, alone (the writer was quiet); then 200 in two full batches and 49 left.
  for (let i = 0; i < 250; i++) pending.push(writer.ban(cidr(`10.2.${i >> 8}.${i & 255}`), 600, { rule: 'bulk', offences: 1 }));
  // The two full batches go without waiting for the (10 s) window...
  await Promise.all(pending.slice(0, 201));
  t.equal(kernelElements(table, 'banned4').length, 201, 'the lone ban and two full batches written, the window not elapsed');
  t.ok(held.length >= 1, 'the window is still pending');
  // ...and flush() sends the rest now.
  await writer.flush();
  t.equal(kernelElements(table, 'banned4').length, 250);
  t.equal(runner.runs.length, 4);
  t.equal(runner.maxConcurrent, 2, 'the two full batches went side by side, never more');
  await writer.close();
});

t.test('an overlapping prefix is isolated by bisection and found covered; the rest of the batch lands', nsOptions, async (t) => {
  const { table, writer, runner, log } = await fixture(t, 'bisect');
  // An existing /48 makes a /56 inside it overlap: the interval set refuses it, and the /48 covers it.
  nftCli(['add', 'element', 'inet', table, 'banned6net', '{ 2001:db8:aa::/48 timeout 1h }']);
  const good = ['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4', '192.0.2.5', '2001:db8::5', '2001:db8:bb::/56', '2001:db8:cc::/56'];
  const pending = good.map((g) => writer.ban(cidr(g), 600, { rule: 'ok', offences: 1 }));
  const bad = writer.ban(cidr('2001:db8:aa:100::/56'), 600, { rule: 'overlap', offences: 1 });
  await writer.flush();
  t.ok((await Promise.all(pending)).every((o) => o.status === 'written'), 'good elements written');
  t.match(await bad, { status: 'covered', by: '2001:db8:aa::/48' }, 'the /56 is reported covered by the /48');
  t.same(log.refused, [], 'nothing refused');
  for (const g of good) {
    const set = g.includes('/') ? 'banned6net' : g.includes(':') ? 'banned6' : 'banned4';
    t.ok(kernelElement(table, set, g), `${g} in the kernel`);
  }
  t.notOk(kernelElement(table, 'banned6net', '2001:db8:aa:100::/56'), 'the bad one is not');
  t.ok(kernelElement(table, 'banned6net', '2001:db8:aa::/48'), 'the existing /48 untouched');
  t.ok(runner.runs.length > 1 && runner.runs.length <= 2 * Math.ceil(Math.log2(good.length + 1)) + 2, `bisection used ${runner.runs.length} runs`);
  t.equal(log.batches.flat().length, good.length, 'observer saw every good element committed once');
  await writer.close();
});

t.test('IPv6 prefixes nest across the interval set and the /64 set: widened, covered, and a stale hint', nsOptions, async (t) => {
  const { table, writer, runner, log } = await fixture(t, 'nest6');
  const keys = (set: string): string[] => kernelElements(table, set).map((e) => e.key).sort();
  const ban = (text: string, seconds = 600): Promise<unknown> => writer.ban(cidr(text), seconds, { rule: 'r', offences: 1 });
  t.same(await Promise.all(['2001:db8:aa:1::/64', '2001:db8:aa:2::/64', '2001:db8:bb:1::/64', '2001:db8:cc:1:2::/80'].map((c) => ban(c))),
    Array(4).fill({ status: 'written' }));
  t.same(keys('banned6p64'), ['2001:db8:aa:1::', '2001:db8:aa:2::', '2001:db8:bb:1::']);

  // A /48 over two /64s of the hash set: one transaction deletes them and adds the /48.
  runner.runs.length = 0;
  t.same(await ban('2001:db8:aa::/48', 3600), { status: 'written' }, 'the wider one is written');
  t.same(keys('banned6p64'), ['2001:db8:bb:1::'], 'the /64s inside it are gone, the other stays');
  t.equal(kernelElement(table, 'banned6net', '2001:db8:aa::/48')?.timeout, 3600, 'the /48 is in the interval set');
  const writes = runner.runs.filter((run) => run.some((c) => !('list' in c)));
  t.equal(writes.length, 1, 'one transaction for the deletes and the add');
  t.ok(writes[0]!.some((c) => 'delete' in c) && writes[0]!.some((c) => 'add' in c), 'it deletes and adds');

  // A /64 inside the /48 is covered (the kernel would have taken it: another set).
  t.match(await ban('2001:db8:aa:3::/64'), { status: 'covered', by: '2001:db8:aa::/48' });
  t.same(keys('banned6p64'), ['2001:db8:bb:1::'], 'not written');
  // A /96 inside a banned /64 is covered by it; a /64 over a banned /80 replaces it.
  t.match(await ban('2001:db8:bb:1:0:1::/96'), { status: 'covered', by: '2001:db8:bb:1::/64' });
  t.same(await ban('2001:db8:cc:1::/64'), { status: 'written' });
  t.same(keys('banned6net'), ['2001:db8:aa::/48'], 'the /80 was replaced by the /64 over it');
  t.same(keys('banned6p64'), ['2001:db8:bb:1::', '2001:db8:cc:1::']);

  // The /48 banned again while a /64 inside it was added beside it by hand: the /64 goes, the
  // /48 takes the new timeout.
  nftCli(['add', 'element', 'inet', table, 'banned6p64', '{ 2001:db8:aa:9:: timeout 1h }']);
  await writer.list();
  t.same(await ban('2001:db8:aa::/48', 7200), { status: 'written' });
  t.equal(kernelElement(table, 'banned6net', '2001:db8:aa::/48')?.timeout, 7200, 'the new timeout');
  t.notOk(kernelElement(table, 'banned6p64', '2001:db8:aa:9::'), 'the /64 beside it is gone');

  // The writer believes a /64 is there that someone deleted: the /56 over it is an ordinary write.
  nftCli(['delete', 'element', 'inet', table, 'banned6p64', '{ 2001:db8:cc:1:: }']);
  t.same(await ban('2001:db8:cc::/56'), { status: 'written' }, 'a stale hint costs a listing, not the ban');
  t.ok(kernelElement(table, 'banned6net', '2001:db8:cc::/56'));
  t.same(log.refused, [], 'nothing refused');
  t.same(log.runFailures, []);
  await writer.close();
});

t.test('unban removes; unban of a missing element is "not banned", not a failure', nsOptions, async (t) => {
  const { table, writer, log } = await fixture(t, 'unban');
  await Promise.all([
    writer.ban(cidr('192.0.2.10'), 600, { rule: 'r', offences: 1 }),
    writer.ban(cidr('2001:db8:10::/64'), 600, { rule: 'r', offences: 1 }),
    writer.ban(cidr('2001:db8::10'), 600, { rule: 'r', offences: 1 }),
  ]);
  const outcomes = await Promise.all([
    writer.unban(cidr('192.0.2.10')),
    writer.unban(cidr('192.0.2.11')),
    writer.unban(cidr('2001:db8:10::/64')),
    writer.unban(cidr('2001:db8:11::/64')),
    writer.unban(cidr('2001:db8::10')),
  ]);
  t.same(outcomes.map((o) => o.status), ['removed', 'not-banned', 'removed', 'not-banned', 'removed']);
  t.same(['banned4', 'banned6', 'banned6p64', 'banned6net'].flatMap((set) => kernelElements(table, set)), [], 'all sets empty');
  t.same(log.refused, [], 'a missing element is not reported as refused');
  t.same(log.runFailures, []);
  t.same(await writer.unban(cidr('192.0.2.99')), { status: 'not-banned' }, 'alone in its batch too');
  await writer.close();
});

t.test('ban then unban of the same target in one batch leaves it unbanned', nsOptions, async (t) => {
  const { table, writer, runner } = await fixture(t, 'supersede');
  const opened = openBatch(writer, '192.0.2.29');
  const banned = writer.ban(cidr('192.0.2.30'), 600, { rule: 'r', offences: 1 });
  const unbanned = writer.unban(cidr('192.0.2.30'));
  t.same(await banned, { status: 'superseded' });
  t.same(await unbanned, { status: 'not-banned' });
  t.notOk(kernelElement(table, 'banned4', '192.0.2.30'));
  t.same(await opened, { status: 'written' });
  // Whether or not the writer is quiet again by now, an opener makes the next two one batch.
  const reopened = openBatch(writer, '192.0.2.28');
  const rebanned = writer.unban(cidr('192.0.2.31'));
  const last = writer.ban(cidr('192.0.2.31'), 600, { rule: 'r', offences: 1 });
  t.same(await rebanned, { status: 'superseded' });
  t.same(await last, { status: 'written' });
  t.ok(kernelElement(table, 'banned4', '192.0.2.31'));
  t.same(await reopened, { status: 'written' });
  t.ok(runner.runs.length >= 3);
  await writer.close();
});

t.test('read-back parses our elements, comments and foreign ones', nsOptions, async (t) => {
  const { table, writer } = await fixture(t, 'readback', { clock: { nowMs: () => 1_000_000 } });
  await Promise.all([
    writer.ban(cidr('203.0.113.1'), 3600, { rule: 'brute-force', offences: 4 }),
    writer.ban(cidr('2001:db8::1'), 60, { rule: 'manual', offences: 1, note: 'office asked' }),
    writer.ban(cidr('2001:db8:1:2::/64'), 120, { rule: 'prefix', offences: 1 }),
  ]);
  // Added by an admin by hand: no timeout, no comment; a range that is a prefix; one that is not.
  nftCli(['add', 'element', 'inet', table, 'banned4', '{ 198.51.100.1 }']);
  nftCli(['add', 'element', 'inet', table, 'banned6net', '{ 2001:db8:f::-2001:db8:f::ff timeout 1h comment "by hand" }']);
  nftCli(['add', 'element', 'inet', table, 'banned6net', '{ 2001:db8:e::3-2001:db8:e::9 timeout 1h }']);
  // In the /64 set, an address that is not a /64's network address never matches the rule.
  nftCli(['add', 'element', 'inet', table, 'banned6p64', '{ 2001:db8:d::1 timeout 1h }']);
  const list = await writer.list();
  t.equal(list.tableExists, true);
  const byTarget = new Map(list.bans.map((b) => [b.target.text, b]));
  const v4 = byTarget.get('203.0.113.1');
  t.same(v4 && { set: v4.set, timeout: v4.timeoutSeconds, rule: v4.rule, offences: v4.offences, comment: v4.comment },
    { set: 'set4', timeout: 3600, rule: 'brute-force', offences: 4, comment: 'fsguard rule=brute-force n=4' });
  t.ok(v4 && v4.expiresSeconds !== null && v4.expiresSeconds > 3590 && v4.expiresAtMs === 1_000_000 + v4.expiresSeconds * 1000);
  const v6 = byTarget.get('2001:db8::1');
  t.same(v6 && [v6.set, v6.rule, v6.comment], ['set6', 'manual', 'fsguard rule=manual n=1 note=office asked']);
  const net = byTarget.get('2001:db8:1:2::/64');
  t.same(net && [net.set, net.target.prefixLength, net.timeoutSeconds, net.rule], ['set6p64', 64, 120, 'prefix']);
  const foreign = byTarget.get('198.51.100.1');
  t.same(foreign && [foreign.timeoutSeconds, foreign.expiresSeconds, foreign.comment, foreign.rule], [null, null, null, undefined]);
  const range = byTarget.get('2001:db8:f::/120');
  t.same(range && [range.set, range.comment, range.rule], ['set6net', 'by hand', undefined], 'a range that is a prefix reads as that prefix');
  t.equal(list.bans.length, 5);
  t.same(list.unrecognized.length, 2, 'a range that is no prefix, and a host in the /64 set, are reported, not dropped silently');
  t.match(list.unrecognized.join(' '), /2001:db8:e::3/);
  t.match(list.unrecognized.join(' '), /2001:db8:d::1/);
  await writer.close();
});

t.test('hostile comment text is sanitized before it reaches the kernel', nsOptions, async (t) => {
  const { table, writer } = await fixture(t, 'hostile');
  const hostile = 'friendly-scanner"\n\r\x1b[31mred\x1b[0m \\ \' é ' + 'A'.repeat(64 * 1024);
  t.same(await writer.ban(cidr('192.0.2.50'), 60, { rule: 'ua "evil"\nrule', offences: 1, note: hostile }), { status: 'written' });
  const comment = kernelElement(table, 'banned4', '192.0.2.50')?.comment ?? '';
  t.equal(comment, formatBanComment({ rule: 'ua "evil"\nrule', offences: 1, note: hostile }));
  t.match(comment, /^fsguard rule=ua__evil__rule n=1 note=friendly-scanner\?\?\?\?\[31mred\?\[0m \? \? \? A+$/);
  t.ok(Buffer.byteLength(comment) <= 128, `≤ 128 bytes (${Buffer.byteLength(comment)})`);
  t.ok(/^[\x20-\x7e]*$/.test(comment) && !/["'\\]/.test(comment), 'printable ASCII, no quotes or backslashes');
  // The human listing stays one line per element.
  const text = nftCli(['list', 'set', 'inet', table, 'banned4']);
  t.equal(text.split('\n').filter((l) => l.includes('192.0.2.50')).length, 1);
  t.match(text, /elements = \{ 192\.0\.2\.50 timeout 1m expires \S+ comment "fsguard rule=ua__evil__rule n=1 note=[^"\n]*" \}/);
  await writer.close();
});

t.test('invalid requests are refused up front, without an nft run', nsOptions, async (t) => {
  const { writer, runner, log } = await fixture(t, 'invalid');
  t.match(await writer.ban(cidr('203.0.113.1'), 0, { rule: 'r', offences: 1 }), { status: 'refused', message: /positive/ });
  t.match(await writer.ban(cidr('203.0.113.1'), Number.NaN, { rule: 'r', offences: 1 }), { status: 'refused' });
  t.equal(runner.runs.length, 0);
  t.equal(log.refused.length, 2, 'each reported to the observer');
  await writer.close();
  t.match(await writer.ban(cidr('203.0.113.1'), 60, { rule: 'r', offences: 1 }), { status: 'refused', message: /closed/ });
});

t.test('close() flushes what is queued', nsOptions, async (t) => {
  const { table, writer } = await fixture(t, 'close', { batchMs: 60_000 });
  void writer.ban(cidr('192.0.2.60'), 600, { rule: 'r', offences: 1 });
  void writer.ban(cidr('2001:db8::60'), 600, { rule: 'r', offences: 1 });
  await writer.close();
  t.ok(kernelElement(table, 'banned4', '192.0.2.60'), 'written before close resolved');
  t.ok(kernelElement(table, 'banned6', '2001:db8::60'));
  t.equal(writer.queued, 0);
});

t.test('a vanished table (nft flush ruleset) is re-created and the batch retried', nsOptions, async (t) => {
  const { table, writer, log } = await fixture(t, 'vanish');
  await writer.ban(cidr('192.0.2.70'), 600, { rule: 'r', offences: 1 });
  nftCli(['delete', 'table', 'inet', table]);
  t.same(await writer.ban(cidr('192.0.2.71'), 600, { rule: 'r', offences: 1 }), { status: 'written' });
  t.equal(log.recreated, 1);
  t.ok(kernelElement(table, 'banned4', '192.0.2.71'), 'new ban landed in the re-created set');
  t.ok(nftCli(['list', 'chain', 'inet', table, 'input']).includes('@banned4'), 'drop rules are back');
  t.same(await writer.unban(cidr('192.0.2.70')), { status: 'not-banned' }, 'the old ban went with the table');
  await writer.close();
});

t.test('another table, and our name in another family, are never touched', nsOptions, async (t) => {
  const { table, writer } = await fixture(t, 'isolate');
  const other = uniqueTableName('isolate_other');
  t.teardown(() => { deleteTableIfExists('inet', other); deleteTableIfExists('ip6', table); });
  nftCli(['-f', '-'], [
    `table inet ${other} {`,
    '  set banned4 { type ipv4_addr; flags timeout; elements = { 192.0.2.80 timeout 1h } }',
    '}',
    `table ip6 ${table} {`,
    '  set banned6 { type ipv6_addr; elements = { 2001:db8::80 } }',
    '}',
  ].join('\n'));
  const snapshot = (): string => (nftCli(['-j', 'list', 'table', 'inet', other]) + nftCli(['-j', 'list', 'table', 'ip6', table])).replace(/"expires": \d+/g, '');
  const before = snapshot();
  await writer.setup();
  await writer.ban(cidr('192.0.2.80'), 600, { rule: 'r', offences: 1 });
  await writer.ban(cidr('2001:db8::80'), 600, { rule: 'r', offences: 1 });
  await writer.unban(cidr('192.0.2.80'));
  await writer.unban(cidr('2001:db8::80'));
  await writer.unban(cidr('2001:db8::81'));
  await writer.list();
  await writer.close();
  t.equal(snapshot(), before, 'foreign tables byte-for-byte unchanged');
});
