// Reconnect delays: capped exponential backoff with jitter. Pure (random injected), so the
// schedule is testable without timers.

export interface BackoffOptions {
  /** First delay after a failure. */
  readonly initialMs: number;
  /** Cap: FreeSWITCH coming back is noticed within this long. */
  readonly maxMs: number;
  /** 0..1: each delay is shortened by up to this fraction, at random. */
  readonly jitter: number;
}

export class ReconnectBackoff {
  private failures = 0;

  constructor(
    private readonly options: BackoffOptions,
    private readonly random: () => number,
  ) {}

  /** Consecutive failures so far (0 after reset). */
  get attempts(): number {
    return this.failures;
  }

  /** The delay before the next attempt; each call counts one more failure. */
  next(): number {
    const { initialMs, maxMs, jitter } = this.options;
    // 2^30 is far past any cap; stop growing the exponent so it never overflows.
    const raw = Math.min(maxMs, initialMs * 2 ** Math.min(this.failures, 30));
    this.failures++;
    const r = Math.min(1, Math.max(0, this.random()));
    return Math.max(0, Math.round(raw * (1 - jitter * r)));
  }

  reset(): void {
    this.failures = 0;
  }
}
