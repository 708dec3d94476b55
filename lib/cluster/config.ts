// The `cluster` config section: several fsguard nodes sharing evidence and bans through one
// Redis Stream. Off by default; with it off nothing connects anywhere. The schema and its
// checks live here (not in lib/config) so the section stays one localized piece of config.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

export interface ClusterConfig {
  readonly enabled: boolean;
  /** `redis://host:port[/db]`, `rediss://host:port[/db]` (TLS) or `unix:///path/to/redis.sock`. */
  readonly url: string;
  /** Redis ACL user (empty: the default user). */
  readonly username: string;
  /** Redis password (never logged). */
  readonly password: string;
  /** Sentinel addresses `host:port`; when set, `url` only gives the scheme (TLS or not). */
  readonly sentinels: readonly string[];
  /** The master's name as the Sentinels know it. */
  readonly sentinelMaster: string;
  /** PEM file of the CA that signed the Redis server's certificate (rediss://); empty: the system CAs. */
  readonly tlsCaFile: string;
  /** The stream every node appends to and reads; node state lives in `<stream>:nodes`. */
  readonly stream: string;
  /** This node's name in the stream; empty: the host name. */
  readonly node: string;
  /** How much history a starting node replays (and the stream keeps); 0: the policy's longest window. */
  readonly historySeconds: number;
  /** Events held for Redis (slow or down) before the oldest are dropped (counted, alerted). */
  readonly bufferEvents: number;
  /** A node's own event not back from the stream within this is judged locally (Redis slow). */
  readonly localFallbackMs: number;
  /** Cap of the reconnect backoff while Redis is unreachable. */
  readonly reconnectMaxSeconds: number;
  /** Retry interval after Redis refused the credentials. */
  readonly authRetrySeconds: number;
}

export const DEFAULT_CLUSTER_STREAM = 'fsguard:evidence';

/** The convict schema of the section (merged into the config schema by lib/config). */
export const clusterSchema = {
  enabled: { doc: 'Share evidence and bans with other fsguard nodes through Redis', format: Boolean, default: false },
  url: { doc: 'Redis: redis://host:port, rediss://host:port (TLS) or unix:///path/redis.sock', format: String, default: 'redis://127.0.0.1:6379' },
  username: { doc: 'Redis ACL user (empty: default user)', format: String, default: '' },
  password: { doc: 'Redis password (never logged)', format: String, default: '', sensitive: true },
  sentinels: { doc: 'Redis Sentinel addresses host:port (empty: no Sentinel)', format: Array, default: [] as string[] },
  sentinelMaster: { doc: 'Master name known to the Sentinels', format: String, default: 'mymaster' },
  tlsCaFile: { doc: 'CA certificate (PEM) of the Redis server for rediss:// (empty: system CAs)', format: String, default: '' },
  stream: { doc: 'Redis Stream key shared by the nodes', format: String, default: DEFAULT_CLUSTER_STREAM },
  node: { doc: 'This node\'s name (empty: the host name)', format: String, default: '' },
  historySeconds: { doc: 'History a starting node replays and the stream keeps (0: the policy\'s longest window)', format: Number, default: 0 },
  bufferEvents: { doc: 'Events held while Redis is slow or down before the oldest are dropped', format: 'int', default: 100_000 },
  localFallbackMs: { doc: 'A node\'s own event not back from the stream within this is judged locally', format: Number, default: 250 },
  reconnectMaxSeconds: { doc: 'Cap of the reconnect backoff while Redis is unreachable', format: Number, default: 2 },
  authRetrySeconds: { doc: 'Retry interval after Redis refused the credentials', format: Number, default: 30 },
};

const NODE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const STREAM_KEY = /^[\x21-\x7e]{1,200}$/;

/** Where to connect, parsed from `url` (see redisOptions in redis-connection.ts). */
export type RedisEndpoint =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number; readonly tls: boolean; readonly db: number }
  | { readonly kind: 'unix'; readonly path: string; readonly db: number };

/**
 * Parses cluster.url; a string is the problem (naming the key). With Sentinel the URL may leave
 * the host out (`redis://`, `rediss://`): the Sentinels name the master; a host given is then
 * only the name its TLS certificate is checked against.
 */
