// The notifier: turns what the guard did into notices for each configured channel. It is a
// GuardObserver, so it runs on the ban path: a few counter increments and, for the notices a
// message will show in full, one small object — the network is reached later, off this path.
import { hostname } from 'node:os';
import { Counter, type Registry } from 'prom-client';
import type { GuardObserver } from '../daemon/guard-observer.js';
import type { EslTimers } from '../esl/index.js';
import type { Logger } from '../obs/logger.js';
import type { BanDecision, PolicyAlert } from '../policy/types.js';
import { NotifyChannel, type ChannelName, type ChannelObserver, type Transport } from './channel.js';
import type { NoticeKind, NotifyConfig } from './config.js';
import { MailTransport } from './mail.js';
import { NOTICE_SAMPLE, type Notice, type NoticeOrigin } from './notice.js';
import { WebhookTransport } from './webhook.js';

export interface NotifyMetrics {
  readonly notices: Counter<'channel' | 'kind'>;
  readonly messages: Counter<'channel'>;
  readonly failures: Counter<'channel'>;
  readonly dropped: Counter<'channel'>;
}

const METRIC_NAMES = {
  notices: 'fsguard_notify_notices_total',
  messages: 'fsguard_notify_messages_total',
  failures: 'fsguard_notify_failures_total',
  dropped: 'fsguard_notify_dropped_notices_total',
} as const;

/** The notifier's counters, in the daemon's registry (lib/obs/metrics.ts stays untouched). */
export function registerNotifyMetrics(registry: Registry): NotifyMetrics {
  return {
    notices: new Counter({ name: METRIC_NAMES.notices, help: 'Notices (ban, unban, alert) handed to a notification channel', labelNames: ['channel', 'kind'] as const, registers: [registry] }),
    messages: new Counter({ name: METRIC_NAMES.messages, help: 'Notification messages (single or digest) delivered', labelNames: ['channel'] as const, registers: [registry] }),
    failures: new Counter({ name: METRIC_NAMES.failures, help: 'Notification delivery attempts that failed (each retry counts)', labelNames: ['channel'] as const, registers: [registry] }),
    dropped: new Counter({ name: METRIC_NAMES.dropped, help: 'Notices lost: their message failed every attempt, or fsguard stopped first', labelNames: ['channel'] as const, registers: [registry] }),
  };
}

/** The channels' health, for `fsguard status`. */
export interface ChannelHealth {
  readonly channel: ChannelName;
  readonly kinds: readonly NoticeKind[];
  readonly messages: number;
  readonly failures: number;
  readonly droppedNotices: number;
  readonly lastError: string | null;
  readonly lastErrorAtMs: number | null;
  readonly lastSentAtMs: number | null;
}

export interface NotifierDeps {
  readonly logger: Logger;
  readonly registry: Registry;
  readonly timers?: EslTimers;
  readonly clock?: () => number;
  readonly origin?: NoticeOrigin;
  /** Transports by channel (tests); default from the config. */
  readonly transports?: Partial<Record<ChannelName, Transport>>;
}

const systemTimers: EslTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

function banNotice(d: BanDecision, seconds: number, atMs: number): Notice {
  const e = d.evidence;
  return {
    kind: 'ban', atMs, target: d.target.cidr.text, rule: d.rule, seconds, offence: d.previousOffences + 1, reason: d.reason,
    users: e.users.slice(0, NOTICE_SAMPLE), userAgents: e.userAgents.slice(0, NOTICE_SAMPLE),
  };
}

function alertNotice(a: PolicyAlert, atMs: number): Notice {
  return {
    kind: 'alert', atMs, alert: a.kind, source: a.source, profile: a.profile, message: a.message,
    ...(a.user !== undefined ? { user: a.user } : {}),
    ...(a.userAgent !== undefined ? { userAgent: a.userAgent } : {}),
  };
}

export class Notifier implements GuardObserver {
  private readonly channels: NotifyChannel[] = [];
  private readonly health = new Map<ChannelName, { messages: number; failures: number; droppedNotices: number; lastError: string | null; lastErrorAtMs: number | null; lastSentAtMs: number | null; kinds: readonly NoticeKind[] }>();
  private readonly metrics: NotifyMetrics;
  private readonly clock: () => number;
  private readonly timers: EslTimers;

