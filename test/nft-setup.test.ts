// Table setup, read-back of a fresh machine, and the typed error for a missing libnftables —
// against the real library in the private test namespace.
import t from 'tap';
import { createSocket, type Socket } from 'node:dgram';
import { spawnSync } from 'node:child_process';
import { parseCidr, type Cidr } from '../lib/net/ip.js';
import { LibnftablesBackend, LibnftablesRunner, NftError, NftSetWriter, OWNER_MARK, resolveNftLayout, type NftWriterObserver } from '../lib/nft/index.js';
import { netnsTestOptions } from './support/netns.js';
import { chainRules, deleteTableIfExists, kernelElement, kernelElements, nftCli, uniqueTableName } from './support/nft-kernel.js';

const nsOptions = netnsTestOptions();

function cidr(text: string): Cidr {
  const c = parseCidr(text);
  if (!c) throw new Error(`bad cidr in test: ${text}`);
  return c;
}

/** Another admin's table (and one with our name in another family), to prove we never touch them. */
function createForeignTables(ours: string, other: string): () => string {
  nftCli(['-f', '-'], [
    `table inet ${other} {`,
    '  set keep { type ipv4_addr; flags timeout; elements = { 198.51.100.7 timeout 1h comment "theirs" } }',
    '  chain input { type filter hook input priority 0; policy accept; ip saddr @keep counter accept; }',
    '}',
    `table ip ${ours} {`,
    '  set keep4 { type ipv4_addr; elements = { 198.51.100.8 } }',
    '}',
  ].join('\n'));
  const snapshot = (): string =>
    // Elements' "expires" counts down; everything else must stay byte for byte the same.
    (nftCli(['-j', 'list', 'table', 'inet', other]) + nftCli(['-j', 'list', 'table', 'ip', ours]))
      .replace(/"expires": \d+/g, '"expires": N');
  return snapshot;
}

t.test('setup is idempotent, keeps bans, and touches no other table', nsOptions, async (t) => {
  const table = uniqueTableName('setup');
  const other = uniqueTableName('foreign');
  t.teardown(() => {
    deleteTableIfExists('inet', table);
    deleteTableIfExists('inet', other);
    deleteTableIfExists('ip', table);
  });
  const snapshot = createForeignTables(table, other);
  const before = snapshot();
  const layout = resolveNftLayout({ table, ports: [5061, 5060, 5060] });
  const writer = new NftSetWriter(new LibnftablesRunner(), layout);

  await writer.setup();
  const rulesOnce = chainRules(table, 'input');
  t.equal(rulesOnce.filter((l) => l.endsWith('drop')).length, 5, 'five drop rules (v4 hosts and prefixes, v6 hosts, /64s and other prefixes)');
  t.match(rulesOnce.join('\n'), /ip saddr @banned4 meta l4proto \{ tcp, udp \} th dport \{ 5060, 5061 \} counter drop/);
  t.match(rulesOnce.join('\n'), /ip6 saddr @banned6 meta l4proto/);
  t.match(rulesOnce.join('\n'), /ip6 saddr & ffff:ffff:ffff:ffff:: == @banned6p64 meta l4proto/);
  t.match(rulesOnce.join('\n'), /ip6 saddr @banned6net meta l4proto/);

  // Bans made in between must survive the next start; a /64 an earlier fsguard put in the
  // interval set moves to the /64 set, with its time and comment.
  nftCli(['add', 'element', 'inet', table, 'banned4', '{ 203.0.113.9 timeout 1h comment "fsguard rule=x n=1" }']);
  nftCli(['add', 'element', 'inet', table, 'banned6net', '{ 2001:db8:9::/64 timeout 1h comment "fsguard rule=prefix n=2" }']);
  nftCli(['add', 'element', 'inet', table, 'banned6net', '{ 2001:db8:8::/56 timeout 1h }']);
  const started = await writer.setup();
  t.same(started.list.bans.filter((b) => b.target.family === 6).map((b) => [b.set, b.target.text, b.rule]).sort(),
    [['set6net', '2001:db8:8::/56', undefined], ['set6p64', '2001:db8:9::/64', 'prefix']], 'setup reports the /64 where it now is');
  await writer.setup();
  t.same(chainRules(table, 'input'), rulesOnce, 'rules not duplicated by repeated setup');
  t.equal(kernelElement(table, 'banned4', '203.0.113.9')?.timeout, 3600, 'existing IPv4 ban kept with its timeout');
  t.equal(kernelElement(table, 'banned4', '203.0.113.9')?.comment, 'fsguard rule=x n=1');
  t.same(kernelElements(table, 'banned6net').map((e) => e.key), ['2001:db8:8::/56'], 'the /56 stays in the interval set');
  const moved = kernelElement(table, 'banned6p64', '2001:db8:9::');
  t.ok(moved && moved.timeout !== undefined && moved.timeout > 3500 && moved.timeout <= 3600, `the /64 moved with what was left of its hour (${moved?.timeout})`);
  t.equal(moved?.comment, 'fsguard rule=prefix n=2');

  const sets = JSON.parse(nftCli(['-j', 'list', 'sets', 'inet'])) as { nftables: Array<{ set?: { table: string; name: string; type: string; flags?: string[] } }> };
  const ours = sets.nftables.flatMap((i) => (i.set && i.set.table === table ? [i.set] : []));
  t.same(ours.map((s) => [s.name, s.type, s.flags]).sort(), [
    ['banned4', 'ipv4_addr', ['timeout']],
    ['banned4net', 'ipv4_addr', ['interval', 'timeout']],
    ['banned6', 'ipv6_addr', ['timeout']],
    ['banned6net', 'ipv6_addr', ['interval', 'timeout']],
    ['banned6p64', 'ipv6_addr', ['timeout']],
    ['freeswitch4', 'ipv4_addr', ['timeout']],
    ['freeswitch6', 'ipv6_addr', ['timeout']],
  ]);
  t.ok(ours.every((s) => (s as { comment?: string }).comment === OWNER_MARK), 'every set carries the mark, readable in the JSON listing');
  t.equal(snapshot(), before, 'foreign tables unchanged');
});

