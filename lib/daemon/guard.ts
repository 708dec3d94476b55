// The daemon's core: AuthEvents from the source go to the policy, its BanDecisions go to the
// nft writer. It also keeps the kernel honest: bans live in nft sets, so the guard reads
// them back at start and reconciles periodically — a table flushed by an admin is rebuilt
// with every ban's remaining time, a ban lifted by hand (`fsguard unban`) gives the source
// a grace period, a ban added by hand is respected by the policy.
import type { AuthEvent, LiveRegistration } from '../events/auth-event.js';
import type { CallEvent } from '../events/call-event.js';
import type { EslDropReason, EslSourceListener, AuthRejection, EventGap, HeartbeatInfo } from '../esl/index.js';
import { cidrsOverlap, isHostCidr, parseCidrs, type Cidr } from '../net/ip.js';
import { BannedPrefixes, type BanComment, type ElementOutcome, type KernelBan, type KernelBanList, type NftExecution } from '../nft/index.js';
import { unredacted, type Logger } from '../obs/logger.js';
import type { FsguardMetrics } from '../obs/metrics.js';
import type { BanDecision, ClockReading, ExistingBan, Policy, PolicyAlert, PolicyOutput } from '../policy/types.js';
import type { GuardObserver } from './guard-observer.js';
import type { BanJournal } from './ban-journal.js';
import { FullTableNotice } from './full-table-notice.js';
import { SeedingHold, systemGuardClock, type GuardClock } from './seeding-hold.js';
import { SwitchAddresses } from '../policy/switch-addresses.js';
import { isoTimeMs } from '../text/iso-time.js';

/** The part of NftSetWriter the guard uses (a narrow seam for tests). */
export interface BanWriter {
  /** Requests queued or being written (0: everything decided so far has been dealt with). */
  readonly queued?: number;
  /** Creates or checks the table; what it held, and whether an earlier fsguard had made it (adopted). */
  setup(): Promise<{ readonly list: KernelBanList; readonly earlier?: boolean }>;
  /** Records FreeSWITCH's own addresses in the table, for `fsguard ban` to refuse them. */
  recordSwitchAddresses?(addresses: readonly Cidr[], seconds: number): Promise<NftExecution>;
  list(): Promise<KernelBanList>;
  ban(target: Cidr, seconds: number, comment: BanComment): Promise<ElementOutcome>;
  unban(target: Cidr): Promise<ElementOutcome>;
  flush(): Promise<void>;
}

export interface GuardOptions {
  /** CIDRs that must never be written to the kernel, whatever the policy says. */
  readonly allow: readonly string[];
  /** Told of bans, unbans, alerts and the connection (status, notifications). */
  readonly observers?: readonly GuardObserver[];
  /** Where decisions are written down before they reach the kernel (kill -9 safety). */
  readonly journal?: BanJournal;
  /**
   * A ban runs from the time of the event that decided it, not from the moment it is written:
   * a ban decided while replaying the cluster's history has only its remaining time left (or
   * none). Off for a single node, whose events are judged as they happen.
   */
  readonly banFromEventTime?: boolean;
  /**
   * FreeSWITCH's addresses: the daemon's, shared with its policy (the guard learns this node's
   * from its events; the cluster sets the other nodes'). Without: the guard's own.
   */
  readonly switchAddresses?: SwitchAddresses;
}

/** What the guard believes is in the kernel, and since when. */
interface KnownBan {
  readonly target: Cidr;
  readonly expiresAtMs: number;
  readonly comment: BanComment;
  /** Wall time it was confirmed in the kernel (write or read-back). */
  readonly confirmedAtMs: number;
}

/**
 * A ban in force only through a wider prefix ban over it: written as covered, or replaced when
 * the wider one was written (widening). Written again for its time left if the wider one
 * expires first; lifted with it if that one is lifted by hand.
 */
interface CoveredBan extends UnwrittenBan {
  /** When the wider ban over it expires, as last seen (Infinity: no timeout). */
  coverUntilMs: number;
}

/** A ban the guard decided (or must restore) that nft failed to write: retried on each reconcile. */
interface UnwrittenBan {
  readonly target: Cidr;
  readonly expiresAtMs: number;
  readonly comment: BanComment;
}

/** FreeSWITCH's addresses stay recorded in the table this long after the daemon last learnt them. */
const SWITCH_ADDRESS_SECONDS = 7 * 86_400;
/** They are written again this often, so a daemon that runs for weeks keeps them there. */
const SWITCH_ADDRESS_RENEW_MS = 86_400_000;
/**
 * Bans nft failed to write, kept for retry: at most this many (the oldest are dropped, each
 * reported), so a long nft outage in a flood cannot grow the daemon without bound.
 */
