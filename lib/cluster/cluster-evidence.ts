// The cluster as the guard's evidence stream: this node's events go to the shared Redis Stream,
// and the policy is fed the stream — every node's events, in entry-id order, the same order on
// every node, so every node reaches the same bans. Manual bans and unbans travel the same way.
//
// Own events and outages. An own event is judged when it comes back from the stream, so it
// takes its place in the common order. If it does not come back within
// cluster.localFallbackMs (Redis slow) it is judged at once, and while Redis is down every own
// event is judged at once: protection never waits for Redis. The appender keeps the events
// meanwhile and sends them when Redis is back; every message carries its origin
// (node, incarnation, sequence) and the OriginLedger admits each once, so the node that judged
// it locally skips it when it comes back, and the other nodes judge it exactly once.
import { randomBytes } from 'node:crypto';
import type { Cidr } from '../net/ip.js';
import type { Logger } from '../obs/logger.js';
import { StreamAppender } from './appender.js';
import type { ClusterBody, ClusterCodec, KindedEvent, OriginId } from './codec.js';
import type { ClusterConfig } from './config.js';
import type { ClusterMetrics } from './metrics.js';
import { MAX_OTHER_NODES, type SwitchAddresses } from '../policy/switch-addresses.js';
import { digestMismatches, publishNode, readNodes, type NodeRecord } from './node-registry.js';
import { OriginLedger } from './origin-ledger.js';
import { StreamReader } from './reader.js';
import { describeEndpoint, RedisLink, type LinkProblem } from './redis-link.js';

/** What the cluster feeds: the guard (policy, kernel) of this node. */
export interface ClusterSink<M> {
  /** An event to judge, in stream order. */
  judge(event: KindedEvent<M>): void;
  /** A manual ban from any node, with the time it has left. */
  manualBan(target: Cidr, seconds: number, note: string): void;
  /** `atMs`: when it was decided (the stream entry's time), for the policy's grace period. */
  manualUnban(target: Cidr, atMs: number): void;
}

export interface ClusterEvidenceOptions<M> {
  readonly config: ClusterConfig;
  /** This node's name (cluster.node or the host name). */
  readonly node: string;
  /** Replay and retention window (ms). */
  readonly historyMs: number;
  /**
   * How far an event's stamp may be from its entry's time (Redis's clock, the same for every
   * node) before it is judged at that bound: the policy's maxSourceSkewSeconds.
   */
  readonly maxSkewMs: number;
  readonly digest: string;
  readonly codec: ClusterCodec<M>;
  readonly logger: Logger;
  readonly metrics: ClusterMetrics;
  /** Wall clock (ms). */
  readonly nowMs?: () => number;
  /**
   * FreeSWITCH's addresses: this node's are published in its registry record, the other
   * nodes' records set the others (never banned here either).
   */
  readonly switchAddresses: SwitchAddresses;
}

export type ClusterState = 'starting' | 'replaying' | 'live' | 'down' | 'stopped';

/** What `fsguard status` shows of the cluster. */
export interface ClusterStatus {
  readonly node: string;
  readonly redis: string;
  readonly state: ClusterState;
  /** While down: since when (ms), and why. */
  readonly downSinceMs: number | null;
  readonly lastProblem: string | null;
  /** Own messages waiting for Redis. */
  readonly queued: number;
  readonly digest: string;
  /** The other nodes of the last registry read (fresh records only), with their digests. */
  readonly others: readonly { readonly node: string; readonly digest: string; readonly updatedMs: number }[];
}

interface PendingEvent<M> {
  readonly seq: number;
  readonly event: KindedEvent<M>;
  deadlineMs: number;
}

/** How long own events wait for the first history replay (or a Redis that does not answer) before they are judged alone. */
const FIRST_REPLAY_WAIT_MS = 2000;
/** Node records are refreshed (and read) this often. */
const REGISTRY_INTERVAL_MS = 5000;
/** Records older than this are of nodes that left: their digest is not compared. */
const REGISTRY_STALE_MS = 10 * 60_000;
/** At stop, queued messages get this long to reach Redis. */
const STOP_DRAIN_MS = 1000;

