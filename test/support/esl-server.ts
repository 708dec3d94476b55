// A test FreeSWITCH event socket: speaks mod_event_socket's protocol over real TCP, byte for
// byte as FreeSWITCH 1.10 does (see esl-wire.ts and the captures in ../shared/esl), and has
// hooks to misbehave: replay traces, raw bytes, dropped connections, a hung peer, an ACL
// rejection, a wrong password. Used in-process by the tests and as a separate process
// (esl-server-main.ts) by end-to-end tests and benchmarks.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import {
  apiResponse, AUTH_REQUEST, commandReply, DISCONNECT_NOTICE, eventFrame, orderedEventHeaders,
  RUDE_REJECTION, serializePlainEvent, Subscription,
} from './esl-wire.js';

export interface RegistrationSpec {
  readonly user: string;
  readonly realm: string;
  readonly ip: string;
  readonly port?: number;
  /** Unix seconds at which it expires. */
  readonly expires?: number;
  readonly profile?: string;
  readonly proto?: 'udp' | 'tcp' | 'tls';
}

/** A row of FreeSWITCH's core `registrations` table, as `show registrations as json` prints it. */
export function registrationRow(r: RegistrationSpec, hostname = 'pbx1'): Record<string, string> {
  const port = String(r.port ?? 5060);
  return {
    reg_user: r.user,
    realm: r.realm,
    token: `${r.user}-${r.ip}-${port}@test`,
    url: `sofia/${r.profile ?? 'internal'}/sip:${r.user}@${r.ip}:${port}`,
    expires: String(r.expires ?? Math.floor(Date.now() / 1000) + 3600),
    network_ip: r.ip,
    network_port: port,
    network_proto: r.proto ?? 'udp',
    hostname,
    metadata: '',
  };
}

/** mod_commands `show registrations as json`: unformatted cJSON, or its empty-table text. */
export function showRegistrationsJson(rows: readonly Record<string, string>[]): string {
  if (rows.length === 0) return '{"row_count": 0}\n';
  return JSON.stringify({ row_count: rows.length, rows });
}

/** Answers an `api` command; null = FreeSWITCH's "Command not found". */
export type ApiHandler = (command: string, server: EslTestServer) => string | null;

export interface EslTestServerOptions {
  readonly host?: string;
  /** 0 = any free port. */
  readonly port?: number;
  readonly password?: string;
  /** HEARTBEAT every this many ms to subscribers; null = never. */
  readonly heartbeatIntervalMs?: number | null;
  /** FreeSWITCH's IPv4 address on its HEARTBEATs (FreeSWITCH-IPv4, as on every event it fires); default 192.0.2.2. */
  readonly switchIp?: string;
  /** Send every event in this format whatever the client asked for (tests a client's plain parser). */
  readonly forceFormat?: 'json' | 'plain' | null;
  readonly registrations?: readonly RegistrationSpec[];
  readonly apiHandler?: ApiHandler;
  /** Milliseconds, for the connection/auth logs. */
  readonly now?: () => number;
}

export interface ConnectionRecord {
  readonly at: number;
  readonly remotePort: number;
}

export interface AuthAttempt {
  readonly at: number;
  readonly accepted: boolean;
}

/** One client connection and what it did. */
export class EslServerSession {
  authed = false;
  readonly subscription = new Subscription();
  /** Every byte the client sent, for asserting exact wire content. */
  private readonly receivedChunks: Buffer[] = [];
  /** Each command (first line of each message), in order. */
  readonly commands: string[] = [];
  /** The exact `event …` commands, in order. */
  readonly subscribeCommands: string[] = [];
  private inbox = '';
  private closing = false;

  constructor(readonly socket: Socket, private readonly server: EslTestServer) {}

  get received(): Buffer {
    return Buffer.concat(this.receivedChunks);
  }

  get open(): boolean {
    return !this.socket.destroyed && !this.closing;
  }

  write(data: string | Buffer): boolean {
    if (!this.open || this.server.hung) return true;
    return this.socket.write(data);
  }

  /** listener_run's exit path: the disconnect notice, then the socket is closed. */
  disconnect(): void {
    if (!this.open) return;
    this.write(DISCONNECT_NOTICE);
    this.closing = true;
    this.socket.end();
  }