  constructor(config: NotifyConfig, deps: NotifierDeps) {
    this.clock = deps.clock ?? Date.now;
    const timers = deps.timers ?? systemTimers;
    this.timers = timers;
    const origin = deps.origin ?? { hostname: hostname() };
    this.metrics = registerNotifyMetrics(deps.registry);
    const { logger } = deps;
    const observer: ChannelObserver = {
      sent: (channel, batch, attempts) => {
        this.metrics.messages.inc({ channel });
        const h = this.health.get(channel)!;
        h.messages++;
        h.lastSentAtMs = this.clock();
        logger.info({ channel, notices: batch.total, attempts }, batch.total > 1 ? 'notification digest sent' : 'notification sent');
      },
      failed: (channel, attempt, error, retryInMs) => {
        this.metrics.failures.inc({ channel });
        const h = this.health.get(channel)!;
        h.failures++;
        h.lastError = error;
        h.lastErrorAtMs = this.clock();
        logger[retryInMs === null ? 'error' : 'warn']({ channel, attempt, error, ...(retryInMs !== null ? { retryInMs } : {}) }, retryInMs === null ? 'notification failed: giving up' : 'notification failed: will retry');
      },
      dropped: (channel, batch, error) => {
        this.metrics.dropped.inc({ channel }, batch.total);
        this.health.get(channel)!.droppedNotices += batch.total;
        logger.error({ channel, notices: batch.total, error }, 'notification not delivered: its notices are lost (they are in this log)');
      },
    };
    const settings = (kinds: readonly NoticeKind[], attemptTimeoutMs: number) => ({
      kinds,
      digestMs: config.digestSeconds * 1000,
      digestFirst: config.digestFirst,
      attempts: config.attempts,
      retryMaxMs: config.retryMaxSeconds * 1000,
      attemptTimeoutMs,
    });
    if (config.mail.kinds.length) {
      const transport = deps.transports?.mail ?? new MailTransport(config.mail, origin);
      // nodemailer bounds connect (30 s) and socket idle (60 s) itself; this bounds the whole.
      this.channels.push(new NotifyChannel(transport, settings(config.mail.kinds, 120_000), observer, timers, this.clock));
      this.health.set('mail', { kinds: config.mail.kinds, messages: 0, failures: 0, droppedNotices: 0, lastError: null, lastErrorAtMs: null, lastSentAtMs: null });
    }
    if (config.webhook.kinds.length) {
      const transport = deps.transports?.webhook ?? new WebhookTransport(config.webhook, origin, this.clock);
      this.channels.push(new NotifyChannel(transport, settings(config.webhook.kinds, config.webhook.timeoutSeconds * 1000), observer, timers, this.clock));
      this.health.set('webhook', { kinds: config.webhook.kinds, messages: 0, failures: 0, droppedNotices: 0, lastError: null, lastErrorAtMs: null, lastSentAtMs: null });
    }
  }

  get enabled(): boolean {
    return this.channels.length > 0;
  }

  private offer(kind: NoticeKind, rule: string | null, make: () => Notice): void {
    let notice: Notice | null = null;
    for (const c of this.channels) {
      if (!c.takes(kind)) continue;
      this.metrics.notices.inc({ channel: c.name, kind });
      if (notice === null && c.wantsNotice()) notice = make();
      c.offer(kind, rule, c.wantsNotice() ? notice : null);
    }
  }

  banned(decision: BanDecision, seconds: number, atMs: number): void {
    this.offer('ban', decision.rule, () => banNotice(decision, seconds, atMs));
  }

  unbanned(target: string, rule: string, how: 'expired' | 'lifted', atMs: number): void {
    this.offer('unban', null, () => ({ kind: 'unban', atMs, target, rule, how }));
  }

  alerted(alert: PolicyAlert, atMs: number): void {
    this.offer('alert', null, () => alertNotice(alert, atMs));
  }

  /** Removes this notifier's counters from the registry (before a replacement registers its own). */
  unregister(registry: Registry): void {
    for (const name of Object.values(METRIC_NAMES)) registry.removeSingleMetric(name);
  }

  channelHealth(): ChannelHealth[] {
    return [...this.health].map(([channel, h]) => ({ channel, ...h }));
  }

  /** On stop: send what the current intervals hold, waiting at most `graceMs`, then close. */
  async stop(graceMs: number): Promise<void> {
    if (!this.channels.length) return;
    let timer: unknown = null;
    await Promise.race([
      Promise.all(this.channels.map((c) => c.drain())),
      new Promise<void>((resolve) => { timer = this.timers.setTimeout(resolve, graceMs); }),
    ]);
    this.timers.clearTimeout(timer);
    await Promise.all(this.channels.map((c) => c.close()));
  }
}
