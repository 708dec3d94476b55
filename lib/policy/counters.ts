// O(1) counters for per-source evidence. The policy keeps one of these per
// kind of evidence per source instead of arrays of timestamps, so a source costs the same few
// numbers whether it sent one packet or a million, and memory stays bounded under a flood.

/** Sub-buckets per window: counts are exact to within 1/8 of the window. */
const SLOTS = 8;

/**
 * Events within the last `window` (± one eighth of it), in eight fixed slots: O(1) per event
 * whatever the rate, no timestamps kept. Time that goes backwards a little (FreeSWITCH
 * timestamps are not strictly increasing) counts in the newest slot.
 *
 * The slot array is allocated only once events fall into two different slots: until then every
 * event counted is in the head slot and `total` is its count. Under an address spray each source
 * counts one unanswered challenge and is evicted, so the array (80 bytes, more than the counter
 * itself) would be allocated for hundreds of thousands of counters that never need it.
 */
export class WindowCounter {
  private slots: number[] | null = null;
  private head = -1;
  private total = 0;

  private advance(nowUs: number, windowUs: number): void {
    const slot = Math.floor((nowUs * SLOTS) / windowUs);
    if (slot <= this.head) return;
    const slots = this.slots;
    if (this.head < 0 || slot - this.head >= SLOTS) {
      if (slots !== null) for (let i = 0; i < SLOTS; i++) slots[i] = 0;
      this.total = 0;
    } else if (slots === null) {
      // Everything counted so far is in the old head slot, still inside the window: from now
      // on the slots must tell it apart from what the new head slot gets.
      if (this.total !== 0) {
        const s = [0, 0, 0, 0, 0, 0, 0, 0];
        s[this.head % SLOTS] = this.total;
        this.slots = s;
      }
    } else {
      for (let k = this.head + 1; k <= slot; k++) {
        const i = k % SLOTS;
        this.total -= slots[i]!;
        slots[i] = 0;
      }
    }
    this.head = slot;
  }

  /** Events within the last `windowUs` at `nowUs`. */
  value(nowUs: number, windowUs: number): number {
    if (this.total === 0) return 0;
    this.advance(nowUs, windowUs);
    return this.total;
  }

  /** Counts `n` events at `nowUs`; returns the count within the window. */
  add(nowUs: number, windowUs: number, n = 1): number {
    this.advance(nowUs, windowUs);
    if (this.slots !== null) this.slots[this.head % SLOTS]! += n;
    this.total += n;
    return this.total;
  }

  /**
   * Takes back `n` events counted earlier (an answer that came late): from the newest slot, so
   * the window may forget them a little early or late, never below zero overall.
   */
  take(nowUs: number, windowUs: number, n = 1): number {
    this.advance(nowUs, windowUs);
    const k = Math.min(n, this.total);
    if (k <= 0) return this.total;
    if (this.slots !== null) {
      // Take from the newest slots first, so no slot goes negative.
      let left = k;
      for (let d = 0; d < SLOTS && left > 0; d++) {
        const i = (((this.head - d) % SLOTS) + SLOTS) % SLOTS;
        const got = Math.min(left, this.slots[i]!);
        this.slots[i]! -= got;
        left -= got;
      }
    }
    this.total -= k;
    return this.total;
  }

  reset(): void {
    this.slots = null;
    this.total = 0;
    this.head = -1;
  }
}

/** 32-bit FNV-1a of a string: a deterministic jitter source (replays give the same bans). */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * A window as a profile's compiled settings hold it: its length, and the base settings' length
 * of the same window (the short, long or toll-fraud one), the length a plain WindowCounter
 * counts in. Profiles may override a window's length, and a counter counts in one length only.
 */
export interface CounterWindow {
  readonly us: number;
  readonly baseUs: number;
}

/** A window of `us` whose base length is `base`'s (null: it is the base settings' own). */
export function counterWindow(us: number, base: CounterWindow | null): CounterWindow {
  return { us, baseUs: base !== null ? base.us : us };
}

