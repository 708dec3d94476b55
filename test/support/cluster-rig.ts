// Several real `fsguard run` daemons sharing one test Redis: each with its own event-socket
// test server, its own nft table (in the test's network namespace) and its own metrics port.
// Plus the sofia events of password guesses, stamped with the test's own clock.
import type { Test } from 'tap';
import { clusterCodec, MESSAGE_FIELD } from '../../lib/cluster/codec.js';
import type { AuthEvent } from '../../lib/events/auth-event.js';
import { DaemonProcess, writeConfig, type LogLine } from './daemon-process.js';
import { EslTestServer } from './esl-server.js';
import { deleteTableIfExists, kernelElements, uniqueTableName } from './nft-kernel.js';
import { netnsSkipReason } from './netns.js';
import { redisSkipReason, TestRedis } from './redis-server.js';

export const STREAM = 'fsguard:test';

export interface ClusterNode {
  readonly name: string;
  readonly switchIp: string;
  readonly server: EslTestServer;
  readonly table: string;
  readonly config: string;
  daemon: DaemonProcess;
  metricsPort: number;
  /** Event lines sent to this node's event socket. */
  sent: number;
  eventSequence: number;
}

export interface NodeOptions {
  readonly redisUrl: string;
  readonly cluster?: Record<string, unknown>;
  readonly policy?: Record<string, unknown>;
}

/** Starts one node and waits until it follows the stream live (or until `ready` says so). */
export async function startNode(t: Test, name: string, index: number, o: NodeOptions, ready: (l: LogLine) => boolean = isLive): Promise<ClusterNode> {
  const switchIp = `192.0.2.${11 + index}`;
  const server = await EslTestServer.start({ heartbeatIntervalMs: 1000, switchIp });
  const table = uniqueTableName(`cl_${name}`);
  const config = writeConfig({
    esl: { host: '127.0.0.1', port: server.port, password: 'ClueCon', authRetrySeconds: 1 },
    nft: { table, reconcileSeconds: 0.5 },
    metrics: { enabled: true, host: '127.0.0.1', port: 0 },
    log: { level: 'debug' },
    ...(o.policy ? { policy: o.policy } : {}),
    cluster: { enabled: true, url: o.redisUrl, stream: STREAM, node: name, reconnectMaxSeconds: 0.2, authRetrySeconds: 1, ...o.cluster },
  });
  const daemon = DaemonProcess.start(config);
  const node: ClusterNode = { name, switchIp, server, table, config, daemon, metricsPort: 0, sent: 0, eventSequence: 1 };
  t.teardown(async () => {
    await node.daemon.stop('SIGKILL');
    await server.close();
    deleteTableIfExists('inet', table);
  });
  await untilReady(node, 1, ready);
  return node;
}

/** Waits for a node's daemon to serve metrics, to make subscription `subscriptions` of its event socket, and for `ready`. */
async function untilReady(node: ClusterNode, subscriptions: number, ready: (l: LogLine) => boolean): Promise<void> {
  // Generous deadlines: on a loaded 2-core machine a daemon can take many seconds to start.
  const metricsLine = await node.daemon.waitForLog(`${node.name}: metrics port`, (l) => l.msg === 'metrics at /metrics', 60_000);
  node.metricsPort = Number(metricsLine.port);
  await node.server.waitForSubscriptions(subscriptions, 60_000);
  await node.daemon.waitForLog(`${node.name}: ready`, ready, 60_000);
}

/** Kills a node's daemon with SIGKILL (it says and writes nothing at exit) and starts it again: same config, table and event socket. */
export async function restartNode(node: ClusterNode, ready: (l: LogLine) => boolean = isLive): Promise<void> {
  await node.daemon.stop('SIGKILL');
  const subscriptions = node.server.subscriptions + 1;
  node.daemon = DaemonProcess.start(node.config);
  await untilReady(node, subscriptions, ready);
}

export const isLive = (l: LogLine): boolean => /following the stream live|following it live/.test(l.msg ?? '');

