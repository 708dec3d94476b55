// Webhook delivery: a JSON POST whose `text` is what Slack's and Mattermost's incoming
// webhooks show, with the notices themselves beside it for receivers that parse them.
//
// Signature (when notify.webhook.secret is set):
//   X-Fsguard-Timestamp: <unix seconds of this attempt>
//   X-Fsguard-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>
// A receiver recomputes it over the raw body and rejects stale timestamps (replays).
// X-Fsguard-Delivery is one id per message, the same on every retry (deduplication).
import { createHmac } from 'node:crypto';
import type { WebhookConfig } from './config.js';
import { redactedUrl } from './config.js';
import { DeliveryError, type Transport } from './channel.js';
import { chatText, isDigest, type NoticeBatch, type NoticeOrigin } from './notice.js';
import { isoTimeMs } from '../text/iso-time.js';

export const SIGNATURE_HEADER = 'x-fsguard-signature';
export const TIMESTAMP_HEADER = 'x-fsguard-timestamp';
export const DELIVERY_HEADER = 'x-fsguard-delivery';

export function webhookSignature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export function webhookBody(batch: NoticeBatch, origin: NoticeOrigin): string {
  return JSON.stringify({
    text: chatText(batch, origin),
    fsguard: {
      host: origin.hostname,
      digest: isDigest(batch),
      from: isoTimeMs(batch.fromMs),
      to: isoTimeMs(batch.toMs),
      total: batch.total,
      byKind: batch.byKind,
      byRule: batch.byRule,
      // Raw values (JSON-escaped): for receivers that act on them, not for display.
      notices: batch.first,
    },
  });
}

export class WebhookTransport implements Transport {
  readonly channel = 'webhook' as const;
  private readonly inFlight = new Set<AbortController>();

  constructor(
    private readonly config: WebhookConfig,
    private readonly origin: NoticeOrigin,
    private readonly clock: () => number,
  ) {}

  /** Where it posts, without what authenticates (Slack's token is in the path). */
  get where(): string {
    return redactedUrl(this.config.url);
  }

  async send(batch: NoticeBatch, deliveryId: string, attemptSignal: AbortSignal): Promise<void> {
    const body = webhookBody(batch, this.origin);
    const timestamp = String(Math.floor(this.clock() / 1000));
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'fsguard',
      [DELIVERY_HEADER]: deliveryId,
      [TIMESTAMP_HEADER]: timestamp,
    };
    if (this.config.secret) headers[SIGNATURE_HEADER] = webhookSignature(this.config.secret, timestamp, body);
    // The channel bounds each attempt with its own (injected) timer and aborts attemptSignal
    // when it is up; close() aborts whatever is still in flight.
    const abort = new AbortController();
    const onAttemptOver = (): void => abort.abort();
    attemptSignal.addEventListener('abort', onAttemptOver, { once: true });
    this.inFlight.add(abort);
    try {
      let res: Response;
      try {
        res = await fetch(this.config.url, { method: 'POST', headers, body, signal: abort.signal, redirect: 'error' });
      } catch (err) {
        // fetch's own message ("fetch failed") says nothing; its cause says why, never the URL's path.
        const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
        const code = (cause as NodeJS.ErrnoException).code;
        throw new DeliveryError(`POST to ${this.where} failed: ${code ?? (cause instanceof Error ? cause.message : String(cause))}`, true);
      }
      await res.arrayBuffer().catch(() => undefined);
      if (!res.ok) {
        // 408, 429 and 5xx are the receiver's passing trouble; other 4xx will not get better.
        const retryable = res.status >= 500 || res.status === 408 || res.status === 429;
        throw new DeliveryError(`POST to ${this.where}: HTTP ${res.status}`, retryable);
      }
    } finally {
      attemptSignal.removeEventListener('abort', onAttemptOver);
      this.inFlight.delete(abort);
    }
  }

  async close(): Promise<void> {
    for (const a of this.inFlight) a.abort();
    this.inFlight.clear();
  }
}
