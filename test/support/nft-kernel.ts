// Test helpers that look at the kernel directly with the nft CLI, independently of
// lib/nft's own read-back, so the writer's tests assert on kernel state rather than on
// the code under test.
import { spawnSync } from 'node:child_process';
import { LibnftablesRunner, NftSetWriter, resolveNftLayout, type NftBackend, type NftInput, type NftRunner, type NftRunResult, type Scheduler } from '../../lib/nft/index.js';
import type { NftCommand } from '../../lib/nft/schema.js';

/** A table name unique to this test process and label, so parallel test files never collide. */
export function uniqueTableName(label: string): string {
  return `t${process.pid}_${label}`.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 32);
}

/**
 * A real writer on a table of its own (in the test's namespace), closed and its table deleted
 * at teardown: for tests of the guard whose subject is not the kernel, which still write to it.
 * `backend`: the library behind it (a fault-injecting one); `scheduler`: its batches' and
 * retries' timers.
 */
export function kernelWriter(t: { teardown(fn: () => unknown): void }, label: string, options: { backend?: NftBackend; scheduler?: Scheduler } = {}): NftSetWriter {
  const table = uniqueTableName(label);
  t.teardown(() => deleteTableIfExists('inet', table));
  const runner = options.backend ? new LibnftablesRunner({ backend: options.backend }) : new LibnftablesRunner();
  const writer = new NftSetWriter(runner, resolveNftLayout({ table }), { batchMs: 0, ...(options.scheduler ? { scheduler: options.scheduler } : {}) });
  t.teardown(() => writer.close());
  return writer;
}

/** Runs the nft CLI with arguments (no shell); returns stdout, throws on failure. */
/** Listings of a flood's sets run to megabytes: spawnSync's default 1 MiB would cut them (ENOBUFS). */
const NFT_CLI_MAX_OUTPUT = 512 * 1024 * 1024;

export function nftCli(args: readonly string[], input?: string): string {
  const r = spawnSync('nft', args, { encoding: 'utf8', input, maxBuffer: NFT_CLI_MAX_OUTPUT, env: { ...process.env, LC_ALL: 'C' } });
  if (r.status !== 0) throw new Error(`nft ${args.join(' ')} failed: ${r.stderr || r.error?.message}`);
  return r.stdout;
}

export function nftCliStatus(args: readonly string[]): { status: number | null; stderr: string } {
  const r = spawnSync('nft', args, { encoding: 'utf8', env: { ...process.env, LC_ALL: 'C' } });
  return { status: r.status, stderr: r.stderr };
}

/** An element as the kernel holds it, read with `nft -j list set`. */
export interface RawElement {
  /** `192.0.2.1` or `2001:db8::/64`. */
  readonly key: string;
  readonly timeout?: number;
  readonly expires?: number;
  readonly comment?: string;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function keyText(val: Json): string {
  if (typeof val === 'string') return val;
  if (val && typeof val === 'object' && !Array.isArray(val)) {
    const p = val.prefix;
    if (p && typeof p === 'object' && !Array.isArray(p)) return `${String(p.addr)}/${String(p.len)}`;
    const r = val.range;
    if (Array.isArray(r)) return `${String(r[0])}-${String(r[1])}`;
  }
  return JSON.stringify(val);
}

/** fsguard's ban sets. */
export const BAN_SETS = ['banned4', 'banned4net', 'banned6', 'banned6p64', 'banned6net'] as const;

/** An element's key as the target it bans: the /64 set holds each /64's network address. */
export function banTargetOf(set: string, key: string): string {
  return set === 'banned6p64' ? `${key}/64` : key;
}

/** The elements of one set, straight from `nft -j list set inet TABLE SET`. */
export function kernelElements(table: string, set: string): RawElement[] {
  const doc = JSON.parse(nftCli(['-j', 'list', 'set', 'inet', table, set])) as { nftables: Array<{ [k: string]: Json }> };
  const out: RawElement[] = [];
  for (const item of doc.nftables) {
    const s = item.set;
    if (!s || typeof s !== 'object' || Array.isArray(s) || !Array.isArray(s.elem)) continue;
    for (const e of s.elem) {
      if (e && typeof e === 'object' && !Array.isArray(e) && e.elem && typeof e.elem === 'object' && !Array.isArray(e.elem)) {
        const el = e.elem;
        out.push({
          key: keyText(el.val ?? null),
          ...(typeof el.timeout === 'number' ? { timeout: el.timeout } : {}),
          ...(typeof el.expires === 'number' ? { expires: el.expires } : {}),
          ...(typeof el.comment === 'string' ? { comment: el.comment } : {}),
        });
      } else {
        out.push({ key: keyText(e) });
      }
    }
  }
  return out;
}

export function kernelElement(table: string, set: string, key: string): RawElement | undefined {
  return kernelElements(table, set).find((e) => e.key === key);
}

/** Rules of a chain as nft prints them (text), one per line, without handles/counters. */
export function chainRules(table: string, chain: string): string[] {
  return nftCli(['list', 'chain', 'inet', table, chain])
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.includes('drop') || l.includes('accept;'))
    .map((l) => l.replace(/counter packets \d+ bytes \d+/, 'counter'));
}

export function deleteTableIfExists(family: string, table: string): void {
  spawnSync('nft', ['delete', 'table', family, table], { stdio: 'ignore' });
}

/** Wraps a runner and records every run: how many libnftables calls, with what commands. */
export class RecordingRunner implements NftRunner {
  readonly runs: NftCommand[][] = [];
  /** The most nft processes that ran at the same time (the writer promises 1). */
  maxConcurrent = 0;
  private running = 0;
  constructor(private readonly inner: NftRunner) {}
  get library(): string {
    return this.inner.library;
  }
  get hungCalls(): number {
    return this.inner.hungCalls;
  }
  close(): Promise<void> {
    return this.inner.close?.() ?? Promise.resolve();
  }
  /** Runs that were scripts (table creation), in order; `runs` gets [] for each. */
  readonly scripts: string[] = [];
  async run(commands: NftInput): Promise<NftRunResult> {
    if ('script' in commands) {
      this.scripts.push(commands.script);
      this.runs.push([]);
    } else {
      this.runs.push([...commands]);
    }
    this.running++;
    this.maxConcurrent = Math.max(this.maxConcurrent, this.running);
    try {
      return await this.inner.run(commands);
    } finally {
      this.running--;
    }
  }
}

/** A scheduler that runs callbacks on the next turn and records the delays asked for. */
export class ImmediateScheduler {
  readonly delays: number[] = [];
  schedule(callback: () => void, delayMs: number): () => void {
    this.delays.push(delayMs);
    const handle = setImmediate(callback);
    return () => clearImmediate(handle);
  }
}

/** A runner that answers from a script: for situations a real nft cannot be made to produce. */
export class ScriptedRunner implements NftRunner {
  readonly library = 'scripted-nft';
  readonly hungCalls = 0;
  readonly runs: NftCommand[][] = [];
  constructor(private readonly answer: (commands: readonly NftCommand[], call: number) => NftRunResult) {}
  run(input: NftInput): Promise<NftRunResult> {
    const commands = 'script' in input ? [] : input;
    this.runs.push([...commands]);
    return Promise.resolve(this.answer(commands, this.runs.length - 1));
  }
}