  onData(chunk: Buffer): void {
    this.receivedChunks.push(chunk);
    if (this.server.hung) return;
    this.inbox += chunk.toString('latin1');
    for (;;) {
      // read_packet: stray line ends before a message are skipped; `\r` is ignored in the
      // blank-line test.
      this.inbox = this.inbox.replace(/^[\r\n]+/, '');
      const m = /\r?\n\r?\n/.exec(this.inbox);
      if (!m) return;
      const message = this.inbox.slice(0, m.index);
      this.inbox = this.inbox.slice(m.index + m[0].length);
      const command = message.split(/\r?\n/, 1)[0]!;
      this.commands.push(command);
      this.handle(command);
      if (!this.open) return;
    }
  }

  private handle(command: string): void {
    const lower = command.toLowerCase();
    if (lower.startsWith('exit') || lower.startsWith('...')) {
      this.write(commandReply('+OK bye'));
      this.disconnect();
      return;
    }
    if (!this.authed) {
      if (lower.startsWith('auth ')) {
        const accepted = command.slice(5) === this.server.password;
        this.server.recordAuth(accepted);
        if (accepted) {
          this.authed = true;
          this.write(commandReply('+OK accepted'));
        } else {
          this.write(commandReply('-ERR invalid'));
          this.disconnect();
        }
        return;
      }
      this.write(commandReply('-ERR command not found'));
      return;
    }
    if (lower.startsWith('api ')) {
      const apiCommand = command.slice(4);
      const answer = this.server.answerApi(apiCommand);
      const name = apiCommand.split(' ', 1)[0];
      this.write(apiResponse(answer ?? `-ERR ${name} Command not found!\n`));
      return;
    }
    if (lower.startsWith('nixevent') || lower.startsWith('noevents')) {
      this.write(commandReply('-ERR command not found'));
      return;
    }
    if (lower.startsWith('event')) {
      this.subscribeCommands.push(command);
      const reply = this.subscription.apply(command);
      this.write(commandReply(reply));
      if (reply.startsWith('+OK')) this.server.noteSubscribed(this);
      return;
    }
    this.write(commandReply('-ERR command not found'));
  }
}

/** One event frame of a capture, as the bytes FreeSWITCH sent. */
export interface CapturedEventFrame {
  readonly name: string;
  readonly subclass: string | null;
  /** The whole frame: its Content-Length and Content-Type lines, the blank line, the body. */
  readonly frame: Buffer;
}

interface PreparedEvent {
  readonly name: string;
  readonly subclass: string | null;
  readonly json: Buffer;
  plain: Buffer | null;
  readonly text: string;
}

function prepareEvent(body: string): PreparedEvent | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return null;
  const h = parsed as Record<string, unknown>;
  const name = typeof h['Event-Name'] === 'string' ? h['Event-Name'] : '';
  const subclass = typeof h['Event-Subclass'] === 'string' ? h['Event-Subclass'] : null;
  return { name, subclass, json: eventFrame('json', body), plain: null, text: body };
}

function plainFrameOf(event: PreparedEvent): Buffer {
  if (!event.plain) {
    const headers = orderedEventHeaders(event.text) ?? [];
    event.plain = eventFrame('plain', serializePlainEvent(headers));
  }
  return event.plain;
}

export interface ReplayOptions {
  /** Pace at this many events a second (in 10 ms slices); default: as fast as the sockets take them. */
  readonly eventsPerSecond?: number;
  /** After this many events, drop every connection (a FreeSWITCH restart) and stop. */
  readonly dropAfter?: number;
}

export class EslTestServer {
  password: string;
  /** Half-open peer: accepts, reads nothing, writes nothing, closes nothing. */
  hung = false;
  /** ESL ACL deny: every new connection gets text/rude-rejection. */
  rudeRejection = false;
  forceFormat: 'json' | 'plain' | null;
  registrations: RegistrationSpec[];
  apiHandler: ApiHandler | null;
  readonly sessions: EslServerSession[] = [];
  readonly connectionLog: ConnectionRecord[] = [];
  readonly authLog: AuthAttempt[] = [];
  readonly apiLog: string[] = [];
  private readonly now: () => number;
  private readonly switchIp: string;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private heartbeatSequence = 1;
  private subscribedWaiters: Array<{ count: number; resolve: () => void }> = [];
  private subscribedCount = 0;

