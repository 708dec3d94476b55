// The `notify` config section: who is told of bans, unbans and alerts, by mail and webhook.
// Kept apart from lib/config/config.ts (which only mounts it) so the section owns its schema,
// its semantic checks and what it hides.
import { readFileSync } from 'node:fs';

export const NOTICE_KINDS = ['ban', 'unban', 'alert'] as const;
export type NoticeKind = typeof NOTICE_KINDS[number];

export type SmtpSecurity = 'starttls' | 'tls' | 'none';

export interface MailConfig {
  /** What is mailed; empty = no mail. */
  readonly kinds: readonly NoticeKind[];
  readonly to: readonly string[];
  readonly from: string;
  readonly transport: 'sendmail' | 'smtp';
  readonly sendmailPath: string;
  readonly smtp: {
    readonly host: string;
    readonly port: number;
    /** starttls: plain connection upgraded, and refused if the server cannot; tls: TLS from the start. */
    readonly security: SmtpSecurity;
    readonly user: string;
    /** Never logged or printed. */
    readonly password: string;
    /** PEM file of the CA that signed the server's certificate; empty = the system's CAs. */
    readonly caFile: string;
  };
}

export interface WebhookConfig {
  readonly kinds: readonly NoticeKind[];
  readonly url: string;
  /** HMAC-SHA256 key for X-Fsguard-Signature; empty = unsigned. Never logged or printed. */
  readonly secret: string;
  readonly timeoutSeconds: number;
}

export interface NotifyConfig {
  /** Notices arriving within this many seconds of a message are sent as one digest. */
  readonly digestSeconds: number;
  /** How many notices a digest lists in full (the rest are counted). */
  readonly digestFirst: number;
  /** Attempts per message (the first and its retries). */
  readonly attempts: number;
  /** Cap of the exponential backoff between attempts. */
  readonly retryMaxSeconds: number;
  readonly mail: MailConfig;
  readonly webhook: WebhookConfig;
}

const kinds = { doc: 'Kinds to send: any of "ban", "unban", "alert"; empty = none', format: Array, default: [] as string[] };

export const notifySchema = {
  digestSeconds: { doc: 'Notices within this many seconds of the last message are batched into one digest', format: Number, default: 60 },
  digestFirst: { doc: 'Notices a digest lists in full; the rest are counted', format: 'int', default: 10 },
  attempts: { doc: 'Delivery attempts per message (first try and retries, exponential backoff)', format: 'int', default: 5 },
  retryMaxSeconds: { doc: 'Cap of the backoff between delivery attempts', format: Number, default: 300 },
  mail: {
    kinds,
    to: { doc: 'Recipients', format: Array, default: [] as string[] },
    from: { doc: 'Sender address', format: String, default: 'fsguard@localhost' },
    transport: { doc: '"sendmail" (the host\'s MTA) or "smtp"', format: ['sendmail', 'smtp'], default: 'sendmail' },
    sendmailPath: { doc: 'Path of the sendmail program', format: String, default: '/usr/sbin/sendmail' },
    smtp: {
      host: { doc: 'SMTP server', format: String, default: '127.0.0.1' },
      port: { doc: 'SMTP port', format: 'port', default: 587 },
      security: { doc: '"starttls" (required, not opportunistic), "tls" (implicit, port 465) or "none"', format: ['starttls', 'tls', 'none'], default: 'starttls' },
      user: { doc: 'SMTP user; empty = no authentication', format: String, default: '' },
      password: { doc: 'SMTP password (never logged or printed)', format: String, default: '', sensitive: true },
      caFile: { doc: 'PEM CA file for the server certificate; empty = system CAs', format: String, default: '' },
    },
  },
  webhook: {
    kinds,
    url: { doc: 'http(s) URL receiving a JSON POST (Slack/Mattermost-compatible "text")', format: String, default: '' },
    secret: { doc: 'HMAC-SHA256 key of the X-Fsguard-Signature header (never logged or printed)', format: String, default: '', sensitive: true },
    timeoutSeconds: { doc: 'Time limit of one delivery attempt', format: Number, default: 10 },
  },
};

// A plain address check: enough to catch a typo or a line break, not an RFC 5322 parser.
const MAIL_ADDRESS = /^[^\s@<>",;]+@[^\s@<>",;]+$/;

