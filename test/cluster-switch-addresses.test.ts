// FreeSWITCH's own addresses in a cluster: never banned, and learnt only where they can be
// trusted and bounded — this node's from its own FreeSWITCH's events, the other nodes' from
// the node registry (at most 16 a node) — never from the events on the shared stream, which
// anyone who can write it could fill with addresses to make them unbannable. First the set
// itself, then a real `fsguard run` with a real redis-server and its own nft table.
import t from 'tap';
import { clusterCodec, MESSAGE_FIELD } from '../lib/cluster/codec.js';
import { nodesKey } from '../lib/cluster/node-registry.js';
import { normalizeEvent } from '../lib/events/normalize.js';
import { parseCidr } from '../lib/net/ip.js';
import { MAX_OTHER_NODES, MAX_SWITCH_ADDRESSES, SwitchAddresses, type SwitchAddressChange } from '../lib/policy/switch-addresses.js';
import { kernelElements } from './support/nft-kernel.js';
import {
  clusterTestOptions, eventually, guessEvents, guessTimes, hasElement, judgedByOrigin, nowUs, redisFor, restartNode, sendGuesses, startRedisCluster, STREAM, type ClusterNode,
} from './support/cluster-rig.js';
import type { TestRedis } from './support/redis-server.js';

const addressesOf = (n: number, base: string): string[] => Array.from({ length: n }, (_, i) => `${base}${i + 1}`);

t.test('the set: this node\'s FreeSWITCH keeps its last 16, each other node 16, at most 64 nodes, as the registry has them now', async (t) => {
  const book = new SwitchAddresses();
  const changes: SwitchAddressChange[] = [];
  book.watch((c) => changes.push(c));

  book.learn(['192.0.2.10', '2001:db8::10']);
  t.same(book.ownAddresses, ['192.0.2.10', '2001:db8::10']);
  t.same(changes.map((c) => [c.added.map((a) => a.text), c.own]), [[['192.0.2.10', '2001:db8::10'], true]], 'told: added, and the own list changed');
  t.equal(book.within(parseCidr('2001:db8::/64')!), '2001:db8::10', 'a prefix over one of them');
  t.equal(book.within(parseCidr('192.0.2.11')!), null);
  // A FreeSWITCH whose address keeps changing (DHCP) over months: its last 16, not all.
  for (const a of addressesOf(40, '198.51.100.')) book.learn([a, '192.0.2.10']);
  t.equal(book.ownAddresses.length, MAX_SWITCH_ADDRESSES, 'own: 16 at most');
  t.ok(book.has('192.0.2.10') && book.has('198.51.100.40'), 'the one reported on every event and the latest are kept');
  t.notOk(book.has('2001:db8::10') || book.has('198.51.100.1'), 'the least recently reported went');

  changes.length = 0;
  const b = addressesOf(20, '203.0.113.');
  t.same(book.setNodes([{ node: 'b', switchAddresses: b }]), { changed: true, leftOut: 0 });
  t.same(book.otherNodes.get('b'), b.slice(0, MAX_SWITCH_ADDRESSES), 'a node: its first 16');
  t.ok(book.has('203.0.113.16') && !book.has('203.0.113.17'), 'the 17th of a node protects nothing');
  t.same(changes.map((c) => [c.added.length, c.own]), [[16, false]], 'told: 16 added, not the own list');
  t.same(book.setNodes([{ node: 'b', switchAddresses: b }]), { changed: false, leftOut: 0 }, 'the same again: no change');
  t.equal(changes.length, 1, 'and nothing told');

  // A record replaced: what it held before protects nothing any more (no growth by rotation).
  book.setNodes([{ node: 'b', switchAddresses: ['203.0.113.100'] }]);
  t.ok(book.has('203.0.113.100') && !book.has('203.0.113.1'), 'replaced, not added to');
  book.setNodes([]);
  t.notOk(book.has('203.0.113.100'), 'a node gone from the registry protects nothing');
  t.ok(book.has('192.0.2.10'), 'this node\'s own stay');

  const many = Array.from({ length: MAX_OTHER_NODES + 6 }, (_, i) => ({ node: `n${String(i).padStart(3, '0')}`, switchAddresses: [`10.1.${i}.1`] }));
  t.same(book.setNodes([...many].reverse()), { changed: true, leftOut: 6 }, 'more nodes than 64: the rest left out');
  t.ok(book.has(`10.1.${MAX_OTHER_NODES - 1}.1`) && !book.has(`10.1.${MAX_OTHER_NODES}.1`), 'the first 64 by name kept, whatever the order given');
  book.setNodes([{ node: 'c', switchAddresses: ['not an address', '10.0.0.1/8', '::ffff:10.0.0.1', '10.0.0.2'] }]);
  t.same(book.otherNodes.get('c'), ['10.0.0.2'], 'only canonical addresses');
});

