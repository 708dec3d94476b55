// IPv4 prefix bans, widening, and what `fsguard ban` refuses: the real CLI against the real
// library in the test namespace.
import t from 'tap';
import { fsguardCli, writeConfig, type ProcessResult } from './support/daemon-process.js';
import { netnsTestOptions } from './support/netns.js';
import { deleteTableIfExists, kernelElement, kernelElements, nftCli, uniqueTableName } from './support/nft-kernel.js';
import { RecordingLogger } from './support/esl-test-helpers.js';
import { Guard } from '../lib/daemon/guard.js';
import { parseCidr, type Cidr } from '../lib/net/ip.js';
import { LibnftablesRunner, NftSetWriter, resolveNftLayout } from '../lib/nft/index.js';
import { FsguardMetrics } from '../lib/obs/metrics.js';
import { createPolicy } from '../lib/policy/engine.js';
import { DEFAULT_POLICY_SETTINGS } from '../lib/policy/settings.js';

const ns = netnsTestOptions();

function configFor(table: string, extra: Record<string, unknown> = {}): string {
  return writeConfig({ esl: { host: '127.0.0.1', port: 1 }, nft: { table, ...extra }, metrics: { enabled: false } });
}

t.test('IPv4 prefix bans, widening over narrower prefixes, hosts shown inside prefixes', ns, async (t) => {
  const table = uniqueTableName('prefix4');
  t.teardown(() => deleteTableIfExists('inet', table));
  const config = configFor(table);
  const cli = (...args: string[]): Promise<ProcessResult> => fsguardCli([...args, '--config', config]);

  const first = await cli('ban', '203.0.113.0/26', '--for', '2h');
  t.equal(first.status, 0, first.stderr);
  t.equal(kernelElement(table, 'banned4net', '203.0.113.0/26')?.timeout, 7200, 'the /26 is in banned4net');
  t.equal((await cli('ban', '203.0.113.64/26', '--for', '2h')).status, 0);
  t.equal((await cli('ban', '203.0.113.9', '--for', '30m')).status, 0, 'a host inside the prefix');
  t.ok(kernelElement(table, 'banned4', '203.0.113.9'), 'the host goes to banned4');

  const widen = await cli('ban', '203.0.113.0/24', '--for', '1d');
  t.equal(widen.status, 0, widen.stderr);
  t.match(widen.stdout, /banned 203\.0\.113\.0\/24 for 1d \(widened: replaces 203\.0\.113\.(0|64)\/26, 203\.0\.113\.(0|64)\/26\); 1 banned host inside it/);
  t.same(kernelElements(table, 'banned4net').map((e) => [e.key, e.timeout]), [['203.0.113.0/24', 86400]], 'one /24 replaced both /26s');

  const covered = await cli('ban', '203.0.113.128/25');
  t.equal(covered.status, 0);
  t.match(covered.stdout, /203\.0\.113\.128\/25 is already banned: inside 203\.0\.113\.0\/24/);
  t.same(kernelElements(table, 'banned4net').map((e) => e.key), ['203.0.113.0/24'], 'the narrower one is not written');

  t.equal((await cli('ban', '198.51.100.5')).status, 0);
  const listed = await cli('bans');
  const rows = listed.stdout.split('\n');
  const at = (s: string): number => rows.findIndex((r) => r.includes(s));
  t.ok(at('203.0.113.0/24') >= 0 && at('203.0.113.9') === at('203.0.113.0/24') + 1, `the host right under its prefix:\n${listed.stdout}`);
  t.match(rows[at('203.0.113.9')], /^ {2}203\.0\.113\.9 .*\[inside 203\.0\.113\.0\/24\]$/);
  t.match(listed.stdout, /3 bans \(1 prefix, 2 hosts\)/);
  const json = JSON.parse((await cli('bans', '--json')).stdout) as { bans: Array<{ target: string; within: string | null }> };
  t.same(json.bans.map((b) => [b.target, b.within]), [['203.0.113.0/24', null], ['203.0.113.9', '203.0.113.0/24'], ['198.51.100.5', null]]);

  t.equal((await cli('unban', '203.0.113.0/24')).status, 0);
  t.same(kernelElements(table, 'banned4net'), [], 'unbanned');
});

