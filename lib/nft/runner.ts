// Runs nft. The only I/O boundary of lib/nft: everything else builds JSON and interprets
// results, so a test can put a real nft (or, where the kernel cannot produce a situation,
// a fake) behind this interface.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nftDocument } from './builders.js';
import type { NftCommand } from './schema.js';
import { systemScheduler, type CancelScheduled, type Scheduler } from './scheduler.js';

/** How one nft run ended. Never an exception: classification happens in errors.ts. */
export type NftRunResult =
  | { readonly kind: 'exited'; readonly exitCode: number; readonly stdout: string; readonly stderr: string }
  /** The process could not be started (ENOENT: no such binary, EACCES, EAGAIN...). */
  | { readonly kind: 'spawn-failed'; readonly code: string; readonly message: string }
  /** Killed by a signal, or by us after `timeoutMs`. */
  | { readonly kind: 'killed'; readonly signal: string; readonly timedOut: boolean; readonly stderr: string };

export interface NftRunner {
  /** The nft binary, for error messages. */
  readonly binary: string;
  /** Runs the commands as one atomic nft transaction. Never rejects. */
  run(commands: readonly NftCommand[]): Promise<NftRunResult>;
  /** Ends any process the runner keeps (the spawn runner keeps none). */
  close?(): Promise<void>;
}

export interface SpawnNftRunnerOptions {
  /** Path or name (looked up in PATH) of the nft binary. Default `nft`. */
  readonly binary?: string;
  /** Kill nft if it has not finished after this long (a wedged netlink socket). Default 30 s. */
  readonly timeoutMs?: number;
  readonly scheduler?: Scheduler;
  /** Where nft's input is staged (the file is unlinked before nft starts). Default os.tmpdir(). */
  readonly tempDir?: string;
}

/** nft's stderr is a few lines; a runaway one must not grow without bound. */
const MAX_STDERR_BYTES = 64 * 1024;

export class SpawnNftRunner implements NftRunner {
  readonly binary: string;
  private readonly timeoutMs: number;
  private readonly scheduler: Scheduler;
  private readonly tempDir: string;

  constructor(options: SpawnNftRunnerOptions = {}) {
    this.binary = options.binary ?? 'nft';
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.scheduler = options.scheduler ?? systemScheduler;
    this.tempDir = options.tempDir ?? tmpdir();
  }

  async run(commands: readonly NftCommand[]): Promise<NftRunResult> {
    // Serialized once per run: the whole batch is one document.
    const input = Buffer.from(JSON.stringify(nftDocument(commands)), 'utf8');
    let stdin: FileHandle;
    try {
      stdin = await this.inputFile(input);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      return { kind: 'spawn-failed', code: e.code ?? 'UNKNOWN', message: `cannot stage nft input in ${this.tempDir}: ${e.message}` };
    }
    try {
      return await this.spawnNft(stdin.fd);
    } finally {
      await stdin.close();
    }
  }

