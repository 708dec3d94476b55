// Reads the whole stream, in entry-id order, on its own (blocking) connection. Every node
// reads the same entries in the same order — that order is what makes the nodes' policies
// agree. A node that starts reads from `now − history` (Redis's clock); a node that reconnects
// goes on after the last entry it read, so what was appended meanwhile (other nodes' events,
// republished outage events) is read too, once.
import type { Redis } from 'ioredis';
import { MESSAGE_FIELD } from './codec.js';

/**
 * Entries per XREAD (each up to 128 messages): ~2,000 messages, some 20 ms of judging, between
 * two looks at the event socket — 1,000 entries held the event loop for a second and more
 * while the own node's events waited behind them.
 */
const COUNT = 16;
/** A live XREAD blocks this long before it is sent again (lets stop and link checks happen). */
const BLOCK_MS = 1000;
/** After a failed read while the link looks up (an odd reply, a server error), wait this long. */
const ERROR_PAUSE_MS = 500;

export interface ReaderHandler {
  /** One entry, in stream order; `raw` is its message field, one message a line (null: the entry has none). */
  entry(id: string, ms: number, raw: string | null): void;
  /** The reader reached the end of the stream (after start or after a reconnect). */
  caughtUp(): void;
  /** The stream is behind where this node had read (Redis's clock went back, a restored old copy): re-read from the start. */
  reset(lastRead: string, lastGenerated: string): void;
  failed(message: string): void;
}

export interface ReaderOptions {
  readonly stream: string;
  readonly historyMs: number;
}

/** `ms-seq` compared as numbers. */
export function compareEntryIds(a: string, b: string): number {
  const [am, as] = splitId(a);
  const [bm, bs] = splitId(b);
  return am !== bm ? am - bm : as - bs;
}

function splitId(id: string): [number, number] {
  const dash = id.indexOf('-');
  return dash === -1 ? [Number(id), 0] : [Number(id.slice(0, dash)), Number(id.slice(dash + 1))];
}

export class StreamReader {
  private lastId: string | null = null;
  private ready = false;
  private running = false;
  private closed = false;
  private live = false;
  private pause: NodeJS.Timeout | null = null;

  constructor(private readonly client: Redis, private readonly options: ReaderOptions, private readonly handler: ReaderHandler) {}

  /** Where the reader is: the id of the last entry handed on (null before the first read). */
  get position(): string | null {
    return this.lastId;
  }

  get isLive(): boolean {
    return this.ready && this.live;
  }

  linkReady(): void {
    this.ready = true;
    this.live = false;
    if (!this.running) void this.run();
  }

  linkDown(): void {
    this.ready = false;
    this.live = false;
  }

  close(): void {
    this.closed = true;
    if (this.pause) clearTimeout(this.pause);
  }

  private async run(): Promise<void> {
    this.running = true;
    let cursorChecked = false;
    try {
      while (this.ready && !this.closed) {
        try {
          if (!cursorChecked) {
            await this.resolveCursor();
            cursorChecked = true;
          }
          const args: Array<string | number> = ['COUNT', COUNT];
          if (this.live) args.push('BLOCK', BLOCK_MS);
          args.push('STREAMS', this.options.stream, this.lastId!);
          const reply = await this.client.call('XREAD', ...args);
          if (this.closed) return;
          const entries = entriesOf(reply, this.options.stream);
          for (const [id, raw] of entries) {
            this.lastId = id;
            this.handler.entry(id, splitId(id)[0], raw);
          }
          if (!this.live && entries.length < COUNT) {
            this.live = true;
            this.handler.caughtUp();
          }
          // Let the event socket and the appender have their turn before the next batch.
          if (entries.length) await new Promise<void>((resolve) => setImmediate(resolve));
        } catch (err) {
          if (!this.ready || this.closed) return;
          this.handler.failed(err instanceof Error ? err.message : String(err));
          await new Promise<void>((resolve) => { this.pause = setTimeout(resolve, ERROR_PAUSE_MS); });
        }
      }
    } finally {
      this.running = false;
      // A reconnect while the loop was winding down: start again.
      if (this.ready && !this.closed) void this.run();
    }
  }

  private async resolveCursor(): Promise<void> {
    if (this.lastId === null) {
      // History is measured on Redis's clock, which every node shares, not on ours.
      const time = await this.client.call('TIME');
      const serverMs = Array.isArray(time) ? Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000) : NaN;
      if (!Number.isFinite(serverMs)) throw new Error(`odd TIME reply: ${JSON.stringify(time)}`);
      this.lastId = `${Math.max(0, serverMs - this.options.historyMs)}-0`;
      return;
    }
    let info: unknown;
    try {
      info = await this.client.call('XINFO', 'STREAM', this.options.stream);
    } catch (err) {
      // No stream (Redis restarted empty): new entries get ids after ours anyway.
      if (err instanceof Error && /no such key/i.test(err.message)) return;
      throw err;
    }
    const lastGenerated = fieldOf(info, 'last-generated-id');
    if (typeof lastGenerated === 'string' && compareEntryIds(lastGenerated, this.lastId) < 0) {
      this.handler.reset(this.lastId, lastGenerated);
      this.lastId = '0-0';
    }
  }
}

function fieldOf(flat: unknown, name: string): unknown {
  if (!Array.isArray(flat)) return undefined;
  for (let i = 0; i + 1 < flat.length; i += 2) if (flat[i] === name) return flat[i + 1];
  return undefined;
}

/** [[stream, [[id, [field, value, ...]], ...]]] → [id, message|null][] (RESP2 shape). */
function entriesOf(reply: unknown, stream: string): Array<[string, string | null]> {
  if (reply === null) return [];
  if (!Array.isArray(reply)) throw new Error('odd XREAD reply');
  const out: Array<[string, string | null]> = [];
  for (const s of reply) {
    if (!Array.isArray(s) || s[0] !== stream || !Array.isArray(s[1])) throw new Error('odd XREAD reply');
    for (const e of s[1] as unknown[]) {
      if (!Array.isArray(e) || typeof e[0] !== 'string') throw new Error('odd XREAD entry');
      const fields = e[1];
      let raw: string | null = null;
      if (Array.isArray(fields)) {
        for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === MESSAGE_FIELD && typeof fields[i + 1] === 'string') { raw = fields[i + 1] as string; break; }
      }
      out.push([e[0], raw]);
    }
  }
  return out;
}