export class ClusterEvidence<M> {
  readonly node: string;
  readonly incarnation: string;
  private seq = 0;
  private state: ClusterState = 'starting';
  /** Whether the first history replay finished (before it, the policy's clock is the replay's). */
  private replayedOnce = false;
  private readonly ledger = new OriginLedger();
  private readonly pending: PendingEvent<M>[] = [];
  private pendingHead = 0;
  private fallbackTimer: NodeJS.Timeout | null = null;
  private readonly writeLink: RedisLink;
  private readonly readLink: RedisLink;
  private readonly appender: StreamAppender;
  private readonly reader: StreamReader;
  private readonly nowMs: () => number;
  private sink: ClusterSink<M> | null = null;
  private downSinceMs: number | null = null;
  private registryTimer: NodeJS.Timeout | null = null;
  /** This node's FreeSWITCH addresses changed since its record was last published. */
  private switchAddressesChanged = false;
  private digest: string;
  private mismatchKey = '';
  private lastProblem: string | null = null;
  private others: ClusterStatus['others'] = [];
  private backlogReported = false;
  private replayStats = { entries: 0, judged: 0 };

  constructor(private readonly options: ClusterEvidenceOptions<M>) {
    const { config, logger } = options;
    this.node = options.node;
    this.digest = options.digest;
    this.nowMs = options.nowMs ?? Date.now;
    this.incarnation = `${this.nowMs().toString(36)}-${randomBytes(4).toString('hex')}`;
    const where = describeEndpoint(config);
    this.writeLink = new RedisLink(config, `fsguard:${this.node}:append`, {
      ready: () => {
        this.appender.linkReady();
        if (this.appender.queued > 0 && this.downSinceMs !== null) logger.info({ queued: this.appender.queued }, 'cluster: publishing the events seen while Redis was unreachable');
        this.linkUp();
        void this.refreshRegistry();
        this.updateConnected();
      },
      down: (problem) => {
        this.appender.linkDown();
        this.linkDown(problem, where);
      },
    });
    this.readLink = new RedisLink(config, `fsguard:${this.node}:read`, {
      ready: () => {
        if (this.state === 'stopped') return;
        this.replayStats = { entries: 0, judged: 0 };
        logger.info({ redis: where, stream: config.stream, node: this.node, from: this.reader.position ?? `${options.historyMs / 1000}s ago` }, this.replayedOnce ? 'cluster: Redis reachable again: reading what was appended meanwhile' : 'cluster: connected to Redis: replaying the stream\'s history');
        this.reader.linkReady();
        this.linkUp();
      },
      down: (problem) => {
        this.reader.linkDown();
        this.linkDown(problem, where);
      },
    });
    this.appender = new StreamAppender(this.writeLink.client, {
      stream: config.stream,
      entryOf: (firstSeq, bodies) => options.codec.entry(this, firstSeq, bodies),
      maxQueued: config.bufferEvents,
      retentionMs: options.historyMs,
      nowMs: this.nowMs,
      retryDelayMs: 1000,
    }, {
      appended: (n) => {
        options.metrics.appended.inc(n);
        if (this.backlogReported && this.appender.queued < config.bufferEvents / 2) this.backlogReported = false;
      },
      dropped: (n, queued) => {
        options.metrics.dropped.inc({ reason: 'buffer_full' }, n);
        if (!this.backlogReported) {
          this.backlogReported = true;
          logger.warn({ event: 'alert', kind: 'cluster_backlog', dropped: n, queued }, `cluster: ${queued} events wait for Redis (cluster.bufferEvents): the oldest are dropped from what other nodes will see (this node judged them itself)`);
        }
      },
      failed: (message) => logger.warn({ err: message }, 'cluster: Redis refused an append; retrying'),
    });
    this.reader = new StreamReader(this.readLink.client, { stream: config.stream, historyMs: options.historyMs }, {
      entry: (id, ms, raw) => this.onEntry(id, ms, raw),
      caughtUp: () => this.onCaughtUp(),
      reset: (lastRead, lastGenerated) => logger.warn({ lastRead, lastGenerated }, 'cluster: the stream is behind what this node had read (Redis restored or its clock went back): reading it from the start'),
      failed: (message) => logger.warn({ err: message }, 'cluster: reading the stream failed; retrying'),
    });
    options.switchAddresses.watch(({ own }) => { if (own) this.ownSwitchAddressesChanged(); });
  }

  start(sink: ClusterSink<M>): void {
    this.sink = sink;
    this.writeLink.start();
    this.readLink.start();
    this.registryTimer = setInterval(() => void this.refreshRegistry(), REGISTRY_INTERVAL_MS);
    this.registryTimer.unref();
  }

  /** Is this node reading the stream live (for status and tests)? */
  get live(): boolean {
    return this.state === 'live';
  }

