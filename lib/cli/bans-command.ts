// `fsguard bans`, `fsguard ban`, `fsguard unban`: the kernel sets are the source of truth,
// so these talk to libnftables directly; a running daemon notices the change on its next
// reconcile (and gives an unbanned source a grace period). An unban is also appended to the
// daemon's ban journal, running or not: its next start must not write the ban back.
import type { FsguardConfig } from '../config/config.js';
import { cidrContainsCidr, cidrsOverlap, isHostCidr, parseCidr, type Cidr } from '../net/ip.js';
import {
  BannedPrefixes, exitWithHungCalls, foreignTableError, NftError, nftJson, parseBanComment, resolveNftLayout, unansweredMessage,
  type KernelBan, type KernelBanList, type NftRunner, type NftSetWriter,
} from '../nft/index.js';
import { parseArgs, parseDuration, UsageError } from './args.js';
import { formatDuration } from '../text/duration.js';
import { terminalSafe } from '../text/terminal.js';
import { reportFailure, type CliIo } from './main.js';
import { nftRunnerFromConfig, nftWriterFromConfig } from './nft-writer.js';
import { publishManualAction, type ManualAction } from '../cluster/cli.js';
import { appendUnban, BanJournal, banJournalPath } from '../daemon/ban-journal.js';

const DEFAULT_MANUAL_BAN_SECONDS = 3600;
/** Narrower prefixes a widening ban names on its line; the rest are counted. */
const WIDENED_NAMED = 5;

function parseTarget(text: string | undefined, command: string): Cidr {
  if (!text) throw new UsageError(`${command}: which address or prefix? (e.g. ${command} 203.0.113.9)`);
  const cidr = parseCidr(text);
  if (!cidr) throw new UsageError(`${command}: not an IP address or CIDR: ${JSON.stringify(text)}`);
  return cidr;
}

interface BanRow {
  target: string;
  seconds_left: number | null;
  timeout: number | null;
  rule: string;
  offences: number | null;
  comment: string | null;
  /** The operator's `--reason` of a ban by hand (the comment's note), or null. */
  note: string | null;
  /** The banned prefix this host or narrower prefix lies in, if any. */
  within: string | null;
}

/**
 * Prefixes first (widest first), each followed by the bans inside it; then the rest by time left.
 * A host inside a banned prefix is dropped by the prefix whatever its own time left: `within` says so.
 * A ban inside several prefixes (a /64 under a /48, a host in both) is listed under the widest.
 */
function banRows(bans: readonly KernelBan[]): BanRow[] {
  const prefixes = new BannedPrefixes(bans);
  const hostRow = new Set<BanRow>();
  const rows = bans.map((b): BanRow => {
    const outer = prefixes.widestOver(b.target);
    const row: BanRow = {
      target: b.target.text, seconds_left: b.expiresSeconds, timeout: b.timeoutSeconds, rule: b.rule ?? 'foreign',
      offences: b.offences ?? null, comment: b.comment, note: (b.comment === null ? null : parseBanComment(b.comment)?.note) ?? null, within: outer ? outer.target.text : null,
    };
    if (isHostCidr(b.target)) hostRow.add(row);
    return row;
  });
  const byLeft = (a: BanRow, b: BanRow): number => (b.seconds_left ?? Infinity) - (a.seconds_left ?? Infinity);
  const insideOf = new Map<string, BanRow[]>();
  for (const r of rows) if (r.within !== null) (insideOf.get(r.within) ?? insideOf.set(r.within, []).get(r.within)!).push(r);
  const top = rows.filter((r) => r.within === null).sort((a, b) => {
    if (hostRow.has(a) !== hostRow.has(b)) return hostRow.has(a) ? 1 : -1;
    return byLeft(a, b);
  });
  const out: BanRow[] = [];
  for (const r of top) {
    out.push(r);
    const inner = insideOf.get(r.target);
    if (inner) {
      out.push(...inner.sort(byLeft));
      insideOf.delete(r.target);
    }
  }
  return out;
}

