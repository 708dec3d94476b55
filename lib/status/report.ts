// What `fsguard status` shows, and the daemon-side collector that knows it. The collector is
// a GuardObserver (connection, alerts) and reads the rest when asked: counters from the
// metrics registry, bans in force from the guard, closeness to thresholds through the
// ThresholdInspection seam. Nothing here runs per event; events per minute come from
// samples of the event counter taken on the daemon's 1 s tick.
import type { ConnectionState, GuardObserver, SwitchInfo } from '../daemon/guard-observer.js';
import type { ChannelHealth } from '../notify/notifier.js';
import type { FsguardMetrics } from '../obs/metrics.js';
import type { PolicyAlert } from '../policy/types.js';
import type { NearThreshold, ThresholdInspection } from './thresholds.js';
import type { ClusterStatus } from '../cluster/cluster-evidence.js';
import { isoTimeMs } from '../text/iso-time.js';

export const STATUS_FORMAT = 1;

/** A policy table full of live entries (fsguard_policy_untracked_account_authentications_total, …_proofs_left_out_total). */
export interface FullTable {
  readonly table: 'toll-fraud accounts' | 'proven sources';
  /** The policy key that sizes it. */
  readonly setting: 'maxTrackedAccounts' | 'maxLegitimateSources';
  /** Arrivals it left out since start: authentications of untracked accounts, proofs kept among the unproven. */
  readonly leftOut: number;
}

export interface AlertEntry {
  readonly at: string;
  readonly kind: string;
  readonly source: string;
  readonly profile: string;
  readonly user?: string;
  readonly userAgent?: string;
  readonly message: string;
}

export interface BanCounts {
  readonly ipv4Hosts: number;
  readonly ipv6Hosts: number;
  readonly ipv4Prefixes: number;
  readonly ipv6Prefixes: number;
  readonly total: number;
}

export interface StatusReport {
  readonly format: number;
  readonly daemon: { readonly pid: number; readonly startedAt: string; readonly uptimeSeconds: number; readonly config: string };
  readonly eventSocket: {
    readonly endpoint: string;
    readonly state: ConnectionState | 'connecting';
    readonly since: string | null;
    /** Why the last connection ended or was refused. */
    readonly lastProblem: string | null;
    readonly lastHeartbeatAt: string | null;
    readonly freeswitch: { readonly hostname: string; readonly version: string; readonly uptimeSeconds: number | null } | null;
  };
  readonly profiles: { readonly watched: readonly string[] | 'all'; readonly seen: readonly string[] };
  readonly events: {
    /** The window the per-kind figures cover (60, or less just after start). */
    readonly windowSeconds: number;
    readonly lastMinute: { readonly total: number; readonly byKind: Readonly<Record<string, number>>; readonly byProfile: Readonly<Record<string, Readonly<Record<string, number>>>> };
    readonly sinceStart: number;
  };
  readonly bans: { readonly now: BanCounts; readonly unwritten: number; readonly sinceStart: { readonly total: number; readonly byRule: Readonly<Record<string, number>> } };
  readonly trackedSources: number;
  /** Policy tables that were full of live entries and left arrivals out, since start (only those that did). */
  readonly fullTables: readonly FullTable[];
  readonly nearestThresholds: readonly NearThreshold[];
  readonly alerts: { readonly sinceStart: Readonly<Record<string, number>>; readonly latest: readonly AlertEntry[] };
  readonly nftWriter: {
    readonly table: string;
    readonly healthy: boolean;
    readonly batches: number;
    readonly errors: number;
    readonly queued: number;
    readonly lastError: string | null;
    readonly lastErrorAt: string | null;
  };
  readonly notifications: readonly ChannelHealth[];
  /** Null without a cluster section. */
  readonly cluster: {
    readonly node: string;
    readonly redis: string;
    readonly state: ClusterStatus['state'];
    readonly downSince: string | null;
    readonly lastProblem: string | null;
    readonly queued: number;
    readonly digest: string;
    readonly nodes: readonly { readonly node: string; readonly digest: string; readonly sameDigest: boolean; readonly seenAt: string }[];
  } | null;
}

/** What the collector reads from the daemon when asked. */
export interface StatusSources {
  readonly metrics: FsguardMetrics;
  readonly configSource: () => string;
  readonly eslEndpoint: () => string;
  readonly watchedProfiles: () => readonly string[];
  readonly nftTable: () => string;
  readonly bansInForce: () => { ipv4Hosts: number; ipv6Hosts: number; ipv4Prefixes: number; ipv6Prefixes: number; unwritten: number };
  readonly nftQueued: () => number;
  readonly thresholds: ThresholdInspection;
  readonly notifications: () => ChannelHealth[];
  readonly cluster?: () => ClusterStatus | null;
  readonly clock?: () => number;
  readonly pid?: number;
}

