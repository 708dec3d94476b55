// The event source: keeps one event-socket connection to FreeSWITCH alive, subscribes to the
// sofia auth events and to CHANNEL_HANGUP_COMPLETE (one per finished call: the only channel
// event the call rules need), and hands each one to the listener as a typed AuthEvent or
// CallEvent.
//
// Connection lifecycle:
//   connect → auth/request → `auth <password>` → `+OK accepted`
//     → `event json HEARTBEAT CHANNEL_HANGUP_COMPLETE CUSTOM <auth subclasses>` and `api show registrations as json`
//     → ready (onConnected, onRegistrations) → events … → closed (onDisconnected) → retry.
// Retries: capped exponential backoff with jitter while FreeSWITCH is down or restarting (so
// it is back within ~reconnectMaxMs of FreeSWITCH), but a wrong password or an ACL rejection
// retries only every authRetryMs: hammering a socket that said no helps nobody. No frame for
// heartbeatTimeoutMs (FreeSWITCH sends HEARTBEAT every 20 s; junk bytes do not count) means a dead or hung peer: the
// connection is destroyed and made again. Every new connection subscribes again.
import type { AuthEvent, DropReason, LiveRegistration, NormalizeResult } from '../events/auth-event.js';
import { CALL_EVENT_NAME, callHeaderValues, callProfileOf, isCallEventName, normalizeCallValues, type CallDropReason, type CallEvent, type CallHeaderValues } from '../events/call-event.js';
import { createEventBodyReader } from '../events/line-scanner.js';
import { AddressMemo, AUTH_SUBCLASSES, normalizeEvent, normalizePreparsed, PreparsedEvent, SwitchAddressMemo, type NormalizeOptions } from '../events/normalize.js';
import { ReconnectBackoff } from './backoff.js';
import {
  parsePlainEventBody, type EslFrame, type FrameDropReason, type FrameLimits, DEFAULT_FRAME_LIMITS,
} from './frame-parser.js';
import { connectWithModesl, type EslConnector, type EslLink } from './modesl-link.js';
import { DEFAULT_EVENT_GAP_THRESHOLD, EventSequenceTracker, readCoreUuid, readSequence, type EventGap } from './event-sequence.js';
import { parseRegistrations, REGISTRATIONS_API_COMMAND } from './registrations.js';
import { isoTimeMs } from '../text/iso-time.js';

/**
 * The subscription, exactly as sent. Every token after CUSTOM is a subclass to FreeSWITCH, so
 * HEARTBEAT must come before it (modesl's own `subscribe` would append BACKGROUND_JOB and
 * CHANNEL_EXECUTE_COMPLETE after CUSTOM, where they would be taken as subclasses).
 */
export const SUBSCRIPTION_COMMAND = `event json HEARTBEAT ${CALL_EVENT_NAME} CUSTOM ${AUTH_SUBCLASSES.join(' ')}`;

/** Why an event or frame did not become an AuthEvent; the `reason` label of drop metrics. */
export type EslDropReason = DropReason | CallDropReason | FrameDropReason;

export type AuthRejection = 'invalid_password' | 'acl_rejected';

export interface EslSourceListener {
  onEvent(event: AuthEvent): void;
  /**
   * One finished inbound call (CHANNEL_HANGUP_COMPLETE of a watched profile). A listener
   * without it (fsguard check) only has the calls counted by onEventReceived.
   */
  onCallEvent?(event: CallEvent): void;
  /** Every sofia auth event and CHANNEL_HANGUP_COMPLETE received, before filtering: for events_total{subclass,profile}. */
  onEventReceived(subclass: string, profile: string): void;
  onDropped(reason: EslDropReason, detail: string): void;
  /** The registrations FreeSWITCH holds, asked for on every (re)connect. */
  onRegistrations(registrations: LiveRegistration[]): void;
  /** Authenticated and subscribed. */
  onConnected(): void;
  /** A connection that was up is gone (including on stop()). */
  onDisconnected(reason: string): void;
  onAuthRejected(kind: AuthRejection): void;
  /** What each HEARTBEAT says of FreeSWITCH (every 20 s, on a connection with no other event too). */
  onHeartbeat?(info: HeartbeatInfo): void;
  /** Events may have been lost in this window (Event-Sequence jumped, or fsguard was away): see event-sequence.ts. */
  onEventGap?(gap: EventGap): void;
}