/** Node `node`'s record in the registry as Redis holds it now. */
async function recordOf(redis: TestRedis, node: string): Promise<{ incarnation: string; digest: string; switchAddresses: string[] }> {
  const client = redis.client();
  try {
    return JSON.parse((await client.hget(nodesKey(STREAM), node)) ?? '{"switchAddresses":[]}') as { incarnation: string; digest: string; switchAddresses: string[] };
  } finally {
    client.disconnect();
  }
}

/** An entry of node `x` whose event names `named` as its FreeSWITCH: what an older node, or any writer of the stream, can append. */
function entryNaming(named: readonly string[], source: string, seq: number): string {
  const r = normalizeEvent(JSON.parse(guessEvents({ switchIp: named[0]!, eventSequence: seq }, source, nowUs())[0]!) as Record<string, string>, { profiles: null });
  if (!r.ok) throw new Error(r.detail);
  const [header, body] = clusterCodec().encodeEvent({ node: 'x', incarnation: 'forged', seq }, { kind: 'auth', event: r.event }).split('\n') as [string, string];
  const fields = (JSON.parse(body) as unknown[])[2] as unknown[];
  fields[7] = named;
  return `${header}\n${JSON.stringify(['e', 'auth', fields])}`;
}

t.test('an event on the stream naming an address as its FreeSWITCH does not protect it; a registered node\'s 16 addresses are never banned, its 17th is', clusterTestOptions(), async (t) => {
  const redis = await redisFor(t);
  const [a] = await startRedisCluster(t, redis, ['a']) as [ClusterNode];
  const client = redis.client();
  t.teardown(() => client.disconnect());
  const bans = (ip: string): boolean => a.daemon.lines.some((l) => l.event === 'ban' && l.target === ip);
  /** FreeSWITCH's addresses as the guard recorded them in the table (for `fsguard ban`): those it protects. */
  const recorded = (): string[] => kernelElements(a.table, 'freeswitch4').map((e) => e.key);

  // 1. A writer of the stream names an attacker's address (and a thousand more) as its FreeSWITCH.
  const attacker = '203.0.113.70';
  const spray = [attacker, ...Array.from({ length: 1000 }, (_, i) => `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`)];
  for (let i = 0; i < spray.length; i += 2) await client.xadd(STREAM, '*', MESSAGE_FIELD, entryNaming(spray.slice(i, i + 2), '198.51.100.7', i / 2 + 1));
  t.ok(await eventually(async () => ((await judgedByOrigin(a)).x ?? 0) >= spray.length / 2), 'a judged the forged events');
  await sendGuesses(a, attacker, guessTimes(8, 2));
  t.ok(await eventually(() => hasElement(a, attacker)), `${attacker}, named a FreeSWITCH on the stream, is banned for its guesses`);
  t.notOk(recorded().some((x) => spray.includes(x)), 'none of the named addresses recorded as FreeSWITCH\'s');

  // 2. Node b's registry record: 20 addresses, of which the first 16 count.
  t.ok(await eventually(async () => (await recordOf(redis, 'a')).switchAddresses.length > 0), 'a published its FreeSWITCH\'s addresses');
  const own = await recordOf(redis, 'a');
  t.same(own.switchAddresses, [a.switchIp, '::1'], 'those its own events name, only');
  const b = addressesOf(20, '100.64.0.');
  const record = (switchAddresses: readonly string[]): string => JSON.stringify({ node: 'b', incarnation: 't', digest: own.digest, switchAddresses, updatedMs: Date.now() });
  await client.hset(nodesKey(STREAM), 'b', record(b));
  t.ok(await eventually(() => recorded().includes(b[0]!)), 'a read b\'s record');
  const line = await a.daemon.waitForLog('the log line', (l) => /other nodes' FreeSWITCH addresses/.test(l.msg ?? ''));
  t.same(line.nodes, { b: b.slice(0, 16) }, 'b\'s first 16 addresses protected');
  // b's first address guesses, then its 17th: once the 17th is banned, the first was judged (one stream, in order).
  await sendGuesses(a, b[0]!, guessTimes(8, 2));
  await sendGuesses(a, b[16]!, guessTimes(8, 2));
  t.ok(await eventually(() => hasElement(a, b[16]!)), `${b[16]}, b's 17th address, is banned`);
  t.notOk(hasElement(a, b[0]!) || bans(b[0]!), `${b[0]}, b's first, is not banned (nor decided)`);
  t.notOk(a.daemon.lines.some((l) => /refused to ban a protected address/.test(l.msg ?? '')), 'the policy knows them too: no ban for the guard to refuse');
  t.ok(b.slice(0, 16).every((x) => recorded().includes(x)) && !recorded().includes(b[16]!), 'b\'s 16 recorded in the table for fsguard ban, not the 17th');

  // 3. b's record replaced: its old addresses protect nothing any more.
  await client.hset(nodesKey(STREAM), 'b', record(['192.0.2.99']));
  t.ok(await eventually(() => recorded().includes('192.0.2.99')), 'a read b\'s new record');
  await sendGuesses(a, b[0]!, guessTimes(8, 2));
  t.ok(await eventually(() => hasElement(a, b[0]!)), `${b[0]}, no longer in b's record, is banned for its guesses`);
});

t.test('a node publishes its FreeSWITCH\'s addresses from its HEARTBEATs, before any event: also once restarted with SIGKILL', clusterTestOptions(), async (t) => {
  const redis = await redisFor(t);
  const [a, b] = await startRedisCluster(t, redis, ['a', 'b']) as [ClusterNode, ClusterNode];
  // a's FreeSWITCH sends no auth or call event, only its HEARTBEATs (every second in the rig).
  t.ok(await eventually(async () => (await recordOf(redis, 'a')).switchAddresses.length > 0), 'a published its FreeSWITCH\'s addresses');
  t.same((await recordOf(redis, 'a')).switchAddresses, [a.switchIp, '::1'], 'those its HEARTBEATs name');
  const line = await b.daemon.waitForLog('b reads them', (l) => /other nodes' FreeSWITCH addresses/.test(l.msg ?? ''));
  t.same(line.nodes, { a: [a.switchIp, '::1'] }, 'b protects them');
  // Framed: b's FreeSWITCH reports guesses from a's address, then from an attacker's (one stream, in order).
  const attacker = '203.0.113.80';
  await sendGuesses(b, a.switchIp, guessTimes(8, 2));
  await sendGuesses(b, attacker, guessTimes(8, 2));
  t.ok(await eventually(() => hasElement(b, attacker)), `${attacker} is banned for its guesses`);
  t.notOk(hasElement(a, a.switchIp) || hasElement(b, a.switchIp), `${a.switchIp}, a's FreeSWITCH, is banned on neither node`);

  const before = await recordOf(redis, 'a');
  await restartNode(a);
  t.ok(await eventually(async () => {
    const r = await recordOf(redis, 'a');
    return r.incarnation !== before.incarnation && r.switchAddresses.length > 0;
  }), 'restarted, a published them again');
  t.same((await recordOf(redis, 'a')).switchAddresses, [a.switchIp, '::1'], 'from its HEARTBEATs');
  t.equal(a.sent, 0, 'a was sent no event at all');
});
