// Prometheus metrics. Each daemon owns its own Registry (no prom-client global state), so
// tests can run several daemons in one process.
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export class FsguardMetrics {
  readonly registry = new Registry();
  readonly eventsTotal = new Counter({
    name: 'fsguard_events_total',
    help: 'Sofia auth events received, by subclass and profile',
    labelNames: ['subclass', 'profile'] as const,
    registers: [this.registry],
  });
  readonly eventsDropped = new Counter({
    name: 'fsguard_events_dropped_total',
    help: 'Events or frames not acted on, by reason (malformed, profile not watched, ...)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly bansTotal = new Counter({
    name: 'fsguard_bans_total',
    help: 'Ban decisions, by rule',
    labelNames: ['rule'] as const,
    registers: [this.registry],
  });
  readonly alertsTotal = new Counter({
    name: 'fsguard_alerts_total',
    help: 'Policy alerts (misprovisioned devices, near misses, spoofed challenges), by kind',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly nftBatches = new Counter({
    name: 'fsguard_nft_batches_total',
    help: 'nft transactions that committed',
    registers: [this.registry],
  });
  readonly nftErrors = new Counter({
    name: 'fsguard_nft_errors_total',
    help: 'nft runs or elements that failed (retried runs count each failure)',
    registers: [this.registry],
  });
  readonly eslConnected = new Gauge({
    name: 'fsguard_esl_connected',
    help: '1 while authenticated and subscribed to the FreeSWITCH event socket',
    registers: [this.registry],
  });
  readonly eslReconnects = new Counter({
    name: 'fsguard_esl_reconnects_total',
    help: 'Event socket connections established after the first one',
    registers: [this.registry],
  });
  readonly trackedSources = new Gauge({
    name: 'fsguard_policy_tracked_sources',
    help: 'Sources and prefixes the policy holds state for',
    registers: [this.registry],
  });

  /** eventsTotal's children by subclass, then profile: `inc(labels)` hashes the labels per call. */
  private readonly eventCounters = new Map<string, Map<string, { inc(): void }>>();

  constructor(withProcessMetrics = true) {
    if (withProcessMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'fsguard_' });
  }

  /** eventsTotal{subclass,profile} += 1, without per-event label hashing (hot path). */
  eventReceived(subclass: string, profile: string): void {
    let bySubclass = this.eventCounters.get(subclass);
    if (!bySubclass) {
      bySubclass = new Map();
      this.eventCounters.set(subclass, bySubclass);
    }
    let counter = bySubclass.get(profile);
    if (!counter) {
      counter = this.eventsTotal.labels({ subclass, profile });
      bySubclass.set(profile, counter);
    }
    counter.inc();
  }
}

/** Serves /metrics; resolves with the bound port once listening. */
export async function serveMetrics(metrics: FsguardMetrics, host: string, port: number): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    metrics.registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(err)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => { server.off('error', reject); resolve(); });
  });
  const addr = server.address();
  return { server, port: typeof addr === 'object' && addr ? addr.port : port };
}