  /**
   * nft reads `-f -` by open()ing /dev/stdin, which fails (ENXIO) on the socketpair Node
   * uses for piped stdio. So stdin is a file instead: created exclusively (no symlink
   * games), mode 0600, unlinked at once (it lives only as the open descriptor, which
   * /dev/stdin can still reopen), written with pwrite so its offset stays at 0.
   */
  private async inputFile(input: Buffer): Promise<FileHandle> {
    const path = join(this.tempDir, `fsguard-nft-${process.pid}-${randomUUID()}.json`);
    const handle = await open(path, 'wx+', 0o600);
    try {
      await unlink(path);
      let written = 0;
      while (written < input.length) {
        const { bytesWritten } = await handle.write(input, written, input.length - written, written);
        written += bytesWritten;
      }
      return handle;
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  private spawnNft(stdinFd: number): Promise<NftRunResult> {
    return new Promise((resolve) => {
      let settled = false;
      const finish = (result: NftRunResult): void => {
        if (settled) return;
        settled = true;
        cancelTimeout();
        resolve(result);
      };
      // LC_ALL=C: errors are classified by nft's strerror() text, which is localized.
      const child = spawn(this.binary, ['-j', '-f', '-'], {
        stdio: [stdinFd, 'pipe', 'pipe'],
        env: { ...process.env, LC_ALL: 'C' },
      });
      let timedOut = false;
      const cancelTimeout = this.scheduler.schedule(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, this.timeoutMs);
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      let stderrBytes = 0;
      child.stdout?.on('data', (chunk: Buffer) => stdout.push(chunk));
      child.stderr?.on('data', (chunk: Buffer) => {
        if (stderrBytes >= MAX_STDERR_BYTES) return;
        stderrBytes += chunk.length;
        stderr.push(chunk);
      });
      child.on('error', (err: NodeJS.ErrnoException) => {
        finish({ kind: 'spawn-failed', code: err.code ?? 'UNKNOWN', message: err.message });
      });
      child.on('close', (code, signal) => {
        const errText = Buffer.concat(stderr).toString('utf8');
        if (code === null) {
          finish({ kind: 'killed', signal: signal ?? 'unknown', timedOut, stderr: errText });
        } else {
          finish({ kind: 'exited', exitCode: code, stdout: Buffer.concat(stdout).toString('utf8'), stderr: errText });
        }
      });
    });
  }
}

// ---- one long-lived nft ------------------------------------------------------------------

export interface InteractiveNftRunnerOptions {
  /** Path or name of the nft binary. Default `nft`. */
  readonly binary?: string;
  /** A request not answered within this long kills the process (reported as a timeout). Default 30 s. */
  readonly timeoutMs?: number;
  /** A new process must answer its first marker within this long, or it is not used. Default 5 s. */
  readonly startTimeoutMs?: number;
  /**
   * Requests whose JSON is longer go to `fallback`. nft's interactive mode reads its input
   * through libedit, about 0.7 µs per character: a 5,000-element batch (~450 KB) takes
   * ~330 ms there against ~50 ms through `nft -j -f`; one element takes ~0.5 ms there
   * against ~4.5 ms for a new process. Default 8 KiB (about 90 elements), near where the
   * two cost the same.
   */
  readonly maxLineBytes?: number;
  /** Replace the process once it was sent this much (its line editor keeps every line). Default 8 MiB. */
  readonly recycleAfterBytes?: number;
  /** After the process ended early: the spawn runner is used for this long, doubling to `maxRestartDelayMs`. Default 100 ms. */
  readonly restartDelayMs?: number;
  readonly maxRestartDelayMs?: number;
  /** Processes in a row that never answered their first marker before interactive mode is given up. Default 3. */
  readonly maxStartFailures?: number;
  /**
   * A listing goes to the process only while the last one it answered printed less than this:
   * writes queue behind a listing in the process, and nft takes ~1.5 s to list 100,000
   * elements (a spawned listing runs beside the writes). Default 64 KiB (~500 elements).
   */
  readonly maxListingBytes?: number;
  /** Runs what the interactive process does not: big listings and batches, and everything while it is down. */
  readonly fallback?: NftRunner;
  readonly scheduler?: Scheduler;
  readonly clock?: () => number;
  /** Told when the process starts, ends, or interactive mode is given up (for the log). */
  readonly onStatus?: (status: InteractiveNftStatus) => void;
}

export type InteractiveNftStatus =
  | { readonly kind: 'started'; readonly pid: number }
  | { readonly kind: 'ended'; readonly pid: number; readonly reason: string; readonly outstanding: number }
  | { readonly kind: 'given-up'; readonly reason: string };

interface Exchange {
  /** The JSON line, or null for the start-up probe. */
  readonly line: string | null;
  readonly marker: string;
  readonly resolve: (result: NftRunResult) => void;
  cancelTimeout: CancelScheduled;
  /** A single `list` command: its answer is the next line on stdout (see InteractiveProcess.listing). */
  readonly listing: readonly NftCommand[] | null;
}

interface InteractiveProcess {
  readonly child: ChildProcess;
  readonly startedAt: number;
  /** Sent and not yet answered, in order: nft answers lines in the order it reads them. */
  readonly outstanding: Exchange[];
  /** Requests waiting for the start-up probe. */
  readonly waiting: Array<{ readonly commands: readonly NftCommand[]; readonly line: string; readonly resolve: (result: NftRunResult) => void }>;
  verified: boolean;
  ended: boolean;
  timedOut: boolean;
  bytesSent: number;
  stderr: string;
  /** The marker's caret line (`   ^`) may arrive after the marker itself: drop it then. */
  dropCaretLine: boolean;
  /**
   * The one listing in flight (a second goes to the fallback): stdout and stderr are separate
   * pipes, so its output line and its marker may arrive in either order; with one listing at
   * a time, every stdout line is its answer.
   */
  listing: Exchange | null;
  /** Its output line, when it came before the marker. */
  listingOutput: string | null;
  /** Its marker came with no error and no output yet: waiting for the line (and the timer). */
  listingAwaitsOutput: CancelScheduled | null;
  /** Pieces of the stdout line not yet ended. */
  stdout: string[];
}

const CARET_LINE = /^[ \t^~]*$/;

function hasListCommand(commands: readonly NftCommand[]): boolean {
  for (const c of commands) if ('list' in c) return true;
  return false;
}

/** nft prints a listing's answer as one JSON line; it was flushed before the marker's error was. */
const LISTING_OUTPUT_WAIT_MS = 1000;

/**
 * Keeps one `nft -j -i` running and feeds it one JSON document per line: each line is one
 * atomic transaction, and nothing is spawned per ban. In interactive mode nft prints nothing
 * on stdout for a write (and what it prints there is block-buffered), while errors go to
 * stderr unbuffered, in input order. So every request is followed by a marker line that is
 * deliberately not a command: nft answers it with a syntax error that quotes the line, on
 * the same stream as the request's own errors, after them. Everything on stderr before a
 * request's marker belongs to that request: nothing means committed, anything else is
 * nft's error text, classified by classifyRun exactly as for the spawn runner. Markers carry
 * a random per-process nonce and a sequence number, so no echoed input can forge one.
 *
 * A request that is one `list` command is answered by the line nft prints on stdout for it
 * (nft flushes it before it reads the next line; one listing is in flight at a time, and one
 * whose line does not come ends the process and goes to the fallback): the periodic
 * reconcile forks nothing while the table is small. Other requests with listings, listings
 * after one of `maxListingBytes` or more (writes would wait behind them), requests over
 * `maxLineBytes`, a second listing while one is in flight, and every request while the
 * process is restarting go to `fallback` (the spawn runner). A process
 * that dies fails its outstanding requests as killed (transient: the writer retries them),
 * and the next one starts after a backoff; processes that never answer their first marker
 * (a binary without interactive mode) make the runner give interactive mode up for good.
 */
export class InteractiveNftRunner implements NftRunner {
  readonly binary: string;
  private readonly timeoutMs: number;
  private readonly startTimeoutMs: number;
  private readonly maxLineBytes: number;
  private readonly maxListingBytes: number;
  /**
   * Bytes of the last listing (through the process or spawned), and of the writes sent since:
   * together a bound on the next listing's size (an element's line is longer than its listing),
   * so a table that grew in a flood since is listed by a spawned nft, not the process.
   */
  private lastListingBytes = 0;
  private writtenSinceListing = 0;
  private readonly recycleAfterBytes: number;
  private readonly restartDelayMs: number;
  private readonly maxRestartDelayMs: number;
  private readonly maxStartFailures: number;
  private readonly fallback: NftRunner;
  private readonly scheduler: Scheduler;
  private readonly clock: () => number;
  private readonly onStatus: (status: InteractiveNftStatus) => void;
  private readonly nonce = randomUUID().replace(/-/g, '');

  private proc: InteractiveProcess | null = null;
  private sequence = 0;
  private startFailures = 0;
  private givenUp = false;
  private closed = false;
  /** Until this clock time, requests go to the fallback (the last process ended early). */
  private restartAt = 0;
  private nextRestartDelayMs: number;

  constructor(options: InteractiveNftRunnerOptions = {}) {
    this.binary = options.binary ?? 'nft';
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.startTimeoutMs = options.startTimeoutMs ?? 5000;
    this.maxLineBytes = options.maxLineBytes ?? 8 * 1024;
    this.maxListingBytes = options.maxListingBytes ?? 64 * 1024;
    this.recycleAfterBytes = options.recycleAfterBytes ?? 8 * 1024 * 1024;
    this.restartDelayMs = options.restartDelayMs ?? 100;
    this.maxRestartDelayMs = options.maxRestartDelayMs ?? 5000;
    this.maxStartFailures = options.maxStartFailures ?? 3;
    this.scheduler = options.scheduler ?? systemScheduler;
    this.clock = options.clock ?? Date.now;
    this.fallback = options.fallback ?? new SpawnNftRunner({ binary: this.binary, timeoutMs: this.timeoutMs, scheduler: this.scheduler });
    this.onStatus = options.onStatus ?? (() => undefined);
    this.nextRestartDelayMs = this.restartDelayMs;
  }

  /** True while requests can go to a running interactive process (for tests and metrics). */
  get interactive(): boolean {
    return this.proc !== null && this.proc.verified && !this.proc.ended;
  }

  run(commands: readonly NftCommand[]): Promise<NftRunResult> {
    const listing = commands.length === 1 && 'list' in commands[0]!;
    if (this.givenUp || this.closed || (!listing && hasListCommand(commands))) return this.fallback.run(commands);
    if (listing && this.lastListingBytes + this.writtenSinceListing >= this.maxListingBytes) return this.fallbackListing(commands);
    const line = JSON.stringify(nftDocument(commands));
    if (!listing) this.writtenSinceListing += line.length;
    // JSON.stringify never emits a raw line break, so the document is exactly one line.
    if (line.length > this.maxLineBytes) return this.fallback.run(commands);
    let proc = this.proc;
    if (proc && !proc.ended && proc.verified && proc.bytesSent >= this.recycleAfterBytes && proc.outstanding.length === 0) {
      this.retire(proc, 'recycled after its line budget');
      proc = null;
    }
    if (!proc || proc.ended) {
      if (this.clock() < this.restartAt) return this.fallback.run(commands);
      proc = this.startProcess();
      if (!proc) return this.fallback.run(commands);
    }
    const p = proc;
    if (listing) {
      // Only on a verified process, one at a time.
      if (!p.verified || p.listing !== null) return this.fallback.run(commands);
      return new Promise((resolve) => this.write(p, line, resolve, this.timeoutMs, commands));
    }
    return new Promise((resolve) => {
      if (p.verified) this.send(p, line, resolve);
      else p.waiting.push({ commands, line, resolve });
    });
  }

  /** A listing spawned because the table may be big: its size says whether the next may go to the process. */
  private async fallbackListing(commands: readonly NftCommand[]): Promise<NftRunResult> {
    const result = await this.fallback.run(commands);
    if (result.kind === 'exited' && result.exitCode === 0) this.listed(result.stdout.length);
    return result;
  }

  private listed(bytes: number): void {
    this.lastListingBytes = bytes;
    this.writtenSinceListing = 0;
  }

  /** Ends the process (requests already sent are answered first). Later requests use the fallback. */
  async close(): Promise<void> {
    this.closed = true;
    const proc = this.proc;
    if (!proc || proc.ended) return;
    const exited = new Promise<void>((resolve) => proc.child.once('close', () => resolve()));
    proc.child.stdin?.end();
    const cancel = this.scheduler.schedule(() => proc.child.kill('SIGKILL'), 2000);
    await exited;
    cancel();
  }

  private startProcess(): InteractiveProcess | null {
    let child: ChildProcess;
    try {
      // HOME=/dev/null: nft's line editor reads ~/.editrc and saves every line to
      // ~/.nft.history when stdin ends; neither must happen for a daemon.
      child = spawn(this.binary, ['-j', '-i'], {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { ...process.env, LC_ALL: 'C', HOME: '/dev/null' },
      });
    } catch {
      this.startFailed('spawn threw');
      return null;
    }
    const proc: InteractiveProcess = {
      child, startedAt: this.clock(), outstanding: [], waiting: [], verified: false, ended: false, timedOut: false,
      bytesSent: 0, stderr: '', dropCaretLine: false, listing: null, listingOutput: null, listingAwaitsOutput: null, stdout: [],
    };
    this.proc = proc;
    child.on('error', (err: NodeJS.ErrnoException) => this.ended(proc, `could not start: ${err.code ?? err.message}`));
    child.on('close', (code, signal) => this.ended(proc, signal ? `killed by ${signal}` : `exited with status ${code}`));
    // A write after the process died fails with EPIPE; 'close' reports the death.
    child.stdin?.on('error', () => undefined);
    // Only listings print on stdout.
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (text: string) => this.onStdout(proc, text));
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => this.onStderr(proc, text));
    // The probe: a lone marker proves nft reads lines from a pipe and answers in order.
    this.write(proc, null, () => undefined, this.startTimeoutMs);
    return proc;
  }