/** One password guess from `ip` at `timeUs`: challenge, FORBIDDEN attempt, 403 (3 events). */
export function guessEvents(node: Pick<ClusterNode, 'switchIp'> & { eventSequence: number }, ip: string, timeUs: number, user = '1000', callId = `c${Math.random().toString(36).slice(2)}`): string[] {
  const base = (sub: string, t: number, extra: Record<string, string>): string => JSON.stringify({
    'Event-Name': 'CUSTOM',
    'Event-Subclass': `sofia::${sub}`,
    'Event-Date-Timestamp': String(t),
    'Event-Sequence': String(node.eventSequence++),
    'FreeSWITCH-IPv4': node.switchIp,
    'FreeSWITCH-IPv6': '::1',
    'profile-name': 'internal',
    'network-ip': ip,
    'network-port': '5070',
    'user-agent': 'Yealink SIP-T46S 66.86.0.15',
    ...extra,
  });
  const common = { 'call-id': callId, 'from-host': 'pbx.example.com', 'to-host': 'pbx.example.com' };
  return [
    base('pre_register', timeUs, { ...common, 'from-user': user, 'to-user': user, expires: '120' }),
    base('register_attempt', timeUs + 30_000, { ...common, 'from-user': user, 'to-user': user, username: user, realm: 'pbx.example.com', 'auth-result': 'FORBIDDEN' }),
    base('register_failure', timeUs + 30_000, { 'to-user': user, 'to-host': 'pbx.example.com', 'registration-type': 'REGISTER' }),
  ];
}

/** Sends password guesses to a node's event socket. */
export async function sendGuesses(node: ClusterNode, ip: string, timesUs: readonly number[]): Promise<void> {
  const lines = timesUs.flatMap((t) => guessEvents(node, ip, t));
  node.sent += lines.length;
  await node.server.replay(lines);
}

/** fsguard_cluster_events_judged_total by origin, from a node's /metrics. */
export async function judgedByOrigin(node: ClusterNode): Promise<Record<string, number>> {
  const res = await fetch(`http://127.0.0.1:${node.metricsPort}/metrics`);
  const text = await res.text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^fsguard_cluster_events_judged_total\{origin="([^"]+)"\} (\d+)$/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

export function hasElement(node: ClusterNode, key: string, set = 'banned4'): boolean {
  try {
    return kernelElements(node.table, set).some((e) => e.key === key);
  } catch {
    return false;
  }
}

/** Polls until `check` holds or `timeoutMs` passes; returns whether it held. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function startRedisCluster(t: Test, redis: TestRedis, names: readonly string[], o: Omit<NodeOptions, 'redisUrl'> = {}): Promise<ClusterNode[]> {
  const nodes: ClusterNode[] = [];
  for (const [i, name] of names.entries()) nodes.push(await startNode(t, name, i, { redisUrl: redis.url, ...o }));
  return nodes;
}

/** Tap options: the cluster tests need the test namespace and redis-server. */
export function clusterTestOptions(): { skip: string | false } {
  return { skip: netnsSkipReason() ?? redisSkipReason() ?? false };
}

export const nowUs = (): number => Date.now() * 1000;
/** `n` guesses `spacingS` apart, the last one now (all in the past: no event runs ahead of the clock). */
export const guessTimes = (n: number, spacingS: number): number[] => Array.from({ length: n }, (_, i) => nowUs() - Math.round((n - 1 - i) * spacingS * 1e6));

/** A test Redis (optionally with an ACL user), stopped at the end of the test. */
export async function redisFor(t: Test, acl: { user: string; password: string } | null = null): Promise<TestRedis> {
  const redis = await TestRedis.start(acl);
  t.teardown(() => redis.stop());
  return redis;
}

/** The stream's events as every node reads them, decoded, in order (`from`: those one node published). */
export async function streamEvents(redis: TestRedis, from: string | null = null): Promise<AuthEvent[]> {
  const client = redis.client();
  try {
    const entries = await client.xrange(STREAM, '-', '+');
    const codec = clusterCodec();
    const out: AuthEvent[] = [];
    for (const [, fields] of entries) {
      const entry = codec.decodeEntry(fields[fields.indexOf(MESSAGE_FIELD) + 1]!);
      if (!entry.ok) throw new Error(entry.reason);
      if (from !== null && entry.publisher.node !== from) continue;
      for (const line of entry.lines) {
        const d = codec.decodeBody(line);
        if (d.ok && d.body.type === 'event' && d.body.kind === 'auth') out.push(d.body.event);
      }
    }
    return out;
  } finally {
    client.disconnect();
  }
}

