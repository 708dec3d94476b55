// The cluster's wire format, its once-only ledger and its config section, without Redis.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { AuthEventCodec, clusterCodec } from '../lib/cluster/codec.js';
import { clusterConfigProblems, clusterNodeName, parseRedisUrl, type ClusterConfig } from '../lib/cluster/config.js';
import { OriginLedger } from '../lib/cluster/origin-ledger.js';
import { policyDigest } from '../lib/cluster/node-registry.js';
import { ConfigError, loadConfig } from '../lib/config/config.js';
import { normalizeEvent } from '../lib/events/normalize.js';
import { CALL_EVENT_NAME, normalizeCallEvent } from '../lib/events/call-event.js';
import { CallTraceBuilder, carrier, prober } from './support/call-traces.js';
import { parseCidr } from '../lib/net/ip.js';
import { DEFAULT_POLICY_SETTINGS } from '../lib/policy/settings.js';
import { captureEventBodies, SCENARIOS } from './support/esl-test-helpers.js';

const origin = { node: 'a', incarnation: 'i1', seq: 1 };

t.test('every auth event of the shared traces survives the stream unchanged, but for FreeSWITCH\'s addresses', async (t) => {
  const codec = clusterCodec();
  let n = 0;
  const kinds = new Set<string>();
  for (const name of ['brute-force-one-user.jsonl', 'toll-fraud-invites.jsonl', 'ipv6-rotation.jsonl', 'mass-reboot-office.jsonl']) {
    for (const line of readFileSync(`${SCENARIOS}${name}`, 'utf8').split('\n').filter(Boolean).slice(0, 400)) {
      const r = normalizeEvent(JSON.parse(line) as Record<string, unknown>, { profiles: null });
      if (!r.ok) continue;
      const d = codec.decode(codec.encodeEvent({ ...origin, seq: ++n }, { kind: 'auth', event: r.event }));
      if (!d.ok || d.message.type !== 'event') { t.fail(`not decoded: ${d.ok ? d.message.type : d.reason}`); return; }
      t.same(d.message.event, { ...r.event, switchAddresses: [] });
      t.same(d.message.origin, { ...origin, seq: n });
      kinds.add(r.event.kind);
    }
  }
  t.same([...kinds].sort(), ['attempt', 'challenge', 'failure', 'registered'], 'all four kinds seen');
});

t.test('every call of the captured bytes and of generated traces survives the stream unchanged (but for FreeSWITCH\'s addresses); a bad one is refused', async (t) => {
  const codec = clusterCodec();
  const b = new CallTraceBuilder(3);
  carrier(b, { ips: ['198.51.100.40'], calls: 20, misdialShare: 0.2, durationS: 600 });
  prober(b, { ip: '2001:db8:bad:1::9', count: 10, ratePerS: 1 });
  for (let i = 0; i < 5; i++) b.call({ ip: '198.51.100.30', atS: 10 + i, number: '0044207123456', outcome: 'answered', seconds: 30, account: '1001' });
  const bodies = [...b.build().filter((h) => h['Event-Name'] === CALL_EVENT_NAME), ...captureEventBodies('esl_json_CHANNEL_calls.raw').map((x) => JSON.parse(x) as Record<string, unknown>)];
  const outcomes = new Set<string>();
  let n = 0;
  for (const h of bodies) {
    const r = normalizeCallEvent(h, { profiles: null });
    if (!r.ok) continue;
    const d = codec.decode(codec.encodeEvent({ ...origin, seq: ++n }, { kind: 'call', event: r.event }));
    if (!d.ok || d.message.type !== 'event') { t.fail(`not decoded: ${d.ok ? d.message.type : d.reason}`); return; }
    t.same(d.message.event, { ...r.event, switchAddresses: [] });
    outcomes.add(r.event.outcome);
  }
  t.ok(n >= 30, `${n} calls`);
  t.ok(outcomes.has('answered') && outcomes.has('unrouted'), 'answered and unrouted among them');
  const first = normalizeCallEvent(bodies[0]!, { profiles: null });
  if (!first.ok) throw new Error(first.detail);
  const [header, body] = codec.encodeEvent(origin, { kind: 'call', event: first.event }).split('\n') as [string, string];
  const e = (JSON.parse(body) as unknown[])[2] as unknown[];
  const withField = (i: number, v: unknown): string => `${header}\n${JSON.stringify(['e', 'call', e.map((x, j) => (j === i ? v : x))])}`;
  for (const [what, raw] of [['bad source', withField(1, '10.0.0.256')], ['no destination', withField(4, '')], ['unknown outcome', withField(6, 9)], ['an outcome that is an array property', withField(6, 'length')],
    ['negative answer time', withField(7, -1)], ['bad timestamp', withField(13, 1.5)], ['a long user agent', withField(10, 'x'.repeat(100_000))],
    ['too few fields', `${header}\n${JSON.stringify(['e', 'call', e.slice(0, 14)])}`]] as const) {
    t.notOk(codec.decode(raw).ok, `${what}: refused`);
  }
});

