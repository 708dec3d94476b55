// Reads the bans back from the kernel (`list table` through libnftables, one call for all
// the sets) and parses the library's JSON output without trusting its shape.
//
// nft 1.0.6 prints an element as a bare string ("192.0.2.2", no timeout) or as
// {"elem": {"val", "timeout", "expires", "comment"}}; in the interval set `val` is
// {"prefix": {"addr", "len"}}, a single address, or {"range": [first, last]} when someone
// added a range that is not a prefix; in the /64 set `val` is the /64's network address.
// timeout/expires are whole seconds.
import { ipValue, makeCidr, parseCidr, parseIp, type Cidr } from '../net/ip.js';
import { listTable } from './builders.js';
import { parseBanComment } from './comment.js';
import { NftError } from './errors.js';
import { executeNft, type ExecuteOptions } from './execute.js';
import { BAN_SET_ROLES, kernelTableFrom, madeByEarlierFsguard, ownedByFsguard, type BanSetRole, type KernelTable, type NftLayout } from './layout.js';
import type { NftRunner } from './libnftables.js';
import type { Clock } from './scheduler.js';

export interface KernelBan {
  readonly target: Cidr;
  readonly set: BanSetRole;
  /** The element's timeout in seconds; null for an element without one (never expires). */
  readonly timeoutSeconds: number | null;
  /** Seconds left (whole seconds, as nft prints them); null without a timeout. */
  readonly expiresSeconds: number | null;
  /** Unix ms at which the kernel drops it (read time + expires); null without a timeout. */
  readonly expiresAtMs: number | null;
  readonly comment: string | null;
  /** From an fsguard comment; absent for elements someone else added. */
  readonly rule?: string;
  readonly offences?: number;
}

export interface KernelBanList {
  readonly bans: KernelBan[];
  /** Elements that are not an address or prefix (e.g. an arbitrary range), as JSON text. */
  readonly unrecognized: string[];
  /** False when our table does not exist yet (fresh machine): not an error. */
  readonly tableExists: boolean;
  /** False when a table of our name exists that fsguard did not create (its elements are not listed). */
  readonly owned: boolean;
  /** FreeSWITCH's own addresses, as the daemon recorded them (never banned). */
  readonly switchAddresses: Cidr[];
}

type JsonObject = { readonly [key: string]: unknown };

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function nonNegativeInteger(v: unknown): number | null {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : null;
}

/** A [first, last] range that is exactly one prefix, as that prefix; else null. */
function rangeToCidr(first: unknown, last: unknown): Cidr | null {
  if (typeof first !== 'string' || typeof last !== 'string') return null;
  const a = parseIp(first);
  const b = parseIp(last);
  if (!a || !b || a.family !== b.family) return null;
  const bits = a.family === 4 ? 32 : 128;
  const lo = ipValue(a);
  const size = ipValue(b) - lo + 1n;
  if (size <= 0n || (size & (size - 1n)) !== 0n || (lo & (size - 1n)) !== 0n) return null;
  const hostBits = size.toString(2).length - 1;
  return makeCidr(a.family, lo, bits - hostBits);
}

function keyToCidr(val: unknown): Cidr | null {
  if (typeof val === 'string') return parseCidr(val);
  if (!isObject(val)) return null;
  const pfx = val.prefix;
  if (isObject(pfx) && typeof pfx.addr === 'string' && nonNegativeInteger(pfx.len) !== null) {
    return parseCidr(`${pfx.addr}/${pfx.len as number}`);
  }
  const range = val.range;
  if (Array.isArray(range) && range.length === 2) return rangeToCidr(range[0], range[1]);
  return null;
}

/** An element of the /64 set (a plain address) as its /64; null unless it is one's network address. */
function slash64(address: Cidr | null): Cidr | null {
  if (address === null || address.family !== 6 || address.prefixLength !== 128) return null;
  return (address.value & ((1n << 64n) - 1n)) === 0n ? makeCidr(6, address.value, 64) : null;
}

function parseElement(raw: unknown, role: BanSetRole, readAtMs: number): KernelBan | null {
  let val: unknown = raw;
  let timeout: number | null = null;
  let expires: number | null = null;
  let comment: string | null = null;
  if (isObject(raw) && isObject(raw.elem)) {
    val = raw.elem.val;
    timeout = nonNegativeInteger(raw.elem.timeout);
    expires = nonNegativeInteger(raw.elem.expires);
    comment = typeof raw.elem.comment === 'string' ? raw.elem.comment : null;
  }
  const target = role === 'set6p64' ? slash64(keyToCidr(val)) : keyToCidr(val);
  if (!target) return null;
  const parsed = comment === null ? null : parseBanComment(comment);
  return {
    target,
    set: role,
    timeoutSeconds: timeout,
    expiresSeconds: expires,
    expiresAtMs: expires === null ? null : readAtMs + expires * 1000,
    comment,
    ...(parsed ? { rule: parsed.rule, offences: parsed.offences } : {}),
  };
}

