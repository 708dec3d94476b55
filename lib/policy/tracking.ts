// Which sources and prefixes are tracked, and for how long. Unproven sources, proven sources
// and IPv6 prefixes live in three LRU maps with their own caps, so a spray of new addresses
// evicts only other unproven sources, never a site's proof. Memory stays bounded whatever
// arrives: a full map is cut back in one pass, and idle entries are dropped at its old end.
import { cidrContainsIp, ipv6PrefixText, type IpAddress } from '../net/ip.js';
import type { BanLedger } from './ban-ledger.js';
import type { ChallengeQueue } from './challenge-queue.js';
import { cutSparing } from './eviction.js';
import type { RuleSettings } from './compiled-settings.js';
import { PrefixState, SourceState, type EvidenceState } from './source-state.js';

/**
 * A full LRU map is cut to this fraction of its cap at once: finding a Map's oldest entry walks
 * over the holes earlier deletions left at its front, so evicting one entry per insert cost
 * O(cap) per new source under a spray (40 % of the CPU); one pass per cap/10 inserts is O(1) each.
 */
const EVICT_TO_FRACTION = 0.9;
/** Idle entries are looked for at the old end of each LRU map once per this many inserts. */
const IDLE_CHECK_INSERTS = 1024;
/** A full proven map is looked through for lapsed proofs at most this often (event time). */
const LAPSED_SWEEP_US = 60_000_000;

export class SourceTracker {
  /** Unproven sources, least recently seen first. */
  readonly unproven = new Map<string, SourceState>();
  /** Proven sources, kept apart so a spray of new addresses cannot evict a site's proof. */
  readonly proven = new Map<string, SourceState>();
  readonly prefixes = new Map<string, PrefixState>();
  /** The most recently touched entry of each LRU map: a burst from one source skips the re-insert. */
  private youngestUnproven: SourceState | null = null;
  private youngestProven: SourceState | null = null;
  private youngestPrefix: PrefixState | null = null;
  /** Inserts into each LRU map since its old end was last looked at for idle entries. */
  private unprovenInserts = 0;
  private provenInserts = 0;
  private prefixInserts = 0;
  private prefixSerials = 0;
  /** Proofs left in the unproven map because the proven map was full of live ones. */
  provenLeftOut = 0;
  private lastLapsedSweepUs = -Infinity;

  constructor(
    private readonly base: RuleSettings,
    /** A source or prefix unseen this long is idle: the longest long window of any profile. */
    private readonly idleUs: number,
    private readonly prefixLength: number,
    private readonly queue: ChallengeQueue,
    private readonly ledger: BanLedger,
  ) {}

  get size(): number {
    return this.unproven.size + this.proven.size + this.prefixes.size;
  }

  host(key: string): SourceState | undefined {
    return this.unproven.get(key) ?? this.proven.get(key);
  }

  /** A host or prefix by its key. */
  any(key: string): EvidenceState | undefined {
    return this.unproven.get(key) ?? this.proven.get(key) ?? this.prefixes.get(key);
  }

  /** The state of a source, created (and the oldest evicted) if new; marks it seen now. */
  source(addr: IpAddress, now: number): SourceState {
    const key = addr.text;
    let s = this.unproven.get(key);
    if (s !== undefined) {
      if (this.youngestUnproven !== s) { this.unproven.delete(key); this.unproven.set(key, s); this.youngestUnproven = s; }
      s.lruUs = now;
      return s;
    }
    s = this.proven.get(key);
    if (s !== undefined) {
      if (this.youngestProven !== s) { this.proven.delete(key); this.proven.set(key, s); this.youngestProven = s; }
      s.lruUs = now;
      return s;
    }
    s = new SourceState(addr, addr.family === 6 ? ipv6PrefixText(addr, this.prefixLength) : null);
    s.lruUs = now;
    s.firstSeenUs = now;
    s.allowed = this.ledger.switchAddresses.has(key) || this.base.allow.some((c) => cidrContainsIp(c, addr));
    const ban = this.ledger.running(key, now);
    if (ban) { s.bannedUntilUs = ban.untilUs; s.bannedRule = ban.rule; }
    this.unproven.set(key, s);
    this.youngestUnproven = s;
    if (this.unproven.size > this.base.raw.maxTrackedSources || ++this.unprovenInserts >= IDLE_CHECK_INSERTS) {
      this.unprovenInserts = 0;
      this.evict(this.unproven, this.base.raw.maxTrackedSources, now, s);
    }
    return s;
  }

  /** The prefix of an IPv6 host, created if new, and the host linked to it. */
  prefixOf(s: SourceState, now: number): PrefixState {
    const key = s.prefixKey!;
    let p = this.prefixes.get(key);
    if (p === undefined) {
      p = new PrefixState(key);
      p.serial = ++this.prefixSerials;
      p.firstSeenUs = now;
      p.lruUs = now;
      const ban = this.ledger.running(key, now);
      if (ban) { p.bannedUntilUs = ban.untilUs; p.bannedRule = ban.rule; }
      this.prefixes.set(key, p);
      if (this.prefixes.size > this.base.raw.maxTrackedPrefixes || ++this.prefixInserts >= IDLE_CHECK_INSERTS) {
        this.prefixInserts = 0;
        this.evict(this.prefixes, this.base.raw.maxTrackedPrefixes, now, p);
      }
    } else if (this.youngestPrefix !== p) {
      this.prefixes.delete(key);
      this.prefixes.set(key, p);
    }
    this.youngestPrefix = p;
    p.lruUs = now;
    if (s.provenUntilUs > p.provenUntilUs) p.provenUntilUs = s.provenUntilUs;
    s.prefixSerial = p.serial;
    return p;
  }