const MAX_UNWRITTEN = 200_000;
/** A ban is treated as expired this long before the kernel's own expiry (clock skew). */
const EXPIRY_SLACK_MS = 1500;
/** A listing prints an element's time left in whole seconds, rounded down. */
const LISTED_SECONDS_ROUNDING_MS = 1000;
/** Log at most this many evidence users / user agents on a ban line. */
const LOG_SAMPLE = 5;

export class Guard implements EslSourceListener {
  private readonly known = new Map<string, KnownBan>();
  /**
   * Bans whose write failed as a whole run (transient nft errors past the writer's retries,
   * nft gone): the policy believes them in force, so they are written again on every
   * reconcile until they land or expire — never silently dropped.
   */
  private readonly unwritten = new Map<string, UnwrittenBan>();
  /** Bans covered by a wider prefix ban (see CoveredBan), by target. */
  private readonly covered = new Map<string, CoveredBan>();
  /** Targets of unwritten bans whose retry is in flight. */
  private readonly retrying = new Set<string>();
  private allow: Cidr[];
  private readonly journal: BanJournal | null;
  /** FreeSWITCH's own addresses: never banned. */
  private readonly switchAddresses: SwitchAddresses;
  /** When they were last written to the table (their elements expire: renewed, see SWITCH_ADDRESS_RENEW_MS). */
  private switchAddressesRecordedAtMs = 0;
  /**
   * The ban and alert lines (one per decision, under a flood thousands a second; their keys
   * fixed here): logged without the redaction pass, which more than doubles a line's cost.
   */
  private readonly decisionLogger: Logger;
  private reconciling: Promise<void> | null = null;
  private connections = 0;
  /** Bumped whenever the table is found missing and rebuilt; a reconcile spanning it is void. */
  private tableGeneration = 0;
  private readonly observers: readonly GuardObserver[];
  /** The wall-clock timer for the policy's next deadline (null: none armed). */
  private deadlineTimer: unknown = null;
  /** Events held at (re)connect until the live registrations are known. */
  private readonly hold: SeedingHold;
  /** Clock events out of bound, as last logged. */
  private clockOutOfBound = 0;
  /** The policy's tables full of live entries: counted and logged. */
  private readonly fullAccounts: FullTableNotice;
  private readonly fullProven: FullTableNotice;
  private readonly banFromEventTime: boolean;
  /** The journal was closed at exit (closeJournal): it is not emptied any more (a late flush, a tick). */
  private journalClosed = false;

  constructor(
    private policy: Policy,
    private readonly writer: BanWriter,
    private readonly logger: Logger,
    private readonly metrics: FsguardMetrics,
    options: GuardOptions,
    private readonly nowMs: () => number = Date.now,
    private readonly clock: GuardClock = systemGuardClock,
  ) {
    this.allow = parseCidrs(options.allow);
    this.journal = options.journal ?? null;
    this.decisionLogger = unredacted(logger);
    this.observers = options.observers ?? [];
    this.banFromEventTime = options.banFromEventTime ?? false;
    this.switchAddresses = options.switchAddresses ?? new SwitchAddresses();
    this.switchAddresses.watch(({ added }) => this.recordSwitchAddresses(added));
    this.fullAccounts = new FullTableNotice(metrics.untrackedAuthentications, logger, (s, since) => ({
      obj: { trackedAccounts: s.tracked, untrackedAuthentications: since },
      msg: `the toll-fraud table is full of live accounts (${s.tracked}, policy.maxTrackedAccounts): other accounts' addresses and usual numbers are not tracked until some go idle (legitimacySeconds) or call; raise maxTrackedAccounts (~330 bytes an account)`,
    }));
    this.fullProven = new FullTableNotice(metrics.proofsLeftOut, logger, (s, since) => ({
      obj: { provenSources: s.tracked, proofsLeftOut: since },
      msg: `the proven sources are all live (${s.tracked}, policy.maxLegitimateSources): newly proven sources stay proven among the unproven ones, where a spray of new addresses evicts them last; raise maxLegitimateSources`,
    }));
    this.hold = new SeedingHold(clock, (e) => this.judge(e), (why, held) => {
      if (why !== 'registrations') this.logger.warn({ held, reason: why }, 'judging events held at connect without the live registrations');
    });
  }

  /** Hands an observer what the guard did; an observer that throws is logged, never fatal. */
  private tell<K extends keyof GuardObserver>(method: K, ...args: Parameters<NonNullable<GuardObserver[K]>>): void {
    for (const o of this.observers) {
      const f = o[method] as ((...a: typeof args) => void) | undefined;
      if (!f) continue;
      try {
        f.apply(o, args);
      } catch (err) {
        this.logger.error({ observer: method, err: err instanceof Error ? err.message : String(err) }, 'a guard observer failed');
      }
    }
  }

