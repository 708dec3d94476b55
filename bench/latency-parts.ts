// The latency figure's chain, part by part: how long the kernel writer itself takes from a
// decided ban to the element's NEWSETELEM notification, without the event socket and the
// policy. `node dist/bench/latency-parts.js` (re-executes itself under unshare -n); prints
// p50/p99/max of: one libnftables call made synchronously on the main thread (the library's
// own floor: it fetches its cache from the kernel on every call), the same through koffi's
// async call (the runner), and NftSetWriter.ban() (its scheduling on top), one every 12 ms
// as in the figure.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { KernelElementWatch } from './kernel-elements.js';
import { LibnftablesBackend, LibnftablesRunner, NftSetWriter, resolveNftLayout } from '../lib/nft/index.js';
import { parseCidr } from '../lib/net/ip.js';

const TABLE = 'fsguard_latparts';
const COUNT = 250;
const GAP_MS = 12;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number): number => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const summary = (xs: number[]): string => {
  const s = [...xs].sort((a, b) => a - b);
  return `p50 ${pct(s, 50).toFixed(2)} ms, p99 ${pct(s, 99).toFixed(2)} ms, max ${s[s.length - 1]!.toFixed(2)} ms (${s.length})`;
};
const nowNs = (): number => Number(process.hrtime.bigint());

async function measure(label: string, watch: KernelElementWatch, base: number, ban: (ip: string) => void): Promise<void> {
  const sent: Array<[string, number]> = [];
  for (let i = 0; i < COUNT + 20; i++) {
    const ip = `10.${base}.${i >> 8}.${i & 255}`;
    sent.push([ip, nowNs()]);
    ban(ip);
    await sleep(GAP_MS);
  }
  await sleep(500);
  const lat = sent.slice(20).flatMap(([ip, t]) => { const seen = watch.firstSeen.get(ip); return seen === undefined ? [] : [(seen - t) / 1e6]; });
  console.log(`${label.padEnd(44)} ${summary(lat)}`);
}

async function main(): Promise<void> {
  if (process.env.FSGUARD_BENCH_NETNS !== '1') {
    const r = spawnSync('unshare', ['-n', 'sh', '-c', 'ip link set lo up && exec "$0" "$@"', process.execPath, process.argv[1]!], { stdio: 'inherit', env: { ...process.env, FSGUARD_BENCH_NETNS: '1' } });
    process.exit(r.status ?? 1);
  }
  const layout = resolveNftLayout({ table: TABLE });
  const runner = new LibnftablesRunner({ backend: new LibnftablesBackend() });
  const writer = new NftSetWriter(runner, layout, { batchMs: 2 });
  await writer.setup();
  const watch = new KernelElementWatch(TABLE);
  await watch.ready;
  const t0 = performance.now();
  // The library bound by hand for the synchronous call: fsguard itself never calls it on the main thread.
  const koffi = createRequire(import.meta.url)('koffi') as { load(path: string): { func(signature: string): (...args: unknown[]) => unknown } };
  const lib = koffi.load('libnftables.so.1');
  const ctx = lib.func('void *nft_ctx_new(uint32_t flags)')(0);
  lib.func('int nft_ctx_buffer_output(void *ctx)')(ctx);
  lib.func('int nft_ctx_buffer_error(void *ctx)')(ctx);
  const runSync = lib.func('int nft_run_cmd_from_buffer(void *ctx, const char *buf)');
  await measure('nft_run_cmd_from_buffer, synchronous', watch, 3, (ip) => {
    runSync(ctx, `create element inet ${TABLE} banned4 { ${ip} timeout 1h }`);
  });
  lib.func('void nft_ctx_free(void *ctx)')(ctx);
  await measure('runner.run(create element), koffi async', watch, 1, (ip) => {
    void runner.run({ script: `create element inet ${TABLE} banned4 { ${ip} timeout 1h }` });
  });
  await measure('NftSetWriter.ban()', watch, 2, (ip) => {
    void writer.ban(parseCidr(ip)!, 3600, { rule: 'scanner_user_agent', offences: 1 });
  });
  console.log(`(${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  await watch.stop();
  await writer.flush();
  await runner.run({ script: `delete table inet ${TABLE}` });
  await runner.close();
}

void main().then(() => process.exit(0), (err: unknown) => { console.error(err); process.exit(1); });
