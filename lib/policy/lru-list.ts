// Use order kept in the entries themselves (an intrusive doubly linked list), for tables whose
// lookup map must not be reordered on every use. A Map kept in use order by delete + set
// leaves a hole at each deletion, and finding its oldest entry walks over every hole left at
// its front: evicting one entry per insert that way costs O(holes) each time. Here the oldest is
// the head, a use moves one entry to the tail, and neither touches the map.

/** An entry of an LruList: its links and when it was last used. */
export interface LruEntry<T> {
  lruPrev: T | null;
  lruNext: T | null;
  lruUs: number;
}

export class LruList<T extends LruEntry<T>> {
  /** The least recently used entry. */
  head: T | null = null;
  /** The most recently used entry. */
  tail: T | null = null;

  /** Adds `e` (not in the list) as the most recently used, at `now`. */
  push(e: T, now: number): void {
    e.lruUs = now;
    e.lruPrev = this.tail;
    e.lruNext = null;
    if (this.tail !== null) this.tail.lruNext = e;
    else this.head = e;
    this.tail = e;
  }

  /** Takes `e` (in the list) out. */
  remove(e: T): void {
    if (e.lruPrev !== null) e.lruPrev.lruNext = e.lruNext;
    else this.head = e.lruNext;
    if (e.lruNext !== null) e.lruNext.lruPrev = e.lruPrev;
    else this.tail = e.lruPrev;
    e.lruPrev = null;
    e.lruNext = null;
  }

  /** Marks `e` (in the list) used at `now`: it becomes the most recently used. */
  use(e: T, now: number): void {
    e.lruUs = now;
    if (this.tail === e) return;
    this.remove(e);
    this.push(e, now);
  }
}
