// fsguard's own table: which sets exist, which chain drops their members, how a table is
// recognized as fsguard's, and how what the kernel holds is compared with what it should be.
// No other table is ever named here.
//
// The mark: every set fsguard creates carries the comment OWNER_MARK. libnftables 1.0.6 prints
// a set's comment in its JSON listing but leaves out the table's and the chain's, so the sets
// carry it. (Never the table's `owner` flag: an owned table dies with the process that created
// it, taking every ban with it.) A table of our name without a marked set was made by someone
// else and is never changed.
import type { Cidr } from '../net/ip.js';
import {
  addChain, addRule, bitwiseAnd, counter, deleteChain, drop, flushChain, matchEquals, meta, payload, setLiteral,
  setReference,
} from './builders.js';
import type { NftChain, NftCommand, NftPayloadProtocol, NftSetFlag, NftSetKeyType, NftStatement } from './schema.js';

/** The comment on each of fsguard's sets; how `check` and `run` know the table is fsguard's. */
export const OWNER_MARK = 'fsguard: owned by fsguard, do not edit';

/** The names match lib/config's `nft` section so `config.nft` can be passed as is. */
export interface NftLayoutOptions {
  /** Default `fsguard`. */
  readonly table?: string;
  /** IPv4 hosts. Default `banned4`. */
  readonly set4?: string;
  /** IPv4 prefixes (an interval set). Default `banned4net`. */
  readonly set4net?: string;
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
  readonly set4net: string;
  readonly set6: string;
  readonly set6net: string;
  /** IPv6 /64 prefixes, by their network address (see SET6_64_MASK). */
  readonly set6p64: string;
  /** FreeSWITCH's own addresses as the daemon learnt them (never dropped: no rule uses them). */
  readonly switch4: string;
  readonly switch6: string;
  readonly chain: string;
  readonly chainPriority: number;
  readonly ports: readonly number[];
}

/** Which of the ban sets an element belongs in. */
export type BanSetRole = 'set4' | 'set4net' | 'set6' | 'set6p64' | 'set6net';
export const BAN_SET_ROLES: readonly BanSetRole[] = ['set4', 'set4net', 'set6', 'set6p64', 'set6net'];
type SetRole = BanSetRole | 'switch4' | 'switch6';
const SET_ROLES: readonly SetRole[] = [...BAN_SET_ROLES, 'switch4', 'switch6'];

const SET_SHAPES: Readonly<Record<SetRole, { readonly type: NftSetKeyType; readonly flags: readonly NftSetFlag[]; readonly what: string }>> = {
  set4: { type: 'ipv4_addr', flags: ['timeout'], what: 'IPv4 hosts' },
  set4net: { type: 'ipv4_addr', flags: ['interval', 'timeout'], what: 'IPv4 prefixes' },
  set6: { type: 'ipv6_addr', flags: ['timeout'], what: 'IPv6 hosts' },
  set6net: { type: 'ipv6_addr', flags: ['interval', 'timeout'], what: 'IPv6 prefixes' },
  set6p64: { type: 'ipv6_addr', flags: ['timeout'], what: 'IPv6 /64 prefixes' },
  switch4: { type: 'ipv4_addr', flags: ['timeout'], what: 'FreeSWITCH\'s IPv4 addresses' },
  switch6: { type: 'ipv6_addr', flags: ['timeout'], what: 'FreeSWITCH\'s IPv6 addresses' },
};

const NAME = /^[A-Za-z][A-Za-z0-9_]{0,31}$/;

/**
 * /64s — what the policy bans for IPv6 rotation, by the thousand in an attack — are kept apart
 * from the other prefixes, in a plain hash set of network addresses that the drop rule looks
 * the source's /64 up in. The reason is the library: libnftables 1.0.6 fetches every element
 * of every interval set in the ruleset before each element command (NFT_CACHE_SETELEM_MAYBE in
 * cache.c), so every ban, of any kind, paid for every /64 in the interval set (bench/RESULTS.md,
 * session 5); a hash set's elements are never fetched.
 */
const SET6_64_MASK = 'ffff:ffff:ffff:ffff::';

export class NftLayoutError extends Error {
  override readonly name = 'NftLayoutError';
}