  /** Own messages waiting for Redis. */
  status(): ClusterStatus {
    return {
      node: this.node, redis: describeEndpoint(this.options.config), state: this.state, downSinceMs: this.downSinceMs,
      lastProblem: this.state === 'down' ? this.lastProblem : null, queued: this.queued, digest: this.digest, others: this.others,
    };
  }

  get queued(): number {
    return this.appender.queued;
  }

  /** A new policy digest (config reload). */
  setDigest(digest: string): void {
    this.digest = digest;
    void this.refreshRegistry();
  }

  /** An own event, from the event source: never blocks. */
  publish(event: KindedEvent<M>): void {
    if (this.state === 'stopped') return;
    const seq = ++this.seq;
    const origin: OriginId = { node: this.node, incarnation: this.incarnation, seq };
    this.appender.append(seq, this.options.codec.eventBody(event));
    if (this.state === 'down') {
      this.judgeLocally(origin, event, 'outage');
      return;
    }
    const now = this.nowMs();
    const wait = this.replayedOnce ? this.options.config.localFallbackMs : Math.max(this.options.config.localFallbackMs, FIRST_REPLAY_WAIT_MS);
    const last = this.pending.length > this.pendingHead ? this.pending[this.pending.length - 1]! : null;
    // Deadlines never decrease along the queue: own events are judged in their own order.
    const deadlineMs = Math.max(now + wait, last ? last.deadlineMs : 0);
    this.pending.push({ seq, event, deadlineMs });
    if (this.pending.length - this.pendingHead > this.options.config.bufferEvents) this.judgePendingUpTo(this.pending[this.pendingHead]!.seq, 'slow');
    this.armFallback();
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    if (this.registryTimer) clearInterval(this.registryTimer);
    if (this.fallbackTimer) clearTimeout(this.fallbackTimer);
    this.state = 'stopped';
    if (this.writeLink.state === 'ready') await this.appender.drain(STOP_DRAIN_MS);
    this.appender.close();
    this.reader.close();
    await Promise.all([this.writeLink.close(), this.readLink.close()]);
    this.options.metrics.connected.set(0);
  }

  // ---- stream → policy -------------------------------------------------------------------

  private onEntry(id: string, ms: number, raw: string | null): void {
    if (!this.sink || this.state === 'stopped') return;
    if (this.state === 'replaying') this.replayStats.entries++;
    if (raw === null) { this.malformed(id, 'no message field'); return; }
    const entry = this.options.codec.decodeEntry(raw);
    if (!entry.ok) { this.malformed(id, entry.reason); return; }
    const { node, incarnation } = entry.publisher;
    const own = node === this.node && incarnation === this.incarnation;
    for (let i = 0; i < entry.lines.length; i++) {
      const origin: OriginId = { node, incarnation, seq: entry.firstSeq + i };
      if (own) {
        // Own events published before this one that never came back (dropped from a full
        // buffer) are judged now, before it: late, but never lost.
        this.judgePendingUpTo(origin.seq - 1, 'slow');
        // Still waiting: the event is at hand, no need to decode it (decode(encode(e)) is e).
        const p = this.pendingHead < this.pending.length ? this.pending[this.pendingHead]! : null;
        if (p !== null && p.seq === origin.seq) {
          this.pendingHead++;
          this.compactPending();
          this.onMessage(origin, ms, { type: 'event', ...p.event } as ClusterBody<M>);
          continue;
        }
      }
      // Judged already (an own event judged locally, a message sent twice): not even decoded.
      if (this.ledger.has(origin)) { this.options.metrics.duplicates.inc(); continue; }
      const body = this.options.codec.decodeBody(entry.lines[i]!);
      if (!body.ok) { this.malformed(id, body.reason); continue; }
      this.onMessage(origin, ms, body.body);
    }
  }

  private onMessage(origin: OriginId, ms: number, m: ClusterBody<M>): void {
    const sink = this.sink!;
    const own = origin.node === this.node && origin.incarnation === this.incarnation;
    if (!this.ledger.admit(origin)) {
      this.options.metrics.duplicates.inc();
      return;
    }
    if (own) this.dropPendingUpTo(origin.seq);
    switch (m.type) {
      case 'event': {
        // Judged near the stream's clock, the same on every node: a host whose clock runs ahead
        // cannot drag every policy clock with it, and events published late (after an outage)
        // count when they arrive rather than as a step back of the clock.
        const bounded = this.boundToClock(m as KindedEvent<M>, ms);
        this.options.metrics.judgedFrom(origin.node);
        if (this.state === 'replaying') this.replayStats.judged++;
        sink.judge(bounded);
        return;
      }
      case 'ban': {
        const left = Math.floor(m.seconds - Math.max(0, this.nowMs() - ms) / 1000);
        if (left <= 0) return;
        this.options.logger.info({ target: m.target.text, seconds: left, from: origin.node }, 'cluster: manual ban');
        sink.manualBan(m.target, left, m.note);
        return;
      }
      case 'unban':
        this.options.logger.info({ target: m.target.text, from: origin.node }, 'cluster: manual unban');
        sink.manualUnban(m.target, Math.min(ms, this.nowMs()));
        return;
    }
  }