function kindProblems(key: string, value: readonly unknown[]): string[] {
  return value.flatMap((k, i) => ((NOTICE_KINDS as readonly unknown[]).includes(k) ? [] : [`${key}[${i}]: not one of ${NOTICE_KINDS.join(', ')}: ${JSON.stringify(k)}`]));
}

/** What convict's formats cannot check; each problem names its key, none shows a secret. */
export function notifyProblems(n: NotifyConfig): string[] {
  const problems: string[] = [];
  if (!Number.isFinite(n.digestSeconds) || n.digestSeconds < 1) problems.push(`notify.digestSeconds: must be a number >= 1, got ${JSON.stringify(n.digestSeconds)}`);
  if (n.digestFirst < 1 || n.digestFirst > 1000) problems.push(`notify.digestFirst: must be 1 to 1000, got ${n.digestFirst}`);
  if (n.attempts < 1 || n.attempts > 100) problems.push(`notify.attempts: must be 1 to 100, got ${n.attempts}`);
  if (!Number.isFinite(n.retryMaxSeconds) || n.retryMaxSeconds < 1) problems.push(`notify.retryMaxSeconds: must be a number >= 1, got ${JSON.stringify(n.retryMaxSeconds)}`);
  const m = n.mail;
  problems.push(...kindProblems('notify.mail.kinds', m.kinds));
  m.to.forEach((a, i) => { if (typeof a !== 'string' || !MAIL_ADDRESS.test(a)) problems.push(`notify.mail.to[${i}]: not a mail address: ${JSON.stringify(a)}`); });
  if (!MAIL_ADDRESS.test(m.from)) problems.push(`notify.mail.from: not a mail address: ${JSON.stringify(m.from)}`);
  if (m.kinds.length && !m.to.length) problems.push('notify.mail.to: needed when notify.mail.kinds is set');
  if (m.kinds.length && m.transport === 'smtp') {
    if (!m.smtp.host.trim()) problems.push('notify.mail.smtp.host: must not be empty');
    if (m.smtp.password && !m.smtp.user) problems.push('notify.mail.smtp.user: needed with notify.mail.smtp.password');
    if (m.smtp.user && m.smtp.security === 'none') problems.push('notify.mail.smtp.security: "none" would send the password in clear; use "starttls" or "tls"');
    if (m.smtp.caFile) {
      try { readFileSync(m.smtp.caFile); } catch (err) { problems.push(`notify.mail.smtp.caFile: cannot read ${JSON.stringify(m.smtp.caFile)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`); }
    }
  }
  if (m.kinds.length && m.transport === 'sendmail' && !m.sendmailPath.startsWith('/')) problems.push(`notify.mail.sendmailPath: must be an absolute path, got ${JSON.stringify(m.sendmailPath)}`);
  const w = n.webhook;
  problems.push(...kindProblems('notify.webhook.kinds', w.kinds));
  if (w.url) {
    let url: URL | null = null;
    try { url = new URL(w.url); } catch { /* reported below */ }
    // The URL may carry a token (Slack's do): it is never echoed back.
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) problems.push('notify.webhook.url: must be an http:// or https:// URL');
  } else if (w.kinds.length) {
    problems.push('notify.webhook.url: needed when notify.webhook.kinds is set');
  }
  if (!Number.isFinite(w.timeoutSeconds) || w.timeoutSeconds <= 0) problems.push(`notify.webhook.timeoutSeconds: must be a number > 0, got ${JSON.stringify(w.timeoutSeconds)}`);
  return problems;
}

const REDACTED = '[redacted]';

/** The section as it may be shown: secrets and the webhook URL's path and query (Slack puts its token there) hidden. */
export function redactedNotify(n: NotifyConfig): NotifyConfig {
  return {
    ...n,
    mail: { ...n.mail, smtp: { ...n.mail.smtp, password: n.mail.smtp.password ? REDACTED : '' } },
    webhook: { ...n.webhook, url: redactedUrl(n.webhook.url), secret: n.webhook.secret ? REDACTED : '' },
  };
}

/** scheme://host[:port]/… — enough to say where it goes, nothing that authenticates. */
export function redactedUrl(text: string): string {
  if (!text) return '';
  try {
    const u = new URL(text);
    return `${u.protocol}//${u.host}${u.pathname === '/' && !u.search ? '/' : '/…'}`;
  } catch {
    return REDACTED;
  }
}
