// libnftables — the library the `nft` program is built on — called in-process through koffi.
//
// Why not a child process: a spawned `nft -j -f` costs a fork (~3 ms of the daemon's thread)
// and a file to stage its input in (which fails with ENOSPC when TMPDIR is full); a long-lived
// `nft -i` is a text protocol over a pipe whose success is inferred from what nft does not print.
// Through the library each transaction is one function call with the JSON document as its
// argument, its return code says whether it committed, its output (listings) and its error text
// come from the context's own buffers, and nothing outlives the daemon.
//
// The calls block (netlink round trips; a 5,000-element batch takes tens of ms), so they run on
// libuv's worker threads (koffi's async calls). A call into a wedged kernel cannot be cancelled:
// it keeps its worker thread until it returns. So every call has a deadline; a call past it is
// reported as timed out, its context is never used again (freed if the call ever returns), the
// next call gets a new context, and at most `maxHungCalls` such calls may be outstanding — past
// that, calls are refused at once instead of tying up every worker thread of the process.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { nftDocument } from './builders.js';
import type { NftCommand } from './schema.js';
import { systemScheduler, type Scheduler } from './scheduler.js';

/** How one call into libnftables ended. Never an exception: errors.ts classifies it. */
export type NftRunResult =
  /** The library ran the document: `ok` is its return code; `output` its JSON (listings), `error` its error text. */
  | { readonly kind: 'completed'; readonly ok: boolean; readonly output: string; readonly error: string }
  /** The library cannot be loaded, or a context cannot be made (`permission`: the process lacks CAP_NET_ADMIN). */
  | { readonly kind: 'unavailable'; readonly message: string; readonly permission: boolean }
  /** No answer within the deadline; the call still holds a worker thread. */
  | { readonly kind: 'timed-out'; readonly afterMs: number; readonly hungCalls: number }
  /** `maxHungCalls` calls are hung already: refused without trying. */
  | { readonly kind: 'overloaded'; readonly hungCalls: number };

/**
 * What one call runs: JSON commands, or (only where libnftables 1.0.6's JSON parser drops a
 * field: set comments) a script in nft's own syntax built from validated names and numbers.
 */
export type NftInput = readonly NftCommand[] | { readonly script: string };

/** Per call. */
export interface NftCallOptions {
  /** This call's deadline instead of the runner's (a listing grows with the bans). */
  readonly timeoutMs?: number;
}

export interface NftRunner {
  /** What is called (the library's name), for error messages. */
  readonly library: string;
  /** Runs the commands as one atomic transaction. Never rejects. */
  run(commands: NftInput, options?: NftCallOptions): Promise<NftRunResult>;
  /** Calls that passed their deadline and have not returned (each holds a worker thread). */
  readonly hungCalls: number;
  /** Calls not returned yet: hung, running, or waiting for a context. */
  readonly unfinishedCalls?: number;
  /** Frees the contexts once the calls in flight are done (hung ones are left to finish). */
  close?(): Promise<void>;
}

/** What a context's call returns. */
export interface NftCallResult {
  readonly rc: number;
  readonly output: string;
  readonly error: string;
}

/** One libnftables context: JSON output, output and errors buffered. Used by one call at a time. */
export interface NftContext {
  /** Runs `text` on a worker thread. */
  run(text: string): Promise<NftCallResult>;
  free(): void;
}

/** Makes contexts: the real library, or (in fault tests) a wrapper around it. */
export interface NftBackend {
  readonly library: string;
  /** Throws an Error whose message says why (library missing, no memory), a NotPermittedError without CAP_NET_ADMIN. */
  open(): NftContext;
}

/** The process may not talk nftables netlink at all. */
export class NotPermittedError extends Error {
  override readonly name = 'NotPermittedError';
}

const CAP_NET_ADMIN = 12n;

/**
 * Whether this process holds CAP_NET_ADMIN (in its user namespace), from /proc/self/status.
 * Asked before the library is: without it libnftables 1.0.6 prints "Operation not permitted
 * (you must be root)" straight to the process's stderr, outside its error buffer. Null when
 * the status cannot be read (then the library is asked and its error is classified).
 */
function hasNetAdmin(readStatus: () => string): boolean | null {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readStatus());
    return m ? ((BigInt(`0x${m[1]!}`) >> CAP_NET_ADMIN) & 1n) === 1n : null;
  } catch {
    return null;
  }
}

