// Appends this node's messages to the stream, in order, without ever making the caller wait:
// `append` only queues. The queue is bounded (cluster.bufferEvents): while Redis is slow or
// down it holds what the node saw, and sends it when Redis is back — the republish after an
// outage is just the queue draining. Past the bound the oldest unsent messages are dropped,
// counted, and reported once per backlog episode (the node's own policy judged them anyway).
//
// A message leaves the queue only when Redis acknowledged its XADD. A batch cut by a lost
// connection is sent again from its first unacknowledged message: a message may reach the
// stream twice, never out of the node's order, and the readers' OriginLedger judges it once.
import type { Redis } from 'ioredis';
import { MESSAGE_FIELD } from './codec.js';

/**
 * Messages per stream entry (see codec.ts): one XADD per message cost ioredis and Redis
 * ~40 µs each (24,000 appends/s on this machine); one per batch of a turn's messages lets a
 * node publish a flood. Order is the entries' order, then the lines'.
 */
const MESSAGES_PER_ENTRY = 128;
/** Entries per pipeline. */
const ENTRIES_PER_BATCH = 32;

export interface AppenderObserver {
  /** `count` oldest queued messages were dropped because the queue was full. */
  dropped(count: number, queued: number): void;
  /** A batch failed for a reason other than the link going down (e.g. OOM): retried later. */
  failed(message: string): void;
  appended(count: number): void;
}

export interface AppenderOptions {
  readonly stream: string;
  /** The entry text of consecutive messages numbered from `firstSeq` (ClusterCodec.entry). */
  readonly entryOf: (firstSeq: number, bodies: readonly string[]) => string;
  readonly maxQueued: number;
  /** Entries older than this (ms) are trimmed as new ones are added (approximately, `MINID ~`). */
  readonly retentionMs: number;
  readonly nowMs: () => number;
  /** Wait before retrying a batch that failed while the link was up. */
  readonly retryDelayMs: number;
}

export class StreamAppender {
  /** Queued message bodies and their sequence numbers; `head` is the oldest not yet acknowledged. */
  private queue: string[] = [];
  private seqs: number[] = [];
  private head = 0;
  /** Messages at the head currently in an XADD pipeline (never dropped while in flight). */
  private inFlight = 0;
  private ready = false;
  private closed = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private scheduled = false;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly client: Redis, private readonly options: AppenderOptions, private readonly observer: AppenderObserver) {}

  /** Messages not yet acknowledged by Redis. */
  get queued(): number {
    return this.queue.length - this.head;
  }

  append(seq: number, body: string): void {
    if (this.closed) return;
    this.queue.push(body);
    this.seqs.push(seq);
    const over = this.queued - this.options.maxQueued;
    if (over > 0) this.dropOldest(over);
    this.schedule();
  }

  /** The link is (again) ready: send what is queued. */
  linkReady(): void {
    this.ready = true;
    if (this.retryTimer) { clearTimeout(this.retryTimer); this.retryTimer = null; }
    this.schedule();
  }

  linkDown(): void {
    this.ready = false;
  }

  /** Resolves when the queue is empty or after `timeoutMs` (at stop: a best effort). */
  drain(timeoutMs: number): Promise<void> {
    if (this.queued === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done(): void { clearTimeout(timer); resolve(); }
      this.idleWaiters.push(done);
    });
  }

  close(): void {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private dropOldest(count: number): void {
    // Never the in-flight ones: their XADD may already be in the stream.
    const droppable = Math.min(count, this.queued - this.inFlight);
    if (droppable <= 0) return;
    if (this.inFlight === 0) this.head += droppable;
    else {
      this.queue.splice(this.head + this.inFlight, droppable);
      this.seqs.splice(this.head + this.inFlight, droppable);
    }
    this.compact();
    this.observer.dropped(droppable, this.queued);
  }

  private compact(): void {
    if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.seqs = this.seqs.slice(this.head);
      this.head = 0;
    }
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight > 0 || !this.ready || this.closed || this.retryTimer) return;
    this.scheduled = true;
    // Messages of one turn of the event loop share a pipeline.
    setImmediate(() => {
      this.scheduled = false;
      void this.sendBatch();
    });
  }

  private async sendBatch(): Promise<void> {
    if (this.inFlight > 0 || !this.ready || this.closed) return;
    const n = Math.min(MESSAGES_PER_ENTRY * ENTRIES_PER_BATCH, this.queued);
    if (n === 0) {
      for (const w of this.idleWaiters.splice(0)) w();
      return;
    }
    this.inFlight = n;
    const minId = `${Math.max(0, Math.floor(this.options.nowMs() - this.options.retentionMs))}-0`;
    const pipeline = this.client.pipeline();
    const sizes: number[] = [];
    for (let i = 0; i < n;) {
      // An entry holds consecutive numbers only (drops leave gaps).
      const first = this.head + i;
      let end = i + 1;
      while (end < n && end - i < MESSAGES_PER_ENTRY && this.seqs[this.head + end] === this.seqs[this.head + end - 1]! + 1) end++;
      sizes.push(end - i);
      pipeline.xadd(this.options.stream, 'MINID', '~', minId, '*', MESSAGE_FIELD, this.options.entryOf(this.seqs[first]!, this.queue.slice(first, this.head + end)));
      i = end;
    }
    let acknowledged = 0;
    let failure: string | null = null;
    try {
      const results = (await pipeline.exec()) ?? [];
      for (const [i, [err]] of results.entries()) {
        if (err) { failure = err.message; break; }
        acknowledged += sizes[i]!;
      }
      if (results.length < sizes.length && failure === null) failure = 'pipeline cut short';
    } catch (err) {
      failure = err instanceof Error ? err.message : String(err);
    }
    // Only the acknowledged prefix leaves the queue: what follows a failure is sent again,
    // in order (a copy may already be in the stream; readers admit each origin id once).
    this.head += acknowledged;
    this.inFlight = 0;
    this.compact();
    if (acknowledged) this.observer.appended(acknowledged);
    if (failure !== null && this.ready && !this.closed) {
      // The link is up but Redis refused (OOM, READONLY after a failover...): say so, retry later.
      this.observer.failed(failure);
      this.retryTimer = setTimeout(() => { this.retryTimer = null; this.schedule(); }, this.options.retryDelayMs);
      return;
    }
    if (this.queued === 0) for (const w of this.idleWaiters.splice(0)) w();
    else this.schedule();
  }
}
