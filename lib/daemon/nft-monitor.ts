// Notices at once when fsguard's table is deleted (`nft flush ruleset`, `systemctl restart
// nftables`, `nft delete table`), so the guard can rebuild it and restore every ban well
// within the periodic reconcile interval. Runs `nft -j monitor tables` (table events only: no
// per-element traffic, whatever the ban rate) and restarts it with a backoff if it dies.
// The periodic reconcile stays the safety net for anything this misses.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Logger } from '../obs/logger.js';

export interface NftTableMonitorOptions {
  readonly binary: string;
  readonly family: string;
  readonly table: string;
  /** First restart delay after the monitor process ended; doubles up to maxRestartMs. */
  readonly restartMs?: number;
  readonly maxRestartMs?: number;
}

type JsonObject = { readonly [key: string]: unknown };

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** True when a `nft -j monitor` line says this table was deleted. */
export function isTableDeletion(line: string, family: string, table: string): boolean {
  let doc: unknown;
  try {
    doc = JSON.parse(line);
  } catch {
    return false;
  }
  if (!isObject(doc)) return false;
  const del = doc.delete ?? doc.destroy;
  if (!isObject(del) || !isObject(del.table)) return false;
  return del.table.family === family && del.table.name === table;
}

export class NftTableMonitor {
  private child: ChildProcess | null = null;
  private stopped = false;
  private restartTimer: NodeJS.Timeout | null = null;
  private delayMs: number;
  private startedAt = 0;
  private failures = 0;

  constructor(
    private readonly options: NftTableMonitorOptions,
    private readonly onTableDeleted: () => void,
    private readonly logger: Logger,
  ) {
    this.delayMs = options.restartMs ?? 1000;
  }

  start(): void {
    if (this.stopped || this.child) return;
    this.startedAt = Date.now();
    const child = spawn(this.options.binary, ['-j', 'monitor', 'tables'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
    });
    this.child = child;
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => { if (stderr.length < 2000) stderr += d; });
    // Lines are capped by readline's own buffering of one table event: tiny.
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (isTableDeletion(line, this.options.family, this.options.table)) {
        this.logger.warn({ table: `${this.options.family} ${this.options.table}` }, 'fsguard\'s nft table was deleted (flush ruleset / nftables reload?): rebuilding it now');
        this.onTableDeleted();
      }
    });
    child.on('error', (err) => { stderr += err.message; });
    child.on('close', (code, signal) => {
      this.child = null;
      if (this.stopped) return;
      // Ran a good while: it was working; start the backoff afresh.
      if (Date.now() - this.startedAt > 60_000) { this.delayMs = this.options.restartMs ?? 1000; this.failures = 0; }
      this.failures++;
      const log = this.failures === 1 || this.failures % 20 === 0 ? 'warn' : 'debug';
      this.logger[log]({ code, signal, stderr: stderr.trim().slice(0, 300), retryInMs: this.delayMs },
        'nft monitor ended: table deletions are noticed by the periodic reconcile until it is back');
      this.restartTimer = setTimeout(() => { this.restartTimer = null; this.start(); }, this.delayMs);
      this.delayMs = Math.min(this.options.maxRestartMs ?? 60_000, this.delayMs * 2);
    });
  }

  stop(): void {
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    this.child?.kill('SIGTERM');
    this.child = null;
  }
}