/** What a HEARTBEAT says of FreeSWITCH. */
export interface HeartbeatInfo {
  /** Host name, version and uptime (for `fsguard status`). */
  readonly hostname: string;
  readonly version: string;
  readonly uptimeMs: number | null;
  /**
   * Its own addresses, from the `FreeSWITCH-IPv4`/`-IPv6` that FreeSWITCH puts on every event it
   * fires, the HEARTBEAT too (canonical text): known without waiting for an auth or call event.
   */
  readonly switchAddresses: readonly string[];
}

/** The logging surface used here; pino's Logger satisfies it. */
export interface EslLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export type TimerHandle = unknown;

export interface EslTimers {
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

export interface EslSourceOptions {
  readonly host: string;
  readonly port: number;
  /** Sent only in the `auth` command; never logged. */
  readonly password: string;
  /** Profiles to act on; null or empty = every profile. */
  readonly profiles: readonly string[] | null;
  /** First reconnect delay after FreeSWITCH went away. Default 100 ms. */
  readonly reconnectInitialMs?: number;
  /** Reconnect delay cap while FreeSWITCH is down. Default 2000 ms. */
  readonly reconnectMaxMs?: number;
  /** Fraction (0..1) of each reconnect delay removed at random. Default 0.5. */
  readonly reconnectJitter?: number;
  /** Retry interval after a wrong password, an ACL rejection or a refused subscription. Default 30 s. */
  readonly authRetryMs?: number;
  /**
   * A connection with no complete frame (HEARTBEAT, an event, a reply) for this long is dead;
   * bytes that never make a frame do not count. Default 60 s.
   */
  readonly heartbeatTimeoutMs?: number;
  /** Connect + auth + subscribe must finish within this. Default 10 s. */
  readonly handshakeTimeoutMs?: number;
  /** A connection up this long resets the backoff. Default 10 s. */
  readonly stableAfterMs?: number;
  /** `exit` is given this long to close the socket on stop() before it is destroyed. Default 500 ms. */
  readonly closeGraceMs?: number;
  readonly frameLimits?: FrameLimits;
  /** Event-Sequence numbers skipped between two consecutive events that count as a gap. Default 1000. */
  readonly eventGapThreshold?: number;
}

export const ESL_SOURCE_DEFAULTS = {
  host: '127.0.0.1',
  port: 8021,
  password: 'ClueCon',
  reconnectInitialMs: 100,
  reconnectMaxMs: 2000,
  reconnectJitter: 0.5,
  authRetryMs: 30_000,
  heartbeatTimeoutMs: 60_000,
  handshakeTimeoutMs: 10_000,
  stableAfterMs: 10_000,
  closeGraceMs: 500,
  eventGapThreshold: DEFAULT_EVENT_GAP_THRESHOLD,
} as const;

export interface EslSourceDeps {
  readonly logger: EslLogger;
  /** Default: the global setTimeout/clearTimeout. */
  readonly timers?: EslTimers;
  /** Milliseconds; default Date.now. */
  readonly clock?: () => number;
  /** [0, 1); default Math.random. Used for reconnect jitter. */
  readonly random?: () => number;
  /** Default: modesl over TCP. */
  readonly connect?: EslConnector;
}

type Phase = 'idle' | 'connecting' | 'authenticating' | 'subscribing' | 'ready' | 'waiting' | 'stopped';

/** Malformed input is logged this many times per connection, then only counted. */
const MALFORMED_LOG_LIMIT = 20;
/** Event-Sequence gaps are logged (one line each, with the window) this many times per connection, then only counted. */
const GAP_LOG_LIMIT = 10;

const systemTimers: EslTimers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

function firstLine(text: string): string {
  return text.split('\n', 1)[0]!.slice(0, 200);
}

export class EslEventSource {
  private readonly opts: Required<Omit<EslSourceOptions, 'profiles'>>;
  private readonly normalizeOptions: NormalizeOptions;
  /** FreeSWITCH's address headers, shared by its events and its HEARTBEATs. */
  private readonly switchMemo = new SwitchAddressMemo();
  private readonly logger: EslLogger;
  private readonly timers: EslTimers;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly connect: EslConnector;
  private readonly backoff: ReconnectBackoff;
  /** Reads regular auth events without JSON.parse (per stream: its value pool is this connection's). */
  private readonly bodyReader = createEventBodyReader();
  /** Filled by the body reader for each regular auth event (reused). */
  private readonly preparsed = new PreparsedEvent();