/** Fills defaults and validates; throws NftLayoutError naming the bad option. */
export function resolveNftLayout(options: NftLayoutOptions = {}): NftLayout {
  const layout: NftLayout = {
    family: 'inet',
    table: options.table ?? 'fsguard',
    set4: options.set4 ?? 'banned4',
    set4net: options.set4net ?? 'banned4net',
    set6: options.set6 ?? 'banned6',
    set6net: options.set6net ?? 'banned6net',
    set6p64: 'banned6p64',
    switch4: 'freeswitch4',
    switch6: 'freeswitch6',
    chain: options.chain ?? 'input',
    chainPriority: options.chainPriority ?? -10,
    ports: [...new Set(options.ports ?? [])].sort((a, b) => a - b),
  };
  for (const key of ['table', 'set4', 'set4net', 'set6', 'set6net', 'chain'] as const) {
    if (!NAME.test(layout[key])) {
      throw new NftLayoutError(`nft.${key}: must be a letter then up to 31 letters, digits or _, got ${JSON.stringify(layout[key])}`);
    }
  }
  if (new Set(SET_ROLES.map((r) => layout[r])).size !== SET_ROLES.length) {
    throw new NftLayoutError(`nft.set4, nft.set4net, nft.set6 and nft.set6net must be four different names, and not ${layout.set6p64}, ${layout.switch4} or ${layout.switch6}`);
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
 * The set a target goes into. Hosts and prefixes are kept apart because an interval set
 * refuses overlapping entries: a host inside a banned prefix is a normal state.
 */
export function setRoleFor(target: Cidr): BanSetRole {
  if (target.family === 4) return target.prefixLength === 32 ? 'set4' : 'set4net';
  return target.prefixLength === 128 ? 'set6' : target.prefixLength === 64 ? 'set6p64' : 'set6net';
}

/** An interval set: its elements are prefixes (the /64 set holds plain network addresses). */
export function isPrefixRole(role: BanSetRole): boolean {
  return role === 'set4net' || role === 'set6net';
}

function baseChain(layout: NftLayout): NftChain {
  return { family: layout.family, table: layout.table, name: layout.chain, type: 'filter', hook: 'input', prio: layout.chainPriority, policy: 'accept' };
}

function dropRuleExpr(layout: NftLayout, protocol: NftPayloadProtocol, set: string, mask: string | null): NftStatement[] {
  const source = payload(protocol, 'saddr');
  const expr: NftStatement[] = [matchEquals(mask === null ? source : bitwiseAnd(source, mask), setReference(set))];
  if (layout.ports.length > 0) {
    expr.push(matchEquals(meta('l4proto'), setLiteral(['tcp', 'udp'])));
    expr.push(matchEquals(payload('th', 'dport'), setLiteral(layout.ports)));
  }
  // The counter lets an admin see that the bans actually drop traffic.
  expr.push(counter(), drop());
  return expr;
}

/** The chain's drop rules in order, one per ban set: the JSON rules and the create script read it. */
const DROP_RULES: readonly { readonly protocol: 'ip' | 'ip6'; readonly role: BanSetRole; readonly mask: string | null }[] = [
  { protocol: 'ip', role: 'set4', mask: null },
  { protocol: 'ip', role: 'set4net', mask: null },
  { protocol: 'ip6', role: 'set6', mask: null },
  { protocol: 'ip6', role: 'set6p64', mask: SET6_64_MASK },
  { protocol: 'ip6', role: 'set6net', mask: null },
];

function dropRules(layout: NftLayout): NftStatement[][] {
  return DROP_RULES.map((r) => dropRuleExpr(layout, r.protocol, layout[r.role], r.mask));
}

function chainCommands(layout: NftLayout): NftCommand[] {
  return [
    addChain(baseChain(layout)),
    ...dropRules(layout).map((expr) => addRule({ family: layout.family, table: layout.table, chain: layout.chain, expr })),
  ];
}

/**
 * A set declaration in nft's syntax: libnftables 1.0.6's JSON parser drops a set's comment (its
 * JSON listing prints it), and the comment is the mark. Names are validated by
 * resolveNftLayout (letters, digits, _) and the mark is a constant without quotes.
 */
function setScript(layout: NftLayout, role: SetRole): string {
  const shape = SET_SHAPES[role];
  return `add set ${layout.family} ${layout.table} ${layout[role]} { type ${shape.type}; flags ${shape.flags.join(',')}; comment "${OWNER_MARK}"; }`;
}

function ruleScript(layout: NftLayout, protocol: 'ip' | 'ip6', set: string, mask: string | null): string {
  const ports = layout.ports.length > 0 ? ` meta l4proto { tcp, udp } th dport { ${layout.ports.join(', ')} }` : '';
  return `add rule ${layout.family} ${layout.table} ${layout.chain} ${protocol} saddr${mask === null ? '' : ` & ${mask}`} @${set}${ports} counter drop`;
}

/** One transaction (one script: one netlink batch) that creates the whole table, marked. */
export function createTableScript(layout: NftLayout): { readonly script: string } {
  const { family, table, chain } = layout;
  return {
    script: [
      `add table ${family} ${table}`,
      ...SET_ROLES.map((r) => setScript(layout, r)),
      `add chain ${family} ${table} ${chain} { type filter hook input priority ${layout.chainPriority}; policy accept; }`,
      ...DROP_RULES.map((r) => ruleScript(layout, r.protocol, layout[r.role], r.mask)),
    ].join('\n'),
  };
}

// ---- what the kernel holds -------------------------------------------------------------------

type JsonObject = { readonly [key: string]: unknown };

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Our table as listed by libnftables (`list table`), reduced to what the layout is about. */
export interface KernelTable {
  readonly sets: ReadonlyMap<string, { readonly type: unknown; readonly flags: readonly string[]; readonly comment: string | null }>;
  readonly chains: ReadonlyMap<string, { readonly type: unknown; readonly hook: unknown; readonly prio: unknown; readonly policy: unknown }>;
  /** Rules by chain, each as its normalized expression JSON. */
  readonly rules: ReadonlyMap<string, readonly string[]>;
  /** Kinds of the table's other objects (map, flowtable, counter, quota…), one entry each. */
  readonly otherObjects: readonly string[];
}

/** Items of a `list table` document that are not objects inside the table. */
const NOT_TABLE_OBJECTS: ReadonlySet<string> = new Set(['metainfo', 'table', 'set', 'chain', 'rule', 'element']);

/** The objects of `family table` in a `list table` document. */
export function kernelTableFrom(items: readonly unknown[], family: string, table: string): KernelTable {
  const sets = new Map<string, { type: unknown; flags: string[]; comment: string | null }>();
  const chains = new Map<string, { type: unknown; hook: unknown; prio: unknown; policy: unknown }>();
  const rules = new Map<string, string[]>();
  const otherObjects: string[] = [];
  for (const item of items) {
    if (!isObject(item)) continue;
    for (const kind of Object.keys(item)) if (!NOT_TABLE_OBJECTS.has(kind)) otherObjects.push(kind);
    const o = item.set ?? item.chain ?? item.rule;
    if (!isObject(o) || o.family !== family || o.table !== table) continue;
    if (isObject(item.set) && typeof o.name === 'string') {
      const flags = Array.isArray(o.flags) ? o.flags.filter((f): f is string => typeof f === 'string') : [];
      sets.set(o.name, { type: o.type, flags, comment: typeof o.comment === 'string' ? o.comment : null });
    } else if (isObject(item.chain) && typeof o.name === 'string') {
      chains.set(o.name, { type: o.type, hook: o.hook, prio: o.prio, policy: o.policy });
    } else if (isObject(item.rule) && typeof o.chain === 'string') {
      const list = rules.get(o.chain) ?? [];
      list.push(normalizedRule(o.expr));
      rules.set(o.chain, list);
    }
  }
  return { sets, chains, rules, otherObjects };
}

/** Counter values dropped, a one-element set literal as its element (the library prints `{ 5060 }` as 5060). */
function normalize(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(normalize);
  if (!isObject(value)) return value;
  if ('counter' in value && Object.keys(value).length === 1) return { counter: null };
  if ('set' in value && Object.keys(value).length === 1 && Array.isArray(value.set) && value.set.length === 1) return normalize(value.set[0]);
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) out[key] = normalize(value[key]);
  return out;
}

function normalizedRule(expr: unknown): string {
  return JSON.stringify(normalize(expr));
}

/** True when at least one set of the table carries fsguard's mark. */
export function ownedByFsguard(table: KernelTable): boolean {
  for (const s of table.sets.values()) if (s.comment === OWNER_MARK) return true;
  return false;
}

/**
 * True when the table is one an earlier fsguard made, before sets carried the mark: nothing in
 * it but sets named as this layout's with their shapes and no comment (the hosts sets at
 * least: every version made them), and at most our chain, as a filter/input/accept base chain
 * holding only our drop rules. Such a table is adopted (the sets added since are created with
 * the mark, the chain rebuilt) and its bans kept; anything else in it, and it is refused.
 */
export function madeByEarlierFsguard(layout: NftLayout, table: KernelTable): boolean {
  if (ownedByFsguard(table) || table.otherObjects.length > 0) return false;
  if (!table.sets.has(layout.set4) || !table.sets.has(layout.set6)) return false;
  for (const [name, set] of table.sets) {
    const role = SET_ROLES.find((r) => layout[r] === name);
    if (role === undefined || set.comment !== null || set.type !== SET_SHAPES[role].type || !sameFlags(set.flags, SET_SHAPES[role].flags)) return false;
  }
  for (const [name, chain] of table.chains) {
    const want = baseChain(layout);
    if (name !== layout.chain || chain.type !== want.type || chain.hook !== want.hook || chain.policy !== want.policy) return false;
  }
  const ours = new Set(dropRules(layout).map(normalizedRule));
  for (const [chain, rules] of table.rules) {
    if (chain !== layout.chain || rules.some((r) => !ours.has(r))) return false;
  }
  return true;
}

export interface LayoutReport {
  /** One line per difference from the layout, each naming the object. */
  readonly mismatches: string[];
  /** Sets that are missing (can be added without touching the others). */
  readonly missingSets: SetRole[];
  /** The chain is missing or differs (hook, priority, policy, rules): it can be rebuilt. */
  readonly chainDiffers: boolean;
  /** Mismatches that cannot be repaired without deleting bans (a set of the wrong type or flags). */
  readonly unrepairable: string[];
}

function sameFlags(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().join(',') === [...b].sort().join(',');
}

/** Compares our table with the layout and names every difference. */
export function compareLayout(layout: NftLayout, table: KernelTable): LayoutReport {
  const where = `inet ${layout.table}`;
  const mismatches: string[] = [];
  const unrepairable: string[] = [];
  const missingSets: SetRole[] = [];
  for (const role of SET_ROLES) {
    const name = layout[role];
    const want = SET_SHAPES[role];
    const have = table.sets.get(name);
    if (!have) {
      missingSets.push(role);
      mismatches.push(`set ${where} ${name} (${want.what}) is missing`);
      continue;
    }
    if (have.type !== want.type) {
      const line = `set ${where} ${name} has type ${JSON.stringify(have.type)}, expected ${want.type}`;
      mismatches.push(line);
      unrepairable.push(line);
    }
    if (!sameFlags(have.flags, want.flags)) {
      const line = `set ${where} ${name} has flags [${have.flags.join(', ')}], expected [${want.flags.join(', ')}]`;
      mismatches.push(line);
      unrepairable.push(line);
    }
  }
  let chainDiffers = false;
  const chain = table.chains.get(layout.chain);
  if (!chain) {
    chainDiffers = true;
    mismatches.push(`chain ${where} ${layout.chain} is missing`);
  } else {
    const want = baseChain(layout);
    for (const key of ['type', 'hook', 'prio', 'policy'] as const) {
      if (chain[key] !== want[key]) {
        chainDiffers = true;
        mismatches.push(`chain ${where} ${layout.chain} has ${key === 'prio' ? 'priority' : key} ${JSON.stringify(chain[key])}, expected ${JSON.stringify(want[key])}`);
      }
    }
    const have = table.rules.get(layout.chain) ?? [];
    const want2 = dropRules(layout).map(normalizedRule);
    if (have.length !== want2.length || have.some((r, i) => r !== want2[i])) {
      chainDiffers = true;
      const missing = want2.filter((r) => !have.includes(r)).length;
      const extra = have.filter((r) => !want2.includes(r)).length;
      mismatches.push(`chain ${where} ${layout.chain} has ${have.length} rules, expected ${want2.length} drop rules` +
        `${missing ? ` (${missing} missing or different)` : ''}${extra ? ` (${extra} not fsguard's)` : ''}${!missing && !extra ? ' (in another order)' : ''}`);
    }
  }
  return { mismatches, missingSets, chainDiffers, unrepairable };
}

/** The sets missing from our own table, marked (the others and their bans are not touched); null when none is. */
export function missingSetsScript(layout: NftLayout, report: LayoutReport): { readonly script: string } | null {
  return report.missingSets.length > 0 ? { script: report.missingSets.map((r) => setScript(layout, r)).join('\n') } : null;
}

/**
 * Rebuilds our chain when it differs (it is ours; the kernel refuses to change an existing
 * base chain's priority, so it is deleted and created again); null when it matches.
 */
export function chainRepairCommands(layout: NftLayout, report: LayoutReport): NftCommand[] | null {
  if (!report.chainDiffers) return null;
  const bare: NftChain = { family: layout.family, table: layout.table, name: layout.chain };
  return [addChain(bare), flushChain(bare), deleteChain(bare), ...chainCommands(layout)];
}
