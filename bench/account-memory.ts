// Heap kept per authenticated account by the toll-fraud table: 50,000 accounts (30 to a realm,
// one address each, as a provider's phones) fed to CallPolicy.noteAuthSuccess, the heap
// measured after a full collection before and after. `node --expose-gc
// dist/bench/account-memory.js`.
import { CallPolicy } from '../lib/policy/calls/call-policy.js';
import { DEFAULT_POLICY_SETTINGS } from '../lib/policy/settings.js';

const ACCOUNTS = 50_000;
const PER_REALM = 30;

function main(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with node --expose-gc');
  const users = Array.from({ length: ACCOUNTS }, (_, i) => `user${i}`);
  const realms = Array.from({ length: ACCOUNTS }, (_, i) => `office${Math.floor(i / PER_REALM)}.example.com`);
  const addresses = Array.from({ length: ACCOUNTS }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  gc();
  const before = process.memoryUsage().heapUsed;
  const calls = new CallPolicy(DEFAULT_POLICY_SETTINGS);
  for (let i = 0; i < ACCOUNTS; i++) calls.noteAuthSuccess(users[i]!, realms[i]!, addresses[Math.floor(i / PER_REALM)]!, '', 1_893_456_000_000_000 + i);
  gc();
  const after = process.memoryUsage().heapUsed;
  console.log(`${ACCOUNTS.toLocaleString('en-US')} accounts: ${((after - before) / ACCOUNTS).toFixed(0)} bytes of heap each`);
  // Kept alive until measured.
  if (calls.hostEvidence('') !== null) console.log('');
}

main();
