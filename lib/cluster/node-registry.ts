// What each node says about itself, kept in one Redis hash beside the stream
// (`<stream>:nodes`, field = node name): the digest of its effective policy — nodes that judge
// the same stream with different policies reach different bans, which is worth a log line and
// a line in `fsguard check` — and FreeSWITCH's own addresses it has seen, which no node may
// ever ban (the one place a node learns the other nodes' FreeSWITCH addresses: see
// policy/switch-addresses.ts). A hash rather than stream messages: it is current state, and a
// node that starts reads all of it at once whatever its history setting.
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { parseIp } from '../net/ip.js';
import type { PolicySettings } from '../policy/settings.js';
import { MAX_SWITCH_ADDRESSES } from '../policy/switch-addresses.js';

export interface NodeRecord {
  readonly node: string;
  readonly incarnation: string;
  readonly digest: string;
  /** At most MAX_SWITCH_ADDRESSES, canonical texts (what a record holds beyond is not read). */
  readonly switchAddresses: readonly string[];
  /** Wall time (ms) of the node's last update, by its clock. */
  readonly updatedMs: number;
}

export function nodesKey(stream: string): string {
  return `${stream}:nodes`;
}

/** JSON with object keys sorted, so equal settings give equal text whatever their order. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/** The digest of the effective policy (settings and per-profile overrides): 16 hex digits. */
export function policyDigest(policy: PolicySettings, profiles: Readonly<Record<string, Partial<PolicySettings>>>): string {
  return createHash('sha256').update(canonicalJson({ policy, profiles })).digest('hex').slice(0, 16);
}

export async function publishNode(client: Redis, stream: string, record: NodeRecord): Promise<void> {
  await client.hset(nodesKey(stream), record.node, JSON.stringify(record));
}

/** Every node's record; malformed ones are skipped. */
export async function readNodes(client: Redis, stream: string): Promise<NodeRecord[]> {
  const all = await client.hgetall(nodesKey(stream));
  const out: NodeRecord[] = [];
  for (const [node, text] of Object.entries(all)) {
    try {
      const o = JSON.parse(text) as Record<string, unknown>;
      if (o.node !== node || typeof o.digest !== 'string' || typeof o.incarnation !== 'string' || typeof o.updatedMs !== 'number' || !Array.isArray(o.switchAddresses)) continue;
      const switchAddresses = o.switchAddresses.filter((a): a is string => typeof a === 'string' && parseIp(a)?.text === a).slice(0, MAX_SWITCH_ADDRESSES);
      out.push({ node, incarnation: o.incarnation, digest: o.digest.slice(0, 64), switchAddresses, updatedMs: o.updatedMs });
    } catch {
      // A record some other writer left: not ours to judge.
    }
  }
  return out.sort((a, b) => a.node.localeCompare(b.node));
}

/** Nodes whose digest differs from `digest`. */
export function digestMismatches(nodes: readonly NodeRecord[], self: string, digest: string): NodeRecord[] {
  return nodes.filter((n) => n.node !== self && n.digest !== digest);
}
