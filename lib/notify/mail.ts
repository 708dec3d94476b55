// Mail delivery through nodemailer: the host's sendmail (its MTA queues and relays), or SMTP
// with STARTTLS required (not merely offered: a server that does not offer it is refused, so
// the password never crosses in clear) or implicit TLS, and AUTH when a user is set.
import { readFileSync } from 'node:fs';
import type { Transporter } from 'nodemailer';
import type { MailConfig } from './config.js';
import { DeliveryError, type Transport } from './channel.js';
import { isDigest, mailBody, mailSubject, type NoticeBatch, type NoticeOrigin } from './notice.js';

/**
 * `timeoutMs` bounds connecting and the greeting; an idle socket gets twice that. nodemailer
 * is loaded here, on first use: a daemon without mail never loads it (it is most of the
 * notification code's start-up cost).
 */
export async function transporterFor(config: MailConfig, timeoutMs = 30_000): Promise<Transporter> {
  const { createTransport } = await import('nodemailer');
  if (config.transport === 'sendmail') {
    return createTransport({ sendmail: true, path: config.sendmailPath, newline: 'unix' });
  }
  const s = config.smtp;
  return createTransport({
    host: s.host,
    port: s.port,
    secure: s.security === 'tls',
    requireTLS: s.security === 'starttls',
    ignoreTLS: s.security === 'none',
    ...(s.user ? { auth: { user: s.user, pass: s.password } } : {}),
    ...(s.caFile ? { tls: { ca: readFileSync(s.caFile) } } : {}),
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: 2 * timeoutMs,
    // nodemailer logs nothing unless asked; keep it that way (its debug log shows AUTH).
    logger: false,
    debug: false,
  });
}

export class MailTransport implements Transport {
  readonly channel = 'mail' as const;
  private transporter: Promise<Transporter> | null = null;

  constructor(private readonly config: MailConfig, private readonly origin: NoticeOrigin) {}

  async send(batch: NoticeBatch, deliveryId: string): Promise<void> {
    try {
      this.transporter ??= transporterFor(this.config);
      const transporter = await this.transporter;
      await transporter.sendMail({
        from: this.config.from,
        to: [...this.config.to],
        subject: mailSubject(batch, this.origin),
        text: mailBody(batch, this.origin),
        headers: { 'X-Fsguard-Delivery': deliveryId, 'X-Fsguard-Digest': isDigest(batch) ? 'yes' : 'no' },
      });
    } catch (err) {
      const e = err as Error & { responseCode?: number; code?: string };
      // A 5xx answer to the message itself (rejected recipient, say) will not get better;
      // connection, TLS, auth and 4xx troubles may.
      const permanent = typeof e.responseCode === 'number' && e.responseCode >= 550 && e.code === 'EENVELOPE';
      throw new DeliveryError(`mail via ${this.config.transport === 'smtp' ? `${this.config.smtp.host}:${this.config.smtp.port}` : this.config.sendmailPath} failed: ${e.code ? `${e.code} ` : ''}${e.message}`, !permanent);
    }
  }

  async close(): Promise<void> {
    if (this.transporter) (await this.transporter).close();
  }
}
