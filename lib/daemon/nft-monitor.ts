// Notices soon when fsguard's table is deleted (`nft flush ruleset`, `systemctl restart
// nftables`, `nft delete table`), so the guard can rebuild it and restore every ban well
// within the periodic reconcile interval. It asks libnftables for the chains (our table shows
// through its chain) on a context of its own, so it never waits behind a big write: `list
// chains` is the one listing for which libnftables 1.0.6 fetches no set elements (`list tables`
// fetched them all: 165 ms of CPU every 250 ms with 26,000 bans, bench/RESULTS.md "Session 4").
// A missing chain is taken for a missing table: the rebuild repairs either. No child process:
// nothing to outlive the daemon, whatever kills it. The periodic reconcile stays the safety
// net for anything this misses (a deleted set).
import type { Logger } from '../obs/logger.js';
import { classifyRun, nftJson, type NftRunner, type Scheduler, type CancelScheduled } from '../nft/index.js';

export interface NftTableWatchOptions {
  readonly family: string;
  readonly table: string;
  /** How often the tables are listed. Default 250 ms. */
  readonly intervalMs?: number;
  readonly scheduler: Scheduler;
}

type JsonObject = { readonly [key: string]: unknown };

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** True when a `list chains` listing has a chain of this table; null when the output is not a listing. */
export function listingHasTable(output: string, family: string, table: string): boolean | null {
  let doc: unknown;
  try {
    doc = JSON.parse(output);
  } catch {
    return null;
  }
  if (!isObject(doc) || !Array.isArray(doc.nftables)) return null;
  return doc.nftables.some((item: unknown) => isObject(item) && isObject(item.chain) && item.chain.family === family && item.chain.table === table);
}

export class NftTableWatch {
  private stopped = false;
  private timer: CancelScheduled | null = null;
  /** The table was there at the last look (a deletion is reported once, until it is back). */
  private present = true;
  private failures = 0;
  private readonly intervalMs: number;

  constructor(
    private readonly runner: NftRunner,
    private readonly options: NftTableWatchOptions,
    private readonly onTableDeleted: () => void,
    private readonly logger: Logger,
  ) {
    this.intervalMs = options.intervalMs ?? 250;
  }

  start(): void {
    if (this.stopped || this.timer) return;
    this.timer = this.options.scheduler.schedule(() => void this.look(), this.intervalMs);
  }

  private async look(): Promise<void> {
    this.timer = null;
    if (this.stopped) return;
    const result = await this.runner.run([nftJson.listChains()]);
    if (this.stopped) return;
    const error = classifyRun(result, this.runner.library);
    const has = error === null && result.kind === 'completed' ? listingHasTable(result.output, this.options.family, this.options.table) : null;
    if (has === null) {
      this.failures++;
      if (this.failures === 1 || this.failures % 100 === 0) {
        this.logger.warn({ failures: this.failures, nft: error?.message ?? 'not a listing' }, 'cannot list the nft tables: a deleted table is noticed by the periodic reconcile meanwhile');
      }
    } else {
      this.failures = 0;
      if (!has && this.present) {
        this.logger.warn({ table: `${this.options.family} ${this.options.table}` }, 'fsguard\'s nft table was deleted (flush ruleset / nftables reload?): rebuilding it now');
        this.onTableDeleted();
      }
      this.present = has;
    }
    this.start();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.();
    this.timer = null;
  }
}
