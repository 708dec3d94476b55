// A policy table that was full of live entries and left arrivals out: the daemon adds them to
// a counter and says so at most once an hour, with what to raise. The policy only counts; the
// daemon owns the wall clock, the metric and the log.
import type { Logger } from '../obs/logger.js';
import type { FullTableStats } from '../policy/types.js';

/** At most one warning line per table this often (wall ms). */
const FULL_TABLE_LOG_INTERVAL_MS = 3_600_000;

export class FullTableNotice {
  /** The table's left-out count as last counted and as last logged, and when it was logged. */
  private counted = 0;
  private logged = 0;
  private loggedAtMs = -Infinity;

  constructor(
    private readonly counter: { inc(n: number): void },
    private readonly logger: Logger,
    /** The warning for `sinceLast` arrivals left out since the last one. */
    private readonly warning: (s: FullTableStats, sinceLast: number) => { obj: object; msg: string },
  ) {}

  note(s: FullTableStats, nowMs: number): void {
    if (s.leftOut < this.counted) {
      // A new policy (a config reload) counts from zero.
      this.counted = 0;
      this.logged = 0;
    }
    if (s.leftOut > this.counted) this.counter.inc(s.leftOut - this.counted);
    this.counted = s.leftOut;
    if (s.leftOut === this.logged || nowMs - this.loggedAtMs < FULL_TABLE_LOG_INTERVAL_MS) return;
    const { obj, msg } = this.warning(s, s.leftOut - this.logged);
    this.logger.warn(obj, msg);
    this.logged = s.leftOut;
    this.loggedAtMs = nowMs;
  }
}
