// `fsguard bans`, `fsguard ban`, `fsguard unban`: the kernel sets are the source of truth,
// so these talk to nft directly; a running daemon notices the change on its next reconcile
// (and gives an unbanned source a grace period).
import type { FsguardConfig } from '../config/config.js';
import { cidrContainsCidr, cidrsOverlap, parseCidr, type Cidr } from '../net/ip.js';
import { setRoleFor, type KernelBan } from '../nft/index.js';
import { formatDuration, parseArgs, parseDuration, UsageError } from './args.js';
import type { CliIo } from './main.js';
import { nftWriterFromConfig } from './nft-writer.js';
import { publishManualAction, type ManualAction } from '../cluster/cli.js';

const DEFAULT_MANUAL_BAN_SECONDS = 3600;

function parseTarget(text: string | undefined, command: string): Cidr {
  if (!text) throw new UsageError(`${command}: which address or prefix? (e.g. ${command} 203.0.113.9)`);
  const cidr = parseCidr(text);
  if (!cidr) throw new UsageError(`${command}: not an IP address or CIDR: ${JSON.stringify(text)}`);
  if (!setRoleFor(cidr)) throw new UsageError(`${command}: IPv4 prefixes are not supported (ban hosts, or IPv6 prefixes): ${cidr.text}`);
  return cidr;
}

function banRow(b: KernelBan): { target: string; seconds_left: number | null; timeout: number | null; rule: string; offences: number | null; comment: string | null } {
  return {
    target: b.target.text,
    seconds_left: b.expiresSeconds,
    timeout: b.timeoutSeconds,
    rule: b.rule ?? 'foreign',
    offences: b.offences ?? null,
    comment: b.comment,
  };
}

/** With a cluster, a manual ban or unban goes to every node through the stream. */
async function shareWithCluster(config: FsguardConfig, action: ManualAction, io: CliIo): Promise<number> {
  if (!config.cluster.enabled) return 0;
  try {
    await publishManualAction(config, action);
    io.stdout.write(`${action.type === 'ban' ? 'ban' : 'unban'} of ${action.target.text} sent to every cluster node (stream ${config.cluster.stream})\n`);
    return 0;
  } catch (err) {
    io.stderr.write(`fsguard: ${action.type} applied on this node only: the cluster is unreachable (${err instanceof Error ? err.message : String(err)}); run it again when Redis is back\n`);
    return 1;
  }
}

export async function runBansCommand(command: 'bans' | 'ban' | 'unban', argv: string[], config: FsguardConfig, io: CliIo): Promise<number> {
  const out = (s: string): void => { io.stdout.write(`${s}\n`); };
  const writer = nftWriterFromConfig(config.nft, { batchMs: 0 });
  try {
    if (command === 'bans') {
      const { flags, positionals } = parseArgs(argv, { json: false }, 'bans');
      if (positionals.length) throw new UsageError(`bans: unexpected argument ${positionals[0]}`);
      const list = await writer.list();
      const rows = list.bans.map(banRow).sort((a, b) => (b.seconds_left ?? Infinity) - (a.seconds_left ?? Infinity));
      if (flags.has('json')) {
        out(JSON.stringify({ table: config.nft.table, table_exists: list.tableExists, bans: rows }));
        return 0;
      }
      if (!list.tableExists) { out(`no table inet ${config.nft.table}: fsguard has not run here yet (no bans)`); return 0; }
      if (!rows.length) { out('no bans'); return 0; }
      const width = Math.max(6, ...rows.map((r) => r.target.length));
      out(`${'TARGET'.padEnd(width)}  ${'LEFT'.padStart(8)}  ${'OF'.padStart(8)}  RULE`);
      for (const r of rows) {
        const left = r.seconds_left === null ? 'never' : formatDuration(r.seconds_left);
        const of = r.timeout === null ? '-' : formatDuration(r.timeout);
        const note = r.rule === 'foreign' ? ` (${r.comment ?? 'no comment'})` : r.offences && r.offences > 1 ? ` (offence ${r.offences})` : '';
        out(`${r.target.padEnd(width)}  ${left.padStart(8)}  ${of.padStart(8)}  ${r.rule}${note}`);
      }
      out(`${rows.length} ban${rows.length === 1 ? '' : 's'}`);
      return 0;
    }

    if (command === 'ban') {
      const { flags, positionals } = parseArgs(argv, { for: true, reason: true }, 'ban');
      if (positionals.length > 1) throw new UsageError(`ban: one target at a time (got ${positionals.length})`);
      const target = parseTarget(positionals[0], 'ban');
      const allowed = config.policy.allow.map((a) => parseCidr(a)).find((a) => a && cidrsOverlap(a, target));
      if (allowed) throw new UsageError(`ban: ${target.text} is in the allow-list (${allowed.text}); remove it from policy.allow first`);
      const forFlag = flags.get('for');
      const seconds = typeof forFlag === 'string' ? parseDuration(forFlag) : DEFAULT_MANUAL_BAN_SECONDS;
      const reason = flags.get('reason');
      await writer.setup();
      const list = await writer.list();
      const previous = list.bans.find((b) => b.target.text === target.text);
      const outcome = await writer.ban(target, seconds, {
        rule: 'manual',
        offences: (previous?.offences ?? 0) + 1,
        ...(typeof reason === 'string' ? { note: reason } : {}),
      });
      if (outcome.status !== 'written') throw new Error(`ban ${target.text} failed: ${outcome.status === 'refused' ? outcome.message : outcome.status === 'failed' ? outcome.error.message : outcome.status}`);
      out(`banned ${target.text} for ${formatDuration(seconds)}`);
      return await shareWithCluster(config, { type: 'ban', target, seconds, note: typeof reason === 'string' ? reason : '' }, io);
    }

    const { positionals } = parseArgs(argv, {}, 'unban');
    if (positionals.length > 1) throw new UsageError(`unban: one target at a time (got ${positionals.length})`);
    const target = parseTarget(positionals[0], 'unban');
    const outcome = await writer.unban(target);
    if (outcome.status === 'removed') { out(`unbanned ${target.text}`); return await shareWithCluster(config, { type: 'unban', target }, io); }
    // In a cluster the ban may be in other nodes' kernels only: the unban goes to them all.
    if (outcome.status === 'not-banned' && config.cluster.enabled) return await shareWithCluster(config, { type: 'unban', target }, io);
    if (outcome.status === 'not-banned') {
      const list = await writer.list();
      const covering = list.bans.filter((b) => b.target.text !== target.text && cidrContainsCidr(b.target, target));
      const hint = covering.length ? `; it is covered by ${covering.map((b) => b.target.text).join(', ')} (unban that)` : '';
      io.stderr.write(`fsguard: ${target.text} is not banned${hint}\n`);
      return 1;
    }
    throw new Error(`unban ${target.text} failed: ${outcome.status === 'refused' ? outcome.message : outcome.status === 'failed' ? outcome.error.message : outcome.status}`);
  } finally {
    await writer.close();
  }
}
