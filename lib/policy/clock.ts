// The policy's one clock. It runs on the events' own time (`Event-Date-Timestamp`), so a
// recorded trace replays to the daemon's decisions, and no single event can move it:
//
//   - Events a little behind the clock (sofia emits from several threads; several FreeSWITCH
//     nodes differ by up to maxSourceSkewSeconds) are judged at the clock.
//   - A jump ahead beyond clockStepSeconds moves the clock only once the next event confirms
//     it. Confirmed, it is time passing (a quiet night) unless the daemon's monotonic clock
//     says far less time passed: then it is a step of FreeSWITCH's host clock (NTP, a VM
//     resumed), absorbed into an offset, so no proof expires and no window empties.
//   - Two events in a row further behind than maxSourceSkewSeconds are a step back: absorbed
//     the same way, so the clock keeps running (a frozen clock would stop every timer).
//   - In the daemon, policy time never runs more than maxEventLeadSeconds ahead of the wall
//     clock (as it was at start, advanced by the monotonic clock): beyond that an event is
//     judged at that bound.
// Everything out of bound is counted (ClockStats) and the daemon logs it.
//
// The daemon feeds readings of its wall and monotonic clocks (noteReading) on a timer; simulate
// feeds none. Those readings only bound the clock and tell steps from gaps; they never move it.

/** The daemon's clocks at one moment, µs. */
export interface ClockReading {
  readonly wallUs: number;
  readonly monotonicUs: number;
}

export interface ClockBounds {
  readonly maxEventLeadUs: number;
  readonly maxSourceSkewUs: number;
  readonly clockStepUs: number;
}

/** Events out of bound, by kind, since the policy started. */
export interface ClockStats {
  /** Further ahead of the wall clock than maxEventLeadSeconds. */
  aheadOfWallClock: number;
  /** A jump ahead that the next event did not confirm (one event stamped wrong). */
  unconfirmedJumps: number;
  /** Further behind the clock than maxSourceSkewSeconds. */
  behind: number;
  /** Steps of the event clock absorbed into the offset (forward or back). */
  steps: number;
}

export class PolicyClock {
  /** Policy time, µs: event time minus the absorbed steps. Never goes back. */
  nowUs = 0;
  private started = false;
  /** Event time − policy time: the sum of the absorbed clock steps. */
  private offsetUs = 0;
  /** The event time (corrected) of a jump ahead awaiting confirmation, or NaN. */
  private heldAheadUs = Number.NaN;
  /** The event time (corrected) of an event far behind, awaiting a second one, or NaN. */
  private heldBehindUs = Number.NaN;
  private reading: ClockReading | null = null;
  /**
   * Wall time minus monotonic time at the first reading: the wall clock the bound is taken
   * from advances with the monotonic clock, so a step of the host clock (which also steps
   * FreeSWITCH's stamps, absorbed into the offset) does not move the bound.
   */
  private wallMinusMonoUs = Number.NaN;
  /** The clock and the monotonic reading when an event last moved it (the anchor). */
  private anchorNowUs = Number.NaN;
  private anchorMonoUs = Number.NaN;
  private movedSinceReading = false;
  readonly stats: ClockStats = { aheadOfWallClock: 0, unconfirmedJumps: 0, behind: 0, steps: 0 };

  constructor(private readonly bounds: ClockBounds) {}