  private phase: Phase = 'idle';
  private link: EslLink | null = null;
  /** Bumped per connection; callbacks of older connections compare and bail out. */
  private generation = 0;
  private rejection: AuthRejection | 'subscription_refused' | null = null;
  private readyAt = 0;
  private lastFrameAt = 0;
  private failuresInARow = 0;
  private malformedLogged = 0;
  private gapsLogged = 0;
  private sequence!: EventSequenceTracker;
  private retryTimer: TimerHandle | null = null;
  private watchdogTimer: TimerHandle | null = null;
  private closeGraceTimer: TimerHandle | null = null;
  private stopWaiters: Array<() => void> = [];

  constructor(options: EslSourceOptions, private readonly listener: EslSourceListener, deps: EslSourceDeps) {
    const { profiles, ...rest } = options;
    // A line break would end the auth command and let the rest run as further commands.
    if (/[\r\n]/.test(options.password)) throw new Error('the event socket password must not contain line breaks');
    this.opts = {
      ...ESL_SOURCE_DEFAULTS,
      frameLimits: DEFAULT_FRAME_LIMITS,
      ...Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)),
    } as Required<Omit<EslSourceOptions, 'profiles'>>;
    this.normalizeOptions = {
      profiles: profiles && profiles.length > 0 ? new Set(profiles) : null,
      switchMemo: this.switchMemo,
      addressMemo: new AddressMemo(),
    };
    this.logger = deps.logger;
    this.timers = deps.timers ?? systemTimers;
    this.now = deps.clock ?? Date.now;
    this.random = deps.random ?? Math.random;
    this.connect = deps.connect ?? connectWithModesl;
    this.sequence = new EventSequenceTracker(this.opts.eventGapThreshold);
    this.backoff = new ReconnectBackoff({
      initialMs: this.opts.reconnectInitialMs,
      maxMs: this.opts.reconnectMaxMs,
      jitter: this.opts.reconnectJitter,
    }, this.random);
  }

  /** True while authenticated and subscribed. */
  get connected(): boolean {
    return this.phase === 'ready';
  }

  start(): void {
    if (this.phase !== 'idle') return;
    this.openLink();
  }

  /** Closes the connection (politely: `exit`) and stops retrying. */
  stop(): Promise<void> {
    if (this.phase === 'stopped') return this.link ? new Promise((resolve) => this.stopWaiters.push(resolve)) : Promise.resolve();
    const wasReady = this.phase === 'ready';
    this.phase = 'stopped';
    this.clearTimer('retryTimer');
    this.clearTimer('watchdogTimer');
    if (wasReady) this.notify(() => this.listener.onDisconnected('stopped'));
    const link = this.link;
    if (!link) return Promise.resolve();
    const closed = new Promise<void>((resolve) => this.stopWaiters.push(resolve));
    link.close();
    this.closeGraceTimer = this.timers.setTimeout(() => {
      this.closeGraceTimer = null;
      link.destroy('stopped');
    }, this.opts.closeGraceMs);
    return closed;
  }

  private openLink(): void {
    this.phase = 'connecting';
    this.rejection = null;
    this.malformedLogged = 0;
    this.gapsLogged = 0;
    this.sequence.newConnection();
    const generation = ++this.generation;
    const current = (): boolean => generation === this.generation && this.phase !== 'stopped';
    this.lastFrameAt = this.now();
    this.armWatchdog(this.opts.handshakeTimeoutMs);
    this.logger.debug({ host: this.opts.host, port: this.opts.port }, 'connecting to the FreeSWITCH event socket');
    this.link = this.connect(this.opts.host, this.opts.port, {
      onTcpConnected: () => {
        if (current()) this.phase = 'authenticating';
      },
      onAuthRequest: () => {
        if (!current()) return;
        this.lastFrameAt = this.now();
        this.link?.command(`auth ${this.opts.password}`, (reply) => {
          if (current()) this.onAuthReply(reply);
        });
      },
      onEventFrame: (frame) => (current() ? this.onEventFrame(frame) : undefined),
      onRudeRejection: (text) => {
        if (current()) this.reject('acl_rejected', text);
      },
      onDisconnectNotice: (text) => {
        if (current()) this.logger.info({ notice: firstLine(text) }, 'FreeSWITCH is closing the event socket connection');
      },
      onMalformed: (reason, detail) => {
        if (current()) this.onMalformed(reason, detail);
      },
      onClosed: (reason) => {
        if (generation === this.generation) this.onClosed(reason);
      },
    }, this.opts.frameLimits);
  }

  private onAuthReply(reply: string): void {
    this.lastFrameAt = this.now();
    if (!reply.startsWith('+OK')) {
      this.reject('invalid_password', reply);
      return;
    }
    this.phase = 'subscribing';
    const generation = this.generation;
    this.link?.command(SUBSCRIPTION_COMMAND, (subscribeReply) => {
      if (generation === this.generation && this.phase !== 'stopped') this.onSubscribeReply(subscribeReply);
    });
    // Asked right after subscribing: FreeSWITCH queues events meanwhile, none are lost.
    this.link?.api(REGISTRATIONS_API_COMMAND, (body) => {
      if (generation === this.generation && this.phase !== 'stopped') this.onRegistrationsAnswer(body);
    });
  }

  private onSubscribeReply(reply: string): void {
    this.lastFrameAt = this.now();
    if (!reply.startsWith('+OK')) {
      this.rejection = 'subscription_refused';
      this.logger.error({ reply: firstLine(reply), command: SUBSCRIPTION_COMMAND }, 'FreeSWITCH refused the event subscription');
      this.link?.destroy('subscription refused');
      return;
    }
    this.phase = 'ready';
    this.readyAt = this.now();
    if (this.failuresInARow > 0) {
      this.logger.info({ host: this.opts.host, port: this.opts.port, failedAttempts: this.failuresInARow }, 'reconnected to the FreeSWITCH event socket');
    } else {
      this.logger.info({ host: this.opts.host, port: this.opts.port }, 'connected to the FreeSWITCH event socket');
    }
    this.failuresInARow = 0;
    this.armWatchdog(this.opts.heartbeatTimeoutMs);
    this.notify(() => this.listener.onConnected());
  }

  private onRegistrationsAnswer(body: string): void {
    this.lastFrameAt = this.now();
    const result = parseRegistrations(body);
    if (!result.ok) {
      this.logger.warn({ reason: result.reason }, 'could not read live registrations from FreeSWITCH');
      return;
    }
    if (result.skippedRows > 0) {
      this.logger.warn({ skippedRows: result.skippedRows }, 'live registrations without a usable network_ip were ignored');
    }
    this.logger.info({ registrations: result.registrations.length }, 'live registrations loaded');
    const regs = result.registrations;
    this.notify(() => this.listener.onRegistrations(regs));
  }

  private reject(kind: AuthRejection, text: string): void {
    if (this.rejection) return;
    this.rejection = kind;
    if (kind === 'invalid_password') {
      this.logger.error(
        { host: this.opts.host, port: this.opts.port, reply: firstLine(text), retryInMs: this.opts.authRetryMs },
        'FreeSWITCH rejected the event socket password: set esl.password to the password in event_socket.conf.xml',
      );
    } else {
      this.logger.error(
        { host: this.opts.host, port: this.opts.port, reply: firstLine(text), retryInMs: this.opts.authRetryMs },
        'FreeSWITCH refused this connection by its event socket ACL (apply-inbound-acl in event_socket.conf.xml): allow fsguard\'s address',
      );
    }
    this.notify(() => this.listener.onAuthRejected(kind));
    this.link?.destroy(kind === 'invalid_password' ? 'wrong password' : 'rejected by the event socket ACL');
  }

  private onEventFrame(frame: EslFrame): number | void {
    // Not alive yet: only a body that reads as an event is (see alive()).
    const body = frame.body;
    if (!body || body.length === 0) {
      this.dropped('missing_content_length', `${frame.contentType} frame without a body`);
      return;
    }
    let headers: unknown;
    if (frame.contentType === 'text/event-json') {
      // A regular auth event or a finished call is read without JSON.parse, with exactly its
      // answer; any other body (other events with all their headers, escapes in a wanted value,
      // non-ASCII, odd syntax) is parsed. The reader has its Event-Sequence too (else the bytes
      // are searched for it).
      const read = this.bodyReader.read(body, this.preparsed);
      const seq = this.bodyReader.sequence;
      if (seq >= 0) this.trackSequence(body, seq, this.bodyReader.sequenceTimeUs, true);
      else this.trackSequenceIn(body, true);
      if (read === 'auth') {
        this.onPreparsed(this.preparsed);
        return;
      }
      if (read === 'call') {
        this.alive();
        this.onCallValues(this.bodyReader.callValues);
        return;
      }
      try {
        headers = JSON.parse(body.toString('utf8'));
      } catch {
        this.dropped('bad_json', `event body is not JSON: ${JSON.stringify(body.toString('utf8', 0, 40))}`);
        // A Content-Length too long swallows the next frame(s): resume framing where one starts.
        const at = body.indexOf('Content-Length: ', 1);
        return at > 0 ? at : undefined;
      }
    } else {
      this.trackSequenceIn(body, false);
      headers = parsePlainEventBody(body);
    }
    this.onEventHeaders(headers);
  }

  /** A regular auth event the body reader parsed itself: as onEventHeaders, without the headers. */
  private onPreparsed(p: PreparsedEvent): void {
    this.alive();
    try {
      this.listener.onEventReceived(AUTH_SUBCLASSES[p.subclass]!, p.profile);
    } catch (err) {
      this.listenerThrew(err);
    }
    this.onNormalized(normalizePreparsed(p, this.normalizeOptions));
  }

  private onEventHeaders(headers: unknown): void {
    if (typeof headers === 'object' && headers !== null && !Array.isArray(headers)) {
      const h = headers as Readonly<Record<string, unknown>>;
      const name = h['Event-Name'];
      if (typeof name === 'string') this.alive();
      if (name === 'HEARTBEAT') { this.heartbeat(h); return; }
      if (isCallEventName(name)) {
        this.onCallValues(callHeaderValues(h));
        return;
      }
      const subclass = h['Event-Subclass'];
      if (name === 'CUSTOM' && typeof subclass === 'string' && (AUTH_SUBCLASSES as readonly string[]).includes(subclass)) {
        const profile = h['profile-name'];
        const profileLabel = typeof profile === 'string' ? profile : Array.isArray(profile) && typeof profile[0] === 'string' ? profile[0] : '';
        // Hot path: plain try/catch rather than notify(), no closure per event.
        try {
          this.listener.onEventReceived(subclass, profileLabel);
        } catch (err) {
          this.listenerThrew(err);
        }
      }
    }
    this.onNormalized(normalizeEvent(headers, this.normalizeOptions));
  }

  private heartbeat(h: Readonly<Record<string, unknown>>): void {
    if (!this.listener.onHeartbeat) return;
    const text = (v: unknown): string => (typeof v === 'string' ? v.slice(0, 200) : '');
    const uptime = Number(h['Uptime-msec']);
    const raw = (v: unknown): string => (typeof v === 'string' ? v : '');
    const info: HeartbeatInfo = {
      hostname: text(h['FreeSWITCH-Hostname']), version: text(h['FreeSWITCH-Version']), uptimeMs: Number.isFinite(uptime) && uptime >= 0 ? uptime : null,
      switchAddresses: this.switchMemo.of(raw(h['FreeSWITCH-IPv4']), raw(h['FreeSWITCH-IPv6'])),
    };
    this.notify(() => this.listener.onHeartbeat?.(info));
  }

  private onCallValues(v: CallHeaderValues): void {
    try {
      this.listener.onEventReceived(CALL_EVENT_NAME, callProfileOf(v));
    } catch (err) {
      this.listenerThrew(err);
    }
    const result = normalizeCallValues(v, this.normalizeOptions);
    if (!result.ok) {
      this.dropped(result.reason, result.detail);
      return;
    }
    if (this.listener.onCallEvent === undefined) return;
    try {
      this.listener.onCallEvent(result.event);
    } catch (err) {
      this.listenerThrew(err);
    }
  }

  private onNormalized(result: NormalizeResult): void {
    if (result.ok) {
      try {
        this.listener.onEvent(result.event);
      } catch (err) {
        this.listenerThrew(err);
      }
    } else {
      this.dropped(result.reason, result.detail);
    }
  }

  /**
   * A complete frame that reads as what it claims (an event, a reply): the connection is
   * alive. Junk, however much of it streams in, is not (the watchdog then reconnects).
   */
  private alive(): void {
    this.lastFrameAt = this.now();
  }

  private trackSequenceIn(body: Buffer, json: boolean): void {
    const s = readSequence(body, json);
    if (s) this.trackSequence(body, s.seq, s.timeUs, json);
  }

  private trackSequence(body: Buffer, seq: number, timeUs: number, json: boolean): void {
    const gap = this.sequence.observe(seq, timeUs, this.sequence.awaitingFirst ? readCoreUuid(body, json) : null);
    if (gap) this.onGap(gap);
  }

  private onGap(gap: EventGap): void {
    if (this.gapsLogged < GAP_LOG_LIMIT) {
      this.gapsLogged++;
      this.logger.warn({
        kind: gap.kind, fromSeq: gap.fromSeq, toSeq: gap.toSeq, missing: gap.missing,
        from: isoTimeMs(gap.fromUs / 1000), to: isoTimeMs(gap.toUs / 1000),
        ...(this.gapsLogged === GAP_LOG_LIMIT ? { note: 'further gaps on this connection are only counted' } : {}),
      }, gap.kind === 'reconnect'
        ? 'events fired while fsguard was not connected: evidence of this window may be incomplete'
        : 'Event-Sequence jumped: FreeSWITCH may have dropped events for this connection; evidence of this window may be incomplete');
    }
    this.notify(() => this.listener.onEventGap?.(gap));
  }

  private onMalformed(reason: FrameDropReason, detail: string): void {
    if (this.malformedLogged < MALFORMED_LOG_LIMIT) {
      this.malformedLogged++;
      this.logger.warn(
        { reason, detail, ...(this.malformedLogged === MALFORMED_LOG_LIMIT ? { note: 'further malformed data on this connection is only counted' } : {}) },
        'malformed data from the FreeSWITCH event socket skipped',
      );
    }
    this.dropped(reason, detail);
  }

  private dropped(reason: EslDropReason, detail: string): void {
    this.notify(() => this.listener.onDropped(reason, detail));
  }

  private onClosed(reason: string): void {
    this.clearTimer('watchdogTimer');
    this.link = null;
    if (this.phase === 'stopped') {
      this.clearTimer('closeGraceTimer');
      const waiters = this.stopWaiters;
      this.stopWaiters = [];
      for (const resolve of waiters) resolve();
      return;
    }
    const wasReady = this.phase === 'ready';
    if (wasReady) {
      this.logger.warn({ reason }, 'lost the FreeSWITCH event socket connection; reconnecting');
      this.notify(() => this.listener.onDisconnected(reason));
      if (this.now() - this.readyAt >= this.opts.stableAfterMs) this.backoff.reset();
    }
    let delay: number;
    if (this.rejection) {
      delay = this.opts.authRetryMs;
      this.logger.debug({ reason, retryInMs: delay }, 'event socket connection closed after a rejection');
    } else {
      delay = this.backoff.next();
      this.failuresInARow += wasReady ? 0 : 1;
      // One line when FreeSWITCH goes away, then one per 30 failed attempts, not one per attempt.
      if (!wasReady && (this.failuresInARow === 1 || this.failuresInARow % 30 === 0)) {
        this.logger.warn(
          { host: this.opts.host, port: this.opts.port, reason, failedAttempts: this.failuresInARow, retryInMs: delay },
          'cannot reach the FreeSWITCH event socket; retrying',
        );
      }
    }
    this.phase = 'waiting';
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = null;
      if (this.phase === 'waiting') this.openLink();
    }, delay);
  }

  private armWatchdog(ms: number): void {
    this.clearTimer('watchdogTimer');
    this.watchdogTimer = this.timers.setTimeout(() => this.onWatchdog(), ms);
  }

  /**
   * Per-frame work is one clock read (lastFrameAt); the timer only runs once per timeout and
   * re-arms itself for the remainder when frames came meanwhile.
   */
  private onWatchdog(): void {
    this.watchdogTimer = null;
    const link = this.link;
    if (!link || this.phase === 'stopped' || this.phase === 'waiting') return;
    if (this.phase !== 'ready') {
      this.logger.warn({ host: this.opts.host, port: this.opts.port, phase: this.phase, timeoutMs: this.opts.handshakeTimeoutMs }, 'event socket handshake timed out');
      link.destroy('handshake timeout');
      return;
    }
    const idle = this.now() - this.lastFrameAt;
    if (idle >= this.opts.heartbeatTimeoutMs) {
      this.logger.warn({ idleMs: idle, timeoutMs: this.opts.heartbeatTimeoutMs }, 'no HEARTBEAT from FreeSWITCH: connection presumed dead');
      link.destroy('heartbeat timeout');
      return;
    }
    this.armWatchdog(this.opts.heartbeatTimeoutMs - idle);
  }

  private clearTimer(name: 'retryTimer' | 'watchdogTimer' | 'closeGraceTimer'): void {
    const handle = this[name];
    if (handle !== null) {
      this.timers.clearTimeout(handle);
      this[name] = null;
    }
  }

  /** A listener that throws must not take the connection (or the frame parser) down with it. */
  private notify(call: () => void): void {
    try {
      call();
    } catch (err) {
      this.listenerThrew(err);
    }
  }

  private listenerThrew(err: unknown): void {
    this.logger.error({ err }, 'event source listener threw');
  }
}
