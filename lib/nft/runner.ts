// Runs nft. The only I/O boundary of lib/nft: everything else builds JSON and interprets
// results, so a test can put a real nft (or, where the kernel cannot produce a situation,
// a fake) behind this interface.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nftDocument } from './builders.js';
import type { NftCommand } from './schema.js';
import { systemScheduler, type Scheduler } from './scheduler.js';

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
  /** Runs the commands as ONE `nft -j -f -` process: one atomic transaction. Never rejects. */
  run(commands: readonly NftCommand[]): Promise<NftRunResult>;
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
