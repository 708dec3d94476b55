// Injected time for the notification tests (the model is test/esl-reconnect.test.ts): timers
// run only when the test advances the clock, so a 60 s digest interval takes no time at all.
import type { EslTimers, TimerHandle } from '../../lib/esl/index.js';

export class FakeTimers implements EslTimers {
  now: number;
  private seq = 0;
  private readonly pending = new Map<number, { at: number; fn: () => void }>();

  constructor(startMs = Date.UTC(2026, 11, 1, 9, 0, 0)) {
    this.now = startMs;
  }

  readonly clock = (): number => this.now;

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = ++this.seq;
    this.pending.set(id, { at: this.now + ms, fn });
    return id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.pending.delete(handle as number);
  }

  get scheduled(): number {
    return this.pending.size;
  }

  /** How long until the next timer is due (null: none is pending). */
  nextDueIn(): number | null {
    let at = Infinity;
    for (const entry of this.pending.values()) if (entry.at < at) at = entry.at;
    return at === Infinity ? null : at - this.now;
  }

  /** Runs every timer due within `ms`, in order, moving the clock to each. */
  advance(ms: number): void {
    const until = this.now + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | null = null;
      for (const entry of this.pending) if (entry[1].at <= until && (!next || entry[1].at < next[1].at)) next = entry;
      if (!next) break;
      this.pending.delete(next[0]);
      this.now = next[1].at;
      next[1].fn();
    }
    this.now = until;
  }
}

/** Waits (on real I/O, bounded) until `cond` holds: for deliveries over real sockets. */
export async function until(what: string, cond: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
