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

/** The count of a counter that may not exist yet (allocated on first use, to keep idle sources small). */
export function countOf(c: WindowCounter | null, nowUs: number, windowUs: number): number {
  return c === null ? 0 : c.value(nowUs, windowUs);
}