// Values from libnftables.h (nftables 1.0.x).
const NFT_CTX_DEFAULT = 0;
const NFT_CTX_OUTPUT_JSON = 1 << 4;

type AsyncCallback<T> = (err: unknown, value: T) => void;
interface KoffiFunction<Args extends unknown[], R> {
  (...args: Args): R;
  async(...args: [...Args, AsyncCallback<R>]): void;
}
interface KoffiLibrary {
  func(signature: string): KoffiFunction<unknown[], unknown>;
}
interface Koffi {
  load(path: string): KoffiLibrary;
}

interface LibnftablesSymbols {
  readonly ctxNew: (flags: number) => unknown;
  readonly ctxFree: (ctx: unknown) => void;
  readonly setOutputFlags: (ctx: unknown, flags: number) => void;
  readonly bufferOutput: (ctx: unknown) => number;
  readonly bufferError: (ctx: unknown) => number;
  readonly outputBuffer: (ctx: unknown) => string | null;
  readonly errorBuffer: (ctx: unknown) => string | null;
  readonly runCmd: KoffiFunction<[unknown, string], number>;
}

function bindLibrary(koffi: Koffi, path: string): LibnftablesSymbols {
  const lib = koffi.load(path);
  const f = <A extends unknown[], R>(signature: string): KoffiFunction<A, R> => lib.func(signature) as unknown as KoffiFunction<A, R>;
  return {
    ctxNew: f<[number], unknown>('void *nft_ctx_new(uint32_t flags)'),
    ctxFree: f<[unknown], void>('void nft_ctx_free(void *ctx)'),
    setOutputFlags: f<[unknown, number], void>('void nft_ctx_output_set_flags(void *ctx, uint32_t flags)'),
    bufferOutput: f<[unknown], number>('int nft_ctx_buffer_output(void *ctx)'),
    bufferError: f<[unknown], number>('int nft_ctx_buffer_error(void *ctx)'),
    outputBuffer: f<[unknown], string | null>('const char *nft_ctx_get_output_buffer(void *ctx)'),
    errorBuffer: f<[unknown], string | null>('const char *nft_ctx_get_error_buffer(void *ctx)'),
    runCmd: f<[unknown, string], number>('int nft_run_cmd_from_buffer(void *ctx, const char *buf)'),
  };
}

const requireFromHere = createRequire(import.meta.url);

/** The real libnftables. Loading is deferred to the first context, so a missing library is a typed error there. */
export class LibnftablesBackend implements NftBackend {
  private symbols: LibnftablesSymbols | null = null;

  /** `library`: a soname or path; Debian's libnftables1 installs libnftables.so.1. */
  constructor(readonly library: string = 'libnftables.so.1') {}

  open(): NftContext {
    if (hasNetAdmin(() => readFileSync('/proc/self/status', 'utf8')) === false) {
      throw new NotPermittedError('Operation not permitted (the process lacks CAP_NET_ADMIN)');
    }
    this.symbols ??= bindLibrary(requireFromHere('koffi') as Koffi, this.library);
    const s = this.symbols;
    const ctx = s.ctxNew(NFT_CTX_DEFAULT);
    if (ctx === null) throw new Error('nft_ctx_new returned NULL (out of memory?)');
    s.setOutputFlags(ctx, NFT_CTX_OUTPUT_JSON);
    if (s.bufferOutput(ctx) !== 0 || s.bufferError(ctx) !== 0) {
      s.ctxFree(ctx);
      throw new Error('libnftables could not buffer its output');
    }
    let freed = false;
    return {
      run: (text) => new Promise((resolve) => {
        s.runCmd.async(ctx, text, (err, rc) => {
          // The buffers are read (and rewound) on the main thread, after the call is done.
          const output = s.outputBuffer(ctx) ?? '';
          const error = s.errorBuffer(ctx) ?? '';
          if (err) resolve({ rc: -1, output, error: `${error}${err instanceof Error ? err.message : String(err)}` });
          else resolve({ rc, output, error });
        });
      }),
      free: () => {
        if (freed) return;
        freed = true;
        s.ctxFree(ctx);
      },
    };
  }
}

export interface LibnftablesRunnerOptions {
  readonly backend?: NftBackend;
  /** A call not answered within this long is reported timed out and its context dropped. Default 10 s. */
  readonly timeoutMs?: number;
  /** Hung calls allowed at once before calls are refused (each holds one of libuv's 4 worker threads). Default 2. */
  readonly maxHungCalls?: number;
  /** Contexts used side by side (the writer runs two full batches at once in a flood). Default 2. */
  readonly maxContexts?: number;
  readonly scheduler?: Scheduler;
}