/**
 * One kind of evidence at a source that saw events of profiles with different lengths of its
 * window: a WindowCounter per length, each made at the first event of a profile with that
 * length and from then on fed by every event of the source, whatever its profile (the evidence
 * is the source's; each profile judges it over its own window). A source whose profiles share
 * the base length never has one: its plain WindowCounter is that length's.
 */
export class WindowCounters {
  private readonly lengths: number[] = [];
  private readonly counters: WindowCounter[] = [];

  /** The counters of a source that so far saw the base length only: `c`, that length's. */
  static from(c: WindowCounter, baseUs: number): WindowCounters {
    const m = new WindowCounters();
    m.lengths.push(baseUs);
    m.counters.push(c);
    return m;
  }

  /** Counts `n` events at `nowUs` in every length, `windowUs`'s made if new; returns its count. */
  add(nowUs: number, windowUs: number, n = 1): number {
    if (!this.lengths.includes(windowUs)) {
      this.lengths.push(windowUs);
      this.counters.push(new WindowCounter());
    }
    let value = 0;
    for (let i = 0; i < this.lengths.length; i++) {
      const v = this.counters[i]!.add(nowUs, this.lengths[i]!, n);
      if (this.lengths[i] === windowUs) value = v;
    }
    return value;
  }

  /** Whether it counts in `windowUs` (an event of a profile with that length came). */
  has(windowUs: number): boolean {
    return this.lengths.includes(windowUs);
  }

  /** Events within the last `windowUs` (0 if no event of a profile with that length came yet). */
  value(nowUs: number, windowUs: number): number {
    const i = this.lengths.indexOf(windowUs);
    return i < 0 ? 0 : this.counters[i]!.value(nowUs, windowUs);
  }

  /** Takes back `n` events from every length (see WindowCounter.take). */
  takeAll(nowUs: number, n = 1): void {
    for (let i = 0; i < this.lengths.length; i++) this.counters[i]!.take(nowUs, this.lengths[i]!, n);
  }
}

/** A counter of one kind of evidence: in the base length, or in several (see WindowCounters). */
export type Counter = WindowCounter | WindowCounters;

/**
 * `c` with `n` events counted at `nowUs`, in window `w` and in every other length it counts in;
 * made if null (allocated on first use, to keep idle sources small). While every event is in
 * the base length (one profile, or profiles that keep the base windows) it stays a plain
 * WindowCounter, and this is the `add` it always was.
 */
export function counted(c: Counter | null, nowUs: number, w: CounterWindow, n = 1): Counter {
  if (c === null) c = w.us === w.baseUs ? new WindowCounter() : new WindowCounters();
  else if (w.us !== w.baseUs && c instanceof WindowCounter) c = WindowCounters.from(c, w.baseUs);
  c.add(nowUs, w.us, n);
  return c;
}

/** The count of a counter that may not exist yet, within window `w`. */
export function countOf(c: Counter | null, nowUs: number, w: CounterWindow): number {
  if (c === null) return 0;
  // A plain counter counts in the base length: no event of a profile with another one came yet.
  if (w.us !== w.baseUs && c instanceof WindowCounter) return 0;
  return c.value(nowUs, w.us);
}

/**
 * Whether `c` keeps a count in `w`'s length, so that countOf is a count: false for a length no
 * event of a profile with it came with yet (countOf reads 0 there, and so does the verdict). A
 * counter not made yet counts nothing in every length.
 */
export function countsIn(c: Counter | null, w: CounterWindow): boolean {
  if (c === null) return true;
  return c instanceof WindowCounter ? w.us === w.baseUs : c.has(w.us);
}

/** Takes back `n` events counted earlier in every length of `c` (an answer that came late). */
export function takeBack(c: Counter | null, nowUs: number, w: CounterWindow, n = 1): void {
  if (c instanceof WindowCounter) c.take(nowUs, w.baseUs, n);
  else if (c !== null) c.takeAll(nowUs, n);
}
