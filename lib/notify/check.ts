// `fsguard check`'s notification lines: what is configured, said without secrets, and for
// SMTP a real login (connect, STARTTLS, AUTH — no message sent). A webhook is not called:
// a test message would land in somebody's channel.
import { accessSync, constants } from 'node:fs';
import type { NotifyConfig } from './config.js';
import { redactedUrl } from './config.js';
import { transporterFor } from './mail.js';

const VERIFY_TIMEOUT_MS = 10_000;

/** Lines for what works, problems for what does not (each names its key; no secret). */
export async function checkNotify(n: NotifyConfig): Promise<{ ok: string[]; problems: string[] }> {
  const ok: string[] = [];
  const problems: string[] = [];
  const m = n.mail;
  if (m.kinds.length) {
    const what = `${m.kinds.join(', ')} to ${m.to.join(', ')}`;
    if (m.transport === 'sendmail') {
      try {
        accessSync(m.sendmailPath, constants.X_OK);
        ok.push(`notify: mail ${what} via ${m.sendmailPath}`);
      } catch {
        problems.push(`notify: notify.mail.sendmailPath ${m.sendmailPath} is not an executable program (install an MTA, or use notify.mail.transport "smtp")`);
      }
    } else {
      const where = `${m.smtp.host}:${m.smtp.port} (${m.smtp.security}${m.smtp.user ? `, user ${m.smtp.user}` : ''})`;
      const transporter = await transporterFor(m, VERIFY_TIMEOUT_MS);
      try {
        await transporter.verify();
        ok.push(`notify: mail ${what} via SMTP ${where}: logged in`);
      } catch (err) {
        const e = err as Error & { code?: string };
        problems.push(`notify: SMTP ${where}: ${e.code ? `${e.code} ` : ''}${e.message}`);
      } finally {
        transporter.close();
      }
    }
  }
  if (n.webhook.kinds.length) {
    ok.push(`notify: webhook ${n.webhook.kinds.join(', ')} to ${redactedUrl(n.webhook.url)}${n.webhook.secret ? ', signed (X-Fsguard-Signature)' : ', unsigned (set notify.webhook.secret)'}; not called by check`);
  }
  if (!ok.length && !problems.length) ok.push('notify: off');
  return { ok, problems };
}