export function parseRedisUrl(url: string, sentinel = false): RedisEndpoint | string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `cluster.url: not a URL: ${JSON.stringify(url)} (redis://host:6379, rediss://host:6380 or unix:///run/redis/redis.sock)`;
  }
  // Credentials in the URL would travel into logs and process listings: they have their own keys.
  if (u.username || u.password) return 'cluster.url: put the user and password in cluster.username / cluster.password, not in the URL';
  const dbOf = (s: string | null): number | string => {
    if (s === null || s === '' || s === '/') return 0;
    const m = /^\/?(\d{1,2})$/.exec(s);
    return m ? Number(m[1]) : `cluster.url: the database must be a number, got ${JSON.stringify(s)}`;
  };
  if (u.protocol === 'unix:') {
    if (!u.pathname || u.pathname === '/') return 'cluster.url: unix:// needs the socket path (unix:///run/redis/redis.sock)';
    const db = dbOf(u.searchParams.get('db'));
    return typeof db === 'string' ? db : { kind: 'unix', path: decodeURIComponent(u.pathname), db };
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') return `cluster.url: the scheme must be redis://, rediss:// or unix://, got ${u.protocol}//`;
  if (!u.hostname && !sentinel) return 'cluster.url: needs a host';
  const port = u.port ? Number(u.port) : 6379;
  const db = dbOf(u.pathname);
  if (typeof db === 'string') return db;
  return { kind: 'tcp', host: u.hostname.replace(/^\[(.*)\]$/, '$1'), port, tls: u.protocol === 'rediss:', db };
}

/** Checks of the section convict's formats cannot express; each names its key. */
export function clusterConfigProblems(c: ClusterConfig): string[] {
  const problems: string[] = [];
  // Checked even when disabled: a section that is wrong now is wrong on the day it is enabled.
  const endpoint = parseRedisUrl(c.url, c.sentinels.length > 0);
  if (typeof endpoint === 'string') problems.push(endpoint);
  if (c.node !== '' && !NODE_NAME.test(c.node)) problems.push(`cluster.node: letters, digits, _ . - (up to 63), got ${JSON.stringify(c.node)}`);
  if (!STREAM_KEY.test(c.stream)) problems.push(`cluster.stream: a Redis key of printable characters without spaces, got ${JSON.stringify(c.stream)}`);
  if (/[\r\n]/.test(c.password)) problems.push('cluster.password: must not contain a line break');
  if (/[\s]/.test(c.username)) problems.push('cluster.username: must not contain white space');
  c.sentinels.forEach((s, i) => {
    if (typeof s !== 'string' || !/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(s) || Number(s.slice(s.lastIndexOf(':') + 1)) > 65535) {
      problems.push(`cluster.sentinels[${i}]: host:port expected, got ${JSON.stringify(s)}`);
    }
  });
  if (c.sentinels.length && !c.sentinelMaster.trim()) problems.push('cluster.sentinelMaster: must name the master when cluster.sentinels is set');
  if (c.sentinels.length && typeof endpoint !== 'string' && endpoint.kind === 'unix') problems.push('cluster.url: Sentinel needs redis:// or rediss://, not unix://');
  if (c.tlsCaFile !== '') {
    if (typeof endpoint !== 'string' && !(endpoint.kind === 'tcp' && endpoint.tls)) problems.push('cluster.tlsCaFile: only used with rediss:// (cluster.url)');
    else if (c.enabled) {
      try { readFileSync(c.tlsCaFile); } catch (err) { problems.push(`cluster.tlsCaFile: cannot read ${c.tlsCaFile}: ${err instanceof Error ? err.message : String(err)}`); }
    }
  }
  const numbers: Array<[string, number, number]> = [
    ['cluster.historySeconds', c.historySeconds, 0],
    ['cluster.bufferEvents', c.bufferEvents, 100],
    ['cluster.localFallbackMs', c.localFallbackMs, 1],
    ['cluster.reconnectMaxSeconds', c.reconnectMaxSeconds, 0.1],
    ['cluster.authRetrySeconds', c.authRetrySeconds, 0.1],
  ];
  for (const [key, v, min] of numbers) {
    if (!Number.isFinite(v) || v < min) problems.push(`${key}: must be a number >= ${min}, got ${JSON.stringify(v)}`);
  }
  return problems;
}

/** This node's name: cluster.node, or the host name made safe for the stream. */
export function clusterNodeName(c: ClusterConfig, host: string = hostname()): string {
  if (c.node) return c.node;
  const safe = host.replace(/[^A-Za-z0-9_.-]/g, '_').replace(/^[^A-Za-z0-9]+/, '').slice(0, 63);
  return safe || 'fsguard';
}