t.test('bans and unbans travel with their target, length and note', async (t) => {
  const codec = clusterCodec();
  const target = parseCidr('2001:db8:bad:1::/64')!;
  const ban = codec.decode(codec.encodeBan(origin, target, 7200, 'why'));
  t.same(ban, { ok: true, message: { type: 'ban', origin, target, seconds: 7200, note: 'why' } });
  t.same(codec.decode(codec.encodeUnban(origin, target)), { ok: true, message: { type: 'unban', origin, target } });
});

t.test('malformed entries and messages are refused with a reason, never trusted', async (t) => {
  const codec = clusterCodec();
  const first = normalizeEvent(JSON.parse(readFileSync(`${SCENARIOS}brute-force-one-user.jsonl`, 'utf8').split('\n')[0]!), { profiles: null });
  if (!first.ok) throw new Error(first.detail);
  const [header, body] = codec.encodeEvent(origin, { kind: 'auth', event: first.event }).split('\n') as [string, string];
  t.ok(codec.decode(`${header}\n${body}`).ok, 'the untouched entry decodes');
  const h = JSON.parse(header) as unknown[];
  const e = (JSON.parse(body) as unknown[])[2] as unknown[];
  const withEvent = (i: number, v: unknown): string => `${header}\n${JSON.stringify(['e', 'auth', e.map((x, j) => (j === i ? v : x))])}`;
  const bad: Array<[string, string]> = [
    ['not json', '{'],
    ['no messages', header],
    ['other version', `${JSON.stringify([1, ...h.slice(1)])}\n${body}`],
    ['no node', `${JSON.stringify([h[0], '', h[2], h[3]])}\n${body}`],
    ['zero seq', `${JSON.stringify([h[0], h[1], h[2], 0])}\n${body}`],
    ['unknown message type', `${header}\n["x"]`],
    ['unknown event kind', `${header}\n${JSON.stringify(['e', 'fax', e])}`],
    ['unknown auth kind', withEvent(0, 9)],
    ['an auth kind that is an array property', withEvent(0, 'length')],
    ['a fractional auth kind', withEvent(0, 1.5)],
    ['bad source', withEvent(2, '999.1.1.1')],
    ['non-canonical source', withEvent(2, '::ffff:1.2.3.4')],
    ['bad port', withEvent(3, 70_000)],
    ['long user agent', withEvent(4, 'x'.repeat(10_000))],
    ['bad timestamp', withEvent(6, -5)],
    ['ban of nothing', `${header}\n["b","me",10,""]`],
    ['ban for ever', `${header}\n["b","192.0.2.1",1e12,""]`],
  ];
  for (const [what, raw] of bad) t.notOk(codec.decode(raw).ok, what);
});

