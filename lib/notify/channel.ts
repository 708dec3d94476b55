// One notification channel (mail, or a webhook): notices are offered synchronously and cost
// O(1) — the policy and the ban path never wait on a network. The first notice after a quiet
// spell goes out at once; whatever arrives in the digest interval after a message is folded
// into one digest (counts, and the first N in full), so a flood of 10,000 bans is one message
// per interval, not 10,000. Delivery is one message at a time with retries and exponential
// backoff; while one is in flight the next interval's digest waits, and later ones merge into
// it, so memory stays bounded however long the receiver is down and no count is lost.
import { randomUUID } from 'node:crypto';
import type { EslTimers, TimerHandle } from '../esl/index.js';
import type { NoticeKind } from './config.js';
import type { Notice, NoticeBatch } from './notice.js';

export type ChannelName = 'mail' | 'webhook';

/** A delivery failure; `retryable` false (a 4xx, say) ends the attempts at once. */
export class DeliveryError extends Error {
  constructor(message: string, readonly retryable: boolean) {
    super(message);
    this.name = 'DeliveryError';
  }
}

export interface Transport {
  readonly channel: ChannelName;
  /**
   * Delivers one message; rejects with a DeliveryError (or any error: retryable). `signal` is
   * aborted when the attempt's time is up: a request still hanging then should be dropped.
   */
  send(batch: NoticeBatch, deliveryId: string, signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

export interface ChannelObserver {
  sent(channel: ChannelName, batch: NoticeBatch, attempts: number): void;
  failed(channel: ChannelName, attempt: number, error: string, retryInMs: number | null): void;
  /** A message given up on (all attempts failed, or not retryable): its notices are lost. */
  dropped(channel: ChannelName, batch: NoticeBatch, error: string): void;
}

export interface ChannelSettings {
  readonly kinds: readonly NoticeKind[];
  readonly digestMs: number;
  readonly digestFirst: number;
  readonly attempts: number;
  readonly retryMaxMs: number;
  /** One attempt that has not settled after this long counts as failed. */
  readonly attemptTimeoutMs: number;
}

/** Notices of one interval: counts, and the first few in full. */
class BatchBuilder {
  total = 0;
  readonly byKind: Record<NoticeKind, number> = { ban: 0, unban: 0, alert: 0 };
  readonly byRule: Record<string, number> = {};
  readonly first: Notice[] = [];
  toMs: number;

  constructor(readonly fromMs: number, private readonly keep: number) {
    this.toMs = fromMs;
  }

  /** True when the notice itself is wanted (`make` is then called). */
  wantsNotice(): boolean {
    return this.first.length < this.keep;
  }

  add(kind: NoticeKind, rule: string | null, notice: Notice | null, atMs: number): void {
    this.total++;
    this.byKind[kind]++;
    if (rule !== null) this.byRule[rule] = (this.byRule[rule] ?? 0) + 1;
    if (notice !== null && this.first.length < this.keep) this.first.push(notice);
    if (atMs > this.toMs) this.toMs = atMs;
  }

  /** `endMs`: when the interval the batch covers ended (default: its last notice). */
  build(endMs = this.toMs): NoticeBatch {
    return { fromMs: this.fromMs, toMs: Math.max(this.toMs, endMs), total: this.total, byKind: { ...this.byKind }, byRule: { ...this.byRule }, first: [...this.first] };
  }
}

function merge(a: NoticeBatch, b: NoticeBatch, keep: number): NoticeBatch {
  const byRule: Record<string, number> = { ...a.byRule };
  for (const [r, n] of Object.entries(b.byRule)) byRule[r] = (byRule[r] ?? 0) + n;
  return {
    fromMs: Math.min(a.fromMs, b.fromMs),
    toMs: Math.max(a.toMs, b.toMs),
    total: a.total + b.total,
    byKind: { ban: a.byKind.ban + b.byKind.ban, unban: a.byKind.unban + b.byKind.unban, alert: a.byKind.alert + b.byKind.alert },
    byRule,
    first: [...a.first, ...b.first].slice(0, keep),
  };
}

interface Outgoing {
  batch: NoticeBatch;
  readonly id: string;
  attempts: number;
}

export class NotifyChannel {
  private readonly kinds: ReadonlySet<NoticeKind>;
  /** Notices arriving in the current digest interval (null: none yet). */
  private pending: BatchBuilder | null = null;
  /** Running while the channel is inside a digest interval. */
  private windowTimer: TimerHandle | null = null;
  /** When the current interval began (the message that opened it was sent). */
  private windowOpenedAtMs = 0;
  private inFlight: Outgoing | null = null;
  /** The one message waiting behind the one in flight; later digests merge into it. */
  private waiting: Outgoing | null = null;
  private retryTimer: TimerHandle | null = null;
  private closed = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly transport: Transport,
    private readonly settings: ChannelSettings,
    private readonly observer: ChannelObserver,
    private readonly timers: EslTimers,
    private readonly clock: () => number,
  ) {
    this.kinds = new Set(settings.kinds);
  }

  get name(): ChannelName {
    return this.transport.channel;
  }

  takes(kind: NoticeKind): boolean {
    return this.kinds.has(kind);
  }

  /** Whether a notice offered now would be kept in full (so the caller builds it only then). */
  wantsNotice(): boolean {
    return this.pending === null ? true : this.pending.wantsNotice();
  }

  /** Synchronous and O(1): never waits on delivery. `notice` null = counted only. */
  offer(kind: NoticeKind, rule: string | null, notice: Notice | null): void {
    if (this.closed || !this.kinds.has(kind)) return;
    const now = this.clock();
    if (this.windowTimer === null) {
      // Quiet until now: this one goes out at once, and opens an interval for what follows.
      const single = new BatchBuilder(now, 1);
      single.add(kind, rule, notice, now);
      this.enqueue(single.build());
      this.openWindow();
      return;
    }
    this.pending ??= new BatchBuilder(this.windowOpenedAtMs, this.settings.digestFirst);
    this.pending.add(kind, rule, notice, now);
  }

  private openWindow(): void {
    this.windowOpenedAtMs = this.clock();
    this.windowTimer = this.timers.setTimeout(() => this.windowEnded(), this.settings.digestMs);
  }

  private windowEnded(): void {
    this.windowTimer = null;
    const pending = this.pending;
    this.pending = null;
    if (pending === null || this.closed) { this.settleIfIdle(); return; }
    this.enqueue(pending.build(this.clock()));
    this.openWindow();
  }

  private enqueue(batch: NoticeBatch): void {
    if (this.inFlight === null) {
      this.inFlight = { batch, id: randomUUID(), attempts: 0 };
      this.attempt();
    } else if (this.waiting === null) {
      this.waiting = { batch, id: randomUUID(), attempts: 0 };
    } else {
      this.waiting.batch = merge(this.waiting.batch, batch, this.settings.digestFirst);
    }
  }

  private attempt(): void {
    const out = this.inFlight;
    if (out === null) return;
    out.attempts++;
    let settled = false;
    const abort = new AbortController();
    const timeout = this.timers.setTimeout(() => {
      abort.abort();
      if (settled) return;
      settled = true;
      this.attemptFailed(out, new DeliveryError(`no answer within ${Math.round(this.settings.attemptTimeoutMs / 1000)}s`, true));
    }, this.settings.attemptTimeoutMs);
    let sending: Promise<void>;
    try {
      sending = this.transport.send(out.batch, out.id, abort.signal);
    } catch (err) {
      sending = Promise.reject(err);
    }
    sending.then(
      () => {
        if (settled) return;
        settled = true;
        this.timers.clearTimeout(timeout);
        this.observer.sent(this.name, out.batch, out.attempts);
        this.next();
      },
      (err: unknown) => {
        if (settled) return;
        settled = true;
        this.timers.clearTimeout(timeout);
        this.attemptFailed(out, err);
      },
    );
  }

  private attemptFailed(out: Outgoing, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    const retryable = !(err instanceof DeliveryError) || err.retryable;
    if (retryable && out.attempts < this.settings.attempts && !this.closed) {
      const delay = Math.min(this.settings.retryMaxMs, 1000 * 2 ** (out.attempts - 1));
      this.observer.failed(this.name, out.attempts, message, delay);
      this.retryTimer = this.timers.setTimeout(() => { this.retryTimer = null; this.attempt(); }, delay);
      return;
    }
    this.observer.failed(this.name, out.attempts, message, null);
    this.observer.dropped(this.name, out.batch, message);
    this.next();
  }

  private next(): void {
    this.inFlight = this.waiting;
    this.waiting = null;
    if (this.inFlight !== null && !this.closed) this.attempt();
    else this.settleIfIdle();
  }

  private settleIfIdle(): void {
    if (this.inFlight !== null) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Resolves once nothing is being delivered (messages still in a digest interval wait for it). */
  whenIdle(): Promise<void> {
    if (this.inFlight === null) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Sends what the current interval holds now, without waiting for its end (on stop). */
  drain(): Promise<void> {
    if (this.windowTimer !== null) {
      this.timers.clearTimeout(this.windowTimer);
      this.windowTimer = null;
      const pending = this.pending;
      this.pending = null;
      if (pending !== null) this.enqueue(pending.build(this.clock()));
    }
    return this.whenIdle();
  }

  /** Stops timers; what is still undelivered is dropped, and counted. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.windowTimer !== null) this.timers.clearTimeout(this.windowTimer);
    this.windowTimer = null;
    if (this.retryTimer !== null) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const lost = [this.inFlight, this.waiting].filter((o): o is Outgoing => o !== null).map((o) => o.batch);
    if (this.pending) lost.push(this.pending.build());
    this.inFlight = null;
    this.waiting = null;
    this.pending = null;
    for (const b of lost) this.observer.dropped(this.name, b, 'fsguard stopped before it was delivered');
    this.settleIfIdle();
    await this.transport.close();
  }
}
