// Seeding before judging: at every (re)connect, FreeSWITCH is asked for its live
// registrations (`show registrations`), and events arriving before the answer are held, then
// judged in order once it is in. Judged earlier, a registered office would look unproven:
// forged challenges at connect banned one in 11 of 20 runs. The hold is bounded in count and
// time, so a FreeSWITCH that never answers (or a flood at connect) delays judging by at most
// HOLD_MS and loses nothing.
import type { AuthEvent } from '../events/auth-event.js';
import type { CallEvent } from '../events/call-event.js';

/** What is held: auth events and finished calls, in arrival order. */
type HeldEvent = AuthEvent | CallEvent;

/** Longest wait for the registrations answer (FreeSWITCH answers within milliseconds). */
export const HOLD_MS = 5000;
/** Most events held (a flood at connect is judged without waiting further). */
export const HOLD_EVENTS = 50_000;

/** The guard's clocks and timers (tests inject fake ones). */
export interface GuardClock {
  monotonicMs(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemGuardClock: GuardClock = {
  monotonicMs: () => performance.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    // The guard's timers never keep a process alive on their own.
    t.unref();
    return t;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

export type HoldRelease = 'registrations' | 'timeout' | 'full' | 'disconnected' | 'stopping';

export class SeedingHold {
  private held: HeldEvent[] | null = null;
  private timer: unknown = null;

  constructor(
    private readonly clock: GuardClock,
    private readonly judge: (e: HeldEvent) => void,
    private readonly released: (why: HoldRelease, held: number) => void,
  ) {}

  get active(): boolean {
    return this.held !== null;
  }

  get size(): number {
    return this.held !== null ? this.held.length : 0;
  }

  /** A connection is up and the registrations were asked for: hold from now on. */
  start(): void {
    if (this.held !== null) return;
    this.held = [];
    this.timer = this.clock.setTimeout(() => { this.timer = null; this.release('timeout'); }, HOLD_MS);
  }

  add(e: HeldEvent): void {
    const held = this.held!;
    held.push(e);
    if (held.length >= HOLD_EVENTS) this.release('full');
  }

  /** Judges every held event in arrival order and stops holding. */
  release(why: HoldRelease): void {
    const held = this.held;
    if (held === null) return;
    this.held = null;
    if (this.timer !== null) { this.clock.clearTimeout(this.timer); this.timer = null; }
    this.released(why, held.length);
    for (const e of held) this.judge(e);
  }
}