t.test('FreeSWITCH\'s addresses do not travel: sent empty, and read as none whatever an entry names', async (t) => {
  const codec = clusterCodec();
  const auth = normalizeEvent(JSON.parse(readFileSync(`${SCENARIOS}brute-force-one-user.jsonl`, 'utf8').split('\n')[0]!), { profiles: null });
  if (!auth.ok) throw new Error(auth.detail);
  t.ok(auth.event.switchAddresses.length > 0, 'the event names its FreeSWITCH');
  const hangup = captureEventBodies('esl_json_CHANNEL_calls.raw').map((x) => JSON.parse(x) as Record<string, unknown>).find((h) => h['Event-Name'] === CALL_EVENT_NAME)!;
  const call = normalizeCallEvent(hangup, { profiles: null });
  if (!call.ok) throw new Error(call.detail);
  t.ok(call.event.switchAddresses.length > 0, 'the call names its FreeSWITCH');
  for (const [e, slot] of [[{ kind: 'auth', event: auth.event }, 7], [{ kind: 'call', event: call.event }, 14]] as const) {
    const [header, body] = codec.encodeEvent(origin, e).split('\n') as [string, string];
    const fields = (JSON.parse(body) as unknown[])[2] as unknown[];
    t.same(fields[slot], [], `${e.kind}: sent empty`);
    // An older node, or any writer of the stream, naming addresses (here: an attacker's).
    for (const named of [['203.0.113.9', '2001:db8::9'], ['pbx'], 'x']) {
      const d = codec.decode(`${header}\n${JSON.stringify(['e', e.kind, fields.map((x, i) => (i === slot ? named : x))])}`);
      if (!d.ok || d.message.type !== 'event') { t.fail(`${e.kind}: not decoded: ${d.ok ? d.message.type : d.reason}`); continue; }
      t.same(d.message.event.switchAddresses, [], `${e.kind}: ${JSON.stringify(named)} read as none`);
    }
  }
});

t.test('an entry carries consecutive messages of one publisher', async (t) => {
  const codec = clusterCodec();
  const target = parseCidr('192.0.2.9')!;
  const raw = codec.entry({ node: 'b', incarnation: 'z' }, 41, [codec.banBody(target, 60, ''), codec.unbanBody(target)]);
  const entry = codec.decodeEntry(raw);
  if (!entry.ok) { t.fail(entry.reason); return; }
  t.same(entry.publisher, { node: 'b', incarnation: 'z' });
  t.equal(entry.firstSeq, 41);
  t.same(entry.lines.map((l) => codec.decodeBody(l)), [{ ok: true, body: { type: 'ban', target, seconds: 60, note: '' } }, { ok: true, body: { type: 'unban', target } }]);
});

t.test('event time bounded to the stream clock ± skew', async (t) => {
  const codec = clusterCodec();
  const first = normalizeEvent(JSON.parse(readFileSync(`${SCENARIOS}brute-force-one-user.jsonl`, 'utf8').split('\n')[0]!), { profiles: null });
  if (!first.ok) throw new Error(first.detail);
  const ev = { kind: 'auth' as const, event: first.event };
  const t0 = ev.event.timeUs;
  t.equal(codec.boundTime(ev, t0 - 1, t0 + 1), ev, 'within the bound: the same event');
  t.equal(codec.boundTime(ev, t0 - 9e6, t0 - 5e6).event.timeUs, t0 - 5e6, 'ahead: stamped at the upper bound');
  t.equal(codec.boundTime(ev, t0 + 5e6, t0 + 9e6).event.timeUs, t0 + 5e6, 'late: stamped at the lower bound');
  t.equal(ev.event.timeUs, t0, 'the original untouched');
  t.equal(new AuthEventCodec().timeUs(ev.event), t0);
});

