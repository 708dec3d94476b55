// BoundedMemo (lib/util/bounded-memo.ts), the memo of parsed addresses, scanner verdicts and
// shared user names: what it hands back is what was stored, and a flood of distinct keys cannot
// grow it past its capacity. The sharing of user names (one string object per name) shows in the
// bench's memory figure, not here: JavaScript compares strings by content, so no test can tell
// two equal copies apart.
import t from 'tap';
import { BoundedMemo } from '../lib/util/bounded-memo.js';

t.test('a value comes back as stored, and distinct keys never grow the memo past its capacity', async (t) => {
  const memo = new BoundedMemo<string, string>(100);
  // 50 keys used over and over (within the capacity): each is stored once, then found.
  const wrong: string[] = [];
  let hits = 0;
  for (let i = 0; i < 500; i++) {
    const name = `user${i % 50}`;
    const had = memo.get(name);
    if (had === undefined) memo.set(name, `value of ${name}`);
    else if (had === `value of ${name}`) hits++;
    else wrong.push(name);
  }
  t.equal(hits, 450, 'every key after its first use is found');
  t.same(wrong, [], 'every value comes back as stored');
  // A flood of distinct keys: full at its capacity, never past it.
  let largest = 0;
  for (let i = 0; i < 1000; i++) {
    memo.set(`flood${i}`, 'x');
    largest = Math.max(largest, memo.size);
  }
  t.equal(largest, 100, 'full at its capacity, never past it');
  t.ok(memo.size > 0 && memo.size <= 100, `size ${memo.size}`);
  const before = memo.size;
  t.equal(memo.get('flood999'), 'x', 'the last key stored is held');
  t.equal(memo.size, before, 'a key it holds adds nothing');
});