  /**
   * The policy time at which to judge an event stamped `eventUs`: the clock, moved to the
   * event's time when that is in bound. Never less than the clock.
   */
  place(eventUs: number): number {
    let t = eventUs - this.offsetUs;
    if (!this.started) {
      this.started = true;
      this.nowUs = this.wallBounded(t);
      this.movedSinceReading = true;
      return this.nowUs;
    }
    const b = this.bounds;
    const d = t - this.nowUs;
    if (d > b.clockStepUs) {
      this.heldBehindUs = Number.NaN;
      if (Number.isNaN(this.heldAheadUs) || t < this.heldAheadUs - b.maxSourceSkewUs) {
        if (!Number.isNaN(this.heldAheadUs)) this.stats.unconfirmedJumps++;
        this.heldAheadUs = t;
        return this.nowUs;
      }
      // Confirmed by a second event. Time passing, or the host clock stepping?
      this.heldAheadUs = Number.NaN;
      const passed = this.monotonicPassedUs();
      if (passed !== null && d - passed > b.clockStepUs) {
        this.offsetUs += d - passed;
        this.stats.steps++;
        t = eventUs - this.offsetUs;
      }
    } else if (d < -b.maxSourceSkewUs) {
      if (!Number.isNaN(this.heldAheadUs)) { this.stats.unconfirmedJumps++; this.heldAheadUs = Number.NaN; }
      if (Number.isNaN(this.heldBehindUs) || Math.abs(t - this.heldBehindUs) > b.clockStepUs) {
        this.stats.behind++;
        this.heldBehindUs = t;
        return this.nowUs;
      }
      // Two in a row, consistent with each other: the event clock stepped back.
      this.heldBehindUs = Number.NaN;
      this.offsetUs -= this.nowUs - t;
      this.stats.steps++;
      return this.nowUs;
    } else {
      if (!Number.isNaN(this.heldAheadUs)) { this.stats.unconfirmedJumps++; this.heldAheadUs = Number.NaN; }
      this.heldBehindUs = Number.NaN;
    }
    if (t > this.nowUs) {
      this.nowUs = this.wallBounded(t);
      this.movedSinceReading = true;
    }
    return this.nowUs;
  }

  /** Moves the clock to a deadline (never back). */
  advanceTo(us: number): void {
    if (us > this.nowUs) this.nowUs = us;
  }

  /** A reading of the daemon's clocks: bounds event time, anchors the estimate of event time. */
  noteReading(r: ClockReading): void {
    this.reading = r;
    if (Number.isNaN(this.wallMinusMonoUs)) this.wallMinusMonoUs = r.wallUs - r.monotonicUs;
    if (this.movedSinceReading || Number.isNaN(this.anchorMonoUs)) {
      this.movedSinceReading = false;
      this.anchorNowUs = this.nowUs;
      this.anchorMonoUs = r.monotonicUs;
    }
  }

  /** Policy time now by the daemon's monotonic clock (the clock itself without readings). */
  estimateNowUs(r: ClockReading): number {
    if (Number.isNaN(this.anchorMonoUs)) return this.nowUs;
    return Math.max(this.nowUs, this.anchorNowUs + (r.monotonicUs - this.anchorMonoUs));
  }

  /**
   * The policy time of `wallUs`, a moment by the daemon's wall clock read at `r` (a ban's expiry
   * in the kernel): policy time now (by the monotonic clock, as the timers take it) plus how far
   * that moment is from `r`. Not the wall time less the offset: the offset is the steps of
   * FreeSWITCH's clock, which are the daemon's wall clock's only when they share a host, and a
   * step of the daemon's wall clock alone is no step of policy time. Before the first event
   * there is no policy time to go by: the wall time is taken as it (the first event's stamp is
   * near it when FreeSWITCH's clock agrees with the daemon's).
   */
  fromWallUs(wallUs: number, r: ClockReading): number {
    if (!this.started) return wallUs;
    return this.estimateNowUs(r) + (wallUs - r.wallUs);
  }

  /** Absorbed steps so far (event time − policy time), µs. */
  get offset(): number {
    return this.offsetUs;
  }

  /** How much monotonic time passed since an event last moved the clock, or null in simulate. */
  private monotonicPassedUs(): number | null {
    if (this.reading === null || Number.isNaN(this.anchorMonoUs)) return null;
    return Math.max(0, this.anchorNowUs + (this.reading.monotonicUs - this.anchorMonoUs) - this.nowUs);
  }

  private wallBounded(t: number): number {
    const r = this.reading;
    if (r === null) return t;
    const limit = r.monotonicUs + this.wallMinusMonoUs + this.bounds.maxEventLeadUs;
    if (t <= limit) return t;
    this.stats.aheadOfWallClock++;
    return Math.max(this.nowUs, limit);
  }
}
