// Which IPv6 prefix bans may nest across sets. The interval set (banned6net) refuses a prefix
// that overlaps one of its own, and the writer widens or reports it covered on that error; but
// /64s live in a hash set of their own (banned6p64), so a /48 over them, or a /64 inside a /48,
// is no error for the kernel. This index of the IPv6 prefixes the writer believes are in the
// kernel tells it when to look: it is a hint (the kernel's listing decides), kept by the
// writer's own bookkeeping (written, read back, unbanned, expired).
import { cidrContainsCidr, type Cidr } from '../net/ip.js';

/** Not frozen: see EMPTY_OUTPUT in lib/policy/engine.ts. */
const NONE: readonly Cidr[] = [];

export class Ipv6PrefixIndex {
  /** Shorter than /64 (banned6net): rare, an operator's ranges or a configured prefix length. */
  private readonly wide = new Map<string, Cidr>();
  /** Exactly /64 (banned6p64): thousands under an address-rotation attack. */
  private readonly slash64 = new Map<string, Cidr>();
  /** Longer than /64 (banned6net): rare. */
  private readonly long = new Map<string, Cidr>();

  private mapFor(c: Cidr): Map<string, Cidr> | null {
    if (c.family !== 6 || c.prefixLength === 128) return null;
    return c.prefixLength < 64 ? this.wide : c.prefixLength === 64 ? this.slash64 : this.long;
  }

  add(c: Cidr): void {
    this.mapFor(c)?.set(c.text, c);
  }

  delete(text: string): void {
    this.wide.delete(text);
    this.slash64.delete(text);
    this.long.delete(text);
  }

  /**
   * The prefixes in the other IPv6 prefix set that a ban of `target` may nest with: the wider
   * prefixes over a /64 and the longer ones inside it, the /64s inside a wider prefix, the /64
   * over a longer one. (None for a host or IPv4: the kernel checks those sets itself.)
   */
  acrossSets(target: Cidr): readonly Cidr[] {
    if (target.family !== 6 || target.prefixLength === 128) return NONE;
    // The common case, a /64 of an address-rotation flood with no other prefix banned: nothing.
    if (target.prefixLength === 64 && this.wide.size === 0 && this.long.size === 0) return NONE;
    const out: Cidr[] = [];
    const pick = (m: Map<string, Cidr>, test: (c: Cidr) => boolean): void => {
      for (const c of m.values()) if (test(c)) out.push(c);
    };
    if (target.prefixLength === 64) {
      pick(this.wide, (c) => cidrContainsCidr(c, target));
      pick(this.long, (c) => cidrContainsCidr(target, c));
    } else if (target.prefixLength < 64) {
      pick(this.slash64, (c) => cidrContainsCidr(target, c));
    } else {
      pick(this.slash64, (c) => cidrContainsCidr(c, target));
    }
    return out;
  }
}
