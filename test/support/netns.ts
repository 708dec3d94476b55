// Tests that use the real `nft` must run inside a private network namespace, never against
// the host's firewall. `npm test` (test/support/run-tests) starts tap inside `unshare -n`
// with loopback up and FSGUARD_NETNS=1; a test that needs nft asks `netnsSkipReason()` and
// skips (with the reason) when it is not inside one.

/** Null inside the private test namespace; otherwise why nft/netns tests cannot run. */
export function netnsSkipReason(): string | null {
  if (process.env.FSGUARD_NETNS === '1') return null;
  return process.env.FSGUARD_NETNS_SKIP ?? 'not inside the private test namespace: run the tests with `npm test`';
}

/** Tap options object that skips a netns test with its reason (or runs it). */
export function netnsTestOptions(): { skip: string | false } {
  const reason = netnsSkipReason();
  return { skip: reason ?? false };
}
