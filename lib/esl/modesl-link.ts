// One TCP connection to the event socket, made by modesl, with fsguard's frame parser under it.
//
// modesl 1.2.1 gives the connection, command/reply and api/response bookkeeping (replies are
// matched to callbacks in order). What it gets wrong is replaced on this one instance only,
// never on the module or its prototypes:
// - its Parser (unguarded decodeURIComponent, no resync, see frame-parser.ts) is detached from
//   the socket as soon as modesl created it, and EslFrameParser feeds modesl instead;
// - its `auth` (which, once accepted, subscribes to `BACKGROUND_JOB CHANNEL_EXECUTE_COMPLETE`
//   on its own) is replaced, so the only subscription on the wire is fsguard's;
// - an `error` listener is attached at once: modesl re-emits socket errors, and an EventEmitter
//   `error` without listener throws.
// Events take a fast path (body Buffer straight to the source): modesl's Event objects and
// wildcard emitter cost more per event than the whole normalization.
import type { Socket } from 'node:net';
import modesl, { type Connection, type Event as EslEvent } from 'modesl';
import {
  DEFAULT_FRAME_LIMITS, EslFrameParser, type EslFrame, type FrameDropReason, type FrameLimits,
} from './frame-parser.js';

export interface EslLinkHandlers {
  /** TCP is up; `auth/request` should follow. */
  onTcpConnected(): void;
  /** FreeSWITCH asked for the password. */
  onAuthRequest(): void;
  /** A `text/event-json` or `text/event-plain` frame; the return value as in FrameSink.onFrame. */
  onEventFrame(frame: EslFrame): number | void;
  /** `text/rude-rejection`: the event socket's ACL refused this address. */
  onRudeRejection(text: string): void;
  /** `text/disconnect-notice`: FreeSWITCH is about to close. */
  onDisconnectNotice(text: string): void;
  onMalformed(reason: FrameDropReason, detail: string): void;
  /** Called exactly once, after which the link is dead. */
  onClosed(reason: string): void;
}

export interface EslLink {
  /** Sends one command; `onReply` gets its `Reply-Text`. Ignored once closed. */
  command(line: string, onReply: (replyText: string) => void): void;
  /** Sends `api <command>`; `onResponse` gets the api/response body. Ignored once closed. */
  api(command: string, onResponse: (body: string) => void): void;
  /** Says `exit` and half-closes; FreeSWITCH closes the rest. */
  close(): void;
  /** Drops the connection now. */
  destroy(reason: string): void;
}

/** Opens a link; the default is modesl over TCP. Tests or embedders may supply their own. */
export type EslConnector = (host: string, port: number, handlers: EslLinkHandlers, limits?: FrameLimits) => EslLink;

const EVENT_CONTENT_TYPES = new Set(['text/event-json', 'text/event-plain']);
/** Frames modesl knows how to route to its reply queues and `esl::event::…` listeners. */
const CONTROL_CONTENT_TYPES = new Set([
  'auth/request', 'command/reply', 'api/response', 'text/disconnect-notice', 'text/rude-rejection',
]);

function headerObject(headers: ReadonlyMap<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of headers) out[k] = v;
  return out;
}

function bodyText(args: readonly unknown[]): string {
  const body = args[2];
  return typeof body === 'string' ? body : '';
}

class ModeslLink implements EslLink {
  private closed = false;
  private closeReason: string | null = null;
  private lastError: string | null = null;
  private readonly conn: Connection;
  private readonly socket: Socket;
  private readonly parser: EslFrameParser;

  constructor(host: string, port: number, private readonly handlers: EslLinkHandlers, limits: FrameLimits) {
    this.parser = new EslFrameParser({
      onFrame: (frame) => this.route(frame),
      onMalformed: (reason, detail) => handlers.onMalformed(reason, detail),
    }, limits);
    // The password goes out through fsguard's own auth (below), so modesl never holds it.
    this.conn = new modesl.Connection(host, port, '');
    const socket = this.conn.socket;
    if (!socket) throw new Error('modesl did not create a socket (unsupported modesl version)');
    this.socket = socket;
    this.conn.on('error', (err: unknown) => {
      this.lastError = err instanceof Error ? ((err as NodeJS.ErrnoException).code ?? err.message) : String(err);
    });
    this.conn.auth = () => this.handlers.onAuthRequest();
    this.conn.on('esl::connect', () => this.takeOverFraming());
    this.conn.on('esl::event::disconnect::notice', (...args: unknown[]) => handlers.onDisconnectNotice(bodyText(args)));
    this.conn.on('esl::event::raw::text/rude-rejection', (...args: unknown[]) => handlers.onRudeRejection(bodyText(args)));
    socket.setNoDelay(true);
    socket.on('close', () => this.onSocketClosed());
  }

  /** Runs inside modesl's connect handler, right after it attached its Parser to the socket. */
  private takeOverFraming(): void {
    const modeslDataListeners = this.socket.listeners('data');
    if (modeslDataListeners.length !== 1 || typeof this.conn._onEvent !== 'function') {
      this.destroy('unsupported modesl version: cannot install the frame parser');
      return;
    }
    this.socket.removeListener('data', modeslDataListeners[0] as (chunk: Buffer) => void);
    this.socket.on('data', (chunk: Buffer) => {
      try {
        this.parser.push(chunk);
      } catch (err) {
        // Only a bug can get here (input problems are reported, listeners are guarded). The
        // parser's state is unknown now: start over on a new connection rather than crash.
        this.destroy(`internal error: ${err instanceof Error ? err.message : String(err)}`);
      }
    });
    this.handlers.onTcpConnected();
  }

  private route(frame: EslFrame): number | void {
    if (EVENT_CONTENT_TYPES.has(frame.contentType)) return this.handlers.onEventFrame(frame);
    if (!CONTROL_CONTENT_TYPES.has(frame.contentType)) {
      this.handlers.onMalformed('unknown_content_type', `Content-Type ${JSON.stringify(frame.contentType.slice(0, 40))}`);
      return;
    }
    const headers = headerObject(frame.headers);
    const body = frame.body ? frame.body.toString('utf8') : undefined;
    this.conn._onEvent(new modesl.Event(headers, body), headers, body);
  }

  command(line: string, onReply: (replyText: string) => void): void {
    if (this.closed) return;
    this.conn.sendRecv(line, (reply: EslEvent) => onReply(reply.getHeader('Reply-Text') ?? ''));
  }

  api(command: string, onResponse: (body: string) => void): void {
    if (this.closed) return;
    this.conn.api(command, (response: EslEvent) => onResponse(response.getBody()));
  }

  close(): void {
    if (this.closed || this.socket.destroyed) return;
    this.closeReason ??= 'closed by fsguard';
    this.conn.disconnect();
  }

  destroy(reason: string): void {
    if (this.closed) return;
    this.closeReason ??= reason;
    this.socket.destroy();
  }

  private onSocketClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.parser.end();
    this.handlers.onClosed(this.closeReason ?? (this.lastError ? `socket error ${this.lastError}` : 'closed by FreeSWITCH'));
  }
}

export const connectWithModesl: EslConnector = (host, port, handlers, limits = DEFAULT_FRAME_LIMITS) =>
  new ModeslLink(host, port, handlers, limits);
