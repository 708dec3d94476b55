// Several fsguard daemons sharing evidence and bans through a real Redis Stream: real
// `fsguard run` processes, a real redis-server started by the test on a Unix socket, each
// node with its own event-socket test server and its own nft table in the test's namespace.
// Windows are judged on the events' own timestamps (the test's clock), so nothing here waits
// for a policy window to pass; real processes are waited on with bounded deadlines.
// (The cases are split over cluster-*.test.ts so each file fits tap's per-file timeout.)
import t from 'tap';
import {
  clusterTestOptions, eventually, guessTimes, hasElement, judgedByOrigin, redisFor, sendGuesses, startNode, startRedisCluster, streamEvents, type ClusterNode,
} from './support/cluster-rig.js';

t.test('3. redis-server killed mid-attack and restarted: each node bans alone meanwhile; counts exact afterwards', clusterTestOptions(), async (t) => {
  const redis = await redisFor(t);
  const nodes = await startRedisCluster(t, redis, ['a', 'b', 'c']);
  const [a, b, c] = nodes as [ClusterNode, ClusterNode, ClusterNode];
  for (const [i, n] of nodes.entries()) await sendGuesses(n, `198.51.100.${40 + i}`, guessTimes(2, 20));
  for (const n of nodes) t.ok(await eventually(async () => { const j = await judgedByOrigin(n); return j.a === a.sent && j.b === b.sent && j.c === c.sent; }), `${n.name} judged every node's events before the outage`);

  await redis.kill();
  for (const n of nodes) await n.daemon.waitForLog(`${n.name} notices the outage`, (l) => /Redis unreachable/.test(l.msg ?? ''));
  const attacker = '203.0.113.50';
  await sendGuesses(a, attacker, guessTimes(8, 2));
  t.ok(await eventually(() => hasElement(a, attacker)), 'A bans from its own events while Redis is down');
  await sendGuesses(b, '198.51.100.50', guessTimes(2, 10));
  await sendGuesses(c, '198.51.100.51', guessTimes(1, 10));
  t.notOk(hasElement(b, attacker) || hasElement(c, attacker), 'B and C cannot know of it yet');

  await redis.restart();
  for (const n of nodes) {
    t.ok(await eventually(async () => { const j = await judgedByOrigin(n); return (j.a ?? 0) >= a.sent && (j.b ?? 0) >= b.sent && (j.c ?? 0) >= c.sent; }, 20_000), `${n.name} has judged every event`);
  }
  for (const n of nodes) t.ok(await eventually(() => hasElement(n, attacker)), `${attacker} banned on ${n.name} after the outage`);
  // Every message is in the stream by now; a second look finds no late double.
  const streamed = await streamEvents(redis);
  t.equal(streamed.length, a.sent + b.sent + c.sent - 18, 'the restarted Redis holds every event of the outage (and not those before it: no persistence)');
  for (const n of nodes) t.same(await judgedByOrigin(n), { a: a.sent, b: b.sent, c: c.sent }, `${n.name}: per-node event counts exact`);
});

t.test('6. Redis with an ACL password: a wrong one is a clear error, retried slowly, and the node protects alone', clusterTestOptions(), async (t) => {
  const acl = { user: 'fsguard', password: 's3cret-pw' };
  const redis = await redisFor(t, acl);
  const good = await startNode(t, 'good', 0, { redisUrl: redis.url, cluster: { username: acl.user, password: acl.password } });
  t.ok(good.daemon.running, 'the right password connects');
  const bad = await startNode(t, 'bad', 1, { redisUrl: redis.url, cluster: { username: acl.user, password: 'wrong-pw' } }, (l) => /refused the credentials/.test(l.msg ?? ''));
  const errorLine = bad.daemon.lines.find((l) => /refused the credentials/.test(l.msg ?? ''))!;
  t.equal(errorLine.level, 'error');
  t.match(errorLine.msg, /cluster\.password/, 'names the setting to fix');
  t.notOk(bad.daemon.lines.some((l) => JSON.stringify(l).includes('wrong-pw')), 'the password is in no log line');

  const client = redis.client();
  t.teardown(() => client.disconnect());
  const failures = async (): Promise<number> => {
    const log = (await client.call('ACL', 'LOG')) as unknown[][];
    return log.filter((e) => e[e.indexOf('reason') + 1] === 'auth').reduce((n, e) => n + Number(e[e.indexOf('count') + 1]), 0);
  };
  const first = await failures();
  const since = Date.now();
  t.ok(await eventually(async () => (await failures()) >= first + 6, 15_000), 'it retries');
  const elapsed = Date.now() - since;
  t.ok(elapsed >= 1500, `slowly: 6 more refused logins (two connections, three rounds) took ${elapsed} ms with authRetrySeconds 1`);

  const attacker = '203.0.113.60';
  await sendGuesses(bad, attacker, guessTimes(8, 2));
  t.ok(await eventually(() => hasElement(bad, attacker)), 'the node without Redis bans from its own events');
  t.ok(bad.daemon.running && good.daemon.running, 'both daemons alive');
});

t.test('Redis slow: the event side never waits; a bounded buffer drops the oldest, counted, with an alert', clusterTestOptions(), async (t) => {
  const redis = await redisFor(t);
  const node = await startNode(t, 'slow', 0, { redisUrl: redis.url, cluster: { bufferEvents: 100 } });
  const client = redis.client();
  t.teardown(() => client.disconnect());
  // Redis answers no write until the test says so: the node's appends hang.
  await client.call('CLIENT', 'PAUSE', '600000', 'WRITE');
  const attacker = '203.0.113.70';
  await sendGuesses(node, attacker, guessTimes(8, 2));
  for (let i = 0; i < 40; i++) await sendGuesses(node, `198.51.100.${100 + i}`, guessTimes(1, 1));
  t.ok(await eventually(() => hasElement(node, attacker), 30_000), 'banned from its own events while Redis does not answer');
  t.equal((await streamEvents(redis)).length, 0, 'nothing reached the stream yet: Redis was still paused');
  const alert = await node.daemon.waitForLog('backlog alert', (l) => l.kind === 'cluster_backlog');
  t.equal(alert.level, 'warn');
  const metrics = await (await fetch(`http://127.0.0.1:${node.metricsPort}/metrics`)).text();
  const dropped = Number(/^fsguard_cluster_dropped_total\{reason="buffer_full"\} (\d+)$/m.exec(metrics)?.[1] ?? 0);
  t.equal(dropped, node.sent - 100, `the oldest beyond cluster.bufferEvents (100) dropped and counted (${dropped} of ${node.sent})`);
  await client.call('CLIENT', 'UNPAUSE');
  t.ok(await eventually(async () => (await streamEvents(redis)).length === 100, 10_000), 'the 100 kept reach the stream once Redis answers');
  t.ok(await eventually(async () => (await judgedByOrigin(node)).slow === node.sent, 10_000), 'every own event judged once, dropped from the buffer or not');
});