  private send(proc: InteractiveProcess, line: string, resolve: (result: NftRunResult) => void): void {
    this.write(proc, line, resolve, this.timeoutMs);
  }

  private write(
    proc: InteractiveProcess, line: string | null, resolve: (result: NftRunResult) => void, timeoutMs: number,
    listing: readonly NftCommand[] | null = null,
  ): void {
    const marker = `fsguard-sync-${this.nonce}-${++this.sequence}`;
    const exchange: Exchange = { line, marker, resolve, cancelTimeout: () => undefined, listing };
    if (listing !== null) proc.listing = exchange;
    proc.outstanding.push(exchange);
    exchange.cancelTimeout = this.scheduler.schedule(() => {
      proc.timedOut = true;
      proc.child.kill('SIGKILL');
    }, timeoutMs);
    const text = line === null ? `${marker}\n` : `${line}\n${marker}\n`;
    proc.bytesSent += text.length;
    proc.child.stdin?.write(text);
  }

  private onStderr(proc: InteractiveProcess, text: string): void {
    proc.stderr += text;
    for (;;) {
      if (proc.dropCaretLine) {
        const nl = proc.stderr.indexOf('\n');
        if (nl === -1) {
          // Wait for the rest of a caret line; anything else is real output.
          if (CARET_LINE.test(proc.stderr)) return;
          proc.dropCaretLine = false;
        } else {
          if (CARET_LINE.test(proc.stderr.slice(0, nl))) proc.stderr = proc.stderr.slice(nl + 1);
          proc.dropCaretLine = false;
        }
      }
      const head = proc.outstanding[0];
      if (!head) {
        // Nothing asked: unsolicited output (should not happen); keep it bounded.
        if (proc.stderr.length > MAX_STDERR_BYTES) proc.stderr = proc.stderr.slice(-MAX_STDERR_BYTES);
        return;
      }
      let at = 0;
      if (!proc.stderr.startsWith(`${head.marker}\n`)) {
        const found = proc.stderr.indexOf(`\n${head.marker}\n`);
        if (found === -1) {
          if (proc.stderr.length > 4 * MAX_STDERR_BYTES) proc.stderr = proc.stderr.slice(-2 * MAX_STDERR_BYTES);
          return;
        }
        at = found + 1;
      }
      // The line before the marker is nft's complaint about the marker itself.
      const complaint = at > 1 ? proc.stderr.lastIndexOf('\n', at - 2) + 1 : 0;
      const own = proc.stderr.slice(0, complaint);
      proc.stderr = proc.stderr.slice(at + head.marker.length + 1);
      proc.dropCaretLine = true;
      proc.outstanding.shift();
      head.cancelTimeout();
      if (head.line === null) this.verified(proc);
      else if (head.listing !== null) this.listingAnswered(proc, head, own);
      else head.resolve({ kind: 'exited', exitCode: own.trim() === '' ? 0 : 1, stdout: '', stderr: own.slice(0, MAX_STDERR_BYTES) });
    }
  }