  private onCaughtUp(): void {
    const first = !this.replayedOnce;
    this.replayedOnce = true;
    this.linkUp();
    // Caught up but unable to append: own events are still judged alone.
    if (this.state !== 'live') return;
    const outageMs = this.downSinceMs !== null ? this.nowMs() - this.downSinceMs : null;
    this.downSinceMs = null;
    this.options.logger.info({ entries: this.replayStats.entries, judged: this.replayStats.judged, ...(outageMs !== null ? { outageSeconds: Math.round(outageMs / 1000) } : {}) },
      first ? 'cluster: history replayed; following the stream live' : 'cluster: caught up with the stream; following it live');
    this.updateConnected();
    // Own events that waited for the first replay now wait only the usual delay.
    const latest = this.nowMs() + this.options.config.localFallbackMs;
    for (let i = this.pendingHead; i < this.pending.length; i++) this.pending[i]!.deadlineMs = Math.min(this.pending[i]!.deadlineMs, latest);
    if (this.fallbackTimer) { clearTimeout(this.fallbackTimer); this.fallbackTimer = null; }
    this.armFallback();
  }

  private malformed(id: string, reason: string): void {
    this.options.metrics.dropped.inc({ reason: 'malformed' });
    this.options.logger.debug({ id, reason }, 'cluster: malformed stream entry skipped');
  }

  // ---- own events judged locally -----------------------------------------------------------

  private judgeLocally(origin: OriginId, event: KindedEvent<M>, reason: 'outage' | 'slow'): void {
    if (!this.ledger.admit(origin)) return;
    this.options.metrics.localFallback.inc({ reason });
    this.options.metrics.judgedFrom(origin.node);
    const bounded = this.boundToClock(event, this.nowMs());
    this.sink?.judge(bounded);
  }

  private boundToClock(event: KindedEvent<M>, clockMs: number): KindedEvent<M> {
    const skew = this.options.maxSkewMs;
    return this.options.codec.boundTime(event, (clockMs - skew) * 1000, (clockMs + skew) * 1000);
  }

  /** Judges (locally) the pending own events with sequence numbers up to `seq`, in order. */
  private judgePendingUpTo(seq: number, reason: 'outage' | 'slow'): void {
    while (this.pendingHead < this.pending.length && this.pending[this.pendingHead]!.seq <= seq) {
      const p = this.pending[this.pendingHead++]!;
      this.judgeLocally({ node: this.node, incarnation: this.incarnation, seq: p.seq }, p.event, reason);
    }
    this.compactPending();
  }

  private dropPendingUpTo(seq: number): void {
    while (this.pendingHead < this.pending.length && this.pending[this.pendingHead]!.seq <= seq) this.pendingHead++;
    this.compactPending();
  }

  private compactPending(): void {
    if (this.pendingHead === this.pending.length) {
      this.pending.length = 0;
      this.pendingHead = 0;
    } else if (this.pendingHead > 4096 && this.pendingHead * 2 > this.pending.length) {
      this.pending.splice(0, this.pendingHead);
      this.pendingHead = 0;
    }
  }

  private armFallback(): void {
    if (this.fallbackTimer || this.pendingHead >= this.pending.length || this.state === 'stopped') return;
    const deadline = this.pending[this.pendingHead]!.deadlineMs;
    this.fallbackTimer = setTimeout(() => {
      this.fallbackTimer = null;
      const now = this.nowMs();
      let upTo = -1;
      for (let i = this.pendingHead; i < this.pending.length; i++) {
        const p = this.pending[i]!;
        if (p.deadlineMs > now) break;
        upTo = p.seq;
      }
      if (upTo !== -1) this.judgePendingUpTo(upTo, 'slow');
      this.armFallback();
    }, Math.max(0, deadline - this.nowMs()));
  }

  // ---- link state --------------------------------------------------------------------------