const LATEST_ALERTS = 10;
const NEAREST = 10;
const SAMPLE_EVERY_MS = 5000;
const WINDOW_MS = 60_000;
/** An nft error this recent makes the writer "unhealthy" in the status. */
const NFT_ERROR_RECENT_MS = 5 * 60_000;

type CounterValues = Map<string, number>;

interface Sample {
  readonly atMs: number;
  readonly values: CounterValues;
}

const iso = (ms: number | null): string | null => (ms === null ? null : isoTimeMs(ms));

async function counterValues(metric: { get(): Promise<{ values: Array<{ value: number; labels: Record<string, string | number | undefined> }> }> }, labels: readonly string[]): Promise<CounterValues> {
  const out: CounterValues = new Map();
  for (const v of (await metric.get()).values) out.set(labels.map((l) => String(v.labels[l] ?? '')).join('\t'), v.value);
  return out;
}

export class StatusCollector implements GuardObserver {
  private readonly clock: () => number;
  private readonly startedAtMs: number;
  private link: { state: ConnectionState | 'connecting'; sinceMs: number | null; lastProblem: string | null } = { state: 'connecting', sinceMs: null, lastProblem: null };
  private switchInfo: SwitchInfo | null = null;
  private lastHeartbeatMs: number | null = null;
  private readonly latestAlerts: AlertEntry[] = [];
  private lastNftError: { message: string; atMs: number } | null = null;
  /** Event counter samples, oldest first, covering a little more than WINDOW_MS. */
  private samples: Sample[] = [];
  private sampling = false;

  constructor(private readonly sources: StatusSources) {
    this.clock = sources.clock ?? Date.now;
    this.startedAtMs = this.clock();
  }

  // ---- GuardObserver ----------------------------------------------------------------------

  connection(state: ConnectionState, detail: string, atMs: number): void {
    const wasUp = this.link.state === 'connected';
    const changed = state !== this.link.state;
    this.link = {
      state,
      sinceMs: changed || this.link.sinceMs === null ? atMs : this.link.sinceMs,
      lastProblem: state === 'connected' ? this.link.lastProblem : (detail || (wasUp ? 'disconnected' : state)),
    };
  }

  heartbeat(info: SwitchInfo, atMs: number): void {
    this.switchInfo = info;
    this.lastHeartbeatMs = atMs;
  }

  alerted(alert: PolicyAlert, atMs: number): void {
    this.latestAlerts.push({
      at: isoTimeMs(atMs), kind: alert.kind, source: alert.source, profile: alert.profile, message: alert.message,
      ...(alert.user !== undefined ? { user: alert.user } : {}),
      ...(alert.userAgent !== undefined ? { userAgent: alert.userAgent } : {}),
    });
    if (this.latestAlerts.length > LATEST_ALERTS) this.latestAlerts.shift();
  }

  /** The nft writer failed (a run or an element): the latest is shown. */
  nftFailed(message: string): void {
    this.lastNftError = { message: message.slice(0, 300), atMs: this.clock() };
  }

  // ---- sampling ---------------------------------------------------------------------------

  /** Called on the daemon's tick; samples the event counter every SAMPLE_EVERY_MS. */
  tick(): void {
    const now = this.clock();
    const last = this.samples[this.samples.length - 1];
    if (this.sampling || (last && now - last.atMs < SAMPLE_EVERY_MS)) return;
    this.sampling = true;
    void this.sample(now).finally(() => { this.sampling = false; });
  }

  private async sample(now: number): Promise<void> {
    const values = await counterValues(this.sources.metrics.eventsTotal, ['subclass', 'profile']);
    this.samples.push({ atMs: now, values });
    // Keep the newest sample at least WINDOW_MS old, and nothing older.
    while (this.samples.length > 1 && this.samples[1]!.atMs <= now - WINDOW_MS) this.samples.shift();
  }

  // ---- the report -------------------------------------------------------------------------

