// What a notification says: one notice (a ban, an unban, an alert) or a digest of many, and
// how it is written for a chat (Slack/Mattermost `text`) and for mail. Everything that came
// from the network (user names, user agents, the policy's sentences that quote them) is
// escaped here, in the one place that renders it.
import type { NoticeKind } from './config.js';
import { terminalSafe } from '../status/terminal-safe.js';
import { formatDuration } from '../text/duration.js';
import { isoTimeMs } from '../text/iso-time.js';

/** How many users / user agents a ban notice carries. */
export const NOTICE_SAMPLE = 5;

export interface BanNotice {
  readonly kind: 'ban';
  readonly atMs: number;
  readonly target: string;
  readonly rule: string;
  readonly seconds: number;
  readonly offence: number;
  readonly reason: string;
  readonly users: readonly string[];
  readonly userAgents: readonly string[];
}

export interface UnbanNotice {
  readonly kind: 'unban';
  readonly atMs: number;
  readonly target: string;
  readonly rule: string;
  /** expired: the kernel's timeout ran out; lifted: removed outside fsguard (`fsguard unban`). */
  readonly how: 'expired' | 'lifted';
}

export interface AlertNotice {
  readonly kind: 'alert';
  readonly atMs: number;
  readonly alert: string;
  readonly source: string;
  readonly profile: string;
  readonly user?: string;
  readonly userAgent?: string;
  readonly message: string;
}

export type Notice = BanNotice | UnbanNotice | AlertNotice;

/** One message to send: a single notice, or the notices of one digest interval. */
export interface NoticeBatch {
  readonly fromMs: number;
  readonly toMs: number;
  readonly total: number;
  readonly byKind: Readonly<Record<NoticeKind, number>>;
  /** Bans by rule. */
  readonly byRule: Readonly<Record<string, number>>;
  /** The first notices, in arrival order (at most digestFirst). */
  readonly first: readonly Notice[];
}

/** Who is speaking: the host fsguard runs on. */
export interface NoticeOrigin {
  readonly hostname: string;
}

const plural = (n: number, word: string): string => `${n.toLocaleString('en-US')} ${word}${n === 1 ? '' : 's'}`;

const duration = (seconds: number): string => formatDuration(seconds, 2);

/** Text that may quote the network (the policy's sentences), made safe for a chat message. */
function chatSentence(value: string): string {
  // Slack needs &, <, > as entities (else `<!channel>` pings everybody, `<http://x|y>` hides a
  // link); Mattermost's markdown decodes the same entities. Backticks and mention/markup
  // characters are escaped so a quoted name cannot open a span or ping anyone.
  return terminalSafe(value, 400).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
    .replace(/[`@\[]/g, (c) => `\\x${c.charCodeAt(0).toString(16)}`);
}

/** A value from the network (user, user agent), made safe for a chat message: inside a code span, nothing is markup. */
export function chatValue(value: string): string {
  const safe = terminalSafe(value, 120).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/`/g, '\\x60');
  return `\`${safe}\``;
}

/** A value from the network, made safe for a plain-text mail body. */
export function mailValue(value: string): string {
  return `"${terminalSafe(value, 200).replace(/"/g, '\\x22')}"`;
}

interface Quote {
  /** A value from the network, quoted. */
  readonly value: (value: string) => string;
  /** A sentence that may contain network text, escaped in place. */
  readonly sentence: (value: string) => string;
}

const CHAT: Quote = { value: chatValue, sentence: chatSentence };
const MAIL: Quote = { value: mailValue, sentence: (v) => terminalSafe(v, 400) };

function noticeLine(n: Notice, q: Quote): string {
  switch (n.kind) {
    case 'ban': {
      const who = [
        n.users.length ? `users ${n.users.map(q.value).join(', ')}` : '',
        n.userAgents.length ? `user agents ${n.userAgents.map(q.value).join(', ')}` : '',
      ].filter(Boolean).join('; ');
      return `banned ${n.target} for ${duration(n.seconds)} (${n.rule}${n.offence > 1 ? `, offence ${n.offence}` : ''}): ${q.sentence(n.reason)}${who ? ` — ${who}` : ''}`;
    }
    case 'unban':
      return `${n.how === 'expired' ? 'ban expired' : 'ban lifted by hand'}: ${n.target} (${n.rule})`;
    case 'alert': {
      const who = [
        n.user !== undefined ? `user ${q.value(n.user)}` : '',
        n.userAgent !== undefined ? `user agent ${q.value(n.userAgent)}` : '',
      ].filter(Boolean).join(', ');
      return `alert ${n.alert} from ${n.source} on profile ${q.value(n.profile)}: ${q.sentence(n.message)}${who ? ` (${who})` : ''}`;
    }
  }
}

function summary(b: NoticeBatch): string {
  const parts: string[] = [];
  if (b.byKind.ban) {
    const rules = Object.entries(b.byRule).sort((x, y) => y[1] - x[1]).map(([r, n]) => `${r} ${n.toLocaleString('en-US')}`).join(', ');
    parts.push(`${plural(b.byKind.ban, 'ban')}${rules ? ` (${rules})` : ''}`);
  }
  if (b.byKind.unban) parts.push(plural(b.byKind.unban, 'unban'));
  if (b.byKind.alert) parts.push(plural(b.byKind.alert, 'alert'));
  return parts.join(', ');
}

export function isDigest(b: NoticeBatch): boolean {
  return b.total > 1;
}

/** The subject line (mail) / first line (chat). Only fsguard's own words and validated addresses. */
export function batchTitle(b: NoticeBatch, origin: NoticeOrigin): string {
  const host = terminalSafe(origin.hostname, 64);
  if (isDigest(b)) return `fsguard on ${host}: ${summary(b)} in ${duration(Math.max(1, Math.round((b.toMs - b.fromMs) / 1000)))}`;
  const n = b.first[0]!;
  switch (n.kind) {
    case 'ban': return `fsguard on ${host}: banned ${n.target} (${n.rule})`;
    case 'unban': return `fsguard on ${host}: ${n.how === 'expired' ? 'ban expired' : 'ban lifted'} ${n.target}`;
    case 'alert': return `fsguard on ${host}: alert ${n.alert} from ${n.source}`;
  }
}

function lines(b: NoticeBatch, q: Quote): string[] {
  const out = b.first.map((n) => `${isoTimeMs(n.atMs)} ${noticeLine(n, q)}`);
  if (b.total > b.first.length) out.push(`… and ${plural(b.total - b.first.length, 'more notice')} (fsguard bans, journalctl -u fsguard)`);
  return out;
}

/** Slack/Mattermost `text`: the title in bold, one line per notice. */
export function chatText(b: NoticeBatch, origin: NoticeOrigin): string {
  return [`*${batchTitle(b, origin)}*`, ...lines(b, CHAT)].join('\n');
}

export function mailSubject(b: NoticeBatch, origin: NoticeOrigin): string {
  return batchTitle(b, origin);
}

export function mailBody(b: NoticeBatch, origin: NoticeOrigin): string {
  return [
    batchTitle(b, origin),
    '',
    ...lines(b, MAIL),
    '',
    'Values in quotes come from the network and are shown escaped (\\xNN).',
    '',
  ].join('\n');
}