function printBans(rows: readonly BanRow[], out: (s: string) => void): void {
  const label = (r: BanRow): string => (r.within === null ? r.target : `  ${r.target}`);
  const width = Math.max(6, ...rows.map((r) => label(r).length));
  out(`${'TARGET'.padEnd(width)}  ${'LEFT'.padStart(8)}  ${'OF'.padStart(8)}  RULE`);
  for (const r of rows) {
    const left = r.seconds_left === null ? 'never' : formatDuration(r.seconds_left, 2);
    const of = r.timeout === null ? '-' : formatDuration(r.timeout, 2);
    // A comment is anyone's text (a foreign element, a --reason): shown escaped, never raw.
    const note = r.rule === 'foreign' ? ` (${r.comment === null ? 'no comment' : terminalSafe(r.comment)})` : r.offences && r.offences > 1 ? ` (offence ${r.offences})` : '';
    const reason = r.note === null ? '' : `: ${terminalSafe(r.note)}`;
    const inside = r.within === null ? '' : ` [inside ${r.within}]`;
    out(`${label(r).padEnd(width)}  ${left.padStart(8)}  ${of.padStart(8)}  ${terminalSafe(r.rule)}${note}${reason}${inside}`);
  }
  const prefixes = rows.filter((r) => !isHostCidr(parseCidr(r.target)!)).length;
  out(`${rows.length} ban${rows.length === 1 ? '' : 's'} (${prefixes} prefix${prefixes === 1 ? '' : 'es'}, ${rows.length - prefixes} host${rows.length - prefixes === 1 ? '' : 's'})`);
}

/** Why `target` must not be banned by hand, or null. `--force` lifts only the width limit. */
function refusal(target: Cidr, config: FsguardConfig, list: KernelBanList, force: boolean): string | null {
  for (const a of config.policy.allow) {
    const allowed = parseCidr(a);
    if (allowed && cidrsOverlap(allowed, target)) return `${target.text} is in the allow-list (${allowed.text}); remove it from policy.allow first`;
  }
  const own = list.switchAddresses.find((s) => cidrsOverlap(s, target));
  if (own) return `${target.text} covers FreeSWITCH's own address ${own.text} (recorded by the daemon in inet ${config.nft.table})`;
  const widest = target.family === 4 ? config.nft.widestPrefix4 : config.nft.widestPrefix6;
  if (!force && target.prefixLength < widest) {
    return `${target.text} is wider than /${widest} (nft.widestPrefix${target.family}); add --force if you mean it`;
  }
  return null;
}

/** With a cluster, a manual ban or unban goes to every node through the stream. */
async function shareWithCluster(config: FsguardConfig, action: ManualAction, io: CliIo): Promise<number> {
  if (!config.cluster.enabled) return 0;
  try {
    await publishManualAction(config, action);
    io.stdout.write(`${action.type} of ${action.target.text} sent to every cluster node (stream ${config.cluster.stream})\n`);
    return 0;
  } catch (err) {
    io.stderr.write(`fsguard: ${action.type} applied on this node only: the cluster is unreachable (${err instanceof Error ? err.message : String(err)}); run it again when Redis is back\n`);
    return 1;
  }
}

/**
 * A daemon killed with bans not yet in the kernel writes back, at its next start, the journaled
 * bans the kernel lacks: this one too, unless the journal says it was lifted. Appended the way
 * the daemon appends (ban-journal.ts); a failure is said, the unban itself stands.
 */
function journalUnban(config: FsguardConfig, target: Cidr, io: CliIo): void {
  const path = banJournalPath(config.nft);
  try {
    appendUnban(path, target, Date.now());
  } catch (err) {
    io.stderr.write(`fsguard: warning: the unban is not in the ban journal ${path} (${err instanceof Error ? err.message : String(err)}): if the daemon was killed with bans pending, its next start may ban ${target.text} again\n`);
  }
}

