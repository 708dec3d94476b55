// fsguard's own table: which sets exist, which chain drops their members, and the one
// transaction that creates all of it idempotently. No other table is ever named here.
import type { Cidr } from '../net/ip.js';
import {
  addChain,
  addRule,
  addSet,
  addTable,
  counter,
  deleteChain,
  drop,
  flushChain,
  matchEquals,
  meta,
  payload,
  setLiteral,
  setReference,
} from './builders.js';
import type { NftChain, NftCommand, NftPayloadProtocol, NftStatement } from './schema.js';

/** The names match lib/config's `nft` section so `config.nft` can be passed as is. */
export interface NftLayoutOptions {
  /** Default `fsguard`. */
  readonly table?: string;
  /** IPv4 hosts. Default `banned4`. */
  readonly set4?: string;
  /** IPv6 hosts. Default `banned6`. */
  readonly set6?: string;
  /** IPv6 prefixes (an interval set). Default `banned6net`. */
  readonly set6net?: string;
  /** Default `input`. */
  readonly chain?: string;
  /** Input hook priority; lower runs earlier than typical filters (0). Default -10. */
  readonly chainPriority?: number;
  /** udp+tcp destination ports the drop covers; empty = all traffic. Default []. */
  readonly ports?: readonly number[];
}

export interface NftLayout {
  readonly family: 'inet';
  readonly table: string;
  readonly set4: string;
  readonly set6: string;
  readonly set6net: string;
  readonly chain: string;
  readonly chainPriority: number;
  readonly ports: readonly number[];
}

/** Which of the three sets an element belongs in. */
export type BanSetRole = 'set4' | 'set6' | 'set6net';

const NAME = /^[A-Za-z][A-Za-z0-9_]{0,31}$/;

export class NftLayoutError extends Error {
  override readonly name = 'NftLayoutError';
}

/** Fills defaults and validates; throws NftLayoutError naming the bad option. */
export function resolveNftLayout(options: NftLayoutOptions = {}): NftLayout {
  const layout: NftLayout = {
    family: 'inet',
    table: options.table ?? 'fsguard',
    set4: options.set4 ?? 'banned4',
    set6: options.set6 ?? 'banned6',
    set6net: options.set6net ?? 'banned6net',
    chain: options.chain ?? 'input',
    chainPriority: options.chainPriority ?? -10,
    ports: [...new Set(options.ports ?? [])].sort((a, b) => a - b),
  };
  for (const key of ['table', 'set4', 'set6', 'set6net', 'chain'] as const) {
    if (!NAME.test(layout[key])) {
      throw new NftLayoutError(`nft.${key}: must be a letter then up to 31 letters, digits or _, got ${JSON.stringify(layout[key])}`);
    }
  }
  if (new Set([layout.set4, layout.set6, layout.set6net]).size !== 3) {
    throw new NftLayoutError('nft.set4, nft.set6 and nft.set6net must be three different names');
  }
  if (!Number.isInteger(layout.chainPriority) || Math.abs(layout.chainPriority) > 2 ** 31 - 1) {
    throw new NftLayoutError(`nft.chainPriority: must be an integer, got ${JSON.stringify(layout.chainPriority)}`);
  }
  for (const port of layout.ports) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new NftLayoutError(`nft.ports: not a port number: ${JSON.stringify(port)}`);
    }
  }
  return layout;
}

/**
 * The set a target goes into: IPv4 hosts, IPv6 hosts, IPv6 prefixes. Hosts and prefixes
 * are kept apart because an interval set refuses overlapping entries. Null for IPv4
 * prefixes, which have no set.
 */
export function setRoleFor(target: Cidr): BanSetRole | null {
  if (target.family === 4) return target.prefixLength === 32 ? 'set4' : null;
  return target.prefixLength === 128 ? 'set6' : 'set6net';
}

function baseChain(layout: NftLayout): NftChain {
  return {
    family: layout.family,
    table: layout.table,
    name: layout.chain,
    type: 'filter',
    hook: 'input',
    prio: layout.chainPriority,
    policy: 'accept',
  };
}

function dropRule(layout: NftLayout, protocol: NftPayloadProtocol, set: string): NftCommand {
  const expr: NftStatement[] = [matchEquals(payload(protocol, 'saddr'), setReference(set))];
  if (layout.ports.length > 0) {
    expr.push(matchEquals(meta('l4proto'), setLiteral(['tcp', 'udp'])));
    expr.push(matchEquals(payload('th', 'dport'), setLiteral(layout.ports)));
  }
  // The counter lets an admin see that the bans actually drop traffic.
  expr.push(counter(), drop());
  return addRule({ family: layout.family, table: layout.table, chain: layout.chain, expr });
}

/**
 * One transaction that makes the table match the layout, run at every start.
 *
 * `add table`/`add set` are no-ops when the object exists, so existing elements (bans)
 * survive. The chain is ours alone, so it is rebuilt: a bare `add chain` makes sure it
 * exists, then flush + delete + re-create with the configured hook. Re-creating (rather
 * than `add chain` with the hook) is what lets a changed priority apply: the kernel refuses
 * to change the priority of an existing base chain ("Operation not supported"). Flushing
 * first keeps the rules from being duplicated on every start.
 */
export function setupCommands(layout: NftLayout): NftCommand[] {
  const { family, table } = layout;
  const bare: NftChain = { family, table, name: layout.chain };
  return [
    addTable(family, table),
    addSet({ family, table, name: layout.set4, type: 'ipv4_addr', flags: ['timeout'] }),
    addSet({ family, table, name: layout.set6, type: 'ipv6_addr', flags: ['timeout'] }),
    addSet({ family, table, name: layout.set6net, type: 'ipv6_addr', flags: ['interval', 'timeout'] }),
    addChain(bare),
    flushChain(bare),
    deleteChain(bare),
    addChain(baseChain(layout)),
    dropRule(layout, 'ip', layout.set4),
    dropRule(layout, 'ip6', layout.set6),
    dropRule(layout, 'ip6', layout.set6net),
  ];
}
