// `fsguard policy`: the effective policy in plain words, `simulate` (replay traces through the
// daemon's normalization and policy, no nft) and `explain` (the evidence trail of one source).
//
// simulate with several traces replays them as one stream through one policy, in the order
// given (as consecutive captures: state carries over); `events` counts the non-blank lines of
// all of them and `event_index` continues from one trace to the next.
import type { Writable } from 'node:stream';
import type { AuthEvent } from '../events/auth-event.js';
import type { CallEvent } from '../events/call-event.js';
import { parseCidr, parseIp, cidrContainsIp, isHostCidr, type Cidr } from '../net/ip.js';
import { createPolicy, EMPTY_OUTPUT, type EvidenceSnapshot, type RatePolicy, type RuleStatus } from '../policy/engine.js';
import { describeOverrides, describePolicy, policyAsJson } from '../policy/describe.js';
import type { PolicySettings } from '../policy/settings.js';
import type { BanDecision, PolicyAlert, PolicyOutput } from '../policy/types.js';
import { isoTimeUs } from '../text/iso-time.js';
import { scanTrace, STDIN_TRACE, traceLabel, type TraceVisitor } from '../trace/read-trace.js';
import { terminalSafe } from '../text/terminal.js';

export interface PolicyCommandContext {
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly settings: PolicySettings;
  readonly profileOverrides: Record<string, Partial<PolicySettings>>;
  readonly watchedProfiles: string[] | null;
}

const USAGE = `usage: fsguard policy [--json]
       fsguard policy simulate TRACE... [--json]
       fsguard policy explain ADDR|PREFIX --trace FILE [--trace FILE...] [--json]`;

class PolicyUsageError extends Error {}

/**
 * Human output shows attacker text (user names, user agents, call-ids inside reasons and event
 * descriptions) through terminalSafe, cut to this many characters; --json stays exact.
 */
const REASON_CHARS = 400;

interface Parsed {
  readonly positionals: string[];
  readonly json: boolean;
  readonly traces: string[];
}

function parse(argv: readonly string[], allowTrace: boolean): Parsed {
  const positionals: string[] = [];
  const traces: string[] = [];
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') json = true;
    else if (allowTrace && (a === '--trace' || a.startsWith('--trace='))) {
      const v = a === '--trace' ? argv[++i] : a.slice('--trace='.length);
      if (!v) throw new PolicyUsageError('--trace needs a file');
      traces.push(v);
    } else if (a === '--') positionals.push(...argv.slice(i + 1)), i = argv.length;
    else if (a.startsWith('--')) throw new PolicyUsageError(`unknown option ${a}`);
    else positionals.push(a);
  }
  return { positionals, json, traces };
}

function write(stream: Writable, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(text, (err) => (err ? reject(err) : resolve()));
  });
}