t.test('a restart with another priority and all ports rebuilds our chain', nsOptions, async (t) => {
  const table = uniqueTableName('prio');
  t.teardown(() => deleteTableIfExists('inet', table));
  await new NftSetWriter(new LibnftablesRunner(), resolveNftLayout({ table, chainPriority: -10, ports: [5060] })).setup();
  nftCli(['add', 'element', 'inet', table, 'banned4', '{ 203.0.113.10 timeout 1h }']);
  await new NftSetWriter(new LibnftablesRunner(), resolveNftLayout({ table, chainPriority: -20, ports: [] })).setup();
  const chain = JSON.parse(nftCli(['-j', 'list', 'chain', 'inet', table, 'input'])) as { nftables: Array<{ chain?: { prio: number; hook: string; policy: string } }> };
  const info = chain.nftables.find((i) => i.chain)?.chain;
  t.same(info && { prio: info.prio, hook: info.hook, policy: info.policy }, { prio: -20, hook: 'input', policy: 'accept' });
  t.same(chainRules(table, 'input').filter((l) => l.endsWith('drop')), [
    'ip saddr @banned4 counter drop',
    'ip saddr @banned4net counter drop',
    'ip6 saddr @banned6 counter drop',
    'ip6 saddr & ffff:ffff:ffff:ffff:: == @banned6p64 counter drop',
    'ip6 saddr @banned6net counter drop',
  ]);
  t.ok(kernelElement(table, 'banned4', '203.0.113.10'), 'ban survived the chain rebuild');
});

/** The SIP port the drop rule filters, and one it leaves open (a control path for the probe). */
const FILTERED_PORT = 5060;
const OPEN_PORT = 5990;

/**
 * Whether a UDP datagram from `from` reaches `to`:`port`, decided without a wall-clock guess:
 * after the probe, the same source sends a control datagram to OPEN_PORT, which the chain never
 * filters. Both pass netfilter in order on loopback, so once the control has arrived (and the
 * poll phase that saw it has run), a probe the kernel let through has arrived too.
 */
function udpReceives(from: string, to: string, port: number): Promise<boolean> {
  const family = to.includes(':') ? 'udp6' : 'udp4';
  return new Promise((resolve, reject) => {
    const server: Socket = createSocket(family);
    const control: Socket = createSocket(family);
    const client: Socket = createSocket(family);
    let received = false;
    // Only a bound: the control datagram is never filtered, so this fires only when something broke.
    const deadline = setTimeout(() => {
      server.close();
      control.close();
      client.close();
      reject(new Error(`the control datagram from ${from} to ${to}:${OPEN_PORT} never arrived`));
    }, 10_000);
    const finish = (): void => {
      clearTimeout(deadline);
      server.close();
      control.close();
      client.close();
      resolve(received);
    };
    server.on('message', () => { received = true; });
    control.on('message', () => setImmediate(finish));
    for (const s of [server, control, client]) s.on('error', reject);
    server.bind(port, to, () => control.bind(OPEN_PORT, to, () => {
      client.bind(0, from, () => client.send('REGISTER', port, to, () => client.send('CONTROL', OPEN_PORT, to)));
    }));
  });
}

