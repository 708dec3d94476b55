// `fsguard status` for a person: one screen. Every string that may have come from the
// network (user names, user agents, the policy's sentences quoting them, FreeSWITCH's own
// headers) goes through terminalSafe.
import { formatDuration } from '../text/duration.js';

/** At a glance: whole seconds, the two largest units ("3d4h", "2m5s"). */
const dur = (seconds: number): string => formatDuration(Math.max(0, Math.round(seconds)), 2);
import type { StatusReport } from './report.js';
import { terminalSafe } from './terminal-safe.js';
import { isoTimeMs } from '../text/iso-time.js';

const n = (x: number): string => x.toLocaleString('en-US');
/** `1 batch`, `2 batches`: `word` is the singular, `many` the plural when not word+s. */
const count = (x: number, word: string, many = `${word}s`): string => `${n(x)} ${x === 1 ? word : many}`;
const ago = (iso: string | null, nowMs: number): string => (iso === null ? '' : `${dur((nowMs - Date.parse(iso)) / 1000)} ago`);
const counts = (r: Readonly<Record<string, number>>): string =>
  Object.entries(r).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([k, v]) => `${terminalSafe(k.replace(/^sofia::/, ''), 40)} ${n(v)}`).join(', ');

const LABEL = 18;
const line = (label: string, text: string): string => `${label.padEnd(LABEL)}${text}`;