t.test('the ledger admits each origin id once, in any order, per incarnation', async (t) => {
  const l = new OriginLedger();
  const o = (seq: number, incarnation = 'i1') => ({ node: 'a', incarnation, seq });
  t.ok(l.admit(o(1)));
  t.notOk(l.admit(o(1)), 'a repeat is refused');
  t.ok(l.admit(o(3)), 'ahead of a gap');
  t.ok(l.admit(o(2)), 'the gap filled later');
  t.notOk(l.admit(o(3)));
  t.notOk(l.admit(o(2)));
  t.ok(l.admit(o(1, 'i2')), 'a restarted node starts over');
  t.ok(l.has(o(3)) && !l.has(o(4)));
  // A number that never comes (dropped from a full buffer) does not keep the rest in memory for ever.
  for (let s = 10; s < 10 + 5000; s++) l.admit(o(s));
  t.notOk(l.admit(o(4000)), 'still refuses repeats past a long gap');
});

const base = (over: Partial<ClusterConfig> = {}): ClusterConfig => ({ ...loadConfig(null, {}).config.cluster, ...over });

t.test('cluster config: off by default, every bad key named', async (t) => {
  const c = loadConfig(null, {}).config.cluster;
  t.equal(c.enabled, false, 'off by default');
  t.same(parseRedisUrl('rediss://redis.example.net:6380/2'), { kind: 'tcp', host: 'redis.example.net', port: 6380, tls: true, db: 2 });
  t.same(parseRedisUrl('unix:///run/redis/redis.sock'), { kind: 'unix', path: '/run/redis/redis.sock', db: 0 });
  t.same(parseRedisUrl('redis://[::1]'), { kind: 'tcp', host: '::1', port: 6379, tls: false, db: 0 });
  const problems = clusterConfigProblems(base({ url: 'redis://u:pw@host', node: 'a b', stream: 'has space', sentinels: ['nohost', 'h:99999'], bufferEvents: 3, localFallbackMs: 0 })).join('\n');
  for (const key of ['cluster.url', 'cluster.node', 'cluster.stream', 'cluster.sentinels[0]', 'cluster.sentinels[1]', 'cluster.bufferEvents', 'cluster.localFallbackMs']) t.match(problems, key);
  t.notMatch(problems, /pw/, 'the password in a wrong URL is not repeated');
  t.match(clusterConfigProblems(base({ url: 'http://x' })).join(), /scheme/);
  t.match(clusterConfigProblems(base({ url: 'redis://h', tlsCaFile: '/x.pem' })).join(), /cluster\.tlsCaFile: only used with rediss/);
  t.match(clusterConfigProblems(base({ enabled: true, url: 'rediss://h', tlsCaFile: '/nonexistent/ca.pem' })).join(), /cluster\.tlsCaFile: cannot read/);
  t.equal(clusterNodeName(base({ node: '' }), 'pbx-1.example.net'), 'pbx-1.example.net');
  t.equal(clusterNodeName(base({ node: 'east' }), 'pbx'), 'east');
  try {
    loadConfig(null, { FSGUARD_CLUSTER_URL: 'ftp://x', FSGUARD_CLUSTER_HISTORY_SECONDS: '-1' });
    t.fail('accepted');
  } catch (err) {
    t.ok(err instanceof ConfigError);
    t.match((err as ConfigError).problems.join('\n'), /cluster\.url[\s\S]*cluster\.historySeconds|cluster\.historySeconds[\s\S]*cluster\.url/);
  }
});

t.test('the policy digest: the same settings in any key order agree, any change differs', async (t) => {
  const reordered = Object.fromEntries(Object.entries(DEFAULT_POLICY_SETTINGS).reverse()) as typeof DEFAULT_POLICY_SETTINGS;
  t.equal(policyDigest(DEFAULT_POLICY_SETTINGS, {}), policyDigest(reordered, {}));
  t.not(policyDigest(DEFAULT_POLICY_SETTINGS, {}), policyDigest({ ...DEFAULT_POLICY_SETTINGS, banSeconds: 3601 }, {}));
  t.not(policyDigest(DEFAULT_POLICY_SETTINGS, {}), policyDigest(DEFAULT_POLICY_SETTINGS, { internal: { banSeconds: 60 } }));
});
