// The hand-over between scanTraceThreaded (read-trace.ts) and its scanning thread
// (scan-worker.ts): a ring of `window` slots in shared memory, each holding the records of one
// scan and the bytes of their lines. The scanning thread fills a slot and marks it full; the
// main thread reads it and marks it empty. No message per batch: posting even transferred
// buffers cost the receiving thread ~0.6-1 ms a batch, a fifth of its time.
//
// A line too long for a slot (a slot holds 4 MB of lines) goes as a message instead, its slot
// marked `message`: messages are posted before their slot is marked, and read in slot order.

/** What a full slot holds. */
export const SlotKind = { batch: 1, message: 2, end: 3, error: 4 } as const;
export type SlotKind = (typeof SlotKind)[keyof typeof SlotKind];

const EMPTY = 0;
const FULL = 1;
/** Ints of control data per slot: state, kind, count, base. */
const CONTROL_INTS = 4;
/** How long one wait lasts before the waiting side looks again (the other side may have died). */
const WAIT_MS = 500;

export interface ScanWorkerData {
  readonly path: string;
  readonly ring: SharedRing;
}

/** The shared memory of a ring (what the worker gets in workerData). */
export interface SharedRing {
  readonly control: SharedArrayBuffer;
  readonly slots: readonly SharedArrayBuffer[];
  readonly recordInts: number;
}

/** A batch too long for its slot, or the scanning thread's error (SlotKind.message / error). */
export type ScanWorkerMessage =
  | { readonly kind: 'batch'; readonly records: Int32Array<ArrayBuffer>; readonly bytes: Uint8Array<ArrayBuffer> }
  | { readonly kind: 'error'; readonly message: string };

interface AtomicsWithWaitAsync {
  waitAsync(ta: Int32Array, index: number, value: number, timeoutMs: number): { async: false; value: string } | { async: true; value: Promise<string> };
}

export class SlotRing {
  private readonly control: Int32Array;
  /** Main thread: set by interrupt(); the resolver of the wait in progress. */
  private interrupted = false;
  private wake: (() => void) | null = null;
  /** Per slot: its records and its line bytes (views of the slot's shared memory). */
  readonly records: readonly Int32Array[];
  readonly bytes: readonly Uint8Array[];

  static create(window: number, recordInts: number, lineBytes: number): SharedRing {
    const slots: SharedArrayBuffer[] = [];
    for (let i = 0; i < window; i++) slots.push(new SharedArrayBuffer(recordInts * 4 + lineBytes));
    return { control: new SharedArrayBuffer(window * CONTROL_INTS * 4), slots, recordInts };
  }

  constructor(readonly shared: SharedRing) {
    this.control = new Int32Array(shared.control);
    this.records = shared.slots.map((s) => new Int32Array(s, 0, shared.recordInts));
    this.bytes = shared.slots.map((s) => new Uint8Array(s, shared.recordInts * 4));
  }

  get window(): number {
    return this.shared.slots.length;
  }

  slotOf(seq: number): number {
    return seq % this.window;
  }

  // ---- scanning thread

  /** Blocks until slot `seq` is empty (the main thread has read what was there). */
  waitEmpty(seq: number): void {
    const at = this.slotOf(seq) * CONTROL_INTS;
    while (Atomics.load(this.control, at) === FULL) Atomics.wait(this.control, at, FULL, WAIT_MS);
  }

  /** Marks slot `seq` full: its records and bytes (or its message) are ready. */
  publish(seq: number, kind: SlotKind, count: number, base: number): void {
    const at = this.slotOf(seq) * CONTROL_INTS;
    this.control[at + 1] = kind;
    this.control[at + 2] = count;
    this.control[at + 3] = base;
    Atomics.store(this.control, at, FULL);
    Atomics.notify(this.control, at);
  }

  // ---- main thread

  /**
   * Resolves when slot `seq` is full, or once interrupt() was called (the scanning thread failed
   * or exited: the caller then looks at what the slot holds). interrupt() ends a wait at once
   * because a pending Atomics.waitAsync, timeout and all, does not keep Node's event loop alive:
   * with the scanning thread gone and nothing else pending, the process would exit with this
   * promise unsettled, and `policy simulate` end with status 0 and no output.
   */
  async waitFull(seq: number): Promise<void> {
    const at = this.slotOf(seq) * CONTROL_INTS;
    const atomics = Atomics as unknown as AtomicsWithWaitAsync;
    while (Atomics.load(this.control, at) !== FULL && !this.interrupted) {
      const w = atomics.waitAsync(this.control, at, EMPTY, WAIT_MS);
      if (!w.async) continue;
      // One promise a wait, its resolver the only one kept: nothing piles up on a long scan.
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        void w.value.then(() => resolve());
      });
      this.wake = null;
    }
  }

  /** Ends the current and every later waitFull (the scanning thread is gone). */
  interrupt(): void {
    this.interrupted = true;
    this.wake?.();
  }

  kind(seq: number): SlotKind {
    return this.control[this.slotOf(seq) * CONTROL_INTS + 1] as SlotKind;
  }

  count(seq: number): number {
    return this.control[this.slotOf(seq) * CONTROL_INTS + 2]!;
  }

  base(seq: number): number {
    return this.control[this.slotOf(seq) * CONTROL_INTS + 3]!;
  }

  isFull(seq: number): boolean {
    return Atomics.load(this.control, this.slotOf(seq) * CONTROL_INTS) === FULL;
  }

  /** Hands slot `seq` back to the scanning thread. */
  release(seq: number): void {
    const at = this.slotOf(seq) * CONTROL_INTS;
    Atomics.store(this.control, at, EMPTY);
    Atomics.notify(this.control, at);
  }
}
