// The cluster's figures (issue 14): three real `fsguard run` daemons sharing one real
// redis-server on loopback, each with its own replay server and nft table, inside a private
// network namespace.
//   - propagation: the deciding event written to node A's event socket → the element in node
//     C's kernel set (A appends, C reads the stream, decides, writes nft); `nft monitor` stamps it.
//   - merged-stream throughput: every node offered the mixed trace at once; each node judges
//     the merged stream of all three (its own events and the others').
// Part of `npm run bench` (figures `propagation` and `merged`); alone: `node dist/bench/cluster.js`.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { Daemon, deleteTable, ElementMonitor, nowNs, percentile, ReplayServer, sleep } from './harness.js';

export interface ClusterRow {
  readonly figure: string;
  readonly target: string;
  readonly measured: string;
  readonly met: boolean | null;
  readonly detail: string;
}

const REDIS_PORT = 6390;
const STREAM = 'fsguard:bench';
const NODES = ['a', 'b', 'c'] as const;
const SIZES = {
  propagationBans: 250,
  propagationWarmup: 30,
  propagationGapMs: 12,
  /** Events each node is offered in the merged-stream run, and at what rate. */
  mergedEventsPerNode: 150_000,
  mergedRatePerNode: 15_000,
  capMs: 60_000,
};

const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const log = (msg: string): void => { process.stderr.write(`[bench cluster] ${msg}\n`); };

interface ClusterRig {
  redis: ChildProcess;
  nodes: Array<{ name: string; table: string; server: ReplayServer; daemon: Daemon }>;
}

