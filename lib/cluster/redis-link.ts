// One connection to Redis (ioredis) with fsguard's retry rules: reconnect with a backoff
// capped at cluster.reconnectMaxSeconds, but after refused credentials (WRONGPASS, NOAUTH,
// NOPERM) only every cluster.authRetrySeconds — a wrong password is a config error that will
// not fix itself by hammering the server. Commands never wait in a queue while the link is
// down (they fail at once): the callers keep their own bounded buffers and decide what to
// resend, in order.
//
// ioredis rather than our own RESP client: it has Sentinel, TLS, Unix sockets and ACL auth,
// and is well kept; a stream client gains nothing from being written again here.
import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import { parseRedisUrl, type ClusterConfig } from './config.js';

export type LinkState = 'connecting' | 'ready' | 'down' | 'closed';

/** Why the link is down, for logs and `check` (never the password). */
export type LinkProblem = { readonly kind: 'auth'; readonly message: string } | { readonly kind: 'network'; readonly message: string };

export interface RedisLinkEvents {
  ready(): void;
  /** The link was ready and is not any more (or never became ready: first failure). */
  down(problem: LinkProblem): void;
}

const AUTH_ERROR = /WRONGPASS|NOAUTH|NOPERM|invalid password|invalid username/i;
/** First reconnect delays; doubled up to the cap. */
const FIRST_RETRY_MS = 100;

/** ioredis options for cluster config (TLS, Unix socket, ACL user, Sentinel). */
export function redisOptions(c: ClusterConfig, retry: (attempt: number) => number | null, connectionName: string): RedisOptions {
  const endpoint = parseRedisUrl(c.url, c.sentinels.length > 0);
  if (typeof endpoint === 'string') throw new Error(endpoint);
  const common: RedisOptions = {
    ...(c.username ? { username: c.username } : {}),
    ...(c.password ? { password: c.password } : {}),
    db: endpoint.db,
    connectionName,
    // RESP2 replies: XREAD's shape does not depend on the server's protocol support.
    protocol: 2,
    enableOfflineQueue: false,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 0,
    connectTimeout: 5000,
    retryStrategy: retry,
    lazyConnect: true,
  };
  if (endpoint.kind === 'unix') return { ...common, path: endpoint.path };
  const servername = endpoint.host ? { servername: endpoint.host } : {};
  const tls = endpoint.tls ? { tls: c.tlsCaFile ? { ca: readFileSync(c.tlsCaFile), ...servername } : servername } : {};
  if (c.sentinels.length) {
    return {
      ...common,
      ...tls,
      sentinels: c.sentinels.map((s) => {
        const i = s.lastIndexOf(':');
        return { host: s.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port: Number(s.slice(i + 1)) };
      }),
      name: c.sentinelMaster,
      ...(endpoint.tls ? { enableTLSForSentinelMode: true } : {}),
      sentinelRetryStrategy: retry,
    };
  }
  return { ...common, ...tls, host: endpoint.host, port: endpoint.port };
}

/** Where the link goes, for log lines: no credentials. */
export function describeEndpoint(c: ClusterConfig): string {
  if (c.sentinels.length) return `sentinel ${c.sentinelMaster} via ${c.sentinels.join(',')}`;
  return c.url;
}

export class RedisLink {
  readonly client: Redis;
  private stateNow: LinkState = 'connecting';
  private lastProblem: LinkProblem | null = null;
  private wasReady = false;
  /** Down reported for the current outage already (one `down` per outage, not per retry). */
  private downReported = false;

  constructor(config: ClusterConfig, connectionName: string, private readonly events: RedisLinkEvents) {
    const reconnectMaxMs = config.reconnectMaxSeconds * 1000;
    const authRetryMs = config.authRetrySeconds * 1000;
    const retry = (attempt: number): number => {
      if (this.lastProblem?.kind === 'auth') return authRetryMs;
      return Math.min(reconnectMaxMs, FIRST_RETRY_MS * 2 ** Math.min(16, Math.max(0, attempt - 1)));
    };
    this.client = new Redis(redisOptions(config, retry, connectionName));
    this.client.on('ready', () => {
      this.stateNow = 'ready';
      this.wasReady = true;
      this.downReported = false;
      this.lastProblem = null;
      this.events.ready();
    });
    this.client.on('error', (err: Error) => {
      this.lastProblem = AUTH_ERROR.test(err.message)
        ? { kind: 'auth', message: `Redis refused the credentials (cluster.username / cluster.password): ${err.message.split('\n')[0]}` }
        : { kind: 'network', message: err.message.split('\n')[0] ?? String(err) };
    });
    this.client.on('close', () => {
      if (this.stateNow === 'closed') return;
      this.stateNow = 'down';
      if (!this.downReported) {
        this.downReported = true;
        this.events.down(this.lastProblem ?? { kind: 'network', message: this.wasReady ? 'connection closed' : 'cannot connect' });
      }
    });
  }

  get state(): LinkState {
    return this.stateNow;
  }

  get problem(): LinkProblem | null {
    return this.lastProblem;
  }

  start(): void {
    this.client.connect().catch(() => { /* reported through 'error' and 'close'; ioredis retries */ });
  }

  async close(): Promise<void> {
    this.stateNow = 'closed';
    this.client.disconnect(false);
  }
}
