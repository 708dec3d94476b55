// What the one-shot commands do with the cluster: `fsguard ban` / `unban` append their manual
// ban to the stream (every node applies it, this one included), `fsguard check` says whether
// Redis takes our credentials and whether the nodes' policy digests agree.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { FsguardConfig } from '../config/config.js';
import type { Cidr } from '../net/ip.js';
import { clusterCodec, MESSAGE_FIELD, type OriginId } from './codec.js';
import { clusterNodeName } from './config.js';
import { clusterHistorySeconds } from './daemon-cluster.js';
import { digestMismatches, policyDigest, readNodes } from './node-registry.js';
import { describeEndpoint, redisOptions } from './redis-link.js';

const ONE_SHOT_TIMEOUT_MS = 5000;

export type ManualAction = { readonly type: 'ban'; readonly target: Cidr; readonly seconds: number; readonly note: string } | { readonly type: 'unban'; readonly target: Cidr };

/** A connection that tries once (no reconnects), for a command that must answer promptly. */
async function oneShot<T>(config: FsguardConfig, name: string, work: (client: Redis) => Promise<T>): Promise<T> {
  let lastError = '';
  const client = new Redis(redisOptions(config.cluster, () => null, name));
  client.on('error', (err: Error) => { lastError = err.message.split('\n')[0] ?? String(err); });
  const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer from ${describeEndpoint(config.cluster)} within ${ONE_SHOT_TIMEOUT_MS / 1000} s`)), ONE_SHOT_TIMEOUT_MS).unref());
  try {
    await Promise.race([client.connect(), timeout]).catch((err: unknown) => {
      throw new Error(lastError || (err instanceof Error ? err.message : String(err)));
    });
    return await Promise.race([work(client), timeout]);
  } finally {
    client.disconnect(false);
  }
}

/** Appends a manual ban or unban to the stream. Throws with a one-line reason. */
export async function publishManualAction(config: FsguardConfig, action: ManualAction): Promise<void> {
  const codec = clusterCodec();
  // The command is an origin of its own: one message, its own incarnation.
  const origin: OriginId = { node: clusterNodeName(config.cluster), incarnation: `cli-${randomBytes(6).toString('hex')}`, seq: 1 };
  const message = action.type === 'ban' ? codec.encodeBan(origin, action.target, action.seconds, action.note) : codec.encodeUnban(origin, action.target);
  const minId = `${Math.max(0, Date.now() - clusterHistorySeconds(config) * 1000)}-0`;
  await oneShot(config, 'fsguard:cli', (client) => client.xadd(config.cluster.stream, 'MINID', '~', minId, '*', MESSAGE_FIELD, message));
}

/** `check`'s cluster line, or throws with the problem (prefixed `cluster:`). */
export async function checkCluster(config: FsguardConfig): Promise<string> {
  const where = describeEndpoint(config.cluster);
  const self = clusterNodeName(config.cluster);
  const digest = policyDigest(config.policy, config.profiles);
  let nodes;
  try {
    nodes = await oneShot(config, 'fsguard:check', async (client) => {
      await client.ping();
      return readNodes(client, config.cluster.stream);
    });
  } catch (err) {
    throw new Error(`cluster: ${where}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const others = nodes.filter((n) => n.node !== self);
  const mismatches = digestMismatches(nodes, self, digest);
  if (mismatches.length) {
    throw new Error(`cluster: policy digest differs: this config ${digest}, ${mismatches.map((n) => `${n.node} ${n.digest}`).join(', ')} (the nodes' bans will differ; align their policy settings)`);
  }
  return `cluster: ok (${where}, stream ${config.cluster.stream}, node ${self}, policy digest ${digest}, ${others.length} other node${others.length === 1 ? '' : 's'}${others.length ? `: ${others.map((n) => n.node).join(', ')}` : ''})`;
}