t.test('IPv6: /64s in their own set, a wider prefix over them, and the listing', ns, async (t) => {
  const table = uniqueTableName('prefix6');
  t.teardown(() => deleteTableIfExists('inet', table));
  const config = configFor(table);
  const cli = (...args: string[]): Promise<ProcessResult> => fsguardCli([...args, '--config', config]);

  t.equal((await cli('ban', '2001:db8:aa:1::/64', '--for', '2h')).status, 0);
  t.equal((await cli('ban', '2001:db8:aa:2::/64', '--for', '2h')).status, 0);
  t.equal((await cli('ban', '2001:db8:aa:1::7', '--for', '30m')).status, 0, 'a host inside the first /64');
  t.same(kernelElements(table, 'banned6p64').map((e) => e.key).sort(), ['2001:db8:aa:1::', '2001:db8:aa:2::'], 'the /64s are in banned6p64');
  const nested = JSON.parse((await cli('bans', '--json')).stdout) as { bans: Array<{ target: string; within: string | null }> };
  t.same(nested.bans.map((b) => [b.target, b.within]).sort(), [['2001:db8:aa:1::/64', null], ['2001:db8:aa:1::7', '2001:db8:aa:1::/64'], ['2001:db8:aa:2::/64', null]]);

  const widen = await cli('ban', '2001:db8:aa::/48', '--for', '1d');
  t.equal(widen.status, 0, widen.stderr);
  t.match(widen.stdout, /banned 2001:db8:aa::\/48 for 1d \(widened: replaces 2001:db8:aa:[12]::\/64, 2001:db8:aa:[12]::\/64\); 1 banned host inside it/);
  t.same(kernelElements(table, 'banned6p64'), [], 'the /64s inside it are gone from their set');
  t.same(kernelElements(table, 'banned6net').map((e) => e.key), ['2001:db8:aa::/48']);
  // A wider one still over many /64s names a few of them and counts the rest.
  for (let i = 1; i <= 7; i++) t.equal((await cli('ban', `2001:db8:bb:${i}::/64`)).status, 0);
  const many = await cli('ban', '2001:db8:bb::/48');
  t.match(many.stdout, /\(widened: replaces (2001:db8:bb:\d::\/64, ){4}2001:db8:bb:\d::\/64 and 2 more\)/);
  t.same(kernelElements(table, 'banned6p64'), [], 'all seven gone from the /64 set');
  const covered = await cli('ban', '2001:db8:aa:3::/64');
  t.equal(covered.status, 0);
  t.match(covered.stdout, /2001:db8:aa:3::\/64 is already banned: inside 2001:db8:aa::\/48/);
  t.same(kernelElements(table, 'banned6p64'), [], 'a /64 inside it is not written');

  // A /64 written beside the /48 anyway (by a cluster node, or by hand): every row is listed,
  // each under the widest prefix it lies in.
  nftCli(['add', 'element', 'inet', table, 'banned6p64', '{ 2001:db8:aa:1:: timeout 1h }']);
  const listed = await cli('bans');
  const rows = listed.stdout.split('\n');
  const at = (s: string): number => rows.findIndex((r) => r.includes(s));
  t.ok(at('2001:db8:aa::/48') >= 0 && at('2001:db8:aa:1::/64') > at('2001:db8:aa::/48') && at('2001:db8:aa:1::7') > at('2001:db8:aa::/48'), `both under the /48:\n${listed.stdout}`);
  t.match(rows[at('2001:db8:aa:1::7')], /\[inside 2001:db8:aa::\/48\]$/);
  t.match(listed.stdout, /4 bans/);
});

