// `fsguard bans` on a table a flood leaves: how long the real CLI takes to list and group
// `hosts` IPv4 bans and `prefixes` IPv6 /64 bans. `node dist/bench/bans-listing.js [hosts]
// [prefixes]` (default 90,000 and 10,000; re-executes itself under unshare -n). The table is
// filled through NftSetWriter, as the daemon fills it; each listing is one CLI process, start
// to exit, text then --json.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { LibnftablesRunner, NftSetWriter, resolveNftLayout } from '../lib/nft/index.js';
import { parseCidr, type Cidr } from '../lib/net/ip.js';

const TABLE = 'fsguard_banslist';
const FSGUARD = new URL('../../bin/fsguard', import.meta.url).pathname;

async function main(): Promise<void> {
  if (process.env.FSGUARD_BENCH_NETNS !== '1') {
    const r = spawnSync('unshare', ['-n', 'sh', '-c', 'ip link set lo up && exec "$0" "$@"', process.execPath, ...process.argv.slice(1)], { stdio: 'inherit', env: { ...process.env, FSGUARD_BENCH_NETNS: '1' } });
    process.exit(r.status ?? 1);
  }
  const hosts = Number(process.argv[2] ?? 90_000);
  const prefixes = Number(process.argv[3] ?? 10_000);
  const writer = new NftSetWriter(new LibnftablesRunner(), resolveNftLayout({ table: TABLE }), { batchMs: 2 });
  await writer.setup();
  const targets: Cidr[] = [];
  for (let i = 0; i < hosts; i++) targets.push(parseCidr(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`)!);
  for (let i = 0; i < prefixes; i++) targets.push(parseCidr(`2001:db8:${(i >> 8).toString(16)}:${(i & 255).toString(16)}::/64`)!);
  await Promise.all(targets.map((c) => writer.ban(c, 3600, { rule: 'scanner_user_agent', offences: 1 })));
  await writer.flush();
  const dir = mkdtempSync(join(tmpdir(), 'fsguard-banslist-'));
  const config = join(dir, 'fsguard.json');
  writeFileSync(config, JSON.stringify({ nft: { table: TABLE, journalDir: join(dir, 'journal') } }), { mode: 0o600 });
  try {
    for (const args of [['bans'], ['bans', '--json']]) {
      const t0 = performance.now();
      const r = spawnSync(process.execPath, [FSGUARD, ...args, '--config', config], { encoding: 'utf8', maxBuffer: 1 << 30 });
      const ms = performance.now() - t0;
      if (r.status !== 0) throw new Error(`fsguard ${args.join(' ')} failed: ${r.stderr}`);
      console.log(`fsguard ${args.join(' ').padEnd(11)} ${hosts.toLocaleString('en-US')} hosts + ${prefixes.toLocaleString('en-US')} /64s: ${(ms / 1000).toFixed(2)} s`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await writer.close();
    spawnSync('nft', ['delete', 'table', 'inet', TABLE], { stdio: 'ignore' });
  }
}

void main().then(() => process.exit(0), (err: unknown) => { console.error(err); process.exit(1); });
