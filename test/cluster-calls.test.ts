// Calls in the shared stream: a dialplan prober that spreads its calls over the nodes (one
// international number to each) is banned on every node, as one node seeing all its calls
// would ban it; each node alone saw one call, which bans nothing. Real daemons, real Redis,
// each node with its own event socket and nft table in the test's namespace.
import t from 'tap';
import { CALL_EVENT_NAME, normalizeCallEvent } from '../lib/events/call-event.js';
import { createPolicy } from '../lib/policy/engine.js';
import { DEFAULT_POLICY_SETTINGS } from '../lib/policy/settings.js';
import { CallTraceBuilder, randomNumber } from './support/call-traces.js';
import { clusterTestOptions, eventually, hasElement, nowUs, redisFor, startRedisCluster, STREAM, type ClusterNode } from './support/cluster-rig.js';
import { MESSAGE_FIELD } from '../lib/cluster/codec.js';

const PROBER = '203.0.113.45';

t.test('a prober calling one international number at each of three nodes is banned on all three', clusterTestOptions(), async (t) => {
  const redis = await redisFor(t);
  const nodes = await startRedisCluster(t, redis, ['a', 'b', 'c']);
  const b = new CallTraceBuilder(9);
  for (let i = 0; i < nodes.length; i++) b.call({ ip: PROBER, atS: i, number: randomNumber(b, '00972', 9), outcome: 'unrouted', ua: 'Zoiper rv2.10.19.4', port: 5070 + i });
  const calls = b.build().filter((h) => h['Event-Name'] === CALL_EVENT_NAME);
  t.equal(calls.length, 3);
  const t0 = nowUs() - 30e6;
  const client = redis.client();
  t.teardown(() => client.disconnect());
  const callsInStream = async (): Promise<number> => (await client.xrange(STREAM, '-', '+'))
    .map(([, f]) => f[f.indexOf(MESSAGE_FIELD) + 1]!).join('\n').split('\n').filter((l) => l.startsWith('["e","call"')).length;
  for (const [i, h] of calls.entries()) {
    const node = nodes[i] as ClusterNode;
    // Now-ish times (the stream's clock), and the node's own FreeSWITCH address.
    const body = { ...h, 'Event-Date-Timestamp': String(t0 + i * 10e6), 'FreeSWITCH-IPv4': node.switchIp, 'Event-Sequence': String(node.eventSequence++) };
    await node.server.replay([JSON.stringify(body)]);
    t.ok(await eventually(async () => (await callsInStream()) === i + 1), `call ${i + 1} (to ${node.name}) in the stream`);
  }
  for (const n of nodes) t.ok(await eventually(() => hasElement(n, PROBER)), `${PROBER} banned on ${n.name}`);
  for (const n of nodes) {
    const line = await n.daemon.waitForLog(`${n.name}: ban line`, (l) => l.event === 'ban' && l.target === PROBER);
    t.equal(line.rule, 'call_probing_international', `${n.name}: by the international probing rule`);
  }
  // Each node's share alone (one call) bans nothing.
  for (const h of calls) {
    const r = normalizeCallEvent(h, { profiles: null });
    if (!r.ok) throw new Error(r.detail);
    t.same(createPolicy(DEFAULT_POLICY_SETTINGS).observeCall(r.event).bans, [], 'one call alone: no ban');
  }
});