  /** Bans the guard knows are in the kernel now, by kind (for `fsguard status`). */
  bansInForce(): { ipv4Hosts: number; ipv6Hosts: number; ipv4Prefixes: number; ipv6Prefixes: number; unwritten: number } {
    const n = { ipv4Hosts: 0, ipv6Hosts: 0, ipv4Prefixes: 0, ipv6Prefixes: 0, unwritten: this.unwritten.size };
    const now = this.nowMs();
    for (const k of this.known.values()) {
      if (k.expiresAtMs <= now) continue;
      const host = isHostCidr(k.target);
      if (k.target.family === 4) { if (host) n.ipv4Hosts++; else n.ipv4Prefixes++; } else if (host) n.ipv6Hosts++; else n.ipv6Prefixes++;
    }
    return n;
  }

  /** Creates the table (idempotent) and restores state from the sets. Throws NftError. */
  async start(): Promise<void> {
    const listedAtMs = this.nowMs();
    const { list, earlier } = await this.writer.setup();
    if (earlier) this.logger.warn({ bans: list.bans.length }, 'adopted the table an earlier fsguard made (before its sets carried the mark): added this version\'s sets, rebuilt its chain, kept its bans');
    this.adoptKernelBans(list.bans, this.nowMs());
    await this.replayJournal(list, listedAtMs);
    this.logger.info({ bans: list.bans.length, unrecognized: list.unrecognized.length }, 'nft table ready; bans read back from the kernel');
  }

  /**
   * Bans an earlier run decided and did not get into the kernel (it was killed): written now.
   * An element of the target that expires earlier (left by a shorter ban before it) is not it.
   */
  private async replayJournal(list: KernelBanList, listedAtMs: number): Promise<void> {
    if (!this.journal) return;
    const now = this.nowMs();
    const inKernel = new Map(list.bans.map((b) => [b.target.text, b]));
    const missing = this.journal.readBack().filter((j) => j.expiresAtMs > now + EXPIRY_SLACK_MS
      && !carries(inKernel.get(j.target.text), j.expiresAtMs, listedAtMs, now) && !this.protectedBy(j.target));
    if (missing.length === 0) return;
    this.logger.warn({ bans: missing.length, journal: this.journal.path }, 'writing bans decided before the last exit that were not in the kernel (the daemon was killed?)');
    this.policy.restoreBans(missing.map(existingBan), this.reading());
    for (const j of missing) this.journal.record(j);
    await Promise.all(missing.map((j) => this.writeBan(j.target, Math.ceil((j.expiresAtMs - now) / 1000), j.comment, j.expiresAtMs)));
  }

  /** Swaps the policy and its allow-list (config reload); kernel bans are handed to the new policy. */
  replacePolicy(policy: Policy, allow: readonly string[]): void {
    this.policy = policy;
    this.allow = parseCidrs(allow);
    this.policy.restoreBans([...this.known.values(), ...this.unwritten.values()].map(existingBan), this.reading());
  }

  // ---- source → policy -------------------------------------------------------------------

  /** An event to judge: this node's, or one of the cluster's stream (which carries no FreeSWITCH addresses to learn). */
  onEvent(event: AuthEvent): void {
    this.switchAddresses.learn(event.switchAddresses);
    // At (re)connect, nothing is judged before the live registrations are known.
    if (this.hold.active) { this.hold.add(event); return; }
    this.judge(event);
  }

  private judge(event: AuthEvent | CallEvent): void {
    this.apply(event.kind === 'call' ? this.policy.observeCall(event) : this.policy.observe(event));
    if (this.deadlineTimer === null) this.armDeadline();
  }

  private reading(): ClockReading {
    return { wallUs: this.nowMs() * 1000, monotonicUs: this.clock.monotonicMs() * 1000 };
  }

  /** Arms the wall-clock timer for the policy's next deadline (challenges timing out). */
  private armDeadline(): void {
    if (this.deadlineTimer !== null) { this.clock.clearTimeout(this.deadlineTimer); this.deadlineTimer = null; }
    const ms = this.policy.msUntilNextDeadline(this.reading());
    if (ms === null) return;
    this.deadlineTimer = this.clock.setTimeout(() => {
      this.deadlineTimer = null;
      this.apply(this.policy.noteClock(this.reading()));
      this.armDeadline();
    }, Math.min(Math.max(5, Math.ceil(ms)), 1000));
  }

  onCallEvent(event: CallEvent): void {
    this.countCall(event);
    this.judgeCall(event);
  }

  /** A call this node's FreeSWITCH saw (fsguard_calls_total). */
  countCall(event: CallEvent): void {
    this.metrics.callReceived(event.profile, event.outcome);
  }