  /**
   * The prefix of an IPv6 host that is used now (an event of the host): the one it is linked to,
   * marked used, or made anew. Marking it keeps a prefix whose hosts are active from looking idle
   * (its idle age is its last use, not its making).
   */
  prefixInUse(s: SourceState, now: number): PrefixState {
    const p = this.linkedPrefix(s);
    if (p === null) return this.prefixOf(s, now);
    p.lruUs = now;
    return p;
  }

  /** The tracked prefix this host is linked to (null: IPv4, or its prefix was evicted since). */
  linkedPrefix(s: SourceState): PrefixState | null {
    if (s.prefixSerial === 0) return null;
    const p = this.prefixes.get(s.prefixKey!);
    return p !== undefined && p.serial === s.prefixSerial ? p : null;
  }

  /**
   * A source just proved itself: it moves to the proven map, where a spray cannot evict it. A
   * full proven map keeps the live proofs it holds: sources whose proof has lapsed go back
   * among the unproven (looked for at most once per LAPSED_SWEEP_US of event time), and when
   * every proof there is live the newcomer stays in the unproven map, proven all the same
   * (its provenUntilUs), and is counted in `provenLeftOut`. Cutting the proven map's least
   * recently seen 10 % instead made sites that register in turn push each other's proofs out
   * in a cycle (more live sites than the cap), and let anyone who can make successes (a stolen
   * password over UDP) push out every real site's proof.
   */
  promote(s: SourceState, now: number): void {
    if (this.unproven.get(s.key) !== s) return;
    const cap = this.base.raw.maxLegitimateSources;
    if (this.proven.size >= cap) {
      if (now - this.lastLapsedSweepUs >= LAPSED_SWEEP_US) {
        this.lastLapsedSweepUs = now;
        this.demoteLapsed(now);
        this.youngestUnproven = null;
      }
      if (this.proven.size >= cap) {
        this.provenLeftOut++;
        return;
      }
    }
    this.unproven.delete(s.key);
    this.proven.set(s.key, s);
    this.youngestProven = s;
    if (++this.provenInserts >= IDLE_CHECK_INSERTS) {
      this.provenInserts = 0;
      this.evict(this.proven, cap, now, s);
    }
  }

  /** Moves the proven map's sources whose proof has lapsed to the unproven map, their evidence kept. */
  private demoteLapsed(now: number): void {
    for (const [k, v] of this.proven) {
      if (v.isProven(now)) continue;
      this.proven.delete(k);
      this.unproven.set(k, v);
    }
    if (this.unproven.size > this.base.raw.maxTrackedSources) this.evict(this.unproven, this.base.raw.maxTrackedSources, now, null);
  }

  /**
   * Over `cap`: drops the least recently seen entries down to EVICT_TO_FRACTION of it, proven
   * ones last (a proof left out of a full proven map, a prefix holding a proven host: a spray
   * must not take them), so proven ones only when nothing else is left. Then (and every
   * IDLE_CHECK_INSERTS inserts) drops the idle entries at the old end. One pass over the map's
   * front per call, not per insert (see EVICT_TO_FRACTION). `added`, the entry just made, stays
   * (with proven entries ahead of it, the first pass reaches it): its caller goes on with it.
   */
  private evict<T extends EvidenceState>(map: Map<string, T>, cap: number, now: number, added: T | null): void {
    const dropped = (v: EvidenceState): void => { if (v instanceof SourceState) this.released(v, now); };
    if (map.size > cap) {
      const target = cap - Math.max(1, Math.floor(cap * (1 - EVICT_TO_FRACTION)));
      cutSparing<EvidenceState>(map, target, (v) => provenAt(v, now), added, dropped);
    }
    const idleUs = this.idleUs;
    for (const [k, v] of map) {
      // A proven host, or a prefix holding one, is never idle: its proof is the site's.
      if (!(now - v.lruUs > idleUs && v.bannedUntilUs <= now && !provenAt(v, now))) break;
      map.delete(k);
      dropped(v);
    }
  }

  /**
   * An evicted source's pending challenges become orphans that count for its prefix, if that is
   * still tracked: the evidence of a prefix already evicted is gone with it, and an orphan that
   * counts for nothing keeps no strings (under a spray over many /64s most orphans are such, and
   * their host and prefix keys were ~8 MB of the queue). A tracked prefix's own key is kept, not
   * the source's copy of it.
   */
  private released(s: SourceState, now: number): void {
    if (s.pendingSize() === 0) return;
    const p = s.prefixKey !== null && !s.isProven(now) ? this.prefixes.get(s.prefixKey) : undefined;
    const prefixKey = p !== undefined ? p.key : '';
    for (const seq of s.pendingSeqs()) this.queue.orphan(seq, prefixKey);
    s.pendingClear();
  }
}

/** A proven source, or a prefix holding one. */
function provenAt(v: EvidenceState, now: number): boolean {
  return (v instanceof SourceState || v instanceof PrefixState) && v.provenUntilUs > now;
}
