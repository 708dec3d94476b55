// Helpers shared by the ESL tests: the captures from a real FreeSWITCH, a raw TCP client that
// records every byte, and a listener/logger that record what the event source reported.
import { connect, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { AuthEvent, LiveRegistration } from '../../lib/events/auth-event.js';
import type { CallEvent } from '../../lib/events/call-event.js';
import type { AuthRejection, EslLogger, EslSourceListener, EventGap } from '../../lib/esl/index.js';

/** ../shared relative to the project root (dist/test/support → ../../../../shared). */
export const SHARED_DIR = fileURLToPath(new URL('../../../../shared/', import.meta.url));
export const ESL_CAPTURES = `${SHARED_DIR}esl/`;
export const SCENARIOS = `${SHARED_DIR}scenarios/`;

export function readCapture(name: string): Buffer {
  return readFileSync(`${ESL_CAPTURES}${name}`);
}

export interface CapturedFrame {
  readonly headers: Record<string, string>;
  readonly raw: Buffer;
  readonly body: Buffer | null;
}

/** Splits a capture (trusted, well-formed) into frames; independent of lib/esl's parser. */
export function splitCapture(data: Buffer): CapturedFrame[] {
  const frames: CapturedFrame[] = [];
  let pos = 0;
  while (pos < data.length) {
    const end = data.indexOf('\n\n', pos);
    if (end === -1) throw new Error(`capture has ${data.length - pos} trailing bytes`);
    const headers: Record<string, string> = {};
    for (const line of data.toString('latin1', pos, end).split('\n')) {
      const i = line.indexOf(': ');
      headers[line.slice(0, i)] = line.slice(i + 2);
    }
    let next = end + 2;
    let body: Buffer | null = null;
    if (headers['Content-Length'] !== undefined) {
      body = data.subarray(next, next + Number(headers['Content-Length']));
      next += body.length;
    }
    frames.push({ headers, raw: data.subarray(pos, next), body });
    pos = next;
  }
  return frames;
}

/** The event bodies of a json capture, as trace lines. */
export function captureEventBodies(name: string): string[] {
  return splitCapture(readCapture(name))
    .filter((f) => f.headers['Content-Type'] === 'text/event-json')
    .map((f) => f.body!.toString('utf8'));
}

export function readTrace(name: string): string[] {
  return readFileSync(`${SCENARIOS}${name}`, 'utf8').split('\n').filter((l) => l !== '');
}

export async function waitFor(what: string | (() => string), check: () => boolean, timeoutMs = 5000, stepMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A TCP client that keeps every byte it receives. */
export class RawClient {
  private readonly chunks: Buffer[] = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (c: Buffer) => this.chunks.push(c));
    socket.on('close', () => { this.closed = true; });
    socket.on('error', () => { /* recorded as closed */ });
  }

  static open(port: number, host = '127.0.0.1'): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host }, () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  get bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  waitForBytes(n: number, timeoutMs = 5000): Promise<Buffer> {
    return waitFor(() => `${n} bytes (have ${this.bytes.length})`, () => this.bytes.length >= n || this.closed, timeoutMs).then(() => this.bytes);
  }

  waitForClose(timeoutMs = 5000): Promise<void> {
    return waitFor('the server to close', () => this.closed, timeoutMs);
  }

  close(): void {
    this.socket.destroy();
  }
}

export interface LogRecord {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly obj: object;
  readonly msg: string;
}

export class RecordingLogger implements EslLogger {
  readonly records: LogRecord[] = [];
  debug(obj: object, msg: string): void { this.records.push({ level: 'debug', obj, msg }); }
  info(obj: object, msg: string): void { this.records.push({ level: 'info', obj, msg }); }
  warn(obj: object, msg: string): void { this.records.push({ level: 'warn', obj, msg }); }
  error(obj: object, msg: string): void { this.records.push({ level: 'error', obj, msg }); }

  /** Every record as one JSON line, as pino would write it: for "never logs X" checks. */
  get text(): string {
    return this.records.map((r) => JSON.stringify({ ...r.obj, level: r.level, msg: r.msg })).join('\n');
  }
}

export class RecordingListener implements EslSourceListener {
  readonly events: AuthEvent[] = [];
  readonly calls: CallEvent[] = [];
  readonly received: Array<{ subclass: string; profile: string }> = [];
  readonly dropped: Array<{ reason: string; detail: string }> = [];
  readonly registrations: LiveRegistration[][] = [];
  readonly rejections: Array<{ kind: AuthRejection; at: number }> = [];
  readonly disconnects: string[] = [];
  connects = 0;
  readonly connectTimes: number[] = [];

  onEvent(event: AuthEvent): void { this.events.push(event); }
  onCallEvent(event: CallEvent): void { this.calls.push(event); }
  onEventReceived(subclass: string, profile: string): void { this.received.push({ subclass, profile }); }
  onDropped(reason: string, detail: string): void { this.dropped.push({ reason, detail }); }
  onRegistrations(regs: LiveRegistration[]): void { this.registrations.push(regs); }
  onConnected(): void { this.connects++; this.connectTimes.push(Date.now()); }
  onDisconnected(reason: string): void { this.disconnects.push(reason); }
  onAuthRejected(kind: AuthRejection): void { this.rejections.push({ kind, at: Date.now() }); }
  readonly gaps: EventGap[] = [];
  onEventGap(gap: EventGap): void { this.gaps.push(gap); }

  droppedBy(reason: string): number {
    return this.dropped.filter((d) => d.reason === reason).length;
  }
}

/** The event frames of a capture (json or plain), with their Event-Name and Event-Subclass. */
export function captureEventFrames(name: string): Array<{ name: string; subclass: string | null; frame: Buffer; body: Buffer }> {
  return splitCapture(readCapture(name))
    .filter((f) => f.headers['Content-Type'] === 'text/event-json' || f.headers['Content-Type'] === 'text/event-plain')
    .map((f) => {
      const body = f.body!;
      let eventName = '';
      let subclass: string | null = null;
      if (f.headers['Content-Type'] === 'text/event-json') {
        const h = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
        eventName = String(h['Event-Name']);
        subclass = typeof h['Event-Subclass'] === 'string' ? h['Event-Subclass'] : null;
      } else {
        for (const line of body.toString('latin1').split('\n')) {
          if (line.startsWith('Event-Name: ')) eventName = line.slice(12);
          if (line.startsWith('Event-Subclass: ')) subclass = decodeURIComponent(line.slice(16));
        }
      }
      return { name: eventName, subclass, frame: f.raw, body };
    });
}
