// Several fsguard daemons sharing evidence and bans through a real Redis Stream: real
// `fsguard run` processes, a real redis-server started by the test on a Unix socket, each
// node with its own event-socket test server and its own nft table in the test's namespace.
// Windows are judged on the events' own timestamps (the test's clock), so nothing here waits
// for a policy window to pass; real processes are waited on with bounded deadlines.
import t, { type Test } from 'tap';
import { clusterCodec, MESSAGE_FIELD } from '../lib/cluster/codec.js';
import type { AuthEvent } from '../lib/events/auth-event.js';
import { normalizeEvent } from '../lib/events/normalize.js';
import { parseCidr } from '../lib/net/ip.js';
import { createPolicy } from '../lib/policy/engine.js';
import { DEFAULT_POLICY_SETTINGS } from '../lib/policy/settings.js';
import { fsguardCli } from './support/daemon-process.js';
import { kernelElements } from './support/nft-kernel.js';
import { netnsSkipReason } from './support/netns.js';
import { redisSkipReason, TestRedis } from './support/redis-server.js';
import {
  eventually, guessEvents, hasElement, judgedByOrigin, sendGuesses, startNode, startRedisCluster, STREAM, type ClusterNode,
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

/** The stream's events as every node reads them, decoded, in order. */
async function streamEvents(redis: TestRedis): Promise<AuthEvent[]> {
  const client = redis.client();
  try {
    const entries = await client.xrange(STREAM, '-', '+');
    const codec = clusterCodec();
    const out: AuthEvent[] = [];
    for (const [, fields] of entries) {
      const entry = codec.decodeEntry(fields[fields.indexOf(MESSAGE_FIELD) + 1]!);
      if (!entry.ok) throw new Error(entry.reason);
      for (const line of entry.lines) {
        const d = codec.decodeBody(line);
        if (d.ok && d.body.type === 'event') out.push(d.body.event);
      }
    }
    return out;
  } finally {
    client.disconnect();
  }
}

t.test('1. 2 guesses a minute at each of four nodes: banned on every node as soon as one node seeing all 8 would', opts, async (t) => {
  const redis = await redisFor(t);
  const daemons = await startRedisCluster(t, redis, ['a', 'b', 'c']);
  // The fourth FreeSWITCH's fsguard is the test itself, appending through the same codec.
  const codec = clusterCodec();
  const fourth = { switchIp: '192.0.2.14', eventSequence: 1 };
  const client = redis.client();
  t.teardown(() => client.disconnect());
  let fourthSeq = 0;
  const appendFourth = async (lines: string[]): Promise<void> => {
    for (const line of lines) {
      const r = normalizeEvent(JSON.parse(line) as Record<string, string>, { profiles: null });
      if (!r.ok) throw new Error(r.detail);
      await client.xadd(STREAM, '*', MESSAGE_FIELD, codec.encodeEvent({ node: 'd', incarnation: 'test', seq: ++fourthSeq }, { kind: 'auth', event: r.event }));
    }
  };
  const attacker = '203.0.113.30';
  const times = guessTimes(8, 7.5); // 8 a minute in all
  for (const [i, time] of times.entries()) {
    const node = i % 4 === 3 ? null : daemons[i % 4]!;
    if (node) await sendGuesses(node, attacker, [time]);
    else await appendFourth(guessEvents(fourth, attacker, time));
    // One guess at a time into the stream, so its order is the guesses' order.
    t.ok(await eventually(async () => (await streamEvents(redis)).length === (i + 1) * 3), `guess ${i + 1} in the stream`);
  }
  for (const n of daemons) t.ok(await eventually(() => hasElement(n, attacker)), `${attacker} banned on ${n.name}`);

  // What one policy seeing all the events decides, and what one seeing a node's share decides.
  const merged = await streamEvents(redis);
  const single = createPolicy(DEFAULT_POLICY_SETTINGS);
  const decisions = merged.flatMap((e, index) => single.observe(e).bans.map((d) => ({ d, index })));
  t.equal(decisions.length, 1, 'a single policy seeing all 8 guesses bans once');
  const share = createPolicy(DEFAULT_POLICY_SETTINGS);
  t.same(merged.filter((e) => e.switchAddresses.includes(daemons[0]!.switchIp)).flatMap((e) => share.observe(e).bans), [], 'one node\'s share alone bans nothing');
  for (const n of daemons) {
    const line = await n.daemon.waitForLog(`${n.name}: ban line`, (l) => l.event === 'ban' && l.target === attacker);
    t.equal((line.evidence as { answeredFailures: number }).answeredFailures, decisions[0]!.d.evidence.answeredFailures, `${n.name} banned at the same guess as the single policy`);
    t.equal(line.rule, decisions[0]!.d.rule);
  }
});

t.test('3. redis-server killed mid-attack and restarted: each node bans alone meanwhile; counts exact afterwards', opts, async (t) => {
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

t.test('4. a node started ten minutes late has the current bans and the last ten minutes of evidence', opts, async (t) => {
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
  t.ok(el && (el.timeout ?? 0) <= 3600 - 400, `with its remaining time only (${el?.timeout} s)`);
  t.notOk(hasElement(late, almost), `${almost} not banned by 14 guesses`);
  await sendGuesses(late, almost, guessTimes(1, 1));
  const line = await late.daemon.waitForLog('the 15th guess bans', (l) => l.event === 'ban' && l.target === almost);
  t.equal(line.rule, 'slow_guessing', 'the 14 replayed guesses count with the live one');
});

t.test('6. Redis with an ACL password: a wrong one is a clear error, retried slowly, and the node protects alone', opts, async (t) => {
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

t.test('nodes with different policies: each logs the mismatch, fsguard check shows it', opts, async (t) => {
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
});

t.test('Redis slow: the event side never waits; a bounded buffer drops the oldest, counted, with an alert', opts, async (t) => {
  const redis = await redisFor(t);
  const node = await startNode(t, 'slow', 0, { redisUrl: redis.url, cluster: { bufferEvents: 100 } });
  const client = redis.client();
  t.teardown(() => client.disconnect());
  // Redis answers no write for 5 s: the node's appends hang.
  await client.call('CLIENT', 'PAUSE', '5000', 'WRITE');
  const pausedAt = Date.now();
  const attacker = '203.0.113.70';
  await sendGuesses(node, attacker, guessTimes(8, 2));
  for (let i = 0; i < 40; i++) await sendGuesses(node, `198.51.100.${100 + i}`, guessTimes(1, 1));
  t.ok(await eventually(() => hasElement(node, attacker), 4000), 'banned from its own events while Redis does not answer');
  t.ok(Date.now() - pausedAt < 5000, 'before Redis answered again');
  const alert = await node.daemon.waitForLog('backlog alert', (l) => l.kind === 'cluster_backlog');
  t.equal(alert.level, 'warn');
  const metrics = await (await fetch(`http://127.0.0.1:${node.metricsPort}/metrics`)).text();
  const dropped = Number(/^fsguard_cluster_dropped_total\{reason="buffer_full"\} (\d+)$/m.exec(metrics)?.[1] ?? 0);
  t.equal(dropped, node.sent - 100, `the oldest beyond cluster.bufferEvents (100) dropped and counted (${dropped} of ${node.sent})`);
  t.ok(await eventually(async () => (await streamEvents(redis)).length === 100, 10_000), 'the 100 kept reach the stream once Redis answers');
  t.ok(await eventually(async () => (await judgedByOrigin(node)).slow === node.sent, 10_000), 'every own event judged once, dropped from the buffer or not');
});
