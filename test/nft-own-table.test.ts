// fsguard touches only a table it created, and says exactly what is wrong with one it did not
// (or one whose layout was broken): the real CLI against the real library in the test namespace.
import t from 'tap';
import { fsguardCli, writeConfig, type ProcessResult } from './support/daemon-process.js';
import { netnsTestOptions } from './support/netns.js';
import { deleteTableIfExists, kernelElements, nftCli, uniqueTableName } from './support/nft-kernel.js';
import { OWNER_MARK } from '../lib/nft/index.js';

const ns = netnsTestOptions();

function configFor(table: string, extra: Record<string, unknown> = {}): string {
  return writeConfig({ esl: { host: '127.0.0.1', port: 1 }, nft: { table, ...extra }, metrics: { enabled: false } });
}

/** The whole table as JSON text, counters and expiry countdowns blanked. */
function snapshot(family: string, table: string): string {
  return nftCli(['-j', 'list', 'table', family, table]).replace(/"expires": \d+/g, '"expires": N').replace(/"packets": \d+, "bytes": \d+/g, 'C');
}

const nftLines = (r: ProcessResult): string[] => r.stderr.split('\n').filter((l) => l.startsWith('nft: '));

t.test("an admin's table of our name (policy drop, a set named like ours) is refused by check, run and ban, and left as it is", ns, async (t) => {
  const table = uniqueTableName('admin');
  t.teardown(() => deleteTableIfExists('inet', table));
  nftCli(['-f', '-'], [
    `table inet ${table} {`,
    '  set banned4 { type ipv4_addr; flags timeout; elements = { 198.51.100.7 timeout 1h comment "admin_block" } }',
    '  set admin_block { type ipv4_addr; }',
    '  chain input {',
    '    type filter hook input priority 0; policy drop;',
    // The test files share one network namespace and run two at a time: loopback stays open.
    '    iif "lo" accept',
    '    tcp dport 22 accept',
    '    ip saddr @admin_block drop',
    '  }',
    '}',
  ].join('\n'));
  const before = snapshot('inet', table);
  const config = configFor(table);

  const check = await fsguardCli(['check', '--config', config]);
  t.not(check.status, 0, 'check fails');
  const lines = nftLines(check);
  t.equal(lines.length, 1, `one nft line: ${check.stderr}`);
  t.match(lines[0], new RegExp(`^nft: table inet ${table} exists and was not created by fsguard`));

  const run = await fsguardCli(['run', '--config', config]);
  t.equal(run.status, 1, 'run refuses to start');
  t.same(run.stderr.trim().split('\n'), [`fsguard: table inet ${table} exists and was not created by fsguard (none of its sets carries fsguard's mark, and it holds more than an earlier fsguard's sets and rules): fsguard will not touch it; set nft.table to another name`]);

  const ban = await fsguardCli(['ban', '203.0.113.9', '--config', config]);
  t.not(ban.status, 0, 'ban refuses');
  t.match(ban.stderr, /was not created by fsguard/);
  const bans = await fsguardCli(['bans', '--config', config]);
  t.not(bans.status, 0, 'bans refuses to read it as ours');
  const unban = await fsguardCli(['unban', '198.51.100.7', '--config', config]);
  t.not(unban.status, 0, 'unban refuses');

  t.equal(snapshot('inet', table), before, 'the admin\'s table is byte for byte what it was: policy drop, its rules, its elements');
});

t.test('check names each mismatch of a broken layout; run refuses what it cannot repair', ns, async (t) => {
  const table = uniqueTableName('broken');
  t.teardown(() => deleteTableIfExists('inet', table));
  const config = configFor(table);
  t.equal((await fsguardCli(['ban', '203.0.113.1', '--for', '1h', '--config', config])).status, 0, 'fsguard made its table (by a ban)');
  const good = await fsguardCli(['check', '--config', config]);
  t.equal(good.status, 1, 'esl is unreachable in this test, so check fails, but on esl only');
  t.same(nftLines(good), [], `no nft problem on fsguard's own layout: ${good.stderr}`);
  t.match(good.stdout, new RegExp(`nft: ok \\(table inet ${table}, fsguard's layout, 1 bans\\)`));

  // banned4 of type ipv6_addr (with our mark: as if recreated wrongly), the chain at another
  // priority, a foreign rule in our chain.
  nftCli(['-f', '-'], [
    `delete chain inet ${table} input`,
    `delete set inet ${table} banned4net`,
    `delete set inet ${table} banned4`,
    `add set inet ${table} banned4 { type ipv6_addr; flags timeout; comment "${OWNER_MARK}"; }`,
    `add chain inet ${table} input { type filter hook input priority 5; policy accept; }`,
    `add rule inet ${table} input ip6 saddr @banned4 counter drop`,
  ].join('\n'));
  const broken = await fsguardCli(['check', '--config', config]);
  const lines = nftLines(broken);
  t.match(lines.join('\n'), new RegExp(`set inet ${table} banned4 has type "ipv6_addr", expected ipv4_addr`), 'the wrong type, named');
  t.match(lines.join('\n'), new RegExp(`set inet ${table} banned4net \\(IPv4 prefixes\\) is missing`), 'the missing set, named');
  t.match(lines.join('\n'), /chain inet \S+ input has priority 5, expected -10/, 'the priority, named');
  t.match(lines.join('\n'), /chain inet \S+ input has 1 rules, expected 5 drop rules/, 'the rules, counted');
  t.match(lines.at(-1) ?? '', /fsguard run refuses this table/);

  const run = await fsguardCli(['run', '--config', config]);
  t.equal(run.status, 1);
  t.match(run.stderr, /cannot be repaired without deleting bans: set inet \S+ banned4 has type "ipv6_addr", expected ipv4_addr/);
  t.equal(run.stderr.trim().split('\n').length, 1, 'one line');

  // What can be repaired is: with banned4 right again, ban (which sets up) rebuilds the chain and adds banned4net.
  nftCli(['-f', '-'], [`delete chain inet ${table} input`, `delete set inet ${table} banned4`].join('\n'));
  t.equal((await fsguardCli(['ban', '203.0.113.2', '--config', config])).status, 0);
  const repaired = await fsguardCli(['check', '--config', config]);
  t.same(nftLines(repaired), [], `repaired: ${repaired.stderr}`);
});