  /** The listing's marker came: its error, its line, or a wait for the line. */
  private listingAnswered(proc: InteractiveProcess, exchange: Exchange, own: string): void {
    if (own.trim() !== '') {
      this.listingDone(proc);
      exchange.resolve({ kind: 'exited', exitCode: 1, stdout: '', stderr: own.slice(0, MAX_STDERR_BYTES) });
      return;
    }
    if (proc.listingOutput !== null) {
      const output = proc.listingOutput;
      this.listingDone(proc);
      this.listed(output.length);
      exchange.resolve({ kind: 'exited', exitCode: 0, stdout: output, stderr: '' });
      return;
    }
    proc.listingAwaitsOutput = this.scheduler.schedule(() => {
      // No line after all: whatever comes later would be taken for the next listing's answer,
      // so this process ends, and the spawn runner lists.
      proc.listingAwaitsOutput = null;
      this.listingDone(proc);
      if (!proc.ended) this.retire(proc, 'a listing printed nothing');
      void this.fallback.run(exchange.listing!).then(exchange.resolve);
    }, LISTING_OUTPUT_WAIT_MS);
  }

  private onStdout(proc: InteractiveProcess, text: string): void {
    let from = 0;
    for (;;) {
      // Only the new text is searched: a listing of 100,000 elements is one 10 MB line.
      const nl = text.indexOf('\n', from);
      if (nl === -1) {
        if (from < text.length) proc.stdout.push(text.slice(from));
        return;
      }
      proc.stdout.push(text.slice(from, nl));
      const line = proc.stdout.join('');
      proc.stdout = [];
      from = nl + 1;
      const listing = proc.listing;
      // Output with no listing in flight is not ours to give anyone: dropped.
      if (listing === null) continue;
      if (proc.listingAwaitsOutput !== null) {
        proc.listingAwaitsOutput();
        this.listingDone(proc);
        this.listed(line.length);
        listing.resolve({ kind: 'exited', exitCode: 0, stdout: line, stderr: '' });
      } else {
        proc.listingOutput = line;
      }
    }
  }