  private linkDown(problem: LinkProblem, where: string): void {
    if (this.state === 'stopped') return;
    const wasUp = this.state !== 'down';
    this.state = 'down';
    this.updateConnected();
    // Everything waiting for the stream is judged now: no gap in this node's protection.
    if (this.pending.length > this.pendingHead) this.judgePendingUpTo(this.pending[this.pending.length - 1]!.seq, 'outage');
    this.lastProblem = problem.message;
    if (!wasUp) return;
    this.downSinceMs = this.nowMs();
    this.options.metrics.outages.inc();
    const line = problem.kind === 'auth'
      ? `cluster: ${problem.message}; this node protects with its own events alone and retries every ${this.options.config.authRetrySeconds}s`
      : `cluster: Redis unreachable (${problem.message}): this node protects with its own events alone and keeps them for when Redis is back`;
    this.options.logger.error({ redis: where, problem: problem.kind }, line);
  }

  /** Both links ready: own events are judged in stream order again (after the catch-up). */
  private linkUp(): void {
    if (this.state === 'stopped' || this.readLink.state !== 'ready' || this.writeLink.state !== 'ready') return;
    this.state = this.reader.isLive ? 'live' : 'replaying';
    this.updateConnected();
  }

  private updateConnected(): void {
    this.options.metrics.connected.set(this.state === 'live' && this.writeLink.state === 'ready' ? 1 : 0);
  }

  // ---- node registry: digest and switch addresses ---------------------------------------------

  /** This node's FreeSWITCH addresses changed (the guard learnt them from its events): published now. */
  private ownSwitchAddressesChanged(): void {
    this.switchAddressesChanged = true;
    if (this.writeLink.state === 'ready') void this.refreshRegistry();
  }

  /** The other nodes' FreeSWITCH addresses are those of their fresh records: logged when they change. */
  private protectOthers(others: readonly NodeRecord[]): void {
    const book = this.options.switchAddresses;
    const { changed, leftOut } = book.setNodes(others);
    if (!changed) return;
    this.options.logger.info({ nodes: Object.fromEntries(book.otherNodes) }, 'cluster: the other nodes\' FreeSWITCH addresses (from the node registry): never banned here');
    if (leftOut > 0) this.options.logger.warn({ nodes: others.length, leftOut, max: MAX_OTHER_NODES }, `cluster: the node registry holds more than ${MAX_OTHER_NODES} other nodes: the FreeSWITCH addresses of the last by name are not protected`);
  }

  private registryBusy = false;

  private async refreshRegistry(): Promise<void> {
    if (this.registryBusy || this.writeLink.state !== 'ready' || this.state === 'stopped') return;
    this.registryBusy = true;
    try {
      this.switchAddressesChanged = false;
      const record: NodeRecord = { node: this.node, incarnation: this.incarnation, digest: this.digest, switchAddresses: this.options.switchAddresses.ownAddresses, updatedMs: this.nowMs() };
      await publishNode(this.writeLink.client, this.options.config.stream, record);
      const nodes = await readNodes(this.writeLink.client, this.options.config.stream);
      const fresh = nodes.filter((n) => Math.abs(this.nowMs() - n.updatedMs) < REGISTRY_STALE_MS);
      this.others = fresh.filter((n) => n.node !== this.node).map((n) => ({ node: n.node, digest: n.digest, updatedMs: n.updatedMs }));
      this.protectOthers(fresh.filter((n) => n.node !== this.node));
      const mismatches = digestMismatches(fresh, this.node, this.digest);
      this.options.metrics.digestMismatches.set(mismatches.length);
      const key = mismatches.map((n) => `${n.node}=${n.digest}`).join(',');
      if (key !== this.mismatchKey) {
        this.mismatchKey = key;
        if (mismatches.length) {
          this.options.logger.warn({ digest: this.digest, differing: mismatches.map((n) => ({ node: n.node, digest: n.digest })) }, 'cluster: nodes judge the shared stream with a different policy (their bans will differ): align their policy settings');
        } else if (fresh.length > 1) {
          this.options.logger.info({ digest: this.digest, nodes: fresh.map((n) => n.node) }, 'cluster: every node has the same policy digest');
        }
      }
    } catch (err) {
      this.options.logger.debug({ err: err instanceof Error ? err.message : String(err) }, 'cluster: node registry update failed');
    } finally {
      this.registryBusy = false;
      if (this.switchAddressesChanged) void this.refreshRegistry();
    }
  }
}
