// Several fsguard daemons sharing evidence and bans through a real Redis Stream: real
// `fsguard run` processes, a real redis-server started by the test on a Unix socket, each
// node with its own event-socket test server and its own nft table in the test's namespace.
// Windows are judged on the events' own timestamps (the test's clock), so nothing here waits
// for a policy window to pass; real processes are waited on with bounded deadlines.
// (The cases are split over cluster-*.test.ts so each file fits tap's per-file timeout.)
import t from 'tap';
import { clusterCodec, MESSAGE_FIELD } from '../lib/cluster/codec.js';
import { normalizeEvent } from '../lib/events/normalize.js';
import { createPolicy } from '../lib/policy/engine.js';
import { DEFAULT_POLICY_SETTINGS } from '../lib/policy/settings.js';
import {
  clusterTestOptions, eventually, guessEvents, guessTimes, hasElement, judgedByOrigin, redisFor, sendGuesses, startRedisCluster, streamEvents, STREAM, type ClusterNode,
} from './support/cluster-rig.js';

t.test('1. 2 guesses a minute at each of four nodes: banned on every node as soon as one node seeing all 8 would', clusterTestOptions(), async (t) => {
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
  const shareOfA = await streamEvents(redis, daemons[0]!.name);
  t.equal(shareOfA.length, 2 * 3, 'node a published 2 of the 8 guesses');
  t.same(shareOfA.flatMap((e) => share.observe(e).bans), [], 'one node\'s share alone bans nothing');
  for (const n of daemons) {
    const line = await n.daemon.waitForLog(`${n.name}: ban line`, (l) => l.event === 'ban' && l.target === attacker);
    t.equal((line.evidence as { answeredFailures: number }).answeredFailures, decisions[0]!.d.evidence.answeredFailures, `${n.name} banned at the same guess as the single policy`);
    t.equal(line.rule, decisions[0]!.d.rule);
  }
});

t.test('2. a ban decided from events on node A is in the kernel sets of B and C; switch addresses are never banned', clusterTestOptions(), async (t) => {
  const redis = await redisFor(t);
  const [a, b, c] = await startRedisCluster(t, redis, ['a', 'b', 'c']) as [ClusterNode, ClusterNode, ClusterNode];
  const attacker = '203.0.113.20';
  await sendGuesses(a, attacker, guessTimes(8, 2));
  for (const n of [a, b, c]) t.ok(await eventually(() => hasElement(n, attacker)), `${attacker} in ${n.name}'s kernel set`);
  const bLine = await b.daemon.waitForLog('B: ban line', (l) => l.event === 'ban' && l.target === attacker);
  t.ok((bLine.evidence as { answeredFailures: number }).answeredFailures >= 6, 'B banned on the same evidence (A\'s guesses)');

  // Node B's FreeSWITCH (B learns it from its events and publishes it in its registry record,
  // where A and C read it) attacks through A: banned nowhere.
  await sendGuesses(b, '198.51.100.5', guessTimes(1, 1));
  for (const n of [a, c]) {
    await n.daemon.waitForLog(`${n.name} knows B's FreeSWITCH`, (l) => /other nodes' FreeSWITCH addresses/.test(l.msg ?? '') && (l.nodes as Record<string, string[]> | undefined)?.b?.includes(b.switchIp) === true);
  }
  await sendGuesses(a, b.switchIp, guessTimes(10, 1));
  for (const n of [a, b, c]) t.ok(await eventually(async () => ((await judgedByOrigin(n)).a ?? 0) >= a.sent), `${n.name} judged all of A's events`);
  for (const n of [a, b, c]) {
    t.notOk(hasElement(n, b.switchIp), `${b.switchIp} (node B's FreeSWITCH) not banned on ${n.name}`);
    t.notOk(n.daemon.lines.some((l) => l.event === 'ban' && l.target === b.switchIp), `no ban decided for it on ${n.name}`);
  }
});
