// Runs the real `bin/fsguard` as a child process for end-to-end tests: writes its config,
// collects its JSON log lines, and waits for lines or exit.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type AddressInfo } from 'node:net';
import type { Test } from 'tap';
import { deleteTableIfExists } from './nft-kernel.js';

export const ROOT = new URL('../../../', import.meta.url).pathname;
export const FSGUARD = join(ROOT, 'bin/fsguard');

export type LogLine = Record<string, unknown> & { msg?: string; level?: string };

/** The environment for the real CLI: without tap's loader hooks (NODE_OPTIONS), as a user runs it. */
export function cliEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.NODE_OPTIONS;
  for (const k of Object.keys(env)) if (k.startsWith('TAP') || k.startsWith('_TAPJS')) delete env[k];
  return env;
}

/**
 * Writes a config file (mode 600) and returns its path. Unless the config says otherwise, the
 * daemon's status socket goes beside it: tests must not touch the host's /run/fsguard.
 */
/**
 * The status socket and the ban journal of a daemon under test live beside its config, never in
 * the host's /run/fsguard and /var/lib/fsguard (a test must not write the host's state), unless
 * the test sets them itself.
 */
function privateStatePaths(config: unknown, dir: string): unknown {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) return config;
  const c = config as Record<string, unknown>;
  const nft = (typeof c.nft === 'object' && c.nft !== null ? c.nft : {}) as Record<string, unknown>;
  return {
    ...c,
    ...('status' in c ? {} : { status: { socket: join(dir, 'status.sock') } }),
    nft: 'journalDir' in nft ? nft : { ...nft, journalDir: join(dir, 'journal') },
  };
}

/** The folders writeConfig made in this test process: removed when it exits (~90 a full run). */
const configDirs: string[] = [];
process.once('exit', () => { for (const dir of configDirs) rmSync(dir, { recursive: true, force: true }); });

export function writeConfig(config: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'fsguard-e2e-'));
  configDirs.push(dir);
  const path = join(dir, 'fsguard.json');
  writeFileSync(path, JSON.stringify(privateStatePaths(config, dir), null, 2));
  chmodSync(path, 0o600);
  return path;
}

export interface ProcessResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs a command to completion, collecting its output; killed with `killSignal` after
 * `timeoutMs`. Asynchronous on purpose: the test's own event-socket server lives in this
 * process and must keep answering while the child talks to it.
 */
export function runProcess(command: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; killSignal?: NodeJS.Signals } = {}): Promise<ProcessResult> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { env: options.env ?? cliEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => child.kill(options.killSignal ?? 'SIGKILL'), options.timeoutMs ?? 30_000);
    child.on('close', (status) => { clearTimeout(timer); resolve({ status, stdout, stderr }); });
  });
}

/** `fsguard <args>` to completion, as a user runs it. */
export function fsguardCli(args: readonly string[]): Promise<ProcessResult> {
  return runProcess(FSGUARD, args);
}

export class DaemonProcess {
  readonly lines: LogLine[] = [];
  /** Lines of stdout that were not JSON (must stay empty: logs are JSON lines). */
  readonly strayStdout: string[] = [];
  stderr = '';
  private readonly exited: Promise<number | null>;
  private exitCode: number | null | undefined = undefined;

  private constructor(readonly child: ChildProcess) {
    let buffered = '';
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) !== -1) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        try {
          this.lines.push(JSON.parse(line) as LogLine);
        } catch {
          this.strayStdout.push(line);
        }
      }
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => { this.stderr += chunk; });
    this.exited = new Promise((resolve) => child.on('exit', (code) => { this.exitCode = code; resolve(code); }));
  }

  static start(configPath: string, env: NodeJS.ProcessEnv = {}): DaemonProcess {
    const child = spawn(FSGUARD, ['run', '--config', configPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: cliEnv(env),
    });
    return new DaemonProcess(child);
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /**
   * Resolves with the first log line matching, or rejects after `timeoutMs`: a bound for a
   * broken daemon, not a measurement (on a loaded 2-core machine a daemon's first line took
   * over 10 s), so it is generous and costs nothing when the line comes.
   */
  async waitForLog(what: string, match: (l: LogLine) => boolean, timeoutMs = 30_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.find(match);
      if (hit) return hit;
      if (!this.running) throw new Error(`daemon exited (${this.exitCode}) before: ${what}\nstderr: ${this.stderr}\nlog: ${this.lines.slice(-5).map((l) => JSON.stringify(l)).join('\n')}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}\nlast log lines:\n${this.lines.slice(-8).map((l) => JSON.stringify(l)).join('\n')}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /**
   * Waits until the daemon has finished two reconciles after its log line `from` (it logs them
   * at debug level): the second listed the kernel after everything before `from` was done.
   */
  async waitForReconciles(from: number): Promise<void> {
    const reconciled = (l: LogLine): boolean => l.msg === 'reconciled with the kernel';
    await this.waitForLog('two reconciles', () => this.lines.slice(from).filter(reconciled).length >= 2);
  }

  /** Sends a signal and waits for exit; returns the exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<number | null> {
    if (!this.running) return this.exitCode ?? null;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }

  waitExit(): Promise<number | null> {
    return this.exited;
  }
}

/**
 * A daemon under test beside its own event-socket test server and nft table: at the test's
 * end the daemon is killed, the server closed and the table deleted.
 */
export function startDaemonWith(t: Test, config: string, server: { close(): Promise<void> }, table: string): DaemonProcess {
  const daemon = DaemonProcess.start(config);
  t.teardown(async () => {
    await daemon.stop('SIGKILL');
    await server.close();
    deleteTableIfExists('inet', table);
  });
  return daemon;
}

/** A loopback port nobody listens on (bound, then released): a free port, or a refused connection. */
export async function freeLoopbackPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