/** Whether the daemon's journal holds a live ban of `target` that the kernel lacks (it was killed before writing it). */
function pendingInJournal(config: FsguardConfig, target: Cidr, io: CliIo): boolean {
  // A journal that cannot be read is said (the unban of the kernel's element still stands).
  const journal = new BanJournal({ path: banJournalPath(config.nft), onError: (message) => { io.stderr.write(`fsguard: warning: ${message}\n`); } });
  return journal.readBack().some((b) => b.target.text === target.text && b.expiresAtMs > Date.now());
}

async function banCommand(argv: string[], config: FsguardConfig, writer: NftSetWriter, out: (s: string) => void, io: CliIo): Promise<number> {
  const { flags, positionals } = parseArgs(argv, { for: true, reason: true, force: false }, 'ban');
  if (positionals.length > 1) throw new UsageError(`ban: one target at a time (got ${positionals.length})`);
  const target = parseTarget(positionals[0], 'ban');
  const forFlag = flags.get('for');
  const seconds = typeof forFlag === 'string' ? parseDuration(forFlag) : DEFAULT_MANUAL_BAN_SECONDS;
  const reason = flags.get('reason');
  const { list } = await writer.setup();
  const why = refusal(target, config, list, flags.has('force'));
  if (why) throw new UsageError(`ban: ${why}`);
  const previous = list.bans.find((b) => b.target.text === target.text);
  const outcome = await writer.ban(target, seconds, {
    rule: 'manual',
    offences: (previous?.offences ?? 0) + 1,
    ...(typeof reason === 'string' ? { note: reason } : {}),
  });
  if (outcome.status === 'covered') {
    out(`${target.text} is already banned: inside ${outcome.by}${outcome.secondsLeft === null ? '' : ` (${formatDuration(outcome.secondsLeft)} left)`}`);
    return await shareWithCluster(config, { type: 'ban', target, seconds, note: typeof reason === 'string' ? reason : '' }, io);
  }
  if (outcome.status !== 'written') throw new Error(`ban ${target.text} failed: ${outcome.status === 'refused' ? outcome.message : outcome.status === 'failed' ? outcome.error.message : outcome.status}`);
  // The writer replaced the narrower prefixes inside it (in the interval set and the /64 set).
  const replaced = isHostCidr(target) ? [] : list.bans.filter((b) => b.target.text !== target.text && !isHostCidr(b.target) && cidrContainsCidr(target, b.target));
  const hosts = isHostCidr(target) ? 0 : list.bans.filter((b) => isHostCidr(b.target) && cidrContainsCidr(target, b.target)).length;
  // A /48 over a rotation attack's /64s replaces hundreds: the line names a few.
  const named = replaced.slice(0, WIDENED_NAMED).map((b) => b.target.text).join(', ');
  const widened = replaced.length ? ` (widened: replaces ${named}${replaced.length > WIDENED_NAMED ? ` and ${replaced.length - WIDENED_NAMED} more` : ''})` : '';
  out(`banned ${target.text} for ${formatDuration(seconds)}${widened}${hosts ? `; ${hosts} banned host${hosts === 1 ? '' : 's'} inside it` : ''}`);
  return await shareWithCluster(config, { type: 'ban', target, seconds, note: typeof reason === 'string' ? reason : '' }, io);
}

/**
 * One cheap call first (the ruleset's chains, no set element), on the runner's own deadline
 * (10 s): a library that hangs is said at once, in one line. The listing that follows keeps
 * its long deadline (LISTING_DEADLINE_MS), which a huge table needs, and which a hung library
 * would otherwise cost twice (the listing is tried again) before a line about hung calls.
 */
async function probeLibrary(runner: NftRunner): Promise<void> {
  const probe = await runner.run([nftJson.listChains()]);
  if (probe.kind === 'timed-out') throw new NftError('timeout', unansweredMessage(probe.afterMs / 1000), 'probe');
}