  /** A call to judge: this node's, or one of the cluster's stream. */
  judgeCall(event: CallEvent): void {
    this.switchAddresses.learn(event.switchAddresses);
    // Held with the auth events at (re)connect: judged in arrival order once registrations are in.
    if (this.hold.active) { this.hold.add(event); return; }
    this.judge(event);
  }

  /** The table is where `fsguard ban` learns FreeSWITCH's addresses: the daemon is their one owner. */
  private recordSwitchAddresses(addresses: readonly Cidr[]): void {
    if (addresses.length === 0) return;
    this.switchAddressesRecordedAtMs = this.nowMs();
    void this.writer.recordSwitchAddresses?.(addresses, SWITCH_ADDRESS_SECONDS).then((r) => {
      if (!r.ok) this.logger.warn({ addresses: addresses.map((a) => a.text), nft: r.error.message }, 'could not record FreeSWITCH\'s addresses in the nft table (fsguard ban cannot refuse them)');
    });
  }

  onEventReceived(subclass: string, profile: string): void {
    this.metrics.eventReceived(subclass, profile);
  }

  onDropped(reason: EslDropReason, detail: string): void {
    this.metrics.eventsDropped.inc({ reason });
    if (reason !== 'profile_not_watched') this.logger.debug({ reason, detail }, 'event dropped');
  }

  onRegistrations(registrations: LiveRegistration[]): void {
    this.policy.seedRegistrations(registrations, this.nowMs() * 1000, this.reading());
    this.logger.info({ registrations: registrations.length, sources: new Set(registrations.map((r) => r.source.text)).size, held: this.hold.size }, 'live registrations loaded: their sources count as legitimate');
    this.hold.release('registrations');
  }

  onConnected(): void {
    this.metrics.eslConnected.set(1);
    if (this.connections++ > 0) this.metrics.eslReconnects.inc();
    this.tell('connection', 'connected', '', this.nowMs());
    this.hold.start();
  }

  onDisconnected(reason: string): void {
    this.hold.release('disconnected');
    this.metrics.eslConnected.set(0);
    this.logger.warn({ reason }, 'event socket disconnected');
    this.tell('connection', 'disconnected', reason, this.nowMs());
  }

  /**
   * FreeSWITCH's addresses are on its HEARTBEAT too: a node restarted on a quiet FreeSWITCH knows
   * them (and a cluster node publishes them) within one heartbeat of connecting, not at its first
   * auth or call event.
   */
  onHeartbeat({ switchAddresses, ...info }: HeartbeatInfo): void {
    this.switchAddresses.learn(switchAddresses);
    this.tell('heartbeat', info, this.nowMs());
  }

  onAuthRejected(kind: AuthRejection): void {
    this.metrics.eslConnected.set(0);
    this.tell('connection', 'rejected', kind, this.nowMs());
    this.logger.error({ kind }, kind === 'invalid_password'
      ? 'FreeSWITCH refused the event socket password (esl.password / FSGUARD_ESL_PASSWORD); retrying slowly'
      : 'FreeSWITCH rejected the event socket connection by ACL (event_socket.conf.xml apply-inbound-acl); retrying slowly');
  }

  /**
   * Events may have been lost in this window (the source has logged it): counted, and handed
   * to the policy so that no proof expires and no counter resets because of missing events.
   */
  onEventGap(gap: EventGap): void {
    this.metrics.eslEventGaps.inc({ kind: gap.kind });
    this.metrics.eslEventsMissing.inc({ kind: gap.kind }, gap.missing);
    // Event-Sequence is one counter for all of FreeSWITCH: a gap concerns no profile in particular.
    this.policy.noteEventGap({ fromUs: gap.fromUs, toUs: gap.toUs, missing: gap.missing });
  }

  /** Lets event time pass without an event (called on a timer by the daemon). */
  tick(): void {
    this.apply(this.policy.noteClock(this.reading()));
    this.armDeadline();
    this.metrics.trackedSources.set(this.policy.trackedSources());
    this.clearJournalIfDone();
    const c = this.policy.clockStats();
    const out = c.aheadOfWallClock + c.unconfirmedJumps + c.behind + c.steps;
    if (out !== this.clockOutOfBound) {
      this.clockOutOfBound = out;
      this.logger.warn({ ...c }, 'event timestamps out of bound (a FreeSWITCH clock ahead, stepping, or one bad stamp): judged at the policy clock');
    }
    const full = this.policy.capacityStats();
    const now = this.nowMs();
    this.fullAccounts.note(full.accounts, now);
    this.fullProven.note(full.provenSources, now);
  }

