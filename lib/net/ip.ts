// IP address parsing and CIDR arithmetic shared by the event normalizer, the policy
// (allow-lists, IPv6 /64 aggregation) and the nft writer. Addresses travel through the
// pipeline as canonical text (RFC 5952 for IPv6) so that equal addresses are equal strings
// and can key Maps without further work.

export type IpFamily = 4 | 6;

export interface IpAddress {
  readonly family: IpFamily;
  /** Canonical text: dotted quad, or RFC 5952 lower-case compressed IPv6. */
  readonly text: string;
}

export interface Cidr {
  readonly family: IpFamily;
  readonly prefixLength: number;
  /** Network address as canonical text (host bits cleared). */
  readonly network: string;
  /** `network/prefixLength`, or just the address for a full-length prefix. */
  readonly text: string;
  /** Network as a bigint, for containment tests. */
  readonly value: bigint;
}

/**
 * A dotted quad, strictly (four octets 0-255, no leading zeros): then the text is already the
 * canonical form, and is kept as it is (no octets, no new string). A char loop: hot path.
 */
function isDottedQuad(s: string): boolean {
  const n = s.length;
  if (n < 7 || n > 15) return false;
  let octets = 0;
  let value = 0;
  let width = 0;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? s.charCodeAt(i) : 46; /* '.' ends the last octet */
    if (c === 46) {
      if (width === 0 || octets === 4) return false;
      octets++;
      value = 0;
      width = 0;
    } else if (c >= 48 && c <= 57) {
      if (width > 0 && value === 0) return false; // leading zero: ambiguous (octal in some tools)
      value = value * 10 + (c - 48);
      if (++width > 3 || value > 255) return false;
    } else {
      return false;
    }
  }
  return octets === 4;
}

/** Dotted-quad octets (see isDottedQuad), or null. */
function parseV4Parts(s: string): number[] | null {
  return isDottedQuad(s) ? s.split('.').map(Number) : null;
}

/** Parses IPv6 text into 8 16-bit groups, or null. Accepts an embedded IPv4 tail. */
function parseV6Groups(input: string): number[] | null {
  let s = input;
  // Scoped addresses (`fe80::1%eth0`) never come from the network.
  if (s.indexOf('%') !== -1 || s.length < 2 || s.length > 45) return null;
  const lastColon = s.lastIndexOf(':');
  if (s.indexOf('.', lastColon) !== -1) {
    // Embedded IPv4 tail (`::ffff:192.0.2.1`): rewrite it as two hex groups.
    const v4 = parseV4Parts(s.slice(lastColon + 1));
    if (!v4) return null;
    s = `${s.slice(0, lastColon + 1)}${((v4[0]! << 8) | v4[1]!).toString(16)}:${((v4[2]! << 8) | v4[3]!).toString(16)}`;
  }
  // One pass over the characters (no split, regex or temporary arrays: this runs for every
  // IPv6 event): groups of 1-4 hex digits separated by ':', at most one '::'.
  const n = s.length;
  const groups: number[] = [];
  let gap = -1;
  let i = 0;
  if (s.charCodeAt(0) === 58 /* : */) {
    if (s.charCodeAt(1) !== 58) return null;
    gap = 0;
    i = 2;
  }
  while (i < n) {
    let v = 0;
    let width = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
      if (d < 0) break;
      v = v * 16 + d;
      width++;
    }
    if (width === 0 || width > 4 || groups.length === 8) return null;
    groups.push(v);
    if (i === n) break;
    if (s.charCodeAt(i) !== 58) return null;
    i++;
    if (i === n) return null; // a trailing single ':'
    if (s.charCodeAt(i) === 58) {
      if (gap !== -1) return null;
      gap = groups.length;
      i++;
    }
  }
  if (gap === -1) return groups.length === 8 ? groups : null;
  if (groups.length > 7) return null;
  const zeros = 8 - groups.length;
  const out: number[] = [];
  for (let k = 0; k < gap; k++) out.push(groups[k]!);
  for (let k = 0; k < zeros; k++) out.push(0);
  for (let k = gap; k < groups.length; k++) out.push(groups[k]!);
  return out;
}

/**
 * RFC 5952 text for 8 groups: lower case, longest run (>1) of zero groups compressed, `suffix`
 * appended. Built by one join, so the result is a flat string, not a rope of concatenations
 * (the policy keeps these as Map keys for every tracked source).
 */
function formatV6(groups: readonly number[], suffix = ''): string {
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const parts: string[] = [];
  if (bestStart === -1) {
    for (let i = 0; i < 8; i++) parts.push(groups[i]!.toString(16));
  } else {
    for (let i = 0; i < bestStart; i++) parts.push(groups[i]!.toString(16));
    if (bestStart === 0) parts.push('');
    parts.push('');
    if (bestStart + bestLen === 8) parts.push('');
    for (let i = bestStart + bestLen; i < 8; i++) parts.push(groups[i]!.toString(16));
  }
  if (suffix !== '') parts[parts.length - 1] += suffix;
  return parts.join(':');
}

function v6Groups(value: bigint): number[] {
  const out = new Array<number>(8);
  for (let i = 7; i >= 0; i--) { out[i] = Number(value & 0xffffn); value >>= 16n; }
  return out;
}