t.test('ban refuses FreeSWITCH\'s own addresses, the allow-list and prefixes wider than the limit (unless --force)', ns, async (t) => {
  const table = uniqueTableName('refuse');
  t.teardown(() => deleteTableIfExists('inet', table));
  const config = configFor(table, { widestPrefix4: 16, widestPrefix6: 32 });
  const cli = (...args: string[]): Promise<ProcessResult> => fsguardCli([...args, '--config', config]);
  t.equal((await cli('ban', '192.0.2.200')).status, 0, 'sets the table up');
  // What the daemon records when it learns FreeSWITCH's addresses from the events.
  nftCli(['add', 'element', 'inet', table, 'freeswitch4', '{ 192.0.2.10 timeout 7d }']);
  nftCli(['add', 'element', 'inet', table, 'freeswitch6', '{ 2001:db8:5::10 timeout 7d }']);

  const refusals: Array<[string[], RegExp]> = [
    [['192.0.2.10'], /192\.0\.2\.10 covers FreeSWITCH's own address 192\.0\.2\.10/],
    [['192.0.2.0/24'], /covers FreeSWITCH's own address 192\.0\.2\.10/],
    [['2001:db8:5::/48'], /covers FreeSWITCH's own address 2001:db8:5::10/],
    [['127.0.0.5'], /is in the allow-list \(127\.0\.0\.0\/8\)/],
    [['2000::/3'], /2000::\/3 covers FreeSWITCH's own address 2001:db8:5::10/],
    [['8000::/1'], /8000::\/1 is wider than \/32 \(nft\.widestPrefix6\); add --force/],
    [['4000::/2', '--for', '1d'], /wider than \/32/],
    [['10.0.0.0/8'], /10\.0\.0\.0\/8 is wider than \/16 \(nft\.widestPrefix4\)/],
    [['0.0.0.0/0', '--force'], /is in the allow-list|FreeSWITCH/],
  ];
  for (const [args, message] of refusals) {
    const r = await cli('ban', ...args);
    t.equal(r.status, 2, `ban ${args.join(' ')} refused`);
    t.match(r.stderr, message);
  }
  t.same(kernelElements(table, 'banned4net'), [], 'nothing written to the IPv4 prefixes');
  t.same([...kernelElements(table, 'banned6p64'), ...kernelElements(table, 'banned6net')], [], 'nor to the IPv6 prefixes');
  const forced = await cli('ban', '10.0.0.0/8', '--force', '--for', '10m');
  t.equal(forced.status, 0, '--force lifts the width limit only');
  t.ok(kernelElement(table, 'banned4net', '10.0.0.0/8'));
  t.equal((await cli('ban', '198.51.0.0/16')).status, 0, 'a /16 is at the limit, not over it');
});

t.test('the daemon\'s reconcile: a /64 replaced by a wider ban stays banned; written again when that expires, lifted when it is lifted', ns, async (t) => {
  const table = uniqueTableName('widened');
  t.teardown(() => deleteTableIfExists('inet', table));
  const cidr = (text: string): Cidr => parseCidr(text)!;
  const layout = resolveNftLayout({ table });
  // The operator's CLI writes beside the daemon's writer, as `fsguard ban` does.
  const operator = new NftSetWriter(new LibnftablesRunner(), layout, { batchMs: 0 });
  const daemonWriter = new NftSetWriter(new LibnftablesRunner(), layout, { batchMs: 0 });
  t.teardown(async () => { await operator.close(); await daemonWriter.close(); });
  await operator.setup();
  t.same(await operator.ban(cidr('2001:db8:77:1::/64'), 3600, { rule: 'ipv6_rotation', offences: 1 }), { status: 'written' });
  const logger = new RecordingLogger();
  // The guard's clock: the kernel's, moved on by hand to stand for a wider ban's expiry.
  let aheadMs = 0;
  const guard = new Guard(createPolicy(DEFAULT_POLICY_SETTINGS), daemonWriter, logger, new FsguardMetrics(false), { allow: [] }, () => Date.now() + aheadMs);
  await guard.start();
  t.equal(guard.knownBans, 1, 'the /64 read back at start');
  const lifted = (target: string): boolean => logger.records.some((r) => /lifted outside fsguard/.test(r.msg) && (r.obj as { target?: string }).target === target);
  const slash64 = (): string[] => kernelElements(table, 'banned6p64').map((e) => e.key);

  // The wider ban expires first: the /64 is written again for its time left.
  t.same(await operator.ban(cidr('2001:db8:77::/48'), 60, { rule: 'manual', offences: 1 }), { status: 'written' });
  t.same(slash64(), [], 'widening took the /64 out of its set');
  await guard.reconcile();
  t.notOk(lifted('2001:db8:77:1::/64'), 'the /64 is not taken for lifted by hand: the /48 covers it');
  nftCli(['delete', 'element', 'inet', table, 'banned6net', '{ 2001:db8:77::/48 }']);
  aheadMs = 61_000;
  await guard.reconcile();
  await daemonWriter.flush();
  t.same(slash64(), ['2001:db8:77:1::'], 'the /64 is back once the /48 over it expired');
  const left = kernelElement(table, 'banned6p64', '2001:db8:77:1::')?.timeout ?? 0;
  t.ok(left > 3400 && left <= 3600 - 60, `for its time left (${left} s)`);
  t.notOk(lifted('2001:db8:77:1::/64'));

  // The wider ban lifted by hand: the /64 is lifted with it. (`fsguard ban` reads the table
  // before it writes, as here.)
  await operator.list();
  t.same(await operator.ban(cidr('2001:db8:77::/48'), 3600, { rule: 'manual', offences: 1 }), { status: 'written' });
  t.same(slash64(), [], 'widened again');
  await guard.reconcile();
  t.same(await operator.unban(cidr('2001:db8:77::/48')), { status: 'removed' });
  await guard.reconcile();
  t.ok(lifted('2001:db8:77::/48') && lifted('2001:db8:77:1::/64'), 'lifting the /48 lifts what it covered');
  t.equal(guard.knownBans, 0);
  t.same(slash64(), [], 'and it is not written again');
});