export function renderStatus(r: StatusReport, nowMs: number): string {
  const out: string[] = [];
  out.push(`fsguard is running (pid ${r.daemon.pid}, up ${dur(r.daemon.uptimeSeconds)}), config ${terminalSafe(r.daemon.config)}`);
  const es = r.eventSocket;
  const fs = es.freeswitch;
  const who = fs ? ` — FreeSWITCH ${terminalSafe(fs.version || 'version unknown', 60)} on ${terminalSafe(fs.hostname || 'an unnamed host', 60)}${fs.uptimeSeconds !== null ? `, up ${dur(fs.uptimeSeconds)}` : ''}` : ' — FreeSWITCH not identified yet (it says who it is in its HEARTBEAT, every 20 s)';
  if (es.state === 'connected') {
    out.push(line('event socket', `connected to ${terminalSafe(es.endpoint)} since ${es.since ?? '?'} (${ago(es.since, nowMs)})${who}`));
  } else {
    const why = es.lastProblem ? `: ${terminalSafe(es.lastProblem)}` : '';
    out.push(line('event socket', `NOT CONNECTED to ${terminalSafe(es.endpoint)} (${es.state}${why})${es.since ? ` since ${es.since} (${ago(es.since, nowMs)})` : ''}`));
  }
  out.push(line('profiles', `watched: ${r.profiles.watched === 'all' ? 'all' : r.profiles.watched.map((p) => terminalSafe(p, 64)).join(', ')}; seen: ${r.profiles.seen.length ? r.profiles.seen.map((p) => terminalSafe(p, 64)).join(', ') : 'none yet'}`));
  const ev = r.events.lastMinute;
  out.push(line(`events ${r.events.windowSeconds >= 60 ? 'last min' : `last ${r.events.windowSeconds}s`}`, ev.total ? `${n(ev.total)}: ${counts(ev.byKind)}` : 'none'));
  const profiles = Object.entries(ev.byProfile).sort();
  if (profiles.length > 1) for (const [profile, byKind] of profiles) out.push(line('', `  ${terminalSafe(profile || '(no profile)', 64)}: ${counts(byKind)}`));
  out.push(line('', `${n(r.events.sinceStart)} since start; ${count(r.trackedSources, 'source')} tracked`));
  for (const f of r.fullTables) {
    const what = f.setting === 'maxTrackedAccounts' ? 'authentications of accounts left untracked' : 'proofs kept among the unproven sources';
    out.push(line('TABLE FULL', `${f.table} (policy.${f.setting}): ${n(f.leftOut)} ${what} since start; raise ${f.setting}`));
  }
  const b = r.bans.now;
  const parts = ([[b.ipv4Hosts, 'IPv4 host'], [b.ipv4Prefixes, 'IPv4 prefix'], [b.ipv6Hosts, 'IPv6 host'], [b.ipv6Prefixes, 'IPv6 prefix']] as const).filter(([c]) => c > 0).map(([c, what]) => count(c, what, what.endsWith('x') ? `${what}es` : `${what}s`));
  out.push(line('bans now', `${n(b.total)}${parts.length ? ` (${parts.join(', ')})` : ''}${r.bans.unwritten ? `; ${n(r.bans.unwritten)} NOT YET WRITTEN to the kernel (retrying)` : ''}`));
  out.push(line('bans since start', r.bans.sinceStart.total ? `${n(r.bans.sinceStart.total)}: ${counts(r.bans.sinceStart.byRule)}` : 'none'));
  if (r.nearestThresholds.length) {
    out.push('closest to a threshold');
    for (const t of r.nearestThresholds) {
      out.push(`  ${terminalSafe(t.source, 45).padEnd(24)} ${terminalSafe(t.profile || '-', 20).padEnd(10)} ${terminalSafe(t.rule, 40).padEnd(22)} ${n(t.value)}/${n(t.threshold)} (${Math.round(t.fraction * 100)}%)`);
    }
  } else {
    out.push(line('near threshold', 'nobody near one'));
  }
  const alertKinds = Object.keys(r.alerts.sinceStart).length ? counts(r.alerts.sinceStart) : 'none';
  out.push(line('alerts', `since start: ${alertKinds}`));
  for (const a of r.alerts.latest) {
    // The policy's message names the user, the source and the user agent (escaped here).
    out.push(`  ${a.at} ${terminalSafe(a.kind, 40)}${a.profile ? ` (${terminalSafe(a.profile, 40)})` : ''}: ${terminalSafe(a.message, 300)}`);
  }
  const w = r.nftWriter;
  out.push(line('nft writer', `${w.healthy ? 'ok' : 'TROUBLE'}: ${count(w.batches, 'batch', 'batches')}, ${count(w.errors, 'error')}, ${n(w.queued)} queued; table ${terminalSafe(w.table)}${w.lastError ? `; last error ${w.lastErrorAt} (${ago(w.lastErrorAt, nowMs)}): ${terminalSafe(w.lastError, 200)}` : ''}`));
  if (r.notifications.length) {
    for (const c of r.notifications) {
      out.push(line(`notify ${c.channel}`, `${c.kinds.join(', ')}: ${n(c.messages)} sent, ${count(c.failures, 'failed attempt')}, ${count(c.droppedNotices, 'notice')} lost${c.lastError ? `; last error ${ago(c.lastErrorAtMs === null ? null : isoTimeMs(c.lastErrorAtMs), nowMs)}: ${terminalSafe(c.lastError, 200)}` : ''}`));
    }
  } else {
    out.push(line('notifications', 'off (notify.mail / notify.webhook)'));
  }
  const c = r.cluster;
  if (c !== null) {
    const differ = c.nodes.filter((x) => !x.sameDigest);
    const peers = c.nodes.length ? `; ${count(c.nodes.length, 'other node')}: ${c.nodes.map((x) => terminalSafe(x.node, 64)).join(', ')}` : '; no other node seen';
    const state = c.state === 'down'
      ? `REDIS UNREACHABLE${c.downSince ? ` since ${c.downSince} (${ago(c.downSince, nowMs)})` : ''}${c.lastProblem ? `: ${terminalSafe(c.lastProblem, 200)}` : ''}; protecting with this node's events alone, ${n(c.queued)} queued for Redis`
      : `${c.state} on ${terminalSafe(c.redis)}${c.queued ? `, ${n(c.queued)} queued` : ''}`;
    out.push(line('cluster', `node ${terminalSafe(c.node, 64)}, ${state}; policy digest ${c.digest}${peers}`));
    if (differ.length) out.push(line('', `POLICY DIGEST DIFFERS on ${differ.map((x) => `${terminalSafe(x.node, 64)} (${terminalSafe(x.digest, 64)})`).join(', ')}: their bans will differ; align their policy settings`));
  }
  return `${out.join('\n')}\n`;
}
