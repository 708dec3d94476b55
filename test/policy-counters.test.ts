// WindowCounter allocates its slot array only when events fall into two slots (a sprayed source
// counts one event and is evicted). That must not change a single count: it is checked against
// the always-allocated eight-slot counter it replaced, on seeded random event sequences.
import t from 'tap';
import { counted, counterWindow, countOf, countsIn, takeBack, WindowCounter, type Counter } from '../lib/policy/counters.js';

/** The counter before the lazy slot array, kept verbatim as the reference. */
class ReferenceCounter {
  private readonly slots: number[] = [0, 0, 0, 0, 0, 0, 0, 0];
  private head = -1;
  private total = 0;

  private advance(nowUs: number, windowUs: number): void {
    const slot = Math.floor((nowUs * 8) / windowUs);
    if (slot <= this.head) return;
    if (this.head < 0 || slot - this.head >= 8) {
      for (let i = 0; i < 8; i++) this.slots[i] = 0;
      this.total = 0;
    } else {
      for (let k = this.head + 1; k <= slot; k++) {
        const i = k % 8;
        this.total -= this.slots[i]!;
        this.slots[i] = 0;
      }
    }
    this.head = slot;
  }

  value(nowUs: number, windowUs: number): number {
    if (this.total === 0) return 0;
    this.advance(nowUs, windowUs);
    return this.total;
  }

  add(nowUs: number, windowUs: number, n = 1): number {
    this.advance(nowUs, windowUs);
    this.slots[this.head % 8]! += n;
    this.total += n;
    return this.total;
  }

  reset(): void {
    for (let i = 0; i < 8; i++) this.slots[i] = 0;
    this.total = 0;
    this.head = -1;
  }
}

/** mulberry32: a seeded PRNG, so a failure replays. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 0x1_0000_0000;
  };
}

t.test('WindowCounter counts exactly as the eight-slot reference, gaps and backward time included', async (t) => {
  const windowUs = 60_000_000;
  let mismatches = 0;
  for (let seed = 1; seed <= 200; seed++) {
    const r = prng(seed);
    const c = new WindowCounter();
    const ref = new ReferenceCounter();
    let now = 1_793_610_000_000_000 + Math.floor(r() * windowUs);
    for (let i = 0; i < 400; i++) {
      // Mostly small steps, some within one slot, some across several, a few past the window,
      // a few backwards (FreeSWITCH timestamps are not strictly increasing).
      const p = r();
      now += p < 0.05 ? -Math.floor(r() * 2_000_000) : p < 0.1 ? Math.floor(r() * 3 * windowUs) : Math.floor(r() * windowUs / 4);
      const op = r();
      let a: number;
      let b: number;
      if (op < 0.55) { const n = 1 + Math.floor(r() * 3); a = c.add(now, windowUs, n); b = ref.add(now, windowUs, n); }
      else if (op < 0.98) { a = c.value(now, windowUs); b = ref.value(now, windowUs); }
      else { c.reset(); ref.reset(); a = b = 0; }
      if (a !== b) mismatches++;
    }
  }
  t.equal(mismatches, 0);
});

t.test('WindowCounter: one event, then the window passes', async (t) => {
  const c = new WindowCounter();
  const w = 8_000_000;
  t.equal(c.add(0, w), 1);
  t.equal(c.value(500_000, w), 1, 'same slot');
  t.equal(c.add(3_000_000, w), 2, 'a later slot: the first event still counts');
  t.equal(c.value(8_500_000, w), 1, 'the first slot left the window');
  t.equal(c.value(20_000_000, w), 0, 'everything left the window');
});

t.test('counted: each window length counts every event since its first, as a counter of its own would, and countsIn tells which lengths count', async (t) => {
  const base = counterWindow(60_000_000, null);
  const windows = [base, counterWindow(600_000_000, base), counterWindow(20_000_000, base)];
  let mismatches = 0;
  let compared = 0;
  for (let seed = 1; seed <= 100; seed++) {
    const r = prng(seed);
    let c: Counter | null = null;
    // One reference counter per length, made at the first event of that length, fed every event after.
    const refs: (WindowCounter | null)[] = windows.map(() => null);
    let now = 1_793_610_000_000_000;
    for (let i = 0; i < 300; i++) {
      now += Math.floor(r() * 30_000_000);
      const k = r() < 0.8 ? 0 : r() < 0.5 ? 1 : 2;
      const w = windows[k]!;
      if (r() < 0.9) {
        c = counted(c, now, w);
        refs[k] ??= new WindowCounter();
        refs.forEach((ref, j) => ref?.add(now, windows[j]!.us));
      } else {
        takeBack(c, now, w);
        refs.forEach((ref, j) => ref?.take(now, windows[j]!.us));
      }
      windows.forEach((x, j) => {
        compared++;
        if (countOf(c, now, x) !== (refs[j]?.value(now, x.us) ?? 0)) mismatches++;
        // A length counts (explain says so) exactly when its reference was made, or nothing was counted yet.
        if (countsIn(c, x) !== (c === null || refs[j] !== null)) mismatches++;
      });
    }
  }
  t.equal(mismatches, 0, `${compared} counts compared`);
});

t.test('counted: events in the base length only keep the one plain counter', async (t) => {
  const base = counterWindow(60_000_000, null);
  const same = counterWindow(60_000_000, base);
  let c: Counter | null = null;
  const ref = new WindowCounter();
  for (let i = 0; i < 100; i++) { c = counted(c, i * 1_000_000, i % 2 === 0 ? base : same); ref.add(i * 1_000_000, base.us); }
  t.ok(c instanceof WindowCounter, 'a profile that keeps the base length shares its counter');
  t.equal(countOf(c, 99_000_000, same), ref.value(99_000_000, base.us), 'both profiles\' events, in one count');
  t.equal(countOf(c, 99_000_000, counterWindow(600_000_000, base)), 0, 'a length no event came in has no count');
});
