// The policy's narrow interface: AuthEvents in, BanDecisions and PolicyAlerts out. It knows
// nothing of sockets or nft; its clock is the events' own timestamps (µs), so a recorded
// trace replays to the same decisions.
import type { AuthEvent, LiveRegistration } from '../events/auth-event.js';
import type { CallEvent } from '../events/call-event.js';
import type { CallEvidenceSummary } from './calls/call-policy.js';
import type { Cidr } from '../net/ip.js';
import type { ClockReading, ClockStats } from './clock.js';
import type { RuleId } from './rules.js';

export type { ClockReading, ClockStats } from './clock.js';
export type { RuleId } from './rules.js';

/** What a ban covers: one host (IPv4 or IPv6), or an IPv6 prefix. */
export interface BanTarget {
  readonly cidr: Cidr;
  /** True for a single address (full-length prefix), false for a prefix ban. */
  readonly host: boolean;
}

/** A summary of what convinced the policy; logged with the ban and shown by explain. */
export interface BanEvidence {
  readonly events: number;
  readonly challenges: number;
  readonly answeredFailures: number;
  readonly successes: number;
  /** Distinct users tried (capped list, for the log line). */
  readonly users: readonly string[];
  readonly distinctUsers: number;
  readonly userAgents: readonly string[];
  readonly firstSeenUs: number;
  readonly lastSeenUs: number;
  /** For prefix bans: distinct addresses seen inside the prefix. */
  readonly addresses?: number;
  /** For bans by a call rule: the calls behind it. */
  readonly calls?: CallEvidenceSummary;
}

export interface BanDecision {
  readonly target: BanTarget;
  /** Ban length in seconds (already grown for repeat offenders, jittered). */
  readonly seconds: number;
  /** The rule that decided it: metrics label, nft element comment, log field. */
  readonly rule: RuleId;
  /** One human sentence: why. */
  readonly reason: string;
  readonly evidence: BanEvidence;
  /** Timestamp (µs) of the event that decided it. */
  readonly atUs: number;
  /** How many times this target was banned before (0 for a first offence). */
  readonly previousOffences: number;
}

export type AlertKind = 'misprovisioned_device' | 'near_miss' | 'spoofed_challenges' | 'forged_failures' | 'toll_fraud';

export interface PolicyAlert {
  readonly kind: AlertKind;
  /** Address or prefix the alert is about. */
  readonly source: string;
  readonly profile: string;
  readonly user?: string;
  readonly userAgent?: string;
  /** toll_fraud: the account (`user@realm`) and the numbers it dialled. */
  readonly account?: string;
  readonly numbers?: readonly string[];
  readonly message: string;
  /** When it was raised, in event time (µs) as a ban's atUs (a held near_miss: its hold's end). */
  readonly atUs: number;
}

export interface PolicyOutput {
  readonly bans: readonly BanDecision[];
  readonly alerts: readonly PolicyAlert[];
}

export interface EventGap {
  /** Event times (µs) of the last event before and the first after the gap. */
  readonly fromUs: number;
  readonly toUs: number;
  /** How many events are missing (from the sequence numbers). */
  readonly missing: number;
  /** The profile, when the gap is known to concern one. */
  readonly profile?: string;
}

/** A ban already in the kernel (read back at start): the policy must not re-decide it. */
export interface ExistingBan {
  readonly target: BanTarget;
  /** Unix µs at which the kernel will expire it (the daemon's wall clock; see Policy.restoreBans). */
  readonly expiresAtUs: number;
  readonly rule: string;
  /**
   * How many times the target has been banned, this ban included (the `n=` of the element's
   * comment), so a restarted daemon keeps growing repeat offenders' bans. Absent: 1.
   */
  readonly offences?: number;
}

/**
 * A table that keeps its live entries when full rather than cycle through more than it holds:
 * entries in it, and arrivals it left out because every entry was live (its cap too small).
 */
export interface FullTableStats {
  readonly tracked: number;
  readonly leftOut: number;
}

/** The policy's tables that leave arrivals out when full (the daemon counts and logs them). */
export interface CapacityStats {
  /** Toll-fraud accounts (maxTrackedAccounts); left out: authentications of untracked accounts. */
  readonly accounts: FullTableStats;
  /**
   * Proven sources (maxLegitimateSources); left out: proofs kept among the unproven sources,
   * which a spray of new addresses evicts only once every unproven source there is proven.
   */
  readonly provenSources: FullTableStats;
}

export interface Policy {
  /** Feed one event; returns what it decided (usually nothing). */
  observe(event: AuthEvent): PolicyOutput;
  /** Feed one finished call (CHANNEL_HANGUP_COMPLETE); the call rules judge it. */
  observeCall(event: CallEvent): PolicyOutput;
  /**
   * Let event time pass to `toUs` without an event: every deadline (a challenge's answer
   * timeout) before it is processed, in deadline order, and the clock moves to the last one.
   */
  advance(toUs: number): PolicyOutput;
  /**
   * The daemon's clocks, on its timer: they bound event time (maxEventLeadSeconds), tell clock
   * steps from quiet gaps, and the deadlines due by them (event time estimated from the
   * monotonic clock, less a slack for events still in flight) are processed.
   */
  noteClock(reading: ClockReading): PolicyOutput;
  /** In how many ms (by the daemon's monotonic clock) the next deadline is due; null: none. */
  msUntilNextDeadline(reading: ClockReading): number | null;
  /** Processes every pending deadline (end of a replayed trace). */
  drain(): PolicyOutput;
  /**
   * Events were lost between these event times (an Event-Sequence gap): evidence in that
   * window is incomplete, so no proof expires and no challenge counts unanswered because of it.
   */
  noteEventGap(gap: EventGap): void;
  /**
   * Registrations FreeSWITCH holds right now: their sources are proven legitimate. `nowUs` is
   * the daemon's wall clock, read at `reading` (then put on the policy's clock); without a
   * reading, event time (a replay). Their expiries are FreeSWITCH's, as its events' stamps.
   */
  seedRegistrations(registrations: readonly LiveRegistration[], nowUs: number, reading?: ClockReading): void;
  /**
   * Bans in the kernel (found at start, adopted, decided elsewhere), so they are not decided
   * again while active. `reading`: the daemon's clocks when their expiries (by its wall clock)
   * were taken, to put them on the policy's clock; without it, they are policy time (a replay).
   */
  restoreBans(bans: readonly ExistingBan[], reading?: ClockReading): void;
  /** An operator unbanned this at `nowUs` (as seedRegistrations): a grace period before it can be banned again. */
  manualUnban(target: Cidr, nowUs: number, reading?: ClockReading): void;
  /** Number of sources and prefixes currently tracked (for metrics and bounds). */
  trackedSources(): number;
  /** Events the clock held out of bound, and absorbed clock steps (logged by the daemon). */
  clockStats(): Readonly<ClockStats>;
  /** The tables that leave arrivals out when full (logged by the daemon when they do). */
  capacityStats(): CapacityStats;
}
