// `fsguard run` sets V8 flags of its own: a narrower heap growing factor (evicted policy state
// is old-generation garbage under a spray) and the event reader's wasm compiled up front; an
// operator's own flag of the same name wins.
import t from 'tap';
import { DAEMON_V8_FLAGS, HEAP_GROWING_PERCENT, applyDaemonV8Flags } from '../lib/daemon/daemon.js';

t.test('the daemon sets its V8 flags, and an operator\'s own flag of the same name wins', async (t) => {
  const set: string[] = [];
  applyDaemonV8Flags([], (f) => set.push(f));
  t.same(set, [`--heap-growing-percent=${HEAP_GROWING_PERCENT}`, '--no-liftoff', '--no-wasm-lazy-compilation']);
  for (const own of ['--heap-growing-percent=20', '--heap_growing_percent=80']) {
    const rest: string[] = [];
    applyDaemonV8Flags(['--enable-source-maps', own], (f) => rest.push(f));
    t.same(rest, ['--no-liftoff', '--no-wasm-lazy-compilation'], own);
  }
  for (const own of ['--liftoff', '--no-liftoff', '--no_liftoff']) {
    const rest: string[] = [];
    applyDaemonV8Flags([own], (f) => rest.push(f));
    t.same(rest, [`--heap-growing-percent=${HEAP_GROWING_PERCENT}`, '--no-wasm-lazy-compilation'], own);
  }
  const lookalike: string[] = [];
  applyDaemonV8Flags(['--liftoff-extern-ref'], (f) => lookalike.push(f));
  t.equal(lookalike.length, DAEMON_V8_FLAGS.length, 'a flag that only starts the same is not the same flag');
  t.ok(HEAP_GROWING_PERCENT > 0 && HEAP_GROWING_PERCENT < 300, 'a growth rate, not a size');
});