function groupsValue(groups: readonly number[]): bigint {
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(g);
  return v;
}

/**
 * Parses an address as it appears in `network-ip` or config. IPv4-mapped IPv6
 * (`::ffff:a.b.c.d`) becomes the IPv4 address, because that is what the kernel sees for a
 * dual-stack socket and what must go into the IPv4 set. Returns null for anything else.
 */
export function parseIp(raw: string): IpAddress | null {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > 64) return null;
  let s = raw;
  if (s.charCodeAt(0) === 91 /* [ */ && s.endsWith(']')) s = s.slice(1, -1);
  if (s.indexOf(':') === -1) return isDottedQuad(s) ? { family: 4, text: s } : null;
  const g = parseV6Groups(s);
  if (!g) return null;
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return { family: 4, text: `${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}` };
  }
  return { family: 6, text: formatV6(g) };
}

/** The integer value of a canonical address. */
export function ipValue(addr: IpAddress): bigint {
  if (addr.family === 4) {
    // A char loop, not split and map: every element of a listing of the bans comes through here.
    const text = addr.text;
    let value = 0;
    let octet = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 46 /* . */) { value = value * 256 + octet; octet = 0; } else octet = octet * 10 + (c - 48);
    }
    return BigInt(value * 256 + octet);
  }
  const g = parseV6Groups(addr.text);
  if (!g) throw new Error(`not canonical IPv6: ${addr.text}`);
  return groupsValue(g);
}

function maskOf(family: IpFamily, len: number): bigint {
  const bits = family === 4 ? 32 : 128;
  return len === 0 ? 0n : ((1n << BigInt(len)) - 1n) << BigInt(bits - len);
}

function valueText(family: IpFamily, v: bigint): string {
  if (family === 4) return [24, 16, 8, 0].map((s) => Number((v >> BigInt(s)) & 255n)).join('.');
  return formatV6(v6Groups(v));
}

/** Parses `addr` or `addr/len`; host bits are cleared. Null when invalid. */
export function parseCidr(raw: string): Cidr | null {
  if (typeof raw !== 'string') return null;
  const slash = raw.indexOf('/');
  const addr = parseIp(slash === -1 ? raw : raw.slice(0, slash));
  if (!addr) return null;
  const bits = addr.family === 4 ? 32 : 128;
  let len = bits;
  if (slash !== -1) {
    const l = raw.slice(slash + 1);
    if (!/^\d{1,3}$/.test(l)) return null;
    len = Number(l);
    if (len > bits) return null;
    // A mapped address with a prefix is ambiguous; refuse rather than guess.
    if (addr.family === 4 && raw.indexOf(':') !== -1) return null;
  }
  // A host is its own network, and parseIp's text is already canonical: no mask, no text made
  // again from the bigint (a listing of 300,000 bans parses each element).
  if (len === bits) { const text = addr.text; return { family: addr.family, prefixLength: len, network: text, text, value: ipValue(addr) }; }
  return makeCidr(addr.family, ipValue(addr) & maskOf(addr.family, len), len);
}

/** The CIDRs of a list (an allow-list), the invalid ones left out (config validation names them). */
export function parseCidrs(list: readonly string[]): Cidr[] {
  return list.map((a) => parseCidr(a)).filter((c): c is Cidr => c !== null);
}

export function makeCidr(family: IpFamily, value: bigint, prefixLength: number): Cidr {
  const bits = family === 4 ? 32 : 128;
  const network = valueText(family, value & maskOf(family, prefixLength));
  return {
    family,
    prefixLength,
    network,
    text: prefixLength === bits ? network : `${network}/${prefixLength}`,
    value: value & maskOf(family, prefixLength),
  };
}

/** A full-length prefix: one address (/32, /128). */
export function isHostCidr(c: Cidr): boolean {
  return c.prefixLength === (c.family === 4 ? 32 : 128);
}

export function cidrContainsIp(cidr: Cidr, addr: IpAddress): boolean {
  if (cidr.family !== addr.family) return false;
  // Canonical texts: a full-length prefix contains exactly the address with the same text.
  if (isHostCidr(cidr)) return cidr.network === addr.text;
  return (ipValue(addr) & maskOf(cidr.family, cidr.prefixLength)) === cidr.value;
}

export function cidrContainsCidr(outer: Cidr, inner: Cidr): boolean {
  return outer.family === inner.family && outer.prefixLength <= inner.prefixLength &&
    (inner.value & maskOf(outer.family, outer.prefixLength)) === outer.value;
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return cidrContainsCidr(a, b) || cidrContainsCidr(b, a);
}

/**
 * The /N prefix text of an IPv6 address without bigint work, for the per-event hot path
 * (N a multiple of 16). `2001:db8:bad:1::7` with 64 → `2001:db8:bad:1::/64`.
 */
export function ipv6PrefixText(addr: IpAddress, prefixLength: number): string {
  const g = parseV6Groups(addr.text);
  if (!g) throw new Error(`not IPv6: ${addr.text}`);
  const keep = Math.floor(prefixLength / 16);
  const rem = prefixLength % 16;
  for (let i = keep; i < 8; i++) g[i] = i === keep && rem ? g[i]! & (0xffff << (16 - rem)) & 0xffff : 0;
  return formatV6(g, `/${prefixLength}`);
}
