// O(1) counters for per-source evidence. The policy keeps one of these per
// kind of evidence per source instead of arrays of timestamps, so a source costs the same few
// numbers whether it sent one packet or a million, and memory stays bounded under a flood.

/** Sub-buckets per window: counts are exact to within 1/8 of the window. */
const SLOTS = 8;

/**
 * Events within the last `window` (± one eighth of it), in eight fixed slots: one small
 * allocation per counter, O(1) per event whatever the rate, no timestamps kept. Time that goes
 * backwards a little (FreeSWITCH timestamps are not strictly increasing) counts in the newest slot.
 */
export class WindowCounter {
  private readonly slots: number[] = [0, 0, 0, 0, 0, 0, 0, 0];
  private head = -1;
  private total = 0;

  private advance(nowUs: number, windowUs: number): void {
    const slot = Math.floor((nowUs * SLOTS) / windowUs);
    if (slot <= this.head) return;
    if (this.head < 0 || slot - this.head >= SLOTS) {
      for (let i = 0; i < SLOTS; i++) this.slots[i] = 0;
      this.total = 0;
    } else {
      for (let k = this.head + 1; k <= slot; k++) {
        const i = k % SLOTS;
        this.total -= this.slots[i]!;
        this.slots[i] = 0;
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
    this.slots[this.head % SLOTS]! += n;
    this.total += n;
    return this.total;
  }

  reset(): void {
    for (let i = 0; i < SLOTS; i++) this.slots[i] = 0;
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

/** The count of a counter that may not exist yet (allocated on first use, to keep idle sources small). */
export function countOf(c: WindowCounter | null, nowUs: number, windowUs: number): number {
  return c === null ? 0 : c.value(nowUs, windowUs);
}
