// Several fsguard daemons sharing evidence and bans through a real Redis Stream: real
// `fsguard run` processes, a real redis-server started by the test on a Unix socket, each
// node with its own event-socket test server and its own nft table in the test's namespace.
// Windows are judged on the events' own timestamps (the test's clock), so nothing here waits
// for a policy window to pass; real processes are waited on with bounded deadlines.
// (The cases are split over cluster-*.test.ts so each file fits tap's per-file timeout.)
import t from 'tap';
import { clusterCodec, MESSAGE_FIELD } from '../lib/cluster/codec.js';
import { normalizeEvent } from '../lib/events/normalize.js';
import { parseCidr } from '../lib/net/ip.js';
import { fsguardCli } from './support/daemon-process.js';
import { kernelElements } from './support/nft-kernel.js';
import {
  clusterTestOptions, eventually, guessEvents, guessTimes, hasElement, redisFor, sendGuesses, startNode, startRedisCluster, STREAM, type ClusterNode,
} from './support/cluster-rig.js';

t.test('4. a node started ten minutes late has the current bans and the last ten minutes of evidence', clusterTestOptions(), async (t) => {
  const redis = await redisFor(t);
  const client = redis.client();
  t.teardown(() => client.disconnect());
  const codec = clusterCodec();
  const early = { switchIp: '192.0.2.20', eventSequence: 1 };
  const [sec] = (await client.time()) as [number, number];
  const startMs = Number(sec) * 1000 - 10 * 60_000;
  let seq = 0;
  // Ten minutes of history from a node that ran then: entries stamped (id and event time) in the past.
  const history: Array<{ ms: number; message: string }> = [];
  const guessAt = (ip: string, ms: number): void => {
    for (const line of guessEvents(early, ip, ms * 1000)) {
      const r = normalizeEvent(JSON.parse(line) as Record<string, string>, { profiles: null });
      if (!r.ok) throw new Error(r.detail);
      history.push({ ms, message: codec.encodeEvent({ node: 'early', incarnation: 'x', seq: ++seq }, { kind: 'auth', event: r.event }) });
    }
  };
  const slow = '203.0.113.41';
  const almost = '203.0.113.42';
  const manual = '198.51.100.88';
  for (let i = 0; i < 15; i++) guessAt(slow, startMs + i * 36_000);
  for (let i = 0; i < 14; i++) guessAt(almost, startMs + 1000 + i * 40_000);
  history.push({ ms: startMs + 2 * 60_000 + 500, message: codec.encodeBan({ node: 'early', incarnation: 'x', seq: ++seq }, parseCidr(manual)!, 3600, 'by hand') });
  history.sort((x, y) => x.ms - y.ms);
  for (const h of history) await client.xadd(STREAM, `${h.ms}-*`, MESSAGE_FIELD, h.message);

  const late = await startNode(t, 'late', 0, { redisUrl: redis.url });
  const replayed = await late.daemon.waitForLog('history replayed', (l) => /history replayed/.test(l.msg ?? ''));
  t.equal(replayed.judged, 15 * 3 + 14 * 3, 'every event of the history judged');
  t.ok(await eventually(() => hasElement(late, slow)), 'the ban decided ten minutes of history ago is in the kernel');
  t.ok(await eventually(() => hasElement(late, manual)), 'the manual ban from 8 minutes ago is in the kernel');
  const el = kernelElements(late.table, 'banned4').find((e) => e.key === manual);
  // Banned for 3600 s some 480 s ago: ~3120 s left (less the time this test has run).
  const left = el?.timeout;
  t.ok(typeof left === 'number' && left >= 2900 && left <= 3130, `with its remaining time only (${left} s)`);
  t.notOk(hasElement(late, almost), `${almost} not banned by 14 guesses`);
  await sendGuesses(late, almost, guessTimes(1, 1));
  const line = await late.daemon.waitForLog('the 15th guess bans', (l) => l.event === 'ban' && l.target === almost);
  t.equal(line.rule, 'slow_guessing', 'the 14 replayed guesses count with the live one');
});

t.test('5. a manual ban and unban on one node reach all', clusterTestOptions(), async (t) => {
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

t.test('nodes with different policies: each logs the mismatch, fsguard check shows it', clusterTestOptions(), async (t) => {
  const redis = await redisFor(t);
  const a = await startNode(t, 'a', 0, { redisUrl: redis.url });
  const b = await startNode(t, 'b', 1, { redisUrl: redis.url, policy: { banSeconds: 7200 } });
  for (const [n, other] of [[a, 'b'], [b, 'a']] as const) {
    const line = await n.daemon.waitForLog(`${n.name} logs the digest mismatch`, (l) => /different policy/.test(l.msg ?? ''), 15_000);
    t.same((line.differing as Array<{ node: string }>).map((d) => d.node), [other], `${n.name} names ${other}`);
  }
  const check = await fsguardCli(['check', '--config', a.config]);
  t.equal(check.status, 1, 'check fails');
  t.match(check.stderr, /^cluster: policy digest differs: this config [0-9a-f]{16}, b [0-9a-f]{16}/m);
  t.match(check.stdout, /^esl: ok/m, 'the other checks still run');
  const status = await fsguardCli(['status', '--config', a.config]);
  t.equal(status.status, 0, status.stderr);
  t.match(status.stdout, /^cluster {11}node a, live on unix:\/\/\S+; policy digest [0-9a-f]{16}; 1 other node: b$/m, 'status shows the cluster');
  t.match(status.stdout, /POLICY DIGEST DIFFERS on b \([0-9a-f]{16}\)/, 'and the node whose policy differs');
  const json = JSON.parse((await fsguardCli(['status', '--json', '--config', a.config])).stdout) as { cluster: { nodes: { node: string; sameDigest: boolean }[] } };
  t.same(json.cluster.nodes.map((x) => [x.node, x.sameDigest]), [['b', false]]);
});
