// The policy's narrow interface: AuthEvents in, BanDecisions and PolicyAlerts out. It knows
// nothing of sockets or nft; its clock is the events' own timestamps (µs), so a recorded
// trace replays to the same decisions.
import type { AuthEvent, LiveRegistration } from '../events/auth-event.js';
import type { CallEvent } from '../events/call-event.js';
import type { CallEvidenceSummary } from './calls/call-policy.js';
import type { Cidr } from '../net/ip.js';

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
  /** Stable rule identifier, used as metrics label and nft element comment. */
  readonly rule: string;
  /** One human sentence: why. */
  readonly reason: string;
  readonly evidence: BanEvidence;
  /** Timestamp (µs) of the event that decided it. */
  readonly atUs: number;
  /** How many times this target was banned before (0 for a first offence). */
  readonly previousOffences: number;
}

export type AlertKind = 'misprovisioned_device' | 'near_miss' | 'spoofed_challenges' | 'toll_fraud';

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
  readonly atUs: number;
}

export interface PolicyOutput {
  readonly bans: readonly BanDecision[];
  readonly alerts: readonly PolicyAlert[];
}

/** A ban already in the kernel (read back at start): the policy must not re-decide it. */
export interface ExistingBan {
  readonly target: BanTarget;
  /** Unix µs at which the kernel will expire it. */
  readonly expiresAtUs: number;
  readonly rule: string;
  /**
   * How many times the target has been banned, this ban included (the `n=` of the element's
   * comment), so a restarted daemon keeps growing repeat offenders' bans. Absent: 1.
   */
  readonly offences?: number;
}

export interface Policy {
  /** Feed one event; returns what it decided (usually nothing). */
  observe(event: AuthEvent): PolicyOutput;
  /** Feed one finished call (CHANNEL_HANGUP_COMPLETE); the call rules judge it. */
  observeCall(event: CallEvent): PolicyOutput;
  /**
   * Let time pass without an event (the daemon calls it on a timer): challenges left unanswered
   * past the answer timeout become evidence even when their source falls silent.
   */
  advance(nowUs: number): PolicyOutput;
  /** Registrations FreeSWITCH holds right now: their sources are proven legitimate. */
  seedRegistrations(registrations: readonly LiveRegistration[], nowUs: number): void;
  /** Bans found in the kernel at start, so they are not decided again while active. */
  restoreBans(bans: readonly ExistingBan[]): void;
  /** An operator unbanned this: give it a grace period before it can be banned again. */
  manualUnban(target: Cidr, nowUs: number): void;
  /** Number of sources and prefixes currently tracked (for metrics and bounds). */
  trackedSources(): number;
}