export async function runPolicyCommand(argv: string[], ctx: PolicyCommandContext): Promise<number> {
  try {
    const [sub, ...rest] = argv;
    if (sub === 'simulate') return await simulate(parse(rest, false), ctx);
    if (sub === 'explain') return await explain(parse(rest, true), ctx);
    if (sub === 'help' || sub === '--help' || sub === '-h') { await write(ctx.stdout, `${USAGE}\n`); return 0; }
    if (sub !== undefined && !sub.startsWith('--')) throw new PolicyUsageError(`unknown subcommand ${JSON.stringify(sub)}`);
    const p = parse(argv, false);
    if (p.positionals.length) throw new PolicyUsageError(`unexpected argument ${JSON.stringify(p.positionals[0])}`);
    return await show(p, ctx);
  } catch (err) {
    if (err instanceof PolicyUsageError) {
      await write(ctx.stderr, `fsguard policy: ${err.message}\n${USAGE}\n`);
      return 2;
    }
    await write(ctx.stderr, `fsguard policy: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}

// ------------------------------------------------------------------ fsguard policy

async function show(p: Parsed, ctx: PolicyCommandContext): Promise<number> {
  if (p.json) {
    const profiles: Record<string, unknown> = {};
    for (const [name, o] of Object.entries(ctx.profileOverrides)) {
      profiles[name] = { overrides: o, watched: ctx.watchedProfiles === null || ctx.watchedProfiles.includes(name) };
    }
    await write(ctx.stdout, `${JSON.stringify({ policy: policyAsJson(ctx.settings), profiles, watchedProfiles: ctx.watchedProfiles }, null, 2)}\n`);
    return 0;
  }
  const lines = [...describePolicy(ctx.settings), '', ...describeOverrides(ctx.settings, ctx.profileOverrides, ctx.watchedProfiles)];
  await write(ctx.stdout, `${lines.join('\n')}\n`);
  return 0;
}

// ------------------------------------------------------------------ replay

interface ReplayStats {
  lines: number;
  malformed: number;
  dropped: Record<string, number>;
}

/**
 * Feeds every trace through one policy; calls `visit` after each record (non-blank line) with
 * its index, its event (null when it was dropped or malformed) and what the policy decided for
 * it. Malformed lines go to stderr with their file and line number.
 */
async function replay(
  traces: readonly string[],
  ctx: PolicyCommandContext,
  policy: RatePolicy,
  visit: (index: number, event: AuthEvent | CallEvent | null, out: PolicyOutput) => void,
): Promise<ReplayStats> {
  const stats: ReplayStats = { lines: 0, malformed: 0, dropped: {} };
  const profiles = ctx.watchedProfiles ? new Set(ctx.watchedProfiles) : null;
  let stderr: string[] = [];
  if (traces.filter((name) => name === STDIN_TRACE).length > 1) throw new PolicyUsageError('standard input (-) can be given only once');
  for (const path of traces) {
    const visitor: TraceVisitor = {
      event: (event, index) => { visit(index, event, policy.observe(event)); },
      call: (event, index) => { visit(index, event, policy.observeCall(event)); },
      dropped: (reason, _detail, index) => {
        stats.dropped[reason] = (stats.dropped[reason] ?? 0) + 1;
        visit(index, null, EMPTY_OUTPUT);
      },
      malformed: (detail, index, line) => {
        stats.malformed++;
        stderr.push(`${terminalSafe(traceLabel(path))}:${line}: malformed line (event ${index}) skipped: ${terminalSafe(detail)}\n`);
        visit(index, null, EMPTY_OUTPUT);
      },
      chunkDone: async () => {
        if (stderr.length === 0) return;
        const text = stderr.join('');
        stderr = [];
        await write(ctx.stderr, text);
      },
    };
    stats.lines += await scanTrace(path, { profiles, firstIndex: stats.lines }, visitor);
  }
  if (stderr.length) await write(ctx.stderr, stderr.join(''));
  // The daemon's timers keep running after the last event: challenges still awaiting an
  // answer time out, as they would have there. Their decisions belong to the last record.
  const tail = policy.drain();
  if (stats.lines > 0) visit(stats.lines - 1, null, tail);
  return stats;
}

interface BanRow {
  readonly target: string;
  readonly event_index: number;
  readonly at: string;
  readonly seconds: number;
  readonly rule: string;
  readonly reason: string;
}

interface AlertRow {
  readonly kind: string;
  readonly source: string;
  readonly profile: string;
  readonly user?: string;
  readonly user_agent?: string;
  readonly account?: string;
  readonly numbers?: readonly string[];
  readonly event_index: number;
  readonly at: string;
  readonly message: string;
}

function banRow(b: BanDecision, index: number): BanRow {
  return { target: b.target.cidr.text, event_index: index, at: isoTimeUs(b.atUs), seconds: b.seconds, rule: b.rule, reason: b.reason };
}

function alertRow(a: PolicyAlert, index: number): AlertRow {
  return {
    kind: a.kind,
    source: a.source,
    profile: a.profile,
    ...(a.user !== undefined ? { user: a.user } : {}),
    ...(a.userAgent !== undefined ? { user_agent: a.userAgent } : {}),
    ...(a.account !== undefined ? { account: a.account } : {}),
    ...(a.numbers !== undefined ? { numbers: a.numbers } : {}),
    event_index: index,
    at: isoTimeUs(a.atUs),
    message: a.message,
  };
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.min(48, Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length))));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(header), ...rows.map(line)].join('\n');
}

async function simulate(p: Parsed, ctx: PolicyCommandContext): Promise<number> {
  if (p.positionals.length === 0) throw new PolicyUsageError('simulate needs at least one TRACE');
  const policy = createPolicy(ctx.settings, ctx.profileOverrides);
  const bans: BanRow[] = [];
  const alerts: AlertRow[] = [];
  const stats = await replay(p.positionals, ctx, policy, (index, _event, out) => {
    for (let i = 0; i < out.bans.length; i++) bans.push(banRow(out.bans[i]!, index));
    for (let i = 0; i < out.alerts.length; i++) alerts.push(alertRow(out.alerts[i]!, index));
  });
  if (p.json) {
    await write(ctx.stdout, `${JSON.stringify({ events: stats.lines, bans, alerts, malformed: stats.malformed, dropped: stats.dropped })}\n`);
    return 0;
  }
  const out: string[] = [];
  out.push(`${stats.lines} events read from ${p.positionals.length} trace${p.positionals.length === 1 ? '' : 's'}` +
    `${stats.malformed ? `, ${stats.malformed} malformed` : ''}` +
    `${Object.keys(stats.dropped).length ? `, dropped: ${Object.entries(stats.dropped).map(([k, v]) => `${k} ${v}`).join(', ')}` : ''}.`);
  out.push('');
  if (bans.length === 0) out.push('No bans.');
  else {
    out.push(`${bans.length} ban${bans.length === 1 ? '' : 's'}:`);
    out.push(table(['EVENT', 'TIME', 'TARGET', 'SECONDS', 'RULE', 'REASON'],
      bans.map((b) => [String(b.event_index), b.at, b.target, String(b.seconds), b.rule, terminalSafe(b.reason, REASON_CHARS)])));
  }
  out.push('');
  if (alerts.length === 0) out.push('No alerts.');
  else {
    out.push(`${alerts.length} alert${alerts.length === 1 ? '' : 's'}:`);
    out.push(table(['EVENT', 'TIME', 'KIND', 'SOURCE', 'MESSAGE'],
      alerts.map((a) => [String(a.event_index), a.at, a.kind, a.source, terminalSafe(a.message, REASON_CHARS)])));
  }
  await write(ctx.stdout, `${out.join('\n')}\n`);
  return 0;
}

// ------------------------------------------------------------------ explain

interface TrailEntry {
  readonly event_index: number;
  readonly at: string;
  readonly source: string;
  readonly event: string;
  readonly counted: string[];
  readonly state: Record<string, string>;
  readonly decided?: string;
}

function describeEvent(e: AuthEvent | CallEvent | null): string {
  if (e === null) return 'time passed (a challenge timed out)';
  const ua = e.userAgent ? ` ua ${JSON.stringify(e.userAgent.slice(0, 48))}` : '';
  switch (e.kind) {
    case 'call': return `call to ${JSON.stringify(e.destination.slice(0, 32))} in ${e.context || '?'} ${e.outcome} (${e.hangupCause})${e.account !== null ? ` by account ${e.account}` : ' unauthenticated'}${ua}`;
    case 'challenge': return `challenge ${e.fromUser}→${e.toUser} call-id ${e.callId.slice(0, 16)}${ua}`;
    case 'attempt': return `attempt ${e.result.toUpperCase()} user ${e.authUser || e.fromUser}${ua}`;
    case 'failure': return `failure ${e.method} ${e.toUser}${ua}`;
    case 'registered': return `registered ${e.authUser}${ua}`;
  }
}

function ruleValue(r: RuleStatus): string {
  const v = Number.isInteger(r.value) ? String(r.value) : r.value.toFixed(2);
  return `${v}/${r.threshold}`;
}

/** What a rule whose window has no count kept in the profile's length shows (RuleStatus.uncounted). */
const UNCOUNTED = "(no count kept in this window's length: none of this evidence came over a profile with it yet, so the verdict reads 0) ";

function stateSummary(s: EvidenceSnapshot): Record<string, string> {
  const out: Record<string, string> = {
    proven: s.proven ? 'yes' : s.answered ? 'no (but real: answered a challenge)' : 'no',
  };
  for (const r of s.rules) if (r.applies || r.value > 0) out[r.rule] = `${ruleValue(r)}${r.applies ? '' : ' (does not apply)'}${r.uncounted ? ' (no count kept in this window\'s length)' : ''}`;
  return out;
}

async function explain(p: Parsed, ctx: PolicyCommandContext): Promise<number> {
  if (p.positionals.length !== 1) throw new PolicyUsageError('explain needs exactly one ADDR or PREFIX');
  if (p.traces.length === 0) throw new PolicyUsageError('explain needs --trace FILE');
  const raw = p.positionals[0]!;
  const cidr: Cidr | null = parseCidr(raw);
  if (!cidr) throw new PolicyUsageError(`not an address or prefix: ${JSON.stringify(raw)}`);
  const isHost = isHostCidr(cidr);
  const policy = createPolicy(ctx.settings, ctx.profileOverrides);
  // The policy tracks a prefix under its configured length: explain of a /64 follows that key.
  const target = cidr.text;
  const trail: TrailEntry[] = [];
  const bans: BanRow[] = [];
  let version = 0;
  let before: EvidenceSnapshot | null = null;
  // Each step is inspected with the profile the verdict judged the target with at it (its
  // events may come over several profiles, each with windows of its own).
  const stats = await replay(p.traces, ctx, policy, (index, e, out) => {
    const mine = e !== null && (isHost ? e.source.text === target : cidrContainsIp(cidr, e.source));
    const v = policy.stateVersion(target);
    const decided = out.bans.filter((b) => b.target.cidr.text === target || (cidrContainsIp(b.target.cidr, parseIp(cidr.network)!) && b.target.cidr.prefixLength <= cidr.prefixLength));
    if (!mine && v === version && decided.length === 0) return;
    version = v;
    const after = policy.inspect(target);
    const counted: string[] = [];
    if (after) {
      for (const r of after.rules) {
        const old = before?.rules.find((x) => x.rule === r.rule);
        if (r.value > (old ? old.value : 0) + 1e-9) counted.push(`${r.rule} ${ruleValue(r)}`);
      }
    }
    for (const b of decided) bans.push(banRow(b, index));
    trail.push({
      event_index: index,
      at: e ? isoTimeUs(e.timeUs) : '',
      source: e ? e.source.text : '',
      event: mine || e === null ? describeEvent(e) : `${describeEvent(e)} (another source; time passed)`,
      counted,
      state: after ? stateSummary(after) : {},
      ...(decided.length ? { decided: decided.map((b) => `BANNED ${b.target.cidr.text} for ${b.seconds} s by ${b.rule}: ${b.reason}`).join('; ') } : {}),
    });
    before = after;
  });
  const final = policy.inspect(target);
  const verdict = verdictText(target, final, bans);
  const prefixNote = isHost && cidr.family === 6 ? policy.prefixOf(parseIp(cidr.network)!) : null;
  const prefixFinal = prefixNote ? policy.inspect(prefixNote) : null;
  if (p.json) {
    await write(ctx.stdout, `${JSON.stringify({ target, events: stats.lines, trail, bans, final, verdict, prefix: prefixFinal })}\n`);
    return 0;
  }
  const out: string[] = [];
  out.push(`Evidence trail for ${target} (${trail.length} steps over ${stats.lines} events):`);
  // After a ban the policy ignores the source until it ends: collapse those steps (the
  // JSON form keeps every one).
  let banned = false;
  let ignored = 0;
  const flushIgnored = (): void => {
    if (ignored) out.push(`  … ${ignored} more event${ignored === 1 ? '' : 's'} while banned (ignored by the policy)`);
    ignored = 0;
  };
  for (const t of trail) {
    if (banned && !t.counted.length && !t.decided) { ignored++; continue; }
    flushIgnored();
    out.push(`  #${t.event_index} ${t.at} ${t.source === target ? '' : `${t.source} `}${terminalSafe(t.event, REASON_CHARS)}`);
    if (t.counted.length) out.push(`      counted toward: ${t.counted.join(', ')}`);
    if (t.decided) { out.push(`      ${terminalSafe(t.decided, REASON_CHARS)}`); banned = true; }
  }
  flushIgnored();
  out.push('');
  out.push(...verdict.map((line) => terminalSafe(line, REASON_CHARS)));
  if (final) {
    out.push('');
    out.push('Distance to each rule at the end of the trace:');
    for (const r of final.rules) out.push(`  ${r.rule.padEnd(40)} ${ruleValue(r).padStart(12)}  ${r.applies ? '' : '(does not apply) '}${r.uncounted ? UNCOUNTED : ''}${terminalSafe(r.description, REASON_CHARS)}`);
  }
  if (prefixFinal) {
    out.push('');
    out.push(`Its prefix ${prefixFinal.target}: ${prefixFinal.proven ? 'holds a proven host: never banned as a whole' : `${prefixFinal.addresses} addresses with evidence`}${prefixFinal.bannedRule ? `, banned by ${prefixFinal.bannedRule}` : ''}.`);
  }
  await write(ctx.stdout, `${out.join('\n')}\n`);
  return 0;
}

function verdictText(target: string, s: EvidenceSnapshot | null, bans: readonly BanRow[]): string[] {
  const out: string[] = [];
  if (bans.length) {
    for (const b of bans) out.push(`BANNED: ${b.target} at event ${b.event_index} (${b.at}) for ${b.seconds} s by ${b.rule}: ${b.reason}`);
    return out;
  }
  if (!s) { out.push(`NOT BANNED: ${target} never appeared in the trace (or was not tracked).`); return out; }
  if (s.allowed) { out.push(`NOT BANNED: ${target} is allow-listed (or FreeSWITCH's own address).`); return out; }
  const why: string[] = [];
  if (s.proven) why.push('it is proven legitimate (a successful authentication), so its unanswered challenges and attack-tool user agents prove nothing and its failing users are treated as misprovisioned phones');
  const closest = s.rules.filter((r) => r.applies && r.threshold > 0).map((r) => ({ r, f: r.value / r.threshold })).sort((a, b) => b.f - a.f)[0];
  if (closest) why.push(`closest rule ${closest.r.rule} at ${ruleValue(closest.r)} (${Math.round(closest.f * 100)}% of its threshold)`);
  out.push(`NOT BANNED: ${target}: ${why.join('; ') || 'no evidence'}.`);
  return out;
}