  private listingDone(proc: InteractiveProcess): void {
    proc.listing = null;
    proc.listingOutput = null;
    proc.listingAwaitsOutput = null;
  }

  private verified(proc: InteractiveProcess): void {
    proc.verified = true;
    this.startFailures = 0;
    this.onStatus({ kind: 'started', pid: proc.child.pid ?? 0 });
    const waiting = proc.waiting.splice(0);
    for (const w of waiting) this.send(proc, w.line, w.resolve);
  }

  private retire(proc: InteractiveProcess, reason: string): void {
    proc.ended = true;
    if (this.proc === proc) this.proc = null;
    proc.child.stdin?.end();
    this.onStatus({ kind: 'ended', pid: proc.child.pid ?? 0, reason, outstanding: 0 });
  }

  private ended(proc: InteractiveProcess, reason: string): void {
    // A listing whose marker came but whose line did not: it fails with the process.
    const awaiting = proc.listingAwaitsOutput !== null ? proc.listing : null;
    if (awaiting !== null) {
      proc.listingAwaitsOutput!();
      this.listingDone(proc);
      this.failExchange(awaiting, proc, reason);
    }
    if (proc.ended) {
      // Retired on purpose (or already reported): nothing is outstanding on it.
      for (const e of proc.outstanding.splice(0)) this.failExchange(e, proc, reason);
      return;
    }
    proc.ended = true;
    if (this.proc === proc) this.proc = null;
    const outstanding = proc.outstanding.splice(0);
    const waiting = proc.waiting.splice(0);
    for (const e of outstanding) this.failExchange(e, proc, reason);
    if (!proc.verified) {
      this.startFailed(reason);
      // Nothing of these was sent: the fallback runs them, as if interactive mode did not exist.
      for (const w of waiting) void this.fallback.run(w.commands).then(w.resolve);
      return;
    }
    this.onStatus({ kind: 'ended', pid: proc.child.pid ?? 0, reason, outstanding: outstanding.filter((e) => e.line !== null).length });
    if (this.closed) return;
    // A process that lived long gets replaced at once; one that keeps dying, ever more slowly.
    const lived = this.clock() - proc.startedAt;
    if (lived > 60_000) this.nextRestartDelayMs = this.restartDelayMs;
    this.restartAt = this.clock() + this.nextRestartDelayMs;
    this.nextRestartDelayMs = Math.min(this.maxRestartDelayMs, this.nextRestartDelayMs * 2);
  }

  private failExchange(e: Exchange, proc: InteractiveProcess, reason: string): void {
    e.cancelTimeout();
    if (e.line === null) return;
    // Whether it committed is unknown, as with a killed `nft -f`: transient, retried whole.
    e.resolve({ kind: 'killed', signal: reason, timedOut: proc.timedOut, stderr: proc.stderr.slice(0, MAX_STDERR_BYTES) });
  }

  private startFailed(reason: string): void {
    this.startFailures++;
    this.restartAt = this.clock() + this.nextRestartDelayMs;
    this.nextRestartDelayMs = Math.min(this.maxRestartDelayMs, this.nextRestartDelayMs * 2);
    if (this.startFailures >= this.maxStartFailures && !this.givenUp) {
      this.givenUp = true;
      this.onStatus({ kind: 'given-up', reason: `nft -i did not answer its first line ${this.startFailures} times (last: ${reason}); every nft run spawns a process now` });
    }
  }
}
