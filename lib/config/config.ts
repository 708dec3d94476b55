// fsguard's configuration: one JSON file (--config FILE or FSGUARD_CONFIG), every key
// overridable from the environment (FSGUARD_<SECTION>_<KEY>), validated strictly. A wrong
// config is refused with one message per problem, each naming the key.
import { readFileSync, statSync } from 'node:fs';
import {
  parsePolicyOverride, policySchema, policySettingsProblems, type PolicySettings,
} from '../policy/settings.js';
import { readConfigTree, type ConfigSchemaNode } from './strict.js';
import type { LogLevel } from '../obs/logger.js';
import type { NftLayout } from '../nft/index.js';
import { notifyProblems, notifySchema, redactedNotify, type NotifyConfig } from '../notify/config.js';
import { statusProblems, statusSchema, type StatusConfig } from '../status/config.js';
import { clusterConfigProblems, clusterSchema, type ClusterConfig } from '../cluster/config.js';

export interface EslConfig {
  readonly host: string;
  readonly port: number;
  readonly password: string;
  /** Sofia profiles to act on; empty = all. */
  readonly profiles: readonly string[];
  readonly reconnectMaxSeconds: number;
  readonly authRetrySeconds: number;
  readonly heartbeatTimeoutSeconds: number;
  /** Event-Sequence numbers skipped between two consecutive events that count as lost events. */
  readonly eventGapThreshold: number;
}

/** The table layout (names, priority, ports: see lib/nft/layout.ts) plus how it is written. */
export interface NftConfig extends Omit<NftLayout, 'family'> {
  /** libnftables' soname or path. */
  readonly library: string;
  /** Where decided bans are journaled until they are in the kernel (kill -9 safety). */
  readonly journalDir: string;
  /** `fsguard ban` refuses IPv4 prefixes shorter than this without --force. */
  readonly widestPrefix4: number;
  /** `fsguard ban` refuses IPv6 prefixes shorter than this without --force. */
  readonly widestPrefix6: number;
  readonly batchMs: number;
  /** How often the sets are read back and compared with what fsguard wrote. */
  readonly reconcileSeconds: number;
}