interface Waiter {
  readonly text: string;
  readonly timeoutMs: number;
  readonly resolve: (result: NftRunResult) => void;
}

/**
 * Runs each transaction on a context of its own backend: one call per context at a time,
 * up to `maxContexts` at once, the rest queued in order.
 */
export class LibnftablesRunner implements NftRunner {
  readonly library: string;
  private readonly backend: NftBackend;
  private readonly timeoutMs: number;
  private readonly maxHungCalls: number;
  private readonly maxContexts: number;
  private readonly scheduler: Scheduler;
  private readonly idle: NftContext[] = [];
  private busy = 0;
  private hung = 0;
  private readonly waiting: Waiter[] = [];
  private readonly drained: Array<() => void> = [];
  private closed = false;

  constructor(options: LibnftablesRunnerOptions = {}) {
    this.backend = options.backend ?? new LibnftablesBackend();
    this.library = this.backend.library;
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.maxHungCalls = Math.max(1, options.maxHungCalls ?? 2);
    this.maxContexts = Math.max(1, options.maxContexts ?? 2);
    this.scheduler = options.scheduler ?? systemScheduler;
  }

  get hungCalls(): number {
    return this.hung;
  }

  get unfinishedCalls(): number {
    return this.hung + this.busy + this.waiting.length;
  }

  run(commands: NftInput, options: NftCallOptions = {}): Promise<NftRunResult> {
    if (this.hung >= this.maxHungCalls) return Promise.resolve({ kind: 'overloaded', hungCalls: this.hung });
    // Serialized here, on the calling thread: the worker thread only runs the library.
    const text = 'script' in commands ? commands.script : JSON.stringify(nftDocument(commands));
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    return new Promise((resolve) => {
      this.waiting.push({ text, timeoutMs, resolve });
      this.next();
    });
  }

  private next(): void {
    while (this.waiting.length > 0 && this.busy < this.maxContexts) {
      if (this.hung >= this.maxHungCalls) {
        for (const w of this.waiting.splice(0)) w.resolve({ kind: 'overloaded', hungCalls: this.hung });
        break;
      }
      const waiter = this.waiting.shift()!;
      let context = this.idle.pop();
      if (!context) {
        try {
          context = this.backend.open();
        } catch (err) {
          waiter.resolve({ kind: 'unavailable', message: err instanceof Error ? err.message : String(err), permission: err instanceof NotPermittedError });
          continue;
        }
      }
      this.call(context, waiter);
    }
    if (this.busy === 0 && this.waiting.length === 0) for (const d of this.drained.splice(0)) d();
  }

  private call(context: NftContext, waiter: Waiter): void {
    this.busy++;
    let timedOut = false;
    const cancel = this.scheduler.schedule(() => {
      timedOut = true;
      // The context is abandoned: its call may return any time, or never.
      this.hung++;
      this.busy--;
      waiter.resolve({ kind: 'timed-out', afterMs: waiter.timeoutMs, hungCalls: this.hung });
      this.next();
    }, waiter.timeoutMs);
    void context.run(waiter.text).then((r) => {
      if (timedOut) {
        // Late: whatever it did is reported by the next read-back, not to a caller who gave up.
        this.hung--;
        context.free();
        return;
      }
      cancel();
      this.busy--;
      if (this.closed) context.free();
      else this.idle.push(context);
      waiter.resolve({ kind: 'completed', ok: r.rc === 0, output: r.output, error: r.error });
      this.next();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.busy > 0 || this.waiting.length > 0) await new Promise<void>((resolve) => this.drained.push(resolve));
    for (const c of this.idle.splice(0)) c.free();
  }
}

/**
 * Ends the process now, with `code`, without waiting for libuv's worker threads: exit() joins
 * them, and one still inside a hung libnftables call would keep the process alive forever.
 * stdout and stderr are synchronous for files and pipes on Linux, so what was written is out.
 */
export function exitWithHungCalls(code: number): never {
  const koffi = requireFromHere('koffi') as Koffi;
  const exit = koffi.load('libc.so.6').func('void _exit(int status)') as unknown as (status: number) => void;
  exit(code);
  // _exit does not return.
  throw new Error('unreachable');
}