t.test('the chain really drops banned sources (only on the configured ports)', nsOptions, async (t) => {
  const table = uniqueTableName('drop');
  t.teardown(() => deleteTableIfExists('inet', table));
  const writer = new NftSetWriter(new LibnftablesRunner(), resolveNftLayout({ table, ports: [5060] }));
  await writer.setup();
  const port = FILTERED_PORT;
  t.equal(await udpReceives('127.0.0.2', '127.0.0.1', port), true, 'reachable before the ban');
  t.same(await writer.ban(cidr('127.0.0.2'), 60, { rule: 'test', offences: 1 }), { status: 'written' });
  t.equal(await udpReceives('127.0.0.2', '127.0.0.1', port), false, 'banned source dropped on a SIP port');
  t.equal(await udpReceives('127.0.0.3', '127.0.0.1', port), true, 'other source still reachable');
  t.equal(await udpReceives('127.0.0.2', '127.0.0.1', 5999), true, 'banned source still reaches a non-SIP port');
  t.same(await writer.ban(cidr('::1'), 60, { rule: 'test', offences: 1 }), { status: 'written' });
  t.equal(await udpReceives('::1', '::1', port), false, 'banned IPv6 host dropped');
  // Addresses of this test's own namespace: one inside the /64 banned next, one outside it.
  for (const address of ['2001:db8:64::5', '2001:db8:64::6', '2001:db8:65::5']) {
    t.equal(spawnSync('ip', ['-6', 'addr', 'add', `${address}/128`, 'dev', 'lo', 'nodad']).status, 0, `ip addr add ${address}`);
  }
  t.equal(await udpReceives('2001:db8:64::5', '2001:db8:65::5', port), true, 'reachable before the /64 ban');
  t.same(await writer.ban(cidr('2001:db8:64::/64'), 60, { rule: 'test', offences: 1 }), { status: 'written' });
  t.equal(await udpReceives('2001:db8:64::5', '2001:db8:65::5', port), false, 'an address inside a banned /64 dropped');
  t.equal(await udpReceives('2001:db8:65::5', '2001:db8:64::6', port), true, 'an address outside it still reachable');
  t.same(await writer.unban(cidr('127.0.0.2')), { status: 'removed' });
  t.equal(await udpReceives('127.0.0.2', '127.0.0.1', port), true, 'reachable again after unban');
  await writer.close();
});

t.test('read-back on a fresh machine is empty, not an error', nsOptions, async (t) => {
  const table = uniqueTableName('fresh');
  const writer = new NftSetWriter(new LibnftablesRunner(), resolveNftLayout({ table }));
  const list = await writer.list();
  t.same(list, { bans: [], unrecognized: [], tableExists: false, owned: false, switchAddresses: [] });
  t.equal(spawnSync('nft', ['list', 'table', 'inet', table], { stdio: 'ignore' }).status, 1, 'list did not create the table');
});

t.test('libnftables missing: a typed, fatal error that says what to do', async (t) => {
  const runFailures: Array<[NftError, boolean]> = [];
  const observer: NftWriterObserver = { runFailed: (e, willRetry) => runFailures.push([e, willRetry]) };
  const runner = new LibnftablesRunner({ backend: new LibnftablesBackend('/nonexistent/libnftables.so.1') });
  const writer = new NftSetWriter(runner, resolveNftLayout({ table: 'unused' }), { observer });
  const setupError = await writer.setup().then(() => null, (e: unknown) => e);
  t.ok(setupError instanceof NftError, 'NftError');
  t.equal((setupError as NftError).kind, 'not-installed');
  t.equal((setupError as NftError).fatal, true);
  t.match((setupError as NftError).message, /cannot use libnftables \(\/nonexistent\/libnftables\.so\.1\): .*install nftables/);
  const listError = await writer.list().then(() => null, (e: unknown) => e);
  t.equal(listError instanceof NftError && listError.kind, 'not-installed', 'read-back throws it too');
  const outcome = await writer.ban(cidr('192.0.2.1'), 60, { rule: 'r', offences: 1 });
  t.equal(outcome.status, 'failed');
  t.equal(outcome.status === 'failed' && outcome.error.kind, 'not-installed');
  t.ok(runFailures.length >= 3 && runFailures.every(([e, retry]) => e.kind === 'not-installed' && !retry), 'reported, never retried');
});