  /** A manual ban from a cluster node (`fsguard ban` there): into the kernel, and the policy knows it. */
  manualBan(target: Cidr, seconds: number, note: string): void {
    const guard = this.protectedBy(target);
    if (guard) {
      this.logger.error({ target: target.text, protectedBy: guard }, 'refused a manual ban from the cluster: the address is protected here');
      return;
    }
    const running = this.known.get(target.text);
    const comment: BanComment = { rule: 'manual', offences: (running?.comment.offences ?? 0) + 1, ...(note ? { note } : {}) };
    const expiresAtMs = this.nowMs() + seconds * 1000;
    void this.writeBan(target, seconds, comment, expiresAtMs);
    // Journaled as it is made, as the policy's bans are: a daemon killed before nft wrote it
    // writes it at its next start (at stop was too late for a kill -9).
    this.journal?.record({ target, expiresAtMs, comment });
    this.policy.restoreBans([existingBan({ target, expiresAtMs, comment })], this.reading());
  }

  /** A manual unban from a cluster node: out of the kernel, and a grace period (from `atMs`) in the policy. */
  manualUnban(target: Cidr, atMs: number = this.nowMs()): void {
    this.known.delete(target.text);
    this.unwritten.delete(target.text);
    this.covered.delete(target.text);
    this.journal?.recordUnban(target, atMs);
    void this.writer.unban(target).then((outcome) => {
      if (outcome.status === 'failed') this.logger.error({ target: target.text, detail: outcome.error.message }, 'unban from the cluster not written to the kernel');
    });
    this.policy.manualUnban(target, atMs * 1000, this.reading());
  }

  // ---- policy → nft ----------------------------------------------------------------------

  private apply(out: PolicyOutput): void {
    for (const ban of out.bans) this.ban(ban);
    for (const alert of out.alerts) this.alert(alert);
  }

  private protectedBy(target: Cidr): string | null {
    for (const a of this.allow) if (cidrsOverlap(a, target)) return `allow-list ${a.text}`;
    const own = this.switchAddresses.within(target);
    return own !== null ? `FreeSWITCH's own address ${own}` : null;
  }

  private ban(decision: BanDecision): void {
    const target = decision.target.cidr;
    const guard = this.protectedBy(target);
    if (guard) {
      // The policy should never get here; refusing at the last step keeps the promise anyway.
      this.logger.error({ target: target.text, rule: decision.rule, protectedBy: guard }, 'refused to ban a protected address');
      return;
    }
    const comment: BanComment = { rule: decision.rule, offences: decision.previousOffences + 1 };
    const requestedAtMs = this.nowMs();
    // A re-ban replaces the kernel timeout: never let a policy ban shorten a longer one
    // (a week-long manual ban, say) that is still running.
    const running = this.known.get(target.text);
    // Decided from the cluster's replayed history: only what is left of it, if anything.
    const elapsed = this.banFromEventTime ? Math.max(0, Math.floor((requestedAtMs - decision.atUs / 1000) / 1000)) : 0;
    if (elapsed >= decision.seconds) return;
    const seconds = Math.max(decision.seconds - elapsed, running ? Math.ceil((running.expiresAtMs - requestedAtMs) / 1000) : 0);
    // The write is queued first (it leaves on this turn's setImmediate): the log line and
    // the metrics are not on the way from the deciding event to the kernel.
    void this.writeBan(target, seconds, comment, requestedAtMs + seconds * 1000);
    this.journal?.record({ target, expiresAtMs: requestedAtMs + seconds * 1000, comment });
    this.metrics.bansTotal.inc({ rule: decision.rule });
    if (this.observers.length) this.tell('banned', decision, seconds, requestedAtMs);
    const e = decision.evidence;
    this.decisionLogger.info({
      event: 'ban',
      target: target.text,
      rule: decision.rule,
      seconds: decision.seconds,
      offence: comment.offences,
      reason: decision.reason,
      evidence: {
        events: e.events,
        challenges: e.challenges,
        answeredFailures: e.answeredFailures,
        successes: e.successes,
        distinctUsers: e.distinctUsers,
        users: e.users.length > LOG_SAMPLE ? e.users.slice(0, LOG_SAMPLE) : e.users,
        userAgents: e.userAgents.length > LOG_SAMPLE ? e.userAgents.slice(0, LOG_SAMPLE) : e.userAgents,
        ...(e.addresses !== undefined ? { addresses: e.addresses } : {}),
        ...(e.calls !== undefined ? { calls: { calls: e.calls.calls, probingCalls: e.calls.probingCalls, answeredCalls: e.calls.answeredCalls, distinctNumbers: e.calls.distinctNumbers, numbers: e.calls.numbers.slice(0, LOG_SAMPLE * 2) } } : {}),
        firstSeen: isoTimeMs(e.firstSeenUs / 1000),
        lastSeen: isoTimeMs(e.lastSeenUs / 1000),
      },
    }, `ban ${target.text} for ${decision.seconds}s: ${decision.reason}`);
  }

