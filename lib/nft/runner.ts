// Runs nft. The only I/O boundary of lib/nft: everything else builds JSON and interprets
// results, so a test can put a real nft (or, where the kernel cannot produce a situation,
// a fake) behind this interface.
import { spawn } from 'node:child_process';
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
}

/** nft's stderr is a few lines; a runaway one must not grow without bound. */
const MAX_STDERR_BYTES = 64 * 1024;

export class SpawnNftRunner implements NftRunner {
  readonly binary: string;
  private readonly timeoutMs: number;
  private readonly scheduler: Scheduler;

  constructor(options: SpawnNftRunnerOptions = {}) {
    this.binary = options.binary ?? 'nft';
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.scheduler = options.scheduler ?? systemScheduler;
  }

  run(commands: readonly NftCommand[]): Promise<NftRunResult> {
    // Serialized once per run: the whole batch is one string on stdin.
    const input = JSON.stringify(nftDocument(commands));
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
        stdio: ['pipe', 'pipe', 'pipe'],
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
      child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
      child.stderr.on('data', (chunk: Buffer) => {
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
      // nft may exit before reading all of stdin (a parse error, no permission): the exit
      // status says what happened, so a broken pipe here is not an error of its own.
      child.stdin.on('error', () => undefined);
      child.stdin.end(input);
    });
  }
}
