// Several fsguard daemons sharing evidence and bans through a real Redis Stream: real
// `fsguard run` processes, a real redis-server started by the test on a Unix socket, each
// node with its own event-socket test server and its own nft table in the test's namespace.
// Windows are judged on the events' own timestamps (the test's clock), so nothing here waits
// for a policy window to pass; real processes are waited on with bounded deadlines.
import t, { type Test } from 'tap';
import { fsguardCli } from './support/daemon-process.js';
import { netnsSkipReason } from './support/netns.js';
import { redisSkipReason, TestRedis } from './support/redis-server.js';
import {
  eventually, hasElement, judgedByOrigin, sendGuesses, startRedisCluster, type ClusterNode,
} from './support/cluster-rig.js';

const skip = netnsSkipReason() ?? redisSkipReason();
const opts = { skip: skip ?? false };

const nowUs = (): number => Date.now() * 1000;
/** `n` guesses `spacingS` apart, the last one now (all in the past: no event runs ahead of the clock). */
const guessTimes = (n: number, spacingS: number): number[] => Array.from({ length: n }, (_, i) => nowUs() - Math.round((n - 1 - i) * spacingS * 1e6));

async function redisFor(t: Test, acl: { user: string; password: string } | null = null): Promise<TestRedis> {
  const redis = await TestRedis.start(acl);
  t.teardown(() => redis.stop());
  return redis;
}

t.test('2. a ban decided from events on node A is in the kernel sets of B and C; switch addresses are never banned', opts, async (t) => {
  const redis = await redisFor(t);
  const [a, b, c] = await startRedisCluster(t, redis, ['a', 'b', 'c']) as [ClusterNode, ClusterNode, ClusterNode];
  const attacker = '203.0.113.20';
  await sendGuesses(a, attacker, guessTimes(8, 2));
  for (const n of [a, b, c]) t.ok(await eventually(() => hasElement(n, attacker)), `${attacker} in ${n.name}'s kernel set`);
  t.notOk(b.daemon.lines.some((l) => l.event === 'ban' && l.target === attacker && (l.evidence as { answeredFailures: number }).answeredFailures < 6), 'banned on the same evidence');

  // Node B's FreeSWITCH (known to A from B's events) attacks through A: banned nowhere.
  await sendGuesses(b, '198.51.100.5', guessTimes(1, 1));
  t.ok(await eventually(async () => ((await judgedByOrigin(a)).b ?? 0) >= 3), 'A judged B\'s events');
  await sendGuesses(a, b.switchIp, guessTimes(10, 1));
  for (const n of [a, b, c]) t.ok(await eventually(async () => ((await judgedByOrigin(n)).a ?? 0) >= a.sent), `${n.name} judged all of A's events`);
  for (const n of [a, b, c]) {
    t.notOk(hasElement(n, b.switchIp), `${b.switchIp} (node B's FreeSWITCH) not banned on ${n.name}`);
    t.notOk(n.daemon.lines.some((l) => l.event === 'ban' && l.target === b.switchIp), `no ban decided for it on ${n.name}`);
  }
});

t.test('5. a manual ban and unban on one node reach all', opts, async (t) => {
  const redis = await redisFor(t);
  const nodes = await startRedisCluster(t, redis, ['a', 'b', 'c']);
  const [a] = nodes as [ClusterNode];
  const target = '198.51.100.77';
  const ban = await fsguardCli(['ban', target, '--for', '2h', '--reason', 'by hand', '--config', a.config]);
  t.equal(ban.status, 0, ban.stderr);
  t.match(ban.stdout, /sent to every cluster node/);
  for (const n of nodes) t.ok(await eventually(() => hasElement(n, target)), `manual ban in ${n.name}'s kernel set`);
  const unban = await fsguardCli(['unban', target, '--config', a.config]);
  t.equal(unban.status, 0, unban.stderr);
  for (const n of nodes) t.ok(await eventually(() => !hasElement(n, target)), `unbanned on ${n.name}`);
});
