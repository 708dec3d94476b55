// The pool of user names the policy stores (lib/policy/name-pool.ts): what it hands out is the
// name asked for, and a flood of distinct names cannot grow it past its capacity. The sharing
// itself (one string object per name) shows in the bench's memory figure, not here: JavaScript
// compares strings by content, so no test can tell two equal copies apart.
import t from 'tap';
import { NamePool } from '../lib/policy/name-pool.js';

t.test('a name comes back equal, and distinct names never grow the pool past its capacity', async (t) => {
  const pool = new NamePool(100);
  const wrong: string[] = [];
  let largest = 0;
  for (let i = 0; i < 1000; i++) {
    const name = `user${i % 250}`;
    if (pool.shared(name) !== name) wrong.push(name);
    largest = Math.max(largest, pool.size);
  }
  t.same(wrong, [], 'every name comes back as asked');
  t.equal(largest, 100, 'full at its capacity, never past it');
  t.ok(pool.size > 0 && pool.size <= 100, `size ${pool.size}`);
  const before = pool.size;
  pool.shared('user249');
  t.equal(pool.size, before, 'a name it holds adds nothing');
});