/** The table fsguard made before its sets carried the mark (b5081d4's setupCommands), with bans in it. */
function earlierFsguardTable(table: string, extra: readonly string[] = []): void {
  nftCli(['-f', '-'], [
    `table inet ${table} {`,
    '  set banned4 { type ipv4_addr; flags timeout; elements = { 198.51.100.7 timeout 1h comment "fsguard:brute_force" } }',
    '  set banned6 { type ipv6_addr; flags timeout; elements = { 2001:db8::7 timeout 1h } }',
    '  set banned6net { type ipv6_addr; flags interval,timeout; elements = { 2001:db8:bad::/64 timeout 1h } }',
    '  chain input {',
    '    type filter hook input priority -10; policy accept;',
    '    ip saddr @banned4 counter drop',
    '    ip6 saddr @banned6 counter drop',
    '    ip6 saddr @banned6net counter drop',
    ...extra,
    '  }',
    '}',
  ].join('\n'));
}

t.test('the table an earlier fsguard made (no mark) is adopted with its bans; with anything else in it, refused', ns, async (t) => {
  const table = uniqueTableName('earlier');
  t.teardown(() => deleteTableIfExists('inet', table));
  earlierFsguardTable(table);
  const config = configFor(table);

  const check = await fsguardCli(['check', '--config', config]);
  t.same(nftLines(check), [], `no nft problem: ${check.stderr}`);
  t.match(check.stdout, new RegExp(`nft: ok \\(table inet ${table} was made by an earlier fsguard.*keeps its 3 bans\\)`));
  const listed = await fsguardCli(['bans', '--json', '--config', config]);
  t.equal(listed.status, 0, `bans reads it: ${listed.stderr}`);
  t.same((JSON.parse(listed.stdout) as { bans: { target: string }[] }).bans.map((b) => b.target).sort(), ['198.51.100.7', '2001:db8::7', '2001:db8:bad::/64']);

  t.equal((await fsguardCli(['ban', '203.0.113.0/24', '--for', '1h', '--config', config])).status, 0, 'ban (which sets up) adopts it');
  const after = JSON.parse(nftCli(['-j', 'list', 'table', 'inet', table])) as { nftables: Record<string, { name?: string; comment?: string }>[] };
  const sets = after.nftables.flatMap((i) => (i.set ? [i.set] : []));
  t.same(sets.map((s) => s.name).sort(), ['banned4', 'banned4net', 'banned6', 'banned6net', 'banned6p64', 'freeswitch4', 'freeswitch6'], 'the sets this version has were added');
  t.ok(sets.filter((s) => s.name === 'banned4net' || s.name === 'banned6p64' || s.name === 'freeswitch4').every((s) => s.comment === OWNER_MARK), 'the new sets carry the mark');
  t.same(kernelElements(table, 'banned6p64').map((e) => e.key), ['2001:db8:bad::'], 'its /64 moved to the /64 set');
  t.same(kernelElements(table, 'banned6net'), [], 'and out of the interval set');
  const now = await fsguardCli(['bans', '--json', '--config', config]);
  t.same((JSON.parse(now.stdout) as { bans: { target: string }[] }).bans.map((b) => b.target).sort(), ['198.51.100.7', '2001:db8::7', '2001:db8:bad::/64', '203.0.113.0/24'], 'its bans kept, the new one beside them');
  const recheck = await fsguardCli(['check', '--config', config]);
  t.same(nftLines(recheck), [], `fsguard's layout now: ${recheck.stderr}`);
  t.match(recheck.stdout, /nft: ok \(table inet \S+, fsguard's layout, 4 bans\)/);

  // The same table with one rule an admin added is not an earlier fsguard's: refused, untouched.
  const other = uniqueTableName('earlier_edited');
  t.teardown(() => deleteTableIfExists('inet', other));
  earlierFsguardTable(other, ['    tcp dport 22 accept']);
  const before = snapshot('inet', other);
  const refused = await fsguardCli(['ban', '203.0.113.9', '--config', configFor(other)]);
  t.not(refused.status, 0);
  t.match(refused.stderr, /was not created by fsguard/);
  t.equal(snapshot('inet', other), before, 'left as it was');
});
