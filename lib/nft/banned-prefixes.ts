// The prefix bans of a listing, looked up by the ban inside them: `fsguard bans` lists each ban
// under the widest prefix that covers it, and the daemon's reconcile takes a prefix replaced
// by a wider one (widening) for still banned. Linear in the bans (a flood leaves 100,000):
// each is looked up, per prefix length present, among the prefixes of that length by network.
import { isHostCidr, type Cidr } from '../net/ip.js';
import type { KernelBan } from './readback.js';

interface Level {
  readonly family: 4 | 6;
  readonly length: number;
  readonly byNetwork: Map<bigint, KernelBan>;
}

/**
 * Keyed by the network's prefix bits shifted down: V8 hashes a bigint by its lowest 64 bits
 * only, which are 0 for every /64 (all of them would share one bucket).
 */
function networkKey(c: Cidr, length: number): bigint {
  return c.value >> BigInt((c.family === 4 ? 32 : 128) - length);
}

export class BannedPrefixes {
  /** One per family and prefix length present, widest first. */
  private readonly levels: Level[] = [];

  constructor(bans: readonly KernelBan[]) {
    for (const b of bans) {
      if (isHostCidr(b.target)) continue;
      const { family, prefixLength: length } = b.target;
      let level = this.levels.find((l) => l.family === family && l.length === length);
      if (!level) this.levels.push((level = { family, length, byNetwork: new Map() }));
      const network = networkKey(b.target, length);
      if (!level.byNetwork.has(network)) level.byNetwork.set(network, b);
    }
    this.levels.sort((a, b) => a.length - b.length);
  }

  /** The widest banned prefix that holds `target` (itself excluded), or null. */
  widestOver(target: Cidr): KernelBan | null {
    for (const l of this.levels) {
      if (l.family !== target.family || l.length > target.prefixLength) continue;
      const outer = l.byNetwork.get(networkKey(target, l.length));
      if (outer !== undefined && outer.target.text !== target.text) return outer;
    }
    return null;
  }
}
