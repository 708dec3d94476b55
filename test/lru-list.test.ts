// LruList keeps use order in the entries themselves. Checked against the plainest reference
// (an array in use order, oldest first) on seeded random sequences of push, use and remove,
// walking the links both ways after every step.
import t from 'tap';
import { LruList, type LruEntry } from '../lib/policy/lru-list.js';

class Entry implements LruEntry<Entry> {
  lruPrev: Entry | null = null;
  lruNext: Entry | null = null;
  lruUs = 0;
  constructor(readonly id: number) {}
}

function forward(list: LruList<Entry>): number[] {
  const ids: number[] = [];
  for (let e = list.head; e !== null; e = e.lruNext) ids.push(e.id);
  return ids;
}

function backward(list: LruList<Entry>): number[] {
  const ids: number[] = [];
  for (let e = list.tail; e !== null; e = e.lruPrev) ids.push(e.id);
  return ids.reverse();
}

/** xorshift32: the same sequence on every run. */
function random(seed: number): () => number {
  let x = seed;
  return () => {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

t.test('push, use and remove keep the order of a reference array', async (t) => {
  for (const seed of [1, 7, 42]) {
    const next = random(seed);
    const list = new LruList<Entry>();
    const reference: Entry[] = [];
    const outside: Entry[] = Array.from({ length: 40 }, (_, i) => new Entry(i));
    let ok = true;
    for (let step = 0; step < 2_000 && ok; step++) {
      const now = step;
      const r = next();
      if (r < 0.4 && outside.length > 0) {
        const e = outside.splice(Math.floor(next() * outside.length), 1)[0]!;
        list.push(e, now);
        reference.push(e);
      } else if (r < 0.8 && reference.length > 0) {
        const e = reference[Math.floor(next() * reference.length)]!;
        list.use(e, now);
        reference.splice(reference.indexOf(e), 1);
        reference.push(e);
        ok &&= e.lruUs === now;
      } else if (reference.length > 0) {
        const e = reference[Math.floor(next() * reference.length)]!;
        list.remove(e);
        reference.splice(reference.indexOf(e), 1);
        outside.push(e);
        ok &&= e.lruPrev === null && e.lruNext === null;
      }
      const want = reference.map((e) => e.id);
      ok &&= JSON.stringify(forward(list)) === JSON.stringify(want) && JSON.stringify(backward(list)) === JSON.stringify(want);
      if (!ok) t.fail(`seed ${seed}, step ${step}: ${forward(list).join(',')} / ${backward(list).join(',')}, want ${want.join(',')}`);
    }
    t.ok(ok, `seed ${seed}: 2,000 steps in the reference's order`);
    t.equal(list.head?.id, reference[0]?.id, 'the head is the least recently used');
  }
});

t.test('the one entry of a list is its head and its tail; removing it empties the list', async (t) => {
  const list = new LruList<Entry>();
  const e = new Entry(1);
  list.push(e, 5);
  t.equal(list.head, e);
  t.equal(list.tail, e);
  list.use(e, 9);
  t.equal(e.lruUs, 9, 'using the youngest still stamps it');
  list.remove(e);
  t.equal(list.head, null);
  t.equal(list.tail, null);
});
