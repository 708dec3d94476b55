// The cluster's Prometheus metrics, registered on the daemon's own registry.
import { Counter, Gauge, type Registry } from 'prom-client';

export class ClusterMetrics {
  readonly connected: Gauge;
  readonly outages: Counter;
  readonly judged: Counter<'origin'>;
  readonly duplicates: Counter;
  readonly localFallback: Counter<'reason'>;
  readonly dropped: Counter<'reason'>;
  readonly queued: Gauge;
  readonly appended: Counter;
  readonly digestMismatches: Gauge;
  /** Judged events by origin node, handed to the counter at scrape time (hot path: a Map lookup). */
  private readonly judgedCounts = new Map<string, { n: number }>();

  constructor(registry: Registry, queued: () => number) {
    const registers = [registry];
    const counts = this.judgedCounts;
    this.connected = new Gauge({ name: 'fsguard_cluster_connected', help: '1 while this node reads and appends to the cluster stream', registers });
    this.outages = new Counter({ name: 'fsguard_cluster_outages_total', help: 'Times Redis became unreachable (the node protects alone meanwhile)', registers });
    this.judged = new Counter({
      name: 'fsguard_cluster_events_judged_total',
      help: 'Events judged by this node\'s policy, by the node that saw them',
      labelNames: ['origin'] as const,
      registers,
      collect() {
        for (const [origin, c] of counts) {
          if (c.n > 0) this.inc({ origin }, c.n);
          c.n = 0;
        }
      },
    });
    this.duplicates = new Counter({ name: 'fsguard_cluster_duplicates_total', help: 'Stream messages already judged (a republish, a resent append): skipped', registers });
    this.localFallback = new Counter({ name: 'fsguard_cluster_local_judged_total', help: 'Own events judged before they came back from the stream, by reason (outage, slow)', labelNames: ['reason'] as const, registers });
    this.dropped = new Counter({ name: 'fsguard_cluster_dropped_total', help: 'Messages not shared or not read: buffer full (oldest dropped), malformed entries', labelNames: ['reason'] as const, registers });
    this.queued = new Gauge({ name: 'fsguard_cluster_queued', help: 'Own messages waiting for Redis', registers, collect() { this.set(queued()); } });
    this.appended = new Counter({ name: 'fsguard_cluster_appended_total', help: 'Own messages Redis acknowledged', registers });
    this.digestMismatches = new Gauge({ name: 'fsguard_cluster_policy_digest_mismatches', help: 'Other nodes whose policy digest differs from this node\'s', registers });
  }

  judgedFrom(origin: string): void {
    const c = this.judgedCounts.get(origin);
    if (c) c.n++;
    else this.judgedCounts.set(origin, { n: 1 });
  }
}