export interface FsguardConfig {
  readonly esl: EslConfig;
  readonly nft: NftConfig;
  readonly policy: PolicySettings;
  readonly profiles: Readonly<Record<string, Partial<PolicySettings>>>;
  readonly metrics: { readonly enabled: boolean; readonly host: string; readonly port: number };
  readonly log: { readonly level: LogLevel };
  readonly notify: NotifyConfig;
  readonly status: StatusConfig;
  /** Several nodes sharing evidence and bans through Redis (lib/cluster); off by default. */
  readonly cluster: ClusterConfig;
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[], readonly source: string) {
    super(`invalid configuration (${source}):\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/**
 * FSGUARD_* variables that are not config keys: the config file's name, and the test and
 * bench harness's switches (FSGUARD_REQUIRE_NETNS, FSGUARD_FUZZ_SEED, …). Every other
 * FSGUARD_* variable must name a config key: a typo (FSGUARD_ESL_HOTS) is an error.
 */
const NOT_CONFIG_VARIABLES = /^FSGUARD_(?:CONFIG|NETNS(?:_SKIP)?|REQUIRE_[A-Z0-9_]+|FUZZ_[A-Z0-9_]+|BENCH_[A-Z0-9_]+|TEST_[A-Z0-9_]+)$/;

const NFT_NAME = /^[A-Za-z][A-Za-z0-9_]{0,31}$/;

const baseSchema = {
  esl: {
    host: { doc: 'FreeSWITCH event socket host', format: String, default: '127.0.0.1' },
    port: { doc: 'FreeSWITCH event socket port', format: 'port', default: 8021 },
    password: { doc: 'Event socket password (never logged)', format: String, default: 'ClueCon', sensitive: true },
    profiles: { doc: 'Sofia profiles to act on; empty = all', format: Array, default: [] as string[], items: 'string' },
    reconnectMaxSeconds: { doc: 'Cap of the reconnect backoff while FreeSWITCH is down', format: Number, default: 2, min: 0.5, max: 300 },
    // A wrong password retried without pause made 3,503 logins (and as many FreeSWITCH log lines) in 6 s.
    authRetrySeconds: { doc: 'Retry interval after a wrong password or an ESL ACL rejection', format: Number, default: 30, min: 1, max: 3600 },
    heartbeatTimeoutSeconds: { doc: 'A connection without a complete frame (FreeSWITCH sends HEARTBEAT every 20 s) for this long is dead', format: Number, default: 60, min: 5, max: 3600 },
    eventGapThreshold: { doc: 'Event-Sequence numbers skipped between two consecutive events that mark a window of possibly lost events (smaller jumps are events fsguard does not subscribe to)', format: 'int', default: 1000, min: 1, max: 1_000_000_000 },
  },
  nft: {
    library: { doc: 'libnftables, by soname or path (Debian: libnftables1, installed with nftables)', format: String, default: 'libnftables.so.1' },
    journalDir: { doc: 'Folder of the journal of decided bans not yet in the kernel (systemd: StateDirectory)', format: String, default: '/var/lib/fsguard' },
    table: { doc: 'Name of fsguard\'s own inet table', format: String, default: 'fsguard' },
    set4: { doc: 'Set of banned IPv4 hosts', format: String, default: 'banned4' },
    set6: { doc: 'Set of banned IPv6 hosts', format: String, default: 'banned6' },
    set6net: { doc: 'Set of banned IPv6 prefixes', format: String, default: 'banned6net' },
    set4net: { doc: 'Set of banned IPv4 prefixes', format: String, default: 'banned4net' },
    widestPrefix4: { doc: 'fsguard ban refuses IPv4 prefixes wider than this (shorter length) unless --force', format: 'int', default: 16 },
    widestPrefix6: { doc: 'fsguard ban refuses IPv6 prefixes wider than this (shorter length) unless --force', format: 'int', default: 32 },
    chain: { doc: 'Input chain that drops banned sources', format: String, default: 'input' },
    chainPriority: { doc: 'Priority of the input hook (lower runs earlier)', format: 'int', default: -10, min: -1000, max: 1000 },
    ports: { doc: 'Ports the drop rule covers (udp+tcp); empty = all ports', format: Array, default: [] as number[], items: 'port' },
    batchMs: { doc: 'The first decision after a quiet spell goes at once; those within this many ms after it share the next nft transaction', format: Number, default: 2, min: 0, max: 1000 },
    reconcileSeconds: { doc: 'How often the sets are read back (a flushed table is rebuilt, a ban lifted by hand gets a grace period)', format: Number, default: 2, min: 0.5, max: 3600 },
  },
  profiles: { doc: 'Per-profile policy overrides: { "<profile>": { <policy key>: value } }', format: Object, default: {} },
  metrics: {
    enabled: { doc: 'Serve Prometheus metrics', format: Boolean, default: true },
    host: { doc: 'Metrics listen address (loopback by default: no data leaves the host)', format: String, default: '127.0.0.1' },
    port: { doc: 'Metrics listen port (0: any free port)', format: 'port', default: 9466, min: 0 },
  },
  log: {
    level: { doc: 'Log level', format: ['debug', 'info', 'warn', 'error'], default: 'info' },
  },
  notify: notifySchema,
  status: statusSchema,
  cluster: clusterSchema,
};

type SchemaNode = ConfigSchemaNode;

function isLeaf(node: unknown): node is SchemaNode {
  return typeof node === 'object' && node !== null && 'default' in node;
}

/** Gives every leaf an env name FSGUARD_<PATH> (camelCase → SNAKE) unless it has one. */
function withEnvNames(node: SchemaNode, path: string[] = []): SchemaNode {
  const out: SchemaNode = {};
  for (const [key, child] of Object.entries(node)) {
    const p = [...path, key];
    if (isLeaf(child)) {
      const env = `FSGUARD_${p.map((s) => s.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_')}`;
      out[key] = 'env' in child ? child : { ...child, env };
    } else if (typeof child === 'object' && child !== null) {
      out[key] = withEnvNames(child as SchemaNode, p);
    } else {
      out[key] = child;
    }
  }
  return out;
}

export function configSchema(): SchemaNode {
  return withEnvNames({ ...baseSchema, policy: policySchema as unknown as SchemaNode });
}

/** Semantic checks convict's type formats cannot express; each problem names its key. */
function semanticProblems(c: FsguardConfig): string[] {
  const problems: string[] = [];
  if (!c.esl.host.trim()) problems.push('esl.host: must not be empty');
  // The password goes into the `auth` command line: a line break would inject commands.
  if (/[\r\n]/.test(c.esl.password)) problems.push('esl.password: must not contain a line break');
  c.esl.profiles.forEach((p, i) => { if (typeof p !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(p)) problems.push(`esl.profiles[${i}]: not a sofia profile name: ${JSON.stringify(p)}`); });
  for (const key of ['table', 'set4', 'set4net', 'set6', 'set6net', 'chain'] as const) {
    if (!NFT_NAME.test(c.nft[key])) problems.push(`nft.${key}: must be a letter then up to 31 letters, digits or _, got ${JSON.stringify(c.nft[key])}`);
  }
  if (!Number.isInteger(c.nft.widestPrefix4) || c.nft.widestPrefix4 < 0 || c.nft.widestPrefix4 > 32) problems.push(`nft.widestPrefix4: must be a prefix length 0-32, got ${JSON.stringify(c.nft.widestPrefix4)}`);
  if (!Number.isInteger(c.nft.widestPrefix6) || c.nft.widestPrefix6 < 0 || c.nft.widestPrefix6 > 128) problems.push(`nft.widestPrefix6: must be a prefix length 0-128, got ${JSON.stringify(c.nft.widestPrefix6)}`);
  problems.push(...policySettingsProblems(c.policy));
  problems.push(...notifyProblems(c.notify), ...statusProblems(c.status));
  problems.push(...clusterConfigProblems(c.cluster));
  for (const [name, override] of Object.entries(c.profiles)) {
    problems.push(...policySettingsProblems({ ...c.policy, ...override }, `profiles.${name}`));
  }
  return problems;
}

export interface LoadedConfig {
  readonly config: FsguardConfig;
  /** Where it came from: the file path, or "built-in defaults". */
  readonly source: string;
  /** Non-fatal findings (e.g. a config file others can read). */
  readonly warnings: readonly string[];
}

/**
 * Loads the config: defaults ← file (if any) ← environment. `file` null means
 * FSGUARD_CONFIG, else the built-in defaults (which equal conf/fsguard.json). Every problem
 * is collected (unknown keys, unknown FSGUARD_* variables, bad values, bad relations) and
 * thrown together as one ConfigError, each naming the key, the value and what was expected.
 * `fsguard run`, `fsguard check` and SIGHUP all come through here.
 */
export function loadConfig(file: string | null, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const path = file ?? env.FSGUARD_CONFIG ?? null;
  const fromEnv = Object.keys(env).some((k) => k.startsWith('FSGUARD_') && k !== 'FSGUARD_CONFIG');
  const source = `${path ?? 'built-in defaults'}${fromEnv ? ' + FSGUARD_* environment' : ''}`;
  const warnings: string[] = [];
  let parsed: unknown = {};
  if (path) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
      const mode = statSync(path).mode;
      if (mode & 0o004) warnings.push(`config file ${path} is readable by every user and may hold the ESL password: chmod 640 it`);
    } catch (err) {
      throw new ConfigError([`cannot read config file: ${err instanceof Error ? err.message : String(err)}`], source);
    }
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new ConfigError([`not valid JSON: ${err instanceof Error ? err.message : String(err)}`], source);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigError(['the file must hold one JSON object'], source);
  }
  const tree = readConfigTree(configSchema(), parsed as Record<string, unknown>, env, { ignoreEnv: (name) => NOT_CONFIG_VARIABLES.test(name) });
  const problems = [...tree.problems];
  const raw = tree.value as unknown as FsguardConfig;
  const profiles: Record<string, Partial<PolicySettings>> = {};
  const rawProfiles = raw.profiles as unknown;
  if (typeof rawProfiles !== 'object' || rawProfiles === null || Array.isArray(rawProfiles)) {
    problems.push('profiles: must be an object of { "<profile>": { <policy key>: value } }');
  } else {
    for (const [name, override] of Object.entries(rawProfiles)) {
      try {
        profiles[name] = parsePolicyOverride(override, `profiles.${name}`);
      } catch (err) {
        problems.push(...(err instanceof Error ? err.message : String(err)).split('\n'));
      }
    }
  }
  const config: FsguardConfig = { ...raw, profiles };
  // Relations between keys, on the values that did parse (a key already reported is not
  // reported twice through a relation it was part of).
  const reported = new Set(problems.map((p) => p.split(/[ :=[(]/, 1)[0]!));
  for (const p of semanticProblems(config)) {
    if (!reported.has(p.split(/[ :=[(]/, 1)[0]!)) problems.push(p);
  }
  if (problems.length) throw new ConfigError(problems, source);
  return { config, source, warnings };
}

/** The config as JSON with the password masked, for `fsguard policy --json` and check. */
export function redactedConfig(c: FsguardConfig): FsguardConfig {
  return { ...c, esl: { ...c.esl, password: '[redacted]' }, cluster: { ...c.cluster, password: c.cluster.password ? '[redacted]' : '' }, notify: redactedNotify(c.notify) };
}
