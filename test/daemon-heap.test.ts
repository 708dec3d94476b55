// `fsguard run` narrows V8's heap growing factor (evicted policy state is old-generation garbage
// under a spray), unless node was started with an operator's own --heap-growing-percent.
import t from 'tap';
import { HEAP_GROWING_PERCENT, limitHeapGrowth } from '../lib/daemon/daemon.js';

t.test('the daemon sets --heap-growing-percent, and an operator\'s own flag wins', async (t) => {
  const set: string[] = [];
  limitHeapGrowth([], (f) => set.push(f));
  t.same(set, [`--heap-growing-percent=${HEAP_GROWING_PERCENT}`]);
  for (const own of ['--heap-growing-percent=20', '--heap_growing_percent=80']) {
    const none: string[] = [];
    limitHeapGrowth(['--enable-source-maps', own], (f) => none.push(f));
    t.same(none, [], own);
  }
  t.ok(HEAP_GROWING_PERCENT > 0 && HEAP_GROWING_PERCENT < 300, 'a growth rate, not a size');
});
