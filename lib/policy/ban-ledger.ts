// The ban ledger: what the policy believes is banned and until when, repeat offences (ban
// lengths grow), grace periods after manual unbans, and what may never be banned. The one
// owner of these facts inside the policy (the guard owns what is in the kernel), but for
// FreeSWITCH's own addresses, which it checks and switch-addresses.ts owns.
import { cidrsOverlap, parseCidrs, type Cidr } from '../net/ip.js';
import type { RuleSettings } from './compiled-settings.js';
import { fnv1a32 } from './counters.js';
import type { SwitchAddresses } from './switch-addresses.js';
import type { ExistingBan } from './types.js';

const US = 1_000_000;

interface OffenceRecord {
  count: number;
  lastEndUs: number;
}

export interface ActiveBan {
  readonly cidr: Cidr;
  readonly untilUs: number;
  readonly rule: string;
}

export class BanLedger {
  readonly active = new Map<string, ActiveBan>();
  /** active is swept of expired entries when it reaches this size (see trimActive). */
  private trimActiveAt = 1024;
  private readonly graces = new Map<string, { readonly cidr: Cidr; readonly untilUs: number }>();
  private readonly offences = new Map<string, OffenceRecord>();
  /** allowedEverywhere (settings.ts), parsed: never banned, whichever profile decided. */
  private readonly allow: readonly Cidr[];

  /** `switchAddresses`: FreeSWITCH's own addresses (their owner is not the ledger): never banned. */
  constructor(private readonly base: RuleSettings, readonly switchAddresses: SwitchAddresses, allow: readonly string[] = base.raw.allow) {
    this.allow = parseCidrs(allow);
  }

  /** Allow-listed, FreeSWITCH's own address, or in a grace period: never banned. */
  isProtected(cidr: Cidr, now: number): boolean {
    if (this.switchAddresses.within(cidr) !== null) return true;
    for (const c of this.allow) if (cidrsOverlap(c, cidr)) return true;
    // Checked at every judgement, and grace periods are rare: no Map iterator when there are none.
    if (this.graces.size === 0) return false;
    for (const [k, g] of this.graces) {
      if (g.untilUs <= now) { this.graces.delete(k); continue; }
      if (cidrsOverlap(g.cidr, cidr)) return true;
    }
    return false;
  }

  graceUntil(key: string): number {
    const g = this.graces.get(key);
    return g ? g.untilUs : 0;
  }

  /** A running ban of exactly this target, or undefined. */
  running(key: string, now: number): ActiveBan | undefined {
    const b = this.active.get(key);
    return b !== undefined && b.untilUs > now ? b : undefined;
  }

  /** Whether a ban of exactly this target was running at some time after `sinceUs`. */
  bannedAfter(key: string, sinceUs: number): boolean {
    const b = this.active.get(key);
    return b !== undefined && b.untilUs > sinceUs;
  }

  /**
   * Books a new ban; returns its length (s) and how many offences came before. The length
   * grows per repeat offence, with deterministic jitter (a replay gives the same lengths).
   */
  book(cidr: Cidr, rule: string, rs: RuleSettings, now: number): { seconds: number; previous: number; untilUs: number } {
    const key = cidr.text;
    let o = this.offences.get(key);
    if (o && now - o.lastEndUs > rs.offenceMemoryUs) { this.offences.delete(key); o = undefined; }
    const previous = o ? o.count : 0;
    const seconds = banSeconds(key, previous, rs);
    const untilUs = now + seconds * US;
    this.active.set(key, { cidr, untilUs, rule });
    if (o) { this.offences.delete(key); o.count++; o.lastEndUs = untilUs; } else o = { count: 1, lastEndUs: untilUs };
    this.offences.set(key, o);
    this.trimOffences();
    this.trimActive(now);
    return { seconds, previous, untilUs };
  }

  restore(bans: readonly ExistingBan[]): void {
    for (const b of bans) {
      const key = b.target.cidr.text;
      this.active.set(key, { cidr: b.target.cidr, untilUs: b.expiresAtUs, rule: b.rule });
      const o = this.offences.get(key);
      // A ban in the kernel is at least one offence (its comment may say more): the next one is longer.
      const count = b.offences !== undefined && Number.isSafeInteger(b.offences) && b.offences > 1 ? b.offences : 1;
      if (!o) this.offences.set(key, { count, lastEndUs: b.expiresAtUs });
      else { o.count = Math.max(o.count, count); o.lastEndUs = Math.max(o.lastEndUs, b.expiresAtUs); }
    }
    this.trimOffences();
  }

  /** An operator lifted this ban: a grace period; returns the keys of the bans it lifted. */
  unban(target: Cidr, now: number): string[] {
    const key = target.text;
    const lifted = [key];
    this.active.delete(key);
    this.graces.set(key, { cidr: target, untilUs: now + this.base.graceUs });
    for (const [k, b] of this.active) {
      if (cidrsOverlap(b.cidr, target)) { this.active.delete(k); lifted.push(k); }
    }
    return lifted;
  }

  private trimOffences(): void {
    const cap = this.base.raw.maxOffenceRecords;
    for (const k of this.offences.keys()) {
      if (this.offences.size <= cap) break;
      this.offences.delete(k);
    }
  }

  /**
   * Drops expired bans once the map has doubled since the last sweep: sweeping on every ban
   * past a fixed size made a flood of N bans cost O(N²) (100,000 bans: minutes of CPU).
   */
  private trimActive(now: number): void {
    if (this.active.size < this.trimActiveAt) return;
    for (const [k, b] of this.active) if (b.untilUs <= now) this.active.delete(k);
    this.trimActiveAt = Math.max(1024, this.active.size * 2);
  }
}

export function banSeconds(key: string, previous: number, rs: RuleSettings): number {
  const r = rs.raw;
  const grown = r.banSeconds * Math.pow(r.banIncrementFactor, Math.min(previous, 64));
  const u = fnv1a32(`${key}#${previous}`) / 0x1_0000_0000;
  return Math.max(1, Math.round(Math.min(r.banMaxSeconds, grown * (1 + r.banJitterFraction * u))));
}