  async report(): Promise<StatusReport> {
    const s = this.sources;
    const now = this.clock();
    const events = await counterValues(s.metrics.eventsTotal, ['subclass', 'profile']);
    // The window starts at the newest sample at least a minute old; within the first minute,
    // at start (every counter was 0 then).
    const base = [...this.samples].reverse().find((x) => x.atMs <= now - WINDOW_MS) ?? { atMs: this.startedAtMs, values: new Map<string, number>() };
    const byKind: Record<string, number> = {};
    const byProfile: Record<string, Record<string, number>> = {};
    let total = 0;
    let sinceStart = 0;
    const seenProfiles = new Set<string>();
    for (const [key, value] of events) {
      const [subclass = '', profile = ''] = key.split('\t');
      sinceStart += value;
      if (profile) seenProfiles.add(profile);
      const n = value - (base.values.get(key) ?? 0);
      if (n <= 0) continue;
      total += n;
      byKind[subclass] = (byKind[subclass] ?? 0) + n;
      (byProfile[profile] ??= {})[subclass] = n;
    }
    const bansByRule = Object.fromEntries(await counterValues(s.metrics.bansTotal, ['rule']));
    const alertsByKind = Object.fromEntries(await counterValues(s.metrics.alertsTotal, ['kind']));
    const batches = (await s.metrics.nftBatches.get()).values[0]?.value ?? 0;
    const errors = (await s.metrics.nftErrors.get()).values[0]?.value ?? 0;
    const tracked = (await s.metrics.trackedSources.get()).values[0]?.value ?? 0;
    const fullTables: FullTable[] = [];
    const untracked = (await s.metrics.untrackedAuthentications.get()).values[0]?.value ?? 0;
    if (untracked > 0) fullTables.push({ table: 'toll-fraud accounts', setting: 'maxTrackedAccounts', leftOut: untracked });
    const leftOut = (await s.metrics.proofsLeftOut.get()).values[0]?.value ?? 0;
    if (leftOut > 0) fullTables.push({ table: 'proven sources', setting: 'maxLegitimateSources', leftOut });
    const inForce = s.bansInForce();
    const watched = s.watchedProfiles();
    const sw = this.switchInfo;
    return {
      format: STATUS_FORMAT,
      daemon: { pid: s.pid ?? process.pid, startedAt: iso(this.startedAtMs)!, uptimeSeconds: Math.round((now - this.startedAtMs) / 1000), config: s.configSource() },
      eventSocket: {
        endpoint: s.eslEndpoint(),
        state: this.link.state,
        since: iso(this.link.sinceMs),
        lastProblem: this.link.lastProblem,
        lastHeartbeatAt: iso(this.lastHeartbeatMs),
        freeswitch: sw ? { hostname: sw.hostname, version: sw.version, uptimeSeconds: sw.uptimeMs === null ? null : Math.round(sw.uptimeMs / 1000) } : null,
      },
      profiles: { watched: watched.length ? [...watched] : 'all', seen: [...seenProfiles].sort() },
      events: { windowSeconds: Math.round((now - base.atMs) / 1000), lastMinute: { total, byKind, byProfile }, sinceStart },
      bans: {
        now: { ipv4Hosts: inForce.ipv4Hosts, ipv6Hosts: inForce.ipv6Hosts, ipv4Prefixes: inForce.ipv4Prefixes, ipv6Prefixes: inForce.ipv6Prefixes, total: inForce.ipv4Hosts + inForce.ipv6Hosts + inForce.ipv4Prefixes + inForce.ipv6Prefixes },
        unwritten: inForce.unwritten,
        sinceStart: { total: Object.values(bansByRule).reduce((a, b) => a + b, 0), byRule: bansByRule },
      },
      trackedSources: tracked,
      fullTables,
      nearestThresholds: s.thresholds.nearestThresholds(NEAREST),
      alerts: { sinceStart: alertsByKind, latest: [...this.latestAlerts].reverse() },
      nftWriter: {
        table: s.nftTable(),
        healthy: inForce.unwritten === 0 && (this.lastNftError === null || now - this.lastNftError.atMs > NFT_ERROR_RECENT_MS),
        batches,
        errors,
        queued: s.nftQueued(),
        lastError: this.lastNftError?.message ?? null,
        lastErrorAt: iso(this.lastNftError?.atMs ?? null),
      },
      notifications: s.notifications(),
      cluster: clusterReport(s.cluster?.() ?? null),
    };
  }
}

function clusterReport(c: ClusterStatus | null): StatusReport['cluster'] {
  if (c === null) return null;
  return {
    node: c.node, redis: c.redis, state: c.state, downSince: iso(c.downSinceMs), lastProblem: c.lastProblem, queued: c.queued, digest: c.digest,
    nodes: c.others.map((o) => ({ node: o.node, digest: o.digest, sameDigest: o.digest === c.digest, seenAt: iso(o.updatedMs)! })),
  };
}