  /**
   * Writes one ban and books the outcome: written → known; a failed run → unwritten (retried
   * on the next reconcile); refused by nft on its own → logged (the same write would fail again).
   */
  private async writeBan(target: Cidr, seconds: number, comment: BanComment, expiresAtMs: number): Promise<void> {
    const outcome = await this.writer.ban(target, seconds, comment);
    const key = target.text;
    if (outcome.status === 'written') {
      this.unwritten.delete(key);
      this.covered.delete(key);
      this.known.set(key, { target, comment, expiresAtMs, confirmedAtMs: this.nowMs() });
    } else if (outcome.status === 'failed') {
      this.known.delete(key);
      this.unwritten.set(key, { target, comment, expiresAtMs });
      if (this.unwritten.size > MAX_UNWRITTEN) this.dropUnwritten();
      this.logger.error({ target: key, rule: comment.rule, outcome: outcome.status, detail: outcome.error.message, unwritten: this.unwritten.size }, 'ban not written to the kernel: will retry on the next reconcile');
    } else if (outcome.status === 'covered') {
      this.unwritten.delete(key);
      const coverUntilMs = outcome.secondsLeft === null ? Number.POSITIVE_INFINITY : this.nowMs() + outcome.secondsLeft * 1000;
      this.covered.set(key, { target, comment, expiresAtMs, coverUntilMs });
      this.logger.info({ target: key, rule: comment.rule, coveredBy: outcome.by }, 'ban not written: a wider prefix already banned covers it');
    } else if (outcome.status === 'refused') {
      this.logger.error({ target: key, rule: comment.rule, outcome: outcome.status, detail: outcome.message }, 'ban not written to the kernel');
    }
  }

  /** The queue of unwritten bans is full: the oldest goes (Map order is insertion order), reported. */
  private dropUnwritten(): void {
    const first = this.unwritten.entries().next().value;
    if (!first) return;
    this.unwritten.delete(first[0]);
    this.metrics.nftErrors.inc();
    this.logger.error({ target: first[0], rule: first[1].comment.rule, unwritten: this.unwritten.size }, `more than ${MAX_UNWRITTEN} bans wait for nft: dropped the oldest`);
  }

  /** Writes the bans whose earlier write failed again, with their remaining time. */
  private retryUnwritten(): Promise<void> {
    const now = this.nowMs();
    const writes: Promise<void>[] = [];
    for (const [key, u] of this.unwritten) {
      if (u.expiresAtMs <= now + EXPIRY_SLACK_MS) { this.unwritten.delete(key); continue; }
      if (this.retrying.has(key)) continue;
      this.retrying.add(key);
      writes.push(this.writeBan(u.target, Math.ceil((u.expiresAtMs - now) / 1000), u.comment, u.expiresAtMs).finally(() => this.retrying.delete(key)));
    }
    if (writes.length) this.logger.warn({ bans: writes.length }, 'writing bans that nft failed to write earlier');
    return Promise.all(writes).then(() => undefined);
  }

  private alert(alert: PolicyAlert): void {
    this.metrics.alertsTotal.inc({ kind: alert.kind });
    this.tell('alerted', alert, this.nowMs());
    this.decisionLogger.warn({
      event: 'alert',
      kind: alert.kind,
      source: alert.source,
      profile: alert.profile,
      ...(alert.user !== undefined ? { user: alert.user } : {}),
      ...(alert.userAgent !== undefined ? { userAgent: alert.userAgent } : {}),
      ...(alert.account !== undefined ? { account: alert.account } : {}),
      ...(alert.numbers !== undefined ? { numbers: alert.numbers } : {}),
    }, alert.message);
  }

  // ---- kernel reconciliation ---------------------------------------------------------------

  /**
   * Compares what the guard believes with the sets. Table gone → recreated and every live
   * ban written again with its remaining time. A ban missing early → lifted by hand: grace.
   * A ban the guard did not write → adopted (manual ban, or another writer).
   */
  reconcile(): Promise<void> {
    this.reconciling ??= this.reconcileOnce().finally(() => { this.reconciling = null; });
    return this.reconciling;
  }

  /**
   * The table was found missing and recreated (by the writer, on its next ban): write every
   * ban the guard knows back with its remaining time.
   */
  onTableRecreated(): Promise<void> {
    this.tableGeneration++;
    return this.restoreKnownBans();
  }

  /**
   * Something changed our table behind our back (the table watch saw no chain of it): reconcile
   * now, after any reconcile already running (its listing may predate the change). A table
   * still there lost its chain (`nft delete chain`, its sets left): it drops nothing until the
   * chain is rebuilt, and the reconcile alone, which sees the sets, would not rebuild it.
   */
  async kernelChanged(): Promise<void> {
    const running = this.reconciling;
    if (running) await running.catch(() => undefined);
    if ((await this.writer.list()).tableExists) {
      this.logger.warn({}, 'fsguard\'s drop chain is gone (the table and its sets are there): rebuilding it');
      await this.writer.setup();
    }
    await this.reconcile();
  }

