// `npm test`: runs tap inside a fresh network namespace (`unshare -n`, loopback up) so the
// nft and end-to-end tests use the real kernel without touching the host's ruleset.
// When the namespace cannot be had (no root, no nft, no unshare) those tests skip with the
// reason, unless FSGUARD_REQUIRE_NETNS=1 (CI), where that is a failure.
import { spawnSync } from 'node:child_process';

function missingPrerequisite(): string | null {
  const checks: Array<[string, string[], string]> = [
    ['nft', ['--version'], 'nftables'],
    ['unshare', ['--version'], 'util-linux'],
    ['ip', ['-V'], 'iproute2'],
  ];
  for (const [cmd, args, pkg] of checks) {
    const r = spawnSync(cmd, args, { stdio: 'ignore' });
    if (r.error || r.status !== 0) return `the ${cmd} command is missing (apt-get install -y ${pkg})`;
  }
  return null;
}

function unshareArgs(): string[] {
  // As root a plain network namespace; otherwise a user namespace grants CAP_NET_ADMIN in it.
  return process.getuid?.() === 0 ? ['-n'] : ['-r', '-n'];
}

// Compiled tests only: tap's own TypeScript loader is slow and tsc already checked them.
const tapArgs = process.argv.length > 2 ? process.argv.slice(2) : ['dist/test/**/*.test.js'];
const tapBin = new URL('../../../node_modules/.bin/tap', import.meta.url).pathname;
let missing = missingPrerequisite();
if (!missing) {
  const probe = spawnSync('unshare', [...unshareArgs(), 'nft', 'list', 'tables'], { encoding: 'utf8' });
  if (probe.status !== 0) missing = `unshare -n with nft is not permitted here: ${(probe.stderr || '').trim()}`;
}
let status: number;
if (missing) {
  if (process.env.FSGUARD_REQUIRE_NETNS === '1') {
    console.error(`FSGUARD_REQUIRE_NETNS=1 but ${missing}`);
    process.exit(1);
  }
  console.error(`note: nft/netns tests will skip: ${missing}`);
  status = spawnSync(tapBin, tapArgs, { stdio: 'inherit', env: { ...process.env, FSGUARD_NETNS_SKIP: missing } }).status ?? 1;
} else {
  status = spawnSync('unshare', [...unshareArgs(), 'sh', '-c', 'ip link set lo up && exec "$0" "$@"', tapBin, ...tapArgs], {
    stdio: 'inherit',
    env: { ...process.env, FSGUARD_NETNS: '1' },
  }).status ?? 1;
}
process.exit(status);
