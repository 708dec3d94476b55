// The subset of nft's JSON schema (`man 5 libnftables-json`, json_schema_version 1) that
// fsguard writes and reads. Shapes were checked against what nft 1.0.6 accepts on
// `nft -j -f -` and prints for `list`. Output-only fields (handle, expires, counter values)
// are optional so the same types describe what we send and what we read back.

export type NftFamily = 'ip' | 'ip6' | 'inet' | 'arp' | 'bridge' | 'netdev';

export interface NftTable {
  readonly family: NftFamily;
  readonly name: string;
  readonly handle?: number;
}

export type NftSetKeyType = 'ipv4_addr' | 'ipv6_addr' | 'inet_service' | 'inet_proto';
export type NftSetFlag = 'constant' | 'interval' | 'timeout' | 'dynamic';

export interface NftSet {
  readonly family: NftFamily;
  readonly table: string;
  readonly name: string;
  readonly type: NftSetKeyType;
  readonly flags?: readonly NftSetFlag[];
  readonly comment?: string;
  readonly handle?: number;
  /** Present in `list` output only. */
  readonly elem?: readonly NftElementExpression[];
}

export type NftChainType = 'filter' | 'nat' | 'route';
export type NftHook = 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting' | 'ingress';
export type NftChainPolicy = 'accept' | 'drop';

/** A chain; without `type`/`hook`/`prio` it names (or creates) a regular chain. */
export interface NftChain {
  readonly family: NftFamily;
  readonly table: string;
  readonly name: string;
  readonly type?: NftChainType;
  readonly hook?: NftHook;
  readonly prio?: number;
  readonly policy?: NftChainPolicy;
  readonly handle?: number;
}

// ---- expressions ---------------------------------------------------------------------

export type NftPayloadProtocol = 'ip' | 'ip6' | 'th' | 'tcp' | 'udp';
export interface NftPayloadExpression {
  readonly payload: { readonly protocol: NftPayloadProtocol; readonly field: 'saddr' | 'daddr' | 'sport' | 'dport' };
}
export interface NftMetaExpression {
  readonly meta: { readonly key: 'l4proto' | 'nfproto' | 'iifname' | 'oifname' };
}
/** `ip6 saddr & ffff:ffff:ffff:ffff::`: the payload masked (here, to its /64). */
export interface NftBitwiseAndExpression {
  readonly '&': readonly [NftPayloadExpression, NftImmediate];
}
export interface NftPrefixExpression {
  readonly prefix: { readonly addr: string; readonly len: number };
}
export interface NftRangeExpression {
  readonly range: readonly [NftImmediate, NftImmediate];
}
/** An anonymous set literal: `{ tcp, udp }`, `{ 5060, 5061 }`. */
export interface NftSetLiteral {
  readonly set: readonly NftImmediate[];
}
/** Strings are addresses, protocol names, or `@name` references to a named set. */
export type NftImmediate = string | number;

/** A key that can go into an address set: an address, a prefix or (read back only) a range. */
export type NftElementKey = string | NftPrefixExpression | NftRangeExpression;

export interface NftElementWithOptions {
  readonly elem: {
    readonly val: NftElementKey;
    /** Seconds. */
    readonly timeout?: number;
    /** Seconds left; output only. */
    readonly expires?: number;
    readonly comment?: string;
  };
}
export type NftElementExpression = NftElementKey | NftElementWithOptions;

export type NftExpression =
  | NftImmediate
  | NftPayloadExpression
  | NftBitwiseAndExpression
  | NftMetaExpression
  | NftPrefixExpression
  | NftRangeExpression
  | NftSetLiteral;

// ---- statements ----------------------------------------------------------------------

export type NftMatchOperator = '==' | '!=' | 'in';
export interface NftMatchStatement {
  readonly match: { readonly op: NftMatchOperator; readonly left: NftExpression; readonly right: NftExpression };
}
export interface NftCounterStatement {
  /** null when adding an anonymous counter; packets/bytes when read back. */
  readonly counter: null | { readonly packets: number; readonly bytes: number };
}
export interface NftDropStatement { readonly drop: null }
export interface NftAcceptStatement { readonly accept: null }
export type NftStatement = NftMatchStatement | NftCounterStatement | NftDropStatement | NftAcceptStatement;

export interface NftRule {
  readonly family: NftFamily;
  readonly table: string;
  readonly chain: string;
  readonly expr: readonly NftStatement[];
  readonly comment?: string;
  readonly handle?: number;
}

/** Elements to add to or delete from a named set. */
export interface NftElements {
  readonly family: NftFamily;
  readonly table: string;
  /** The set's name. */
  readonly name: string;
  readonly elem: readonly NftElementExpression[];
}

// ---- commands ------------------------------------------------------------------------

export type NftAddObject =
  | { readonly table: NftTable }
  | { readonly set: NftSet }
  | { readonly chain: NftChain }
  | { readonly rule: NftRule }
  | { readonly element: NftElements };

export type NftDeleteObject =
  | { readonly chain: NftChain }
  | { readonly element: NftElements };

export type NftFlushObject = { readonly chain: NftChain };

export type NftListObject =
  | { readonly table: NftTable }
  | { readonly set: Pick<NftSet, 'family' | 'table' | 'name'> }
  | { readonly tables: null }
  | { readonly chains: null };

export type NftCommand =
  | { readonly add: NftAddObject }
  /** Like add, but fails with EEXIST when the object (element) already exists. */
  | { readonly create: { readonly element: NftElements } }
  | { readonly delete: NftDeleteObject }
  | { readonly flush: NftFlushObject }
  | { readonly list: NftListObject };

/** What goes on nft's stdin: every command in one document is one atomic transaction. */
export interface NftDocument {
  readonly nftables: readonly NftCommand[];
}
