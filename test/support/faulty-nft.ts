// libnftables with faults injected where the runner calls it (the real library underneath):
// calls that hang (they hold a worker thread and cannot be cancelled) and calls the kernel
// refuses, on deadlines that run only when the test says so.
import { LibnftablesBackend, type NftBackend, type NftCallResult, type NftContext, type Scheduler } from '../../lib/nft/index.js';

export interface ManualTimer { readonly delayMs: number; readonly callback: () => void; done: boolean }

/** Timers that run only when the test says so. */
export class ManualScheduler implements Scheduler {
  private readonly pending: ManualTimer[] = [];
  /** The timer scheduled last (the runner schedules a call's deadline right before making the call). */
  last: ManualTimer | null = null;
  schedule(callback: () => void, delayMs: number): () => void {
    const entry = { delayMs, callback, done: false };
    this.pending.push(entry);
    this.last = entry;
    return () => { entry.done = true; };
  }
  /** How many timers of this delay wait. */
  waiting(delayMs: number): number {
    return this.pending.filter((e) => !e.done && e.delayMs === delayMs).length;
  }
  /** Runs every waiting timer of this delay; returns how many ran. */
  fire(delayMs: number): number {
    const due = this.pending.filter((e) => !e.done && e.delayMs === delayMs);
    for (const e of due) { e.done = true; e.callback(); }
    return due.length;
  }
}

/** What the kernel says when it cannot take a transaction now (EAGAIN): retried, then the run fails. */
export const KERNEL_BUSY_ERROR = 'internal:0:0-0: Error: Could not process rule: Resource temporarily unavailable\n';

/**
 * The real library; calls for which `hang(text)` is true are held until `release()` (then they
 * run), calls for which `fail(text)` gives an error text are answered with it (rc 1) without
 * reaching the kernel.
 */
export class FaultyBackend implements NftBackend {
  readonly library = 'libnftables.so.1';
  private readonly real = new LibnftablesBackend();
  /** The deadlines of the held calls. */
  private readonly heldDeadlines: ManualTimer[] = [];
  constructor(private readonly scheduler: ManualScheduler | null = null) {}
  hang: (text: string) => boolean = () => false;
  fail: (text: string) => string | null = () => null;
  /** Called when a call is held (after its deadline is recorded). */
  onHeld: () => void = () => undefined;
  opened = 0;
  freed = 0;
  held = 0;
  failed = 0;
  private readonly releases: Array<() => void> = [];

  open(): NftContext {
    const context = this.real.open();
    this.opened++;
    return {
      run: (text: string): Promise<NftCallResult> => {
        const error = this.fail(text);
        if (error !== null) {
          this.failed++;
          return Promise.resolve({ rc: 1, output: '', error });
        }
        if (!this.hang(text)) return context.run(text);
        this.held++;
        if (this.scheduler?.last) this.heldDeadlines.push(this.scheduler.last);
        const held = new Promise<NftCallResult>((resolve) => { this.releases.push(() => { this.held--; void context.run(text).then(resolve); }); });
        this.onHeld();
        return held;
      },
      free: () => { this.freed++; context.free(); },
    };
  }

  /** Lets the deadlines of the held calls pass (and only theirs); returns how many. */
  passDeadlines(): number {
    const due = this.heldDeadlines.splice(0).filter((d) => !d.done);
    for (const d of due) { d.done = true; d.callback(); }
    return due.length;
  }

  release(): void {
    for (const r of this.releases.splice(0)) r();
  }
}

/** Every write into the host set is refused (EAGAIN) while on; listings and the other sets still answer. */
export function refuseHostWrites(backend: FaultyBackend, on: boolean): void {
  backend.fail = (text) => (on && text.includes('"name":"banned4"') ? KERNEL_BUSY_ERROR : null);
}