  private constructor(private readonly server: Server, opts: EslTestServerOptions) {
    this.password = opts.password ?? 'ClueCon';
    this.forceFormat = opts.forceFormat ?? null;
    this.registrations = [...(opts.registrations ?? [])];
    this.apiHandler = opts.apiHandler ?? null;
    this.now = opts.now ?? Date.now;
    this.switchIp = opts.switchIp ?? '192.0.2.2';
    server.on('connection', (socket) => this.accept(socket));
    const interval = opts.heartbeatIntervalMs ?? null;
    if (interval !== null) {
      this.heartbeatTimer = setInterval(() => this.sendHeartbeat(), interval);
      this.heartbeatTimer.unref();
    }
  }

  static start(opts: EslTestServerOptions = {}): Promise<EslTestServer> {
    const server = createServer();
    const instance = new EslTestServer(server, opts);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => {
        server.off('error', reject);
        resolve(instance);
      });
    });
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get host(): string {
    return (this.server.address() as AddressInfo).address;
  }

  /** Sessions that are still connected. */
  get openSessions(): EslServerSession[] {
    return this.sessions.filter((s) => s.open);
  }

  private accept(socket: Socket): void {
    const session = new EslServerSession(socket, this);
    this.sessions.push(session);
    this.connectionLog.push({ at: this.now(), remotePort: socket.remotePort ?? 0 });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => session.onData(chunk));
    socket.on('error', () => { /* a client reset is not the server's problem */ });
    if (this.hung) return;
    if (this.rudeRejection) {
      session.write(RUDE_REJECTION);
      session.disconnect();
      return;
    }
    session.write(AUTH_REQUEST);
  }

  recordAuth(accepted: boolean): void {
    this.authLog.push({ at: this.now(), accepted });
  }

  noteSubscribed(session: EslServerSession): void {
    void session;
    this.subscribedCount++;
    const ready = this.subscribedWaiters.filter((w) => w.count <= this.subscribedCount);
    this.subscribedWaiters = this.subscribedWaiters.filter((w) => w.count > this.subscribedCount);
    for (const w of ready) w.resolve();
  }

  /** Successful `event` commands received in total (since start). */
  get subscriptions(): number {
    return this.subscribedCount;
  }

  /** Resolves once `count` successful `event` commands were received in total (since start). */
  waitForSubscriptions(count: number, timeoutMs = 30_000): Promise<void> {
    if (this.subscribedCount >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for subscription #${count} (have ${this.subscribedCount})`)), timeoutMs);
      this.subscribedWaiters.push({ count, resolve: () => { clearTimeout(timer); resolve(); } });
    });
  }

  answerApi(command: string): string | null {
    this.apiLog.push(command);
    if (this.apiHandler) {
      const answer = this.apiHandler(command, this);
      if (answer !== null) return answer;
    }
    if (command === 'show registrations as json') {
      return showRegistrationsJson(this.registrations.map((r) => registrationRow(r)));
    }
    return null;
  }

  /** Sends one event (an `event json` body) to every subscriber whose subscription matches. */
  emitEvent(body: string): number {
    const event = prepareEvent(body);
    if (!event) throw new Error(`not an event JSON object: ${body.slice(0, 60)}`);
    return this.deliver(event);
  }

  private deliver(event: PreparedEvent): number {
    let sent = 0;
    for (const s of this.sessions) {
      if (!s.open || !s.authed || !s.subscription.active || !s.subscription.matches(event.name, event.subclass)) continue;
      const format = this.forceFormat ?? (s.subscription.format === 'plain' ? 'plain' : 'json');
      s.write(format === 'plain' ? plainFrameOf(event) : event.json);
      sent++;
    }
    return sent;
  }

  /** HEARTBEAT as switch_core.c's send_heartbeat fires it (values made up, names real). */
  heartbeatBody(): string {
    const t = this.now();
    const d = new Date(t);
    return JSON.stringify({
      'Event-Name': 'HEARTBEAT',
      'Core-UUID': '138c01d7-9876-4521-bb8a-ae44dc42ab14',
      'FreeSWITCH-Hostname': 'test',
      'FreeSWITCH-Switchname': 'test',
      'FreeSWITCH-IPv4': this.switchIp,
      'FreeSWITCH-IPv6': '::1',
      'Event-Date-Local': d.toISOString().slice(0, 19).replace('T', ' '),
      'Event-Date-GMT': d.toUTCString(),
      'Event-Date-Timestamp': String(t * 1000),
      'Event-Calling-File': 'switch_core.c',
      'Event-Calling-Function': 'send_heartbeat',
      'Event-Calling-Line-Number': '95',
      'Event-Sequence': String(this.heartbeatSequence++),
      'Event-Info': 'System Ready',
      'FreeSWITCH-Version': '1.10.9-release~64bit',
      'Session-Count': '0',
      'Idle-CPU': '99.000000',
    });
  }

  /** Heartbeat timer firings so far, hung or not: a test of silence waits for some of them. */
  heartbeatTicks = 0;

  sendHeartbeat(): number {
    this.heartbeatTicks++;
    if (this.hung) return 0;
    return this.emitEvent(this.heartbeatBody());
  }

  /**
   * Sends trace events (one event-json body per line) to matching subscribers, in order.
   * Waits for the sockets to drain, so a fast client sees the full rate and a slow one is not
   * buffered without bound. Returns how many events were sent (before a drop, if asked).
   */
  async replay(lines: readonly string[], opts: ReplayOptions = {}): Promise<number> {
    const events = lines.filter((l) => l.trim() !== '').map((l) => {
      const e = prepareEvent(l);
      if (!e) throw new Error(`trace line is not an event JSON object: ${l.slice(0, 60)}`);
      return e;
    });
    const limit = Math.min(events.length, opts.dropAfter ?? events.length);
    const slice = opts.eventsPerSecond ? Math.max(1, Math.round(opts.eventsPerSecond / 100)) : 512;
    let i = 0;
    const started = Date.now();
    while (i < limit) {
      const end = Math.min(limit, i + slice);
      // One write (writev) per slice and socket instead of one per event.
      const corked = this.sessions.filter((s) => s.open);
      for (const s of corked) s.socket.cork();
      for (; i < end; i++) this.deliver(events[i]!);
      for (const s of corked) s.socket.uncork();
      await this.drained();
      if (opts.eventsPerSecond) {
        const due = started + (i / opts.eventsPerSecond) * 1000;
        const wait = due - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
    }
    if (opts.dropAfter !== undefined && opts.dropAfter < events.length) this.dropConnections();
    return limit;
  }

  /**
   * Sends the event frames of two captures of the same events (../shared/esl: a json one and
   * a plain one, frame i of each the same event), byte for byte as FreeSWITCH sent them, to
   * every subscriber whose subscription matches: the plain frame to plain subscribers (or all,
   * with forceFormat 'plain'), the json one to the others. Returns the frames sent.
   */
  replayCaptured(json: readonly CapturedEventFrame[], plain: readonly CapturedEventFrame[]): number {
    if (json.length !== plain.length) throw new Error(`the captures differ: ${json.length} json and ${plain.length} plain events`);
    let sent = 0;
    json.forEach((j, i) => {
      const p = plain[i]!;
      if (j.name !== p.name || j.subclass !== p.subclass) throw new Error(`capture event ${i}: ${j.name} in json, ${p.name} in plain`);
      for (const s of this.sessions) {
        if (!s.open || !s.authed || !s.subscription.active || !s.subscription.matches(j.name, j.subclass)) continue;
        const format = this.forceFormat ?? (s.subscription.format === 'plain' ? 'plain' : 'json');
        s.write(format === 'plain' ? p.frame : j.frame);
        sent++;
      }
    });
    return sent;
  }

  /** Replays a .jsonl file. */
  replayFile(path: string, opts: ReplayOptions = {}): Promise<number> {
    return this.replay(readFileSync(path, 'utf8').split('\n'), opts);
  }

  private drained(): Promise<void> {
    const waiting = this.sessions.filter((s) => s.open && s.socket.writableNeedDrain);
    if (waiting.length === 0) return Promise.resolve();
    return Promise.all(waiting.map((s) => new Promise<void>((resolve) => {
      const done = (): void => { s.socket.off('drain', done); s.socket.off('close', done); resolve(); };
      s.socket.on('drain', done);
      s.socket.on('close', done);
    }))).then(() => undefined);
  }

  /** Writes bytes as they are to every authenticated session (or to those given). */
  sendRaw(data: string | Buffer, to: readonly EslServerSession[] = this.sessions.filter((s) => s.authed)): void {
    for (const s of to) s.write(data);
  }

  /** Resets every connection without a goodbye, as a FreeSWITCH crash or restart would. */
  dropConnections(): void {
    for (const s of this.sessions) if (!s.socket.destroyed) s.socket.destroy();
  }

  /** Stops answering (no bytes, no close) or resumes; open connections stay open. */
  setHung(hung: boolean): void {
    this.hung = hung;
  }

  /** Stops listening and drops every connection. */
  close(): Promise<void> {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
    this.dropConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
