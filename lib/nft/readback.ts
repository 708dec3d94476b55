// Reads the bans back from the kernel (`list table` through `nft -j -f -`, one process for
// all three sets) and parses nft's JSON output without trusting its shape.
//
// nft 1.0.6 prints an element as a bare string ("192.0.2.2", no timeout) or as
// {"elem": {"val", "timeout", "expires", "comment"}}; in the interval set `val` is
// {"prefix": {"addr", "len"}}, a single address, or {"range": [first, last]} when someone
// added a range that is not a prefix. timeout/expires are whole seconds.
import { ipValue, makeCidr, parseCidr, parseIp, type Cidr } from '../net/ip.js';
import { listTable } from './builders.js';
import { parseBanComment } from './comment.js';
import { NftError } from './errors.js';
import { executeNft, type ExecuteOptions } from './execute.js';
import type { NftLayout, BanSetRole } from './layout.js';
import type { NftRunner } from './runner.js';
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
  const target = keyToCidr(val);
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

/** Parses `nft -j list table` output for our sets. Throws on output that is not nft JSON. */
export function parseListOutput(stdout: string, layout: NftLayout, readAtMs: number): KernelBanList {
  let doc: unknown;
  try {
    doc = JSON.parse(stdout);
  } catch {
    throw new NftError('rejected', 'nft printed something that is not JSON', stdout.slice(0, 200));
  }
  if (!isObject(doc) || !Array.isArray(doc.nftables)) {
    throw new NftError('rejected', 'nft JSON output has no "nftables" array', stdout.slice(0, 200));
  }
  const roles = new Map<string, BanSetRole>([[layout.set4, 'set4'], [layout.set6, 'set6'], [layout.set6net, 'set6net']]);
  const bans: KernelBan[] = [];
  const unrecognized: string[] = [];
  for (const item of doc.nftables as unknown[]) {
    if (!isObject(item) || !isObject(item.set)) continue;
    const set = item.set;
    if (set.family !== layout.family || set.table !== layout.table || typeof set.name !== 'string') continue;
    const role = roles.get(set.name);
    if (!role || !Array.isArray(set.elem)) continue;
    for (const raw of set.elem as unknown[]) {
      const ban = parseElement(raw, role, readAtMs);
      if (ban) bans.push(ban);
      else unrecognized.push(JSON.stringify(raw));
    }
  }
  return { bans, unrecognized, tableExists: true };
}

/**
 * Every element of our three sets. A missing table (fresh machine) is an empty list; nft
 * missing or no permission throws the typed NftError so the caller can say what to do.
 */
export async function listKernelBans(runner: NftRunner, layout: NftLayout, clock: Clock, execute: ExecuteOptions): Promise<KernelBanList> {
  const readAtMs = clock.nowMs();
  const result = await executeNft(runner, [listTable({ family: layout.family, name: layout.table })], execute);
  if (result.ok) return parseListOutput(result.stdout, layout, readAtMs);
  if (result.error.kind === 'missing-table') return { bans: [], unrecognized: [], tableExists: false };
  throw result.error;
}
