// FreeSWITCH's own addresses: never judged, never banned. The one owner of that fact, shared
// by the policy (it never tracks or bans them), the guard (it refuses them at the last step
// before nft and records them in the table for `fsguard ban`) and the cluster (it publishes
// this node's in the node registry). Two sources, both bounded:
// - this node's FreeSWITCH: the FreeSWITCH-IPv4/-IPv6 of its own events (learn);
// - with a cluster, the other nodes' FreeSWITCH as the node registry has them now (setNodes).
//   Never from the events on the shared stream (it carries none: lib/cluster/codec.ts), or
//   whoever can write the stream would make any address unbannable by naming it there.
import { cidrContainsIp, parseCidr, parseIp, type Cidr, type IpAddress } from '../net/ip.js';

/** Addresses kept of one FreeSWITCH: this node's (the least recently reported go first), and each other node's. */
export const MAX_SWITCH_ADDRESSES = 16;
/** Other nodes whose addresses are kept (the first by name): a registry any writer can fill stays a bounded set here. */
export const MAX_OTHER_NODES = 64;

/** What changed: told to every watcher. */
export interface SwitchAddressChange {
  /** Addresses protected now that were not before. */
  readonly added: readonly Cidr[];
  /** Whether this node's own list changed (its registry record is out of date). */
  readonly own: boolean;
}

/** A node's addresses as the registry has them. */
export interface NodeSwitchAddresses {
  readonly node: string;
  readonly switchAddresses: readonly string[];
}

export class SwitchAddresses {
  /** This node's FreeSWITCH's, least recently reported first. */
  private readonly own = new Map<string, IpAddress>();
  private ownList: readonly string[] = [];
  /** The other nodes' (as the last registry read had them), by address. */
  private others = new Map<string, IpAddress>();
  private othersByNode: ReadonlyMap<string, readonly string[]> = new Map();
  /** The last list learnt (one event stream reuses one array while it is the same): skipped. */
  private lastLearnt: readonly string[] | null = null;
  private readonly watchers: Array<(change: SwitchAddressChange) => void> = [];

  /** Calls `watcher` on every change. */
  watch(watcher: (change: SwitchAddressChange) => void): void {
    this.watchers.push(watcher);
  }

  /** The addresses this node's FreeSWITCH reports on an event. */
  learn(addresses: readonly string[]): void {
    // None (an event from the cluster's stream, between this node's): the memo stays.
    if (addresses.length === 0 || addresses === this.lastLearnt) return;
    this.lastLearnt = addresses;
    const added: IpAddress[] = [];
    let inserted = false;
    for (const a of addresses) {
      const known = this.own.get(a);
      if (known !== undefined) {
        // Reported again: the most recent, the last to go.
        this.own.delete(a);
        this.own.set(a, known);
        continue;
      }
      const ip = parseIp(a);
      if (ip === null || ip.text !== a) continue;
      if (!this.others.has(a)) added.push(ip);
      this.own.set(a, ip);
      inserted = true;
    }
    if (!inserted) return;
    for (const a of this.own.keys()) {
      if (this.own.size <= MAX_SWITCH_ADDRESSES) break;
      this.own.delete(a);
    }
    this.ownList = [...this.own.keys()];
    this.tell(added, true);
  }

  /**
   * The other nodes' addresses, as the registry has them now: they replace the last ones (a
   * node gone, or whose FreeSWITCH moved, protects nothing any more). At most MAX_OTHER_NODES
   * nodes (the first by name) of MAX_SWITCH_ADDRESSES each; returns how many nodes were left out.
   */
  setNodes(nodes: readonly NodeSwitchAddresses[]): { readonly changed: boolean; readonly leftOut: number } {
    const kept = [...nodes].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0)).slice(0, MAX_OTHER_NODES);
    const others = new Map<string, IpAddress>();
    const byNode = new Map<string, readonly string[]>();
    for (const n of kept) {
      const list: string[] = [];
      for (const a of n.switchAddresses.slice(0, MAX_SWITCH_ADDRESSES)) {
        const ip = parseIp(a);
        if (ip === null || ip.text !== a) continue;
        list.push(a);
        others.set(a, ip);
      }
      if (list.length) byNode.set(n.node, list);
    }
    const fresh = [...others.values()].filter((ip) => !this.others.has(ip.text));
    const changed = fresh.length > 0 || others.size !== this.others.size;
    const added = fresh.filter((ip) => !this.own.has(ip.text));
    this.others = others;
    this.othersByNode = byNode;
    if (changed) this.tell(added, false);
    return { changed, leftOut: nodes.length - kept.length };
  }

  /** This node's FreeSWITCH's addresses (its registry record). */
  get ownAddresses(): readonly string[] {
    return this.ownList;
  }

  /** The other nodes' addresses, by node (those with any). */
  get otherNodes(): ReadonlyMap<string, readonly string[]> {
    return this.othersByNode;
  }

  /** All of them, this node's and the other nodes' (each once). */
  all(): Cidr[] {
    const texts = new Set([...this.own.keys(), ...this.others.keys()]);
    return [...texts].map((a) => parseCidr(a)!);
  }

  /** Whether `address` (canonical text) is one of them. */
  has(address: string): boolean {
    return this.own.has(address) || this.others.has(address);
  }

  /** One of them inside `cidr` (its text), or null. */
  within(cidr: Cidr): string | null {
    for (const ip of this.own.values()) if (cidrContainsIp(cidr, ip)) return ip.text;
    for (const ip of this.others.values()) if (cidrContainsIp(cidr, ip)) return ip.text;
    return null;
  }

  private tell(added: readonly IpAddress[], own: boolean): void {
    const change: SwitchAddressChange = { added: added.map((ip) => parseCidr(ip.text)!), own };
    for (const w of this.watchers) w(change);
  }
}
