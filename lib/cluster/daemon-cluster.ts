// The daemon's seam to the cluster: the event source's events go to the cluster instead of
// straight to the guard, and the cluster feeds the guard the shared stream. Without a
// `cluster` section none of this is built and the guard gets the events directly.
import type { FsguardConfig } from '../config/config.js';
import type { EslSourceListener } from '../esl/index.js';
import type { AuthEvent } from '../events/auth-event.js';
import type { CallEvent } from '../events/call-event.js';
import type { Cidr } from '../net/ip.js';
import type { Logger } from '../obs/logger.js';
import type { PolicySettings } from '../policy/settings.js';
import type { SwitchAddresses } from '../policy/switch-addresses.js';
import type { Registry } from 'prom-client';
import { ClusterEvidence, type ClusterStatus } from './cluster-evidence.js';
import { clusterCodec, type ClusterEventKinds } from './codec.js';
import { clusterNodeName } from './config.js';
import { ClusterMetrics } from './metrics.js';
import { policyDigest } from './node-registry.js';

/** The part of the Guard the cluster drives. */
export interface ClusterGuard extends EslSourceListener {
  countCall(event: CallEvent): void;
  judgeCall(event: CallEvent): void;
  manualBan(target: Cidr, seconds: number, note: string): void;
  manualUnban(target: Cidr, atMs: number): void;
}

/** How much history a starting node replays: cluster.historySeconds, or the policy's longest window. */
export function clusterHistorySeconds(config: FsguardConfig): number {
  if (config.cluster.historySeconds > 0) return config.cluster.historySeconds;
  let longest = config.policy.longWindowSeconds;
  for (const o of Object.values(config.profiles)) longest = Math.max(longest, o.longWindowSeconds ?? 0);
  return longest;
}

export class DaemonCluster {
  private readonly evidence: ClusterEvidence<ClusterEventKinds>;

  /** `switchAddresses`: the daemon's (shared with its guard and policy); the node registry sets the other nodes'. */
  constructor(config: FsguardConfig, logger: Logger, registry: Registry, switchAddresses: SwitchAddresses) {
    let evidence: ClusterEvidence<ClusterEventKinds> | null = null;
    const metrics = new ClusterMetrics(registry, () => evidence?.queued ?? 0);
    evidence = new ClusterEvidence<ClusterEventKinds>({
      config: config.cluster,
      node: clusterNodeName(config.cluster),
      historyMs: clusterHistorySeconds(config) * 1000,
      maxSkewMs: config.policy.maxSourceSkewSeconds * 1000,
      digest: policyDigest(config.policy, config.profiles),
      codec: clusterCodec(),
      logger,
      metrics,
      switchAddresses,
    });
    this.evidence = evidence;
  }

  get node(): string {
    return this.evidence.node;
  }

  status(): ClusterStatus {
    return this.evidence.status();
  }

  /** The guard's options for a cluster node (see GuardOptions). */
  guardOptions(): { banFromEventTime: true } {
    return { banFromEventTime: true };
  }

  /** Connects and feeds `guard` the stream. */
  start(guard: ClusterGuard): void {
    this.evidence.start({
      judge: (e) => (e.kind === 'auth' ? guard.onEvent(e.event) : guard.judgeCall(e.event)),
      manualBan: (target, seconds, note) => guard.manualBan(target, seconds, note),
      manualUnban: (target, atMs) => guard.manualUnban(target, atMs),
    });
  }

  /** The listener for the event source: everything goes to the guard, events via the stream. */
  listenerFor(guard: ClusterGuard): EslSourceListener {
    const evidence = this.evidence;
    return {
      onEvent: (event: AuthEvent) => evidence.publish({ kind: 'auth', event }),
      // Calls too: a prober spreading its calls over the nodes is judged on all of them.
      onCallEvent: (event: CallEvent) => { guard.countCall(event); evidence.publish({ kind: 'call', event }); },
      onEventReceived: (subclass, profile) => guard.onEventReceived(subclass, profile),
      onDropped: (reason, detail) => guard.onDropped(reason, detail),
      onRegistrations: (registrations) => guard.onRegistrations(registrations),
      onConnected: () => guard.onConnected(),
      onDisconnected: (reason) => guard.onDisconnected(reason),
      onAuthRejected: (kind) => guard.onAuthRejected(kind),
      // FreeSWITCH's addresses (for the node registry) and its host and version (for status).
      onHeartbeat: (info) => guard.onHeartbeat?.(info),
    };
  }

  policyChanged(policy: PolicySettings, profiles: Readonly<Record<string, Partial<PolicySettings>>>): void {
    this.evidence.setDigest(policyDigest(policy, profiles));
  }

  stop(): Promise<void> {
    return this.evidence.stop();
  }
}