function listedItems(output: string): unknown[] {
  let doc: unknown;
  try {
    doc = JSON.parse(output);
  } catch {
    throw new NftError('rejected', 'libnftables printed something that is not JSON', output.slice(0, 200));
  }
  if (!isObject(doc) || !Array.isArray(doc.nftables)) {
    throw new NftError('rejected', 'libnftables JSON output has no "nftables" array', output.slice(0, 200));
  }
  return doc.nftables as unknown[];
}

/** Parses a `list table` listing: our bans and FreeSWITCH's recorded addresses. Throws on output that is not nft JSON. */
export function parseListOutput(output: string, layout: NftLayout, readAtMs: number): KernelBanList {
  return parseItems(listedItems(output), layout, readAtMs);
}

function parseItems(items: readonly unknown[], layout: NftLayout, readAtMs: number): KernelBanList {
  const roles = new Map<string, BanSetRole>(BAN_SET_ROLES.map((role) => [layout[role], role]));
  const bans: KernelBan[] = [];
  const unrecognized: string[] = [];
  const switchAddresses: Cidr[] = [];
  for (const item of items) {
    if (!isObject(item) || !isObject(item.set)) continue;
    const set = item.set;
    if (set.family !== layout.family || set.table !== layout.table || typeof set.name !== 'string') continue;
    if (!Array.isArray(set.elem)) continue;
    if (set.name === layout.switch4 || set.name === layout.switch6) {
      for (const raw of set.elem as unknown[]) {
        const key = isObject(raw) && isObject(raw.elem) ? raw.elem.val : raw;
        const cidr = keyToCidr(key);
        if (cidr) switchAddresses.push(cidr);
      }
      continue;
    }
    const role = roles.get(set.name);
    if (!role) continue;
    for (const raw of set.elem as unknown[]) {
      const ban = parseElement(raw, role, readAtMs);
      if (ban) bans.push(ban);
      else unrecognized.push(JSON.stringify(raw));
    }
  }
  return { bans, unrecognized, tableExists: true, owned: true, switchAddresses };
}

/** Our table as the kernel holds it: null when there is none. */
export interface TableInspection {
  readonly table: KernelTable | null;
  /** Ours: carries the mark, or (`earlier`) was made by an earlier fsguard and is adopted at start. */
  readonly owned: boolean;
  /** Made by an earlier fsguard, before the mark (see madeByEarlierFsguard). */
  readonly earlier: boolean;
  /** The bans in it (empty when the table is missing or not ours). */
  readonly list: KernelBanList;
}

const NO_TABLE: KernelBanList = Object.freeze({ bans: [], unrecognized: [], tableExists: false, owned: false, switchAddresses: [] });

/**
 * The deadline of a listing of our table. Its time grows with the bans: libnftables fetches and
 * prints every element, and after a large flood that took longer than the write deadline: a
 * daemon could neither start nor read back (bench/RESULTS.md, session 5). A kernel that does
 * not answer at all is caught by the cheap calls (the start probe, the table watch).
 */
export const LISTING_DEADLINE_MS = 120_000;

/** Lists our table once: its layout, whether it is ours, and (when it is) its bans. */
export async function inspectTable(runner: NftRunner, layout: NftLayout, clock: Clock, execute: ExecuteOptions): Promise<TableInspection> {
  const readAtMs = clock.nowMs();
  const result = await executeNft(runner, [listTable({ family: layout.family, name: layout.table })], execute, { timeoutMs: LISTING_DEADLINE_MS });
  if (!result.ok) {
    if (result.error.kind === 'missing-table') return { table: null, owned: false, earlier: false, list: NO_TABLE };
    throw result.error;
  }
  const items = listedItems(result.output);
  const table = kernelTableFrom(items, layout.family, layout.table);
  const earlier = madeByEarlierFsguard(layout, table);
  const owned = earlier || ownedByFsguard(table);
  if (!owned) return { table, owned, earlier, list: { bans: [], unrecognized: [], tableExists: true, owned: false, switchAddresses: [] } };
  return { table, owned, earlier, list: parseItems(items, layout, readAtMs) };
}

/**
 * Every element of our sets. A missing table (fresh machine) is an empty list; a table of our
 * name that is not ours lists nothing (owned: false); the library missing or no permission
 * throws the typed NftError so the caller can say what to do.
 */
export async function listKernelBans(runner: NftRunner, layout: NftLayout, clock: Clock, execute: ExecuteOptions): Promise<KernelBanList> {
  return (await inspectTable(runner, layout, clock, execute)).list;
}
