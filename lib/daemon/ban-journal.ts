// Decided bans, written down before they reach the kernel, so a daemon killed with SIGKILL in a
// flood loses none of them: in a flood the writer holds thousands of decisions for a few hundred
// ms (libnftables takes tens of ms per 5,000-element transaction), and those lived only in memory.
// (Measured before the journal: 317 of 5,121 bans decided ≥ 50 ms before a kill -9 were missing
// after the restart, test/fault-nft.test.ts.)
//
// One JSON line per decision, appended with one write() per event-loop turn: the data is in the
// kernel's page cache when write() returns, which is what survives the death of the process
// (not of the machine: no fsync per ban). At start the daemon writes back every journaled ban
// that is still live and not in the kernel, then the journal starts empty again; while running it
// is emptied whenever everything decided has reached the kernel.
//
// An unban is a line too ({"t": target, "u": Unix ms}): a ban lifted by hand must not come back
// with the replay. The daemon journals the unbans it notices (a reconcile finds the ban gone) or
// is sent (a cluster's); `fsguard unban`, which deletes the element itself and may run while the
// daemon is down, appends its own line to the same file (appendUnban), as the daemon appends:
// O_APPEND, the line in one write(), so lines of both never interleave. The last line about a
// target wins, so a ban decided after the unban is replayed again.
import { closeSync, constants, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseCidr, type Cidr } from '../net/ip.js';
import type { BanComment } from '../nft/index.js';

export interface JournaledBan {
  readonly target: Cidr;
  readonly expiresAtMs: number;
  readonly comment: BanComment;
}

/** What the journal needs of the process: where to say it cannot write (it then stops, once). */
export interface BanJournalOptions {
  readonly path: string;
  readonly onError: (message: string) => void;
  /** Defers the write to the end of the turn; default setImmediate. */
  readonly defer?: (fn: () => void) => void;
}

/** Longest journal line accepted when reading back (a line is ~100 bytes). */
const MAX_LINE = 4096;

/** The journal of the table nft.table, in nft.journalDir: the daemon's, and where `fsguard unban` records. */
export function banJournalPath(nft: { readonly journalDir: string; readonly table: string }): string {
  return join(nft.journalDir, `${nft.table}.bans.jsonl`);
}

function banLine(ban: JournaledBan): string {
  return `${JSON.stringify({ t: ban.target.text, e: ban.expiresAtMs, r: ban.comment.rule, n: ban.comment.offences })}\n`;
}

function unbanLine(target: Cidr, atMs: number): string {
  return `${JSON.stringify({ t: target.text, u: atMs })}\n`;
}

function writeAll(fd: number, text: string): void {
  const bytes = Buffer.from(text, 'utf8');
  let at = 0;
  while (at < bytes.length) at += writeSync(fd, bytes, at, bytes.length - at);
}

/**
 * Appends an unban to the journal at `path`, from another process than the daemon (`fsguard
 * unban`). A journal that does not exist holds no ban to honour it against: nothing is created
 * (a file made by root would shut the daemon out of its own journal). Throws on other errors.
 */
export function appendUnban(path: string, target: Cidr, atMs: number): 'recorded' | 'no-journal' {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_APPEND);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'no-journal';
    throw err;
  }
  try {
    writeAll(fd, unbanLine(target, atMs));
  } finally {
    closeSync(fd);
  }
  return 'recorded';
}

export class BanJournal {
  private fd: number | null = null;
  private buffered: string[] = [];
  private flushQueued = false;
  /** Lines written since the journal was last emptied. */
  private written = 0;
  private failed = false;
  private readonly defer: (fn: () => void) => void;

  constructor(private readonly options: BanJournalOptions) {
    this.defer = options.defer ?? ((fn) => { setImmediate(fn); });
  }

  get path(): string {
    return this.options.path;
  }

  /** The bans journaled by an earlier run and not unbanned after (malformed lines are skipped: a torn last line after a crash). */
  readBack(): JournaledBan[] {
    let text: string;
    try {
      text = readFileSync(this.options.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.fail(`cannot read the ban journal ${this.options.path}: ${(err as Error).message}`);
      return [];
    }
    const bans = new Map<string, JournaledBan>();
    for (const line of text.split('\n')) {
      if (line.length === 0 || line.length > MAX_LINE) continue;
      let o: unknown;
      try { o = JSON.parse(line); } catch { continue; }
      if (typeof o !== 'object' || o === null) continue;
      const r = o as { t?: unknown; e?: unknown; r?: unknown; n?: unknown; u?: unknown };
      const target = typeof r.t === 'string' ? parseCidr(r.t) : null;
      if (target && typeof r.u === 'number') { bans.delete(target.text); continue; }
      if (!target || typeof r.e !== 'number' || !Number.isFinite(r.e) || typeof r.r !== 'string' || typeof r.n !== 'number') continue;
      // The last decision about a target wins (a re-ban is longer).
      bans.set(target.text, { target, expiresAtMs: r.e, comment: { rule: r.r, offences: r.n } });
    }
    return [...bans.values()];
  }

  /** Journals one decision; it reaches the file at the end of this turn. */
  record(ban: JournaledBan): void {
    this.buffer(banLine(ban));
  }

  /** Journals that the ban of `target` was lifted (a replay leaves it alone); at the end of this turn. */
  recordUnban(target: Cidr, atMs: number): void {
    this.buffer(unbanLine(target, atMs));
  }

  private buffer(line: string): void {
    if (this.failed) return;
    this.buffered.push(line);
    if (!this.flushQueued) {
      this.flushQueued = true;
      this.defer(() => this.flush());
    }
  }

  /** Writes what was recorded in this turn (one write() call). */
  flush(): void {
    this.flushQueued = false;
    if (this.buffered.length === 0 || this.failed) return;
    const text = this.buffered.join('');
    this.buffered = [];
    try {
      writeAll(this.open(), text);
      this.written++;
    } catch (err) {
      this.fail(`cannot write the ban journal ${this.options.path}: ${(err as Error).message} (bans decided and not yet written are lost if the daemon is killed)`);
    }
  }

  /** Empties the journal: call only when every journaled decision is in the kernel (or done with). */
  clear(): void {
    if (this.failed || this.buffered.length > 0) return;
    if (this.written === 0 && this.fd !== null) return;
    try {
      ftruncateSync(this.open(), 0);
      this.written = 0;
    } catch (err) {
      this.fail(`cannot empty the ban journal ${this.options.path}: ${(err as Error).message}`);
    }
  }

  close(): void {
    this.flush();
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private open(): number {
    if (this.fd === null) {
      mkdirSync(dirname(this.options.path), { recursive: true, mode: 0o700 });
      // O_APPEND: every write lands at the end, also after ftruncate.
      this.fd = openSync(this.options.path, 'a', 0o600);
    }
    return this.fd;
  }

  private fail(message: string): void {
    if (this.failed) return;
    this.failed = true;
    this.buffered = [];
    this.options.onError(message);
  }
}