  private async restoreKnownBans(): Promise<void> {
    const now = this.nowMs();
    // The covered ones too: the wider bans over them went with the table (each is covered
    // again, or written beside it, whichever lands first).
    const live = [...this.known.values(), ...this.covered.values()].filter((k) => k.expiresAtMs > now + EXPIRY_SLACK_MS);
    this.covered.clear();
    this.logger.warn({ bans: live.length }, 'restoring every ban into the recreated nft table');
    // Their set went with the table: `fsguard ban` would not refuse them any more.
    this.recordSwitchAddresses(this.switchAddresses.all());
    // A restore that fails becomes unwritten (retried), never a "manual unban" at the next reconcile.
    await Promise.all([
      ...live.map((k) => this.writeBan(k.target, Math.ceil((k.expiresAtMs - now) / 1000), k.comment, k.expiresAtMs)),
      this.retryUnwritten(),
    ]);
  }

  private async reconcileOnce(): Promise<void> {
    const listedAtMs = this.nowMs();
    const generation = this.tableGeneration;
    const list = await this.writer.list();
    const now = this.nowMs();
    if (list.tableExists && now - this.switchAddressesRecordedAtMs >= SWITCH_ADDRESS_RENEW_MS) this.recordSwitchAddresses(this.switchAddresses.all());
    for (const [key, k] of this.known) {
      if (k.expiresAtMs > now + EXPIRY_SLACK_MS) continue;
      this.known.delete(key);
      this.tell('unbanned', key, k.comment.rule, 'expired', now);
    }
    if (!list.tableExists) {
      this.logger.warn({ bans: this.known.size }, 'fsguard\'s nft table is gone (flush ruleset?): recreating it');
      await this.writer.setup();
      await this.onTableRecreated();
      return;
    }
    // The table was rebuilt while we listed: what is missing was lost with it, not unbanned.
    if (generation !== this.tableGeneration) return;
    const inKernel = new Map(list.bans.map((b) => [b.target.text, b]));
    // A write reported failed may have committed after all (a killed nft): it is there. An
    // element that expires earlier is what a shorter ban before it left (a re-ban's write
    // failed): still unwritten, and written again below, which raises its timeout.
    for (const [key, u] of this.unwritten) if (carries(inKernel.get(key), u.expiresAtMs, listedAtMs, now)) this.unwritten.delete(key);
    const prefixes = new BannedPrefixes(list.bans);
    for (const [key, k] of this.known) {
      if (inKernel.has(key) || k.confirmedAtMs > listedAtMs) continue;
      this.known.delete(key);
      // A prefix replaced by a wider ban (widening deletes the narrower ones) is still banned.
      const cover = isHostCidr(k.target) ? null : prefixes.widestOver(k.target);
      if (cover !== null) {
        this.covered.set(key, { target: k.target, expiresAtMs: k.expiresAtMs, comment: k.comment, coverUntilMs: cover.expiresAtMs ?? Number.POSITIVE_INFINITY });
        continue;
      }
      this.noteLifted(k, now, 'ban lifted outside fsguard (fsguard unban?): grace period before it can be banned again');
    }
    this.settleCovered(prefixes, now);
    // Not the unwritten ones: the policy counts them in force until their own, later, expiry.
    this.adoptKernelBans(list.bans.filter((b) => !this.known.has(b.target.text) && !this.unwritten.has(b.target.text)), now);
    // Not awaited: the retries go through the writer's own backoff, and the daemon spaces
    // reconciles by how long one took — a slow nft must not push the next retry away.
    void this.retryUnwritten();
    this.logger.debug({ inKernel: list.bans.length, known: this.known.size, unwritten: this.unwritten.size }, 'reconciled with the kernel');
  }

  /** A ban someone else took out of the kernel: a grace period in the policy, journaled (a restart's replay leaves it out), told and logged. */
  private noteLifted(k: { readonly target: Cidr; readonly comment: BanComment }, now: number, message: string): void {
    this.policy.manualUnban(k.target, now * 1000, this.reading());
    this.journal?.recordUnban(k.target, now);
    this.tell('unbanned', k.target.text, k.comment.rule, 'lifted', now);
    this.logger.info({ target: k.target.text, rule: k.comment.rule }, message);
  }

