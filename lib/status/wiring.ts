// The daemon's status socket and notifications, wired in one place so lib/daemon/daemon.ts
// only starts, reloads and stops them.
import type { FsguardConfig } from '../config/config.js';
import type { GuardObserver } from '../daemon/guard-observer.js';
import { Notifier } from '../notify/notifier.js';
import type { Logger } from '../obs/logger.js';
import type { FsguardMetrics } from '../obs/metrics.js';
import { StatusCollector } from './report.js';
import type { ClusterStatus } from '../cluster/cluster-evidence.js';
import { serveStatus, type StatusServer } from './socket.js';
import { thresholdInspection, type ThresholdInspection } from './thresholds.js';

export interface OpsDeps {
  readonly logger: Logger;
  readonly metrics: FsguardMetrics;
  readonly configSource: string;
  readonly policy: () => ThresholdInspection;
  readonly bansInForce: () => { ipv4Hosts: number; ipv6Hosts: number; ipv4Prefixes: number; ipv6Prefixes: number; unwritten: number };
  readonly nftQueued: () => number;
  readonly cluster?: () => ClusterStatus | null;
}

/** How long a stopping daemon waits for the last digests to go out. */
const STOP_GRACE_MS = 3000;

export class DaemonOps {
  readonly status: StatusCollector;
  private notifier: Notifier;
  private server: StatusServer | null = null;
  /** Forwards to whichever notifier the current config made (a reload replaces it). */
  readonly notifications: GuardObserver;

  constructor(private config: FsguardConfig, private readonly deps: OpsDeps) {
    this.notifier = new Notifier(config.notify, { logger: deps.logger, registry: deps.metrics.registry });
    this.notifications = {
      banned: (d, s, at) => this.notifier.banned(d, s, at),
      unbanned: (t, r, h, at) => this.notifier.unbanned(t, r, h, at),
      alerted: (a, at) => this.notifier.alerted(a, at),
    };
    this.status = new StatusCollector({
      metrics: deps.metrics,
      configSource: () => deps.configSource,
      eslEndpoint: () => `${this.config.esl.host}:${this.config.esl.port}`,
      watchedProfiles: () => this.config.esl.profiles,
      nftTable: () => `inet ${this.config.nft.table}`,
      bansInForce: deps.bansInForce,
      nftQueued: deps.nftQueued,
      thresholds: thresholdInspection(deps.policy),
      notifications: () => this.notifier.channelHealth(),
      ...(deps.cluster ? { cluster: deps.cluster } : {}),
    });
  }

  get observers(): GuardObserver[] {
    return [this.status, this.notifications];
  }

  async start(): Promise<void> {
    if (this.config.status.socket) this.server = await serveStatus(this.config.status.socket, () => this.status.report(), this.deps.logger);
    if (this.notifier.enabled) this.deps.logger.info({ mail: this.config.notify.mail.kinds, webhook: this.config.notify.webhook.kinds }, 'notifications on');
  }

  async reload(next: FsguardConfig): Promise<void> {
    const prev = this.config;
    this.config = { ...next, status: prev.status };
    const changed = (a: unknown, b: unknown): boolean => JSON.stringify(a) !== JSON.stringify(b);
    if (changed(prev.notify, next.notify)) {
      const old = this.notifier;
      // prom-client refuses a second metric of one name: the new notifier's counters go in
      // after the old ones are removed (the counts restart, as after a restart).
      await old.stop(STOP_GRACE_MS);
      old.unregister(this.deps.metrics.registry);
      this.notifier = new Notifier(next.notify, { logger: this.deps.logger, registry: this.deps.metrics.registry });
      this.deps.logger.info({}, 'notification settings reloaded');
    }
    // Like the nft settings: the socket stays where `fsguard status` of the running config looks.
    if (changed(prev.status, next.status)) this.deps.logger.warn({}, 'status.socket changed: it takes effect on restart');
  }

  async stop(): Promise<void> {
    await this.server?.close();
    this.server = null;
    await this.notifier.stop(STOP_GRACE_MS);
  }
}