export async function runBansCommand(command: 'bans' | 'ban' | 'unban', argv: string[], config: FsguardConfig, io: CliIo): Promise<number> {
  const out = (s: string): void => { io.stdout.write(`${s}\n`); };
  const runner = nftRunnerFromConfig(config.nft, {
    ...(io.nftBackend ? { backend: io.nftBackend } : {}),
    ...(io.nftScheduler ? { scheduler: io.nftScheduler } : {}),
  });
  const writer = nftWriterFromConfig(config.nft, { batchMs: 0 }, runner);
  let ended: { readonly code: number } | { readonly error: unknown };
  try {
    await probeLibrary(runner);
    ended = { code: await bansCommand(command, argv, config, writer, out, io) };
  } catch (error) {
    ended = { error };
  }
  if (writer.hungCalls > 0) {
    // A hung libnftables call holds a worker thread that a normal exit would wait for: the
    // process ends at once, so why the command failed is said here (the hung call, mostly).
    exitWithHungCalls('code' in ended ? ended.code : reportFailure(ended.error, (line) => { io.stderr.write(`${line}\n`); }));
  }
  await writer.close();
  if ('error' in ended) throw ended.error;
  return ended.code;
}

async function bansCommand(command: 'bans' | 'ban' | 'unban', argv: string[], config: FsguardConfig, writer: NftSetWriter, out: (s: string) => void, io: CliIo): Promise<number> {
  if (command === 'bans') {
    const { flags, positionals } = parseArgs(argv, { json: false }, 'bans');
    if (positionals.length) throw new UsageError(`bans: unexpected argument ${positionals[0]}`);
    const list = await writer.list();
    if (list.tableExists && !list.owned) throw new Error(foreignTableError(resolveNftLayout(config.nft)).message);
    const rows = banRows(list.bans);
    if (flags.has('json')) {
      out(JSON.stringify({ table: config.nft.table, table_exists: list.tableExists, bans: rows }));
      return 0;
    }
    if (!list.tableExists) { out(`no table inet ${config.nft.table}: fsguard has not run here yet (no bans)`); return 0; }
    if (!rows.length) { out('no bans'); return 0; }
    printBans(rows, out);
    return 0;
  }

  if (command === 'ban') return banCommand(argv, config, writer, out, io);

  const { positionals } = parseArgs(argv, {}, 'unban');
  if (positionals.length > 1) throw new UsageError(`unban: one target at a time (got ${positionals.length})`);
  const target = parseTarget(positionals[0], 'unban');
  const list = await writer.list();
  if (list.tableExists && !list.owned) throw new Error(foreignTableError(resolveNftLayout(config.nft)).message);
  const outcome = await writer.unban(target);
  if (outcome.status === 'removed') {
    journalUnban(config, target, io);
    out(`unbanned ${target.text}`);
    return await shareWithCluster(config, { type: 'unban', target }, io);
  }
  // In a cluster the ban may be in other nodes' kernels only: the unban goes to them all.
  if (outcome.status === 'not-banned' && config.cluster.enabled) return await shareWithCluster(config, { type: 'unban', target }, io);
  if (outcome.status === 'not-banned' && pendingInJournal(config, target, io)) {
    journalUnban(config, target, io);
    out(`unbanned ${target.text}: it was not in the kernel, only in the ban journal (decided before the daemon's last exit, not yet written); the next start leaves it out`);
    return 0;
  }
  if (outcome.status === 'not-banned') {
    const covering = list.bans.filter((b) => b.target.text !== target.text && cidrContainsCidr(b.target, target));
    const hint = covering.length ? `; it is covered by ${covering.map((b) => b.target.text).join(', ')} (unban that)` : '';
    io.stderr.write(`fsguard: ${target.text} is not banned${hint}\n`);
    return 1;
  }
  throw new Error(`unban ${target.text} failed: ${outcome.status === 'refused' ? outcome.message : outcome.status === 'failed' ? outcome.error.message : outcome.status}`);
}