async function startRedis(): Promise<ChildProcess> {
  const redis = spawn('redis-server', ['--port', String(REDIS_PORT), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  redis.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  const deadline = Date.now() + 10_000;
  while (!/ready to accept connections/i.test(out)) {
    if (redis.exitCode !== null || Date.now() > deadline) throw new Error(`redis-server did not start: ${out}`);
    await sleep(20);
  }
  return redis;
}

async function rig(): Promise<ClusterRig> {
  const redis = await startRedis();
  const nodes: ClusterRig['nodes'] = [];
  try {
    await startNodes(nodes);
  } catch (err) {
    // What was started goes: a daemon left running holds its metrics port for the next figure.
    await teardown({ redis, nodes });
    throw err;
  }
  return { redis, nodes };
}

/** The three nodes, each pushed to `nodes` as soon as it runs, all following the stream live. */
async function startNodes(nodes: ClusterRig['nodes']): Promise<void> {
  for (const [i, name] of NODES.entries()) {
    const table = `fsguard_bench_${name}`;
    deleteTable(table);
    const server = await ReplayServer.start();
    const daemon = Daemon.start({
      table, eslPort: server.port, metricsPort: 9471 + i,
      ...(process.env.FSGUARD_BENCH_CPU_PROF ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${process.env.FSGUARD_BENCH_CPU_PROF}`, `--cpu-prof-name=cluster-${name}.cpuprofile`] } : {}),
      config: { cluster: { enabled: true, url: `redis://127.0.0.1:${REDIS_PORT}`, stream: STREAM, node: name } },
    });
    nodes.push({ name, table, server, daemon });
    await server.next('subscribed', 20_000);
    await daemon.ready();
  }
  // Each follows the stream live before anything is measured.
  const deadline = Date.now() + 20_000;
  for (const n of nodes) {
    while ((await n.daemon.metric('fsguard_cluster_connected')) !== 1) {
      if (Date.now() > deadline) throw new Error(`node ${n.name} not connected to the cluster`);
      await sleep(50);
    }
  }
}

async function teardown(r: ClusterRig): Promise<void> {
  for (const n of r.nodes) {
    await n.daemon.stop();
    n.server.stop();
    deleteTable(n.table);
  }
  r.redis.kill('SIGKILL');
}

export async function propagation(): Promise<ClusterRow> {
  const r = await rig();
  const [a, , c] = r.nodes as [ClusterRig['nodes'][0], ClusterRig['nodes'][0], ClusterRig['nodes'][0]];
  const monitor = new ElementMonitor(c.table);
  try {
    await sleep(300);
    const { propagationBans: count, propagationWarmup: warmup, propagationGapMs: gapMs } = SIZES;
    const paced = await a.server.request({ cmd: 'paced', count: warmup + count, gapMs, startUs: Date.now() * 1000, seed: 7 }, 'paced');
    await sleep(500);
    const sent = paced.sent as Array<[string, number]>;
    const lat: number[] = [];
    let missing = 0;
    for (const [ip, t] of sent.slice(warmup)) {
      const seen = monitor.firstSeen.get(ip);
      if (seen === undefined) missing++;
      else lat.push((seen - t) / 1e6);
    }
    lat.sort((x, y) => x - y);
    const p50 = percentile(lat, 50);
    const p99 = percentile(lat, 99);
    return {
      figure: 'cluster propagation: deciding event on node A → element in node C\'s kernel set (Redis on loopback)',
      target: 'p99 ≤ 20 ms',
      measured: `p50 ${fmt(p50, 2)} ms, p99 ${fmt(p99, 2)} ms, max ${fmt(lat[lat.length - 1] ?? NaN, 2)} ms`,
      met: missing === 0 && p99 <= 20,
      detail: `${count} scanner-UA attackers sent to node A one every ${gapMs} ms after ${warmup} not counted; three daemons, one redis-server; seen in C's set by nft monitor: ${lat.length}, missing ${missing}`,
    };
  } finally {
    monitor.stop();
    await teardown(r);
  }
}

export async function mergedThroughput(): Promise<ClusterRow> {
  const r = await rig();
  try {
    const n = SIZES.mergedEventsPerNode;
    const startUs = Date.now() * 1000 - 120_000_000;
    for (const [i, node] of r.nodes.entries()) {
      await node.server.request({ cmd: 'load', name: 'mixed', kind: 'mixed', events: n, seed: 31 + i, startUs }, 'loaded');
    }
    const before = await Promise.all(r.nodes.map((x) => x.daemon.metric('fsguard_cluster_events_judged_total')));
    const t0 = nowNs();
    const blasts = r.nodes.map((x) => x.server.request({ cmd: 'blast', name: 'mixed', rate: SIZES.mergedRatePerNode }, 'blasted'));
    const debug = process.env.FSGUARD_BENCH_DEBUG ? setInterval(() => {
      void Promise.all(r.nodes.map(async (x) => `${x.name}: events ${await x.daemon.metric('fsguard_events_total')} appended ${await x.daemon.metric('fsguard_cluster_appended_total')} queued ${await x.daemon.metric('fsguard_cluster_queued')} judged ${await x.daemon.metric('fsguard_cluster_events_judged_total')} local ${await x.daemon.metric('fsguard_cluster_local_judged_total')}`)).then((l) => log(l.join(' | ')));
    }, 2000) : null;
    await Promise.all(blasts);
    // Every own event of every node is in the stream (its queue empty): that is what each must judge.
    const deadline = Date.now() + SIZES.capMs;
    let queued = Infinity;
    while (queued > 0 && Date.now() < deadline) {
      queued = (await Promise.all(r.nodes.map((x) => x.daemon.metric('fsguard_cluster_queued')))).reduce((s, v) => s + v, 0);
      if (queued > 0) await sleep(20);
    }
    const appended = (await Promise.all(r.nodes.map((x) => x.daemon.metric('fsguard_cluster_appended_total')))).reduce((s, v) => s + v, 0);
    const dropped = (await Promise.all(r.nodes.map((x) => x.daemon.metric('fsguard_cluster_dropped_total')))).reduce((s, v) => s + v, 0);
    const doneAt: Array<number | null> = r.nodes.map(() => null);
    while (doneAt.some((d) => d === null) && Date.now() < deadline) {
      for (const [i, node] of r.nodes.entries()) {
        if (doneAt[i] !== null) continue;
        if ((await node.daemon.metric('fsguard_cluster_events_judged_total')) - before[i]! >= appended) doneAt[i] = nowNs();
      }
      await sleep(20);
    }
    if (debug) clearInterval(debug);
    const rates = doneAt.map((d) => (d === null ? 0 : appended / ((d - t0) / 1e9)));
    const min = Math.min(...rates);
    return {
      figure: 'cluster merged-stream throughput, three nodes (each judges all three nodes\' events)',
      target: '≥ 30,000 events/s per node',
      measured: `${rates.map((x, i) => `${NODES[i]} ${fmt(x)}`).join(', ')} events/s`,
      met: doneAt.every((d) => d !== null) && dropped === 0 && min >= 30_000,
      detail: `each node offered ${fmt(n)} mixed events at ${fmt(SIZES.mergedRatePerNode)}/s (${fmt(3 * SIZES.mergedRatePerNode)}/s merged); ${fmt(appended)} events in the stream, each node judged them all from the first write to the last judgement; ${fmt(dropped)} dropped`,
    };
  } finally {
    await teardown(r);
  }
}

function reexecInNetns(): number {
  const unshare = process.getuid?.() === 0 ? ['-n'] : ['-r', '-n'];
  const res = spawnSync('unshare', [...unshare, 'sh', '-c', 'ip link set lo up && exec "$0" "$@"', process.execPath, ...process.execArgv, process.argv[1]!, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, FSGUARD_BENCH_NETNS: '1' },
  });
  return res.status ?? 1;
}

async function main(): Promise<number> {
  if (process.env.FSGUARD_BENCH_NETNS !== '1') return reexecInNetns();
  const only = process.argv.includes('--only') ? new Set((process.argv[process.argv.indexOf('--only') + 1] ?? '').split(',')) : null;
  const rows: ClusterRow[] = [];
  for (const [name, f] of [['propagation', propagation], ['merged', mergedThroughput]] as const) {
    if (only && !only.has(name)) continue;
    log(`${name}…`);
    rows.push(await f());
    log(`${name}: ${rows[rows.length - 1]!.measured}`);
  }
  for (const row of rows) process.stdout.write(`${row.met ? 'MET ' : row.met === false ? 'MISSED ' : ''}${row.figure}: ${row.measured} (target ${row.target})\n  ${row.detail}\n`);
  return rows.some((row) => row.met === false) ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then((code) => process.exit(code), (err: unknown) => {
    process.stderr.write(`bench cluster: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exit(1);
  });
}