  /**
   * Covered bans whose wider ban is gone: expired first → written again for their time left
   * (the policy counts them in force); lifted by hand → lifted with it, as that was.
   */
  private settleCovered(prefixes: BannedPrefixes, now: number): void {
    for (const [key, c] of this.covered) {
      if (c.expiresAtMs <= now + EXPIRY_SLACK_MS) {
        this.covered.delete(key);
        this.tell('unbanned', key, c.comment.rule, 'expired', now);
        continue;
      }
      const cover = prefixes.widestOver(c.target);
      if (cover !== null) {
        c.coverUntilMs = cover.expiresAtMs ?? Number.POSITIVE_INFINITY;
        continue;
      }
      this.covered.delete(key);
      if (c.coverUntilMs <= now + EXPIRY_SLACK_MS) {
        this.logger.info({ target: key, rule: c.comment.rule }, 'the wider ban over it expired: written again for its time left');
        void this.writeBan(c.target, Math.ceil((c.expiresAtMs - now) / 1000), c.comment, c.expiresAtMs);
      } else {
        this.noteLifted(c, now, 'ban lifted outside fsguard with the wider ban over it: grace period before it can be banned again');
      }
    }
  }

  private adoptKernelBans(bans: readonly KernelBan[], now: number): void {
    const adopted: KnownBan[] = [];
    for (const b of bans) {
      // Elements without timeout never expire; keep them known for a day at a time.
      const expiresAtMs = b.expiresAtMs ?? now + 86_400_000;
      // Within the slack it counts as expired already (see reconcileOnce): adopting it again
      // would report its expiry twice.
      if (expiresAtMs <= now + EXPIRY_SLACK_MS) continue;
      const k: KnownBan = { target: b.target, expiresAtMs, comment: { rule: b.rule ?? 'foreign', offences: b.offences ?? 1 }, confirmedAtMs: now };
      this.known.set(b.target.text, k);
      adopted.push(k);
    }
    if (adopted.length) this.policy.restoreBans(adopted.map(existingBan), this.reading());
  }

  /** Bans the guard believes are in the kernel now (for tests and metrics). */
  get knownBans(): number {
    return this.known.size;
  }

  /** Bans decided but not (yet) in the kernel because nft failed; retried on reconcile. */
  get unwrittenBans(): number {
    return this.unwritten.size;
  }

  /** Everything journaled is in the kernel (or was refused): the journal can start empty. */
  private clearJournalIfDone(): void {
    if (this.journal && !this.journalClosed && (this.writer.queued ?? 0) === 0 && this.unwritten.size === 0) this.journal.clear();
  }

  /** Writes everything pending (SIGTERM), gives the unwritten bans one more try, and closes the journal. */
  async flush(): Promise<void> {
    this.hold.release('stopping');
    if (this.deadlineTimer !== null) { this.clock.clearTimeout(this.deadlineTimer); this.deadlineTimer = null; }
    await Promise.all([this.retryUnwritten(), this.writer.flush()]);
    this.closeJournal();
  }

  /**
   * At exit, also when the stop gave up waiting for nft: the bans still unwritten are journaled,
   * so the next start writes them (not all of them were: those restored into a recreated table);
   * with none, the journal is emptied. Then it is closed.
   */
  closeJournal(): void {
    if (this.journalClosed) return;
    if (this.unwritten.size === 0) this.clearJournalIfDone();
    for (const u of this.unwritten.values()) this.journal?.record(u);
    this.journalClosed = true;
    this.journal?.close();
    if (this.unwritten.size === 0) return;
    const obj = { bans: this.unwritten.size, targets: [...this.unwritten.keys()].slice(0, LOG_SAMPLE) };
    if (this.journal) this.logger.warn({ ...obj, journal: this.journal.path }, 'bans that nft failed to write are in the journal: the next start writes them');
    else this.logger.error(obj, 'bans that nft failed to write are lost at exit');
  }
}

/**
 * Whether the kernel's element (from a listing started at `listedAtMs`, over by `nowMs`) is a ban
 * that runs until `expiresAtMs`: present, and expiring no earlier than that. A listing counts
 * time left from its start and prints it in whole seconds, so it may show an element that much
 * earlier than written.
 */
function carries(element: KernelBan | undefined, expiresAtMs: number, listedAtMs: number, nowMs: number): boolean {
  if (!element) return false;
  if (element.expiresAtMs === null) return true;
  return element.expiresAtMs + (nowMs - listedAtMs) + LISTED_SECONDS_ROUNDING_MS + EXPIRY_SLACK_MS >= expiresAtMs;
}

/** What the policy is told about a ban in (or meant for) the kernel. */
function existingBan(k: { readonly target: Cidr; readonly expiresAtMs: number; readonly comment: BanComment }): ExistingBan {
  return { target: { cidr: k.target, host: isHostCidr(k.target) }, expiresAtUs: k.expiresAtMs * 1000, rule: k.comment.rule, offences: k.comment.offences };
}
