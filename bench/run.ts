// `npm run bench`: fsguard end to end, with the figures of issue 4. Re-executes itself inside
// a private network namespace (`unshare -n`, loopback up), where the real `fsguard run`
// daemon owns a real nft table and a replay server in another process speaks the event
// socket protocol over TCP. Prints a table and rewrites the generated part of
// bench/RESULTS.md (text outside the markers — before/after notes — is kept).
//
//   npm run bench [-- --only throughput,latency,flood,memory,simulate,fail2ban,propagation,merged]
//                 [-- --cpu-prof DIR]   (daemon runs with node --cpu-prof into DIR)
//                 [-- --no-write]       (do not touch bench/RESULTS.md)
//                 [-- --daemon-node-args "--flag …"]   (extra node flags for the daemon, for experiments)
import { spawn, spawnSync } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { createGunzip, createGzip } from 'node:zlib';
import {
  CACHE, Daemon, deleteTable, DropProbe, FSGUARD, memoryMb, cpuSeconds, threadCpu, nowNs, percentile, ReplayServer,
  ROOT, setSize, settle, sleep, START_US,
} from './harness.js';
import { EventRenderer, logLine, mixedTrace } from './gen.js';
import { KernelElementWatch } from './kernel-elements.js';
import { mergedThroughput, propagation } from './cluster.js';
import { roundTripFloor, type RoundTrip } from './round-trip.js';

const TABLE = 'fsguard_bench';
const METRICS_PORT = 9466;
/** Event time far ahead of the wall clock: the daemon's wall-clock tick never overtakes it. */

const SIZES = {
  throughputEvents: 1_000_000,
  /** Events/s the replay server offers in the sustained run (the target is 100,000). */
  offeredRate: 110_000,
  latencyBans: 250,
  /** Bans sent first and not counted: the first ban of a fresh daemon runs cold code (reported apart). */
  latencyWarmup: 30,
  latencyGapMs: 12,
  floodAttackers: 100_000,
  sprayEvents: 1_000_000,
  simulateEvents: 2_000_000,
  fail2banLines: 100_000,
  /** A daemon run gives up after this long and reports how far it got (5-minute budget). */
  daemonCapMs: 45_000,
};

interface Row {
  readonly figure: string;
  readonly target: string;
  readonly measured: string;
  /** null: no target to meet (informational). */
  readonly met: boolean | null;
  readonly detail: string;
}

interface Args {
  only: Set<string> | null;
  cpuProf: string | null;
  write: boolean;
  daemonNodeArgs: string[];
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { only: null, cpuProf: null, write: true, daemonNodeArgs: [] };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i]!;
    if (v === '--only') a.only = new Set((argv[++i] ?? '').split(',').filter(Boolean));
    else if (v === '--cpu-prof') a.cpuProf = argv[++i] ?? null;
    else if (v === '--no-write') a.write = false;
    else if (v === '--daemon-node-args') a.daemonNodeArgs = (argv[++i] ?? '').split(' ').filter(Boolean);
    else throw new Error(`unknown argument ${v}`);
  }
  return a;
}

const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const log = (msg: string): void => { process.stderr.write(`[bench] ${msg}\n`); };

// ---- netns ------------------------------------------------------------------------------

/** Runs this script again inside `unshare -n` with loopback up; returns its exit status. */
function reexecInNetns(): number {
  for (const [cmd, args] of [['nft', ['--version']], ['unshare', ['--version']], ['ip', ['-V']]] as const) {
    const r = spawnSync(cmd, [...args], { stdio: 'ignore' });
    if (r.error || r.status !== 0) {
      process.stderr.write(`bench: the ${cmd} command is missing; the benchmark needs nft, unshare and ip (and root or user namespaces)\n`);
      return 1;
    }
  }
  const unshare = process.getuid?.() === 0 ? ['-n'] : ['-r', '-n'];
  // --expose-gc: settle() collects the bench's own garbage between figures.
  const r = spawnSync('unshare', [...unshare, 'sh', '-c', 'ip link set lo up && exec "$0" "$@"', process.execPath, '--expose-gc', ...process.execArgv, process.argv[1]!, ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, FSGUARD_BENCH_NETNS: '1' },
  });
  return r.status ?? 1;
}

// ---- rigs ---------------------------------------------------------------------------------

interface Rig {
  server: ReplayServer;
  daemon: Daemon;
}

/**
 * The node flags of systemd/fsguard.service's ExecStart (between the node binary and the
 * script): the daemon is measured as the unit starts it. `--daemon-node-args` come after them.
 */
function unitNodeFlags(): string[] {
  const unit = readFileSync(new URL('../../systemd/fsguard.service', import.meta.url), 'utf8');
  const exec = /^ExecStart=(\S+)\s+(.*)$/m.exec(unit);
  if (exec === null) throw new Error('systemd/fsguard.service has no ExecStart line');
  const flags: string[] = [];
  for (const word of exec[2]!.split(/\s+/)) {
    if (!word.startsWith('--')) break;
    flags.push(word);
  }
  return flags;
}

async function rig(args: Args, label: string, policy: Record<string, unknown> = {}): Promise<Rig> {
  deleteTable(TABLE);
  const server = await ReplayServer.start();
  const nodeArgs = [...unitNodeFlags(), ...args.daemonNodeArgs, ...(args.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${args.cpuProf}`, `--cpu-prof-name=daemon-${label}.cpuprofile`] : [])];
  const daemon = Daemon.start({ table: TABLE, eslPort: server.port, metricsPort: METRICS_PORT, policy, nodeArgs });
  try {
    await server.next('subscribed', 20_000);
    await daemon.ready();
  } catch (err) {
    // A daemon left running would hold the metrics port of every figure after this one.
    await teardown({ server, daemon });
    throw err;
  }
  return { server, daemon };
}

async function teardown(r: Rig): Promise<void> {
  await r.daemon.stop();
  r.server.stop();
  deleteTable(TABLE);
}

// ---- figures ------------------------------------------------------------------------------

interface ThroughputRun {
  readonly done: boolean;
  readonly seen: number;
  readonly seconds: number;
  readonly rate: number;
  readonly cores: number;
  readonly bytes: number;
  readonly bans: number;
  readonly batches: number;
  /** CPU seconds per thread name over the run (main thread, V8's GC and compiler workers, libuv…). */
  readonly threads: ReadonlyMap<string, number>;
}

/** One daemon fed the mixed trace: at `offered` events/s, or (null) as fast as it reads. */
async function throughputRun(args: Args, label: string, offered: number | null): Promise<ThroughputRun> {
  const r = await rig(args, label);
  try {
    const n = SIZES.throughputEvents;
    const loaded = await r.server.request({ cmd: 'load', name: 'mixed', kind: 'mixed', events: n, seed: 11, startUs: START_US }, 'loaded');
    log(`${label}: ${fmt(n)} mixed events loaded (${fmt(Number(loaded.bytes) / 1e6)} MB)`);
    const cpu0 = cpuSeconds(r.daemon.pid);
    const threads0 = threadCpu(r.daemon.pid);
    const t0 = nowNs();
    const blasted = r.server.request({ cmd: 'blast', name: 'mixed', ...(offered !== null ? { rate: offered } : {}) }, 'blasted');
    const w = await r.daemon.waitForEvents(n, 20, SIZES.daemonCapMs);
    const cpu1 = cpuSeconds(r.daemon.pid);
    const threads = new Map([...threadCpu(r.daemon.pid)].map(([name, s]) => [name, s - (threads0.get(name) ?? 0)] as const));
    const b = w.done ? await blasted : { startNs: t0 };
    const start = Math.min(t0, Number(b.startNs));
    const seconds = (w.atNs - start) / 1e9;
    await sleep(300);
    const m = await r.daemon.metrics();
    return {
      done: w.done, seen: w.seen, seconds, rate: w.seen / seconds, cores: (cpu1 - cpu0) / seconds, bytes: Number(loaded.bytes),
      bans: m.get('fsguard_bans_total') ?? 0, batches: m.get('fsguard_nft_batches_total') ?? 0, threads,
    };
  } finally {
    await teardown(r);
  }
}

/**
 * Sustained throughput: the mixed trace offered at SIZES.offeredRate events/s; met when the
 * daemon keeps up (≥ 100,000 events/s end to end) within one core. Then the same trace as fast
 * as the daemon reads it, for its ceiling (a saturated daemon is above one core by its GC threads).
 */
async function throughput(args: Args): Promise<{ row: Row; rate: number }> {
  const paced = await throughputRun(args, 'throughput', SIZES.offeredRate);
  const max = await throughputRun(args, 'throughput-max', null);
  const n = SIZES.throughputEvents;
  const describe = (t: ThroughputRun): string =>
    `${t.done ? '' : `CUT at ${SIZES.daemonCapMs / 1000} s: `}${fmt(t.seen)} of ${fmt(n)} events in ${fmt(t.seconds, 2)} s, daemon CPU ${fmt(t.cores * t.seconds, 2)} s (${fmt(t.cores, 2)} cores: ${[...t.threads].filter(([, s]) => s >= 0.05).sort((a, b) => b[1] - a[1]).map(([name, s]) => `${name} ${fmt(s, 2)} s`).join(', ')}); ${fmt(t.bans)} bans, ${fmt(t.batches)} nft batches`;
  return {
    rate: max.rate,
    row: {
      figure: 'sustained throughput, mixed legit+attack (daemon, TCP)',
      target: '≥ 100,000 events/s at ≤ 1 core',
      measured: `${fmt(paced.rate)} events/s at ${fmt(paced.cores, 2)} cores (offered ${fmt(SIZES.offeredRate)}/s); max ${fmt(max.rate)} events/s at ${fmt(max.cores, 2)} cores`,
      met: paced.done && paced.rate >= 100_000 && paced.cores <= 1.0,
      detail: `offered ${fmt(SIZES.offeredRate)} events/s: ${describe(paced)}. As fast as it reads: ${describe(max)}. ${fmt(paced.bytes / 1e6)} MB of frames`,
    },
  };
}

async function latency(args: Args): Promise<Row> {
  // Run first (see main); with --only after another figure, settle() (in main's run) waits for
  // that one's processes to finish freeing their gigabytes (in their aftermath the p99 rose ~1 ms).
  const r = await rig(args, 'latency');
  const monitor = new KernelElementWatch(TABLE);
  try {
    await monitor.ready;
    await sleep(300);
    const count = SIZES.latencyBans;
    const warmup = SIZES.latencyWarmup;
    const paced = await r.server.request({ cmd: 'paced', count: warmup + count, gapMs: SIZES.latencyGapMs, startUs: START_US, seed: 5 }, 'paced');
    await sleep(500);
    const sent = paced.sent as Array<[string, number]>;
    const latencyOf = ([ip, t]: [string, number]): number | null => {
      const seen = monitor.firstSeen.get(ip);
      return seen === undefined ? null : (seen - t) / 1e6;
    };
    const cold = sent.slice(0, warmup).map(latencyOf);
    const lat: number[] = [];
    let missing = 0;
    for (const one of sent.slice(warmup)) {
      const ms = latencyOf(one);
      if (ms === null) missing++;
      else lat.push(ms);
    }
    if (process.env.FSGUARD_BENCH_DEBUG) log(`latencies in send order (ms): ${lat.map((v) => v.toFixed(1)).join(' ')}`);
    lat.sort((a, b) => a - b);
    const inKernel = setSize(TABLE, 'banned4');
    const p50 = percentile(lat, 50);
    const p99 = percentile(lat, 99);
    const max = lat[lat.length - 1] ?? NaN;
    return {
      figure: 'ban latency: deciding event written → element in kernel set',
      target: 'p99 ≤ 1 ms (≥ 200 bans)',
      measured: `p50 ${fmt(p50, 2)} ms, p99 ${fmt(p99, 2)} ms, max ${fmt(max, 2)} ms`,
      met: missing === 0 && p99 <= 1,
      detail: `${count} scanner-UA attackers (banned by their first event), one every ${SIZES.latencyGapMs} ms, after ${warmup} not counted (the fresh daemon's first bans: ${cold.map((v) => (v === null ? 'missing' : fmt(v, 1))).join(', ')} ms); seen in the kernel's netlink notifications: ${lat.length}, missing ${missing}; ${inKernel} elements listed afterwards`,
    };
  } finally {
    await monitor.stop();
    await teardown(r);
  }
}

async function flood(args: Args): Promise<Row> {
  const r = await rig(args, 'flood');
  try {
    const n = SIZES.floodAttackers;
    await r.server.request({ cmd: 'load', name: 'flood', kind: 'flood', events: n, seed: 3, startUs: START_US }, 'loaded');
    const lastIp = `198.${18 + ((n - 1) >>> 16)}.${((n - 1) >>> 8) & 255}.${(n - 1) & 255}`;
    const b0 = await r.daemon.metric('fsguard_nft_batches_total');
    let lastWrite = 0;
    let startNs = 0;
    void r.server.request({ cmd: 'blast', name: 'flood' }, 'blasted').then((b) => { lastWrite = Number(b.lastWriteNs); startNs = Number(b.startNs); });
    // The last deciding event's element, seen by the datapath (DropProbe: microseconds per
    // look, so the measurement takes no CPU from the daemon); a full listing confirms the rest.
    let seenNs = 0;
    let count = 0;
    const probe = await DropProbe.open(lastIp);
    try {
      const deadline = Date.now() + SIZES.daemonCapMs;
      while (Date.now() < deadline) {
        if (await probe.dropped()) {
          seenNs = nowNs();
          count = setSize(TABLE, 'banned4');
          if (count >= n) break;
          seenNs = 0;
        }
        await sleep(1);
      }
    } finally {
      probe.close();
    }
    if (count < n) count = setSize(TABLE, 'banned4');
    const processed = await r.daemon.metric('fsguard_events_total');
    await sleep(200);
    const batches = (await r.daemon.metric('fsguard_nft_batches_total')) - b0;
    const errors = await r.daemon.metric('fsguard_nft_errors_total');
    const done = seenNs > 0 && lastWrite > 0;
    const afterMs = done ? (seenNs - lastWrite) / 1e6 : NaN;
    // Where the time after the last write went: the daemon's own log line for the last ban
    // (wall clock, mapped onto the monotonic clock the other stamps use).
    const wallMinusMonoMs = Date.now() - nowNs() / 1e6;
    const lastBan = readFileSync(r.daemon.logPath, 'utf8').split('\n').reverse().find((l) => l.includes(`"target":"${lastIp}"`) && l.includes('"event":"ban"'));
    const decidedMs = lastBan ? Date.parse((JSON.parse(lastBan) as { time: string }).time) - wallMinusMonoMs - lastWrite / 1e6 : NaN;
    const blastMs = (lastWrite - startNs) / 1e6;
    return {
      figure: 'flood: 100,000 attackers → all in the kernel',
      target: '≤ 1 s after the last deciding event',
      measured: done ? `${fmt(afterMs)} ms after; ${fmt(batches)} nft processes` : `not done after ${SIZES.daemonCapMs / 1000} s: ${fmt(count)} in kernel; ${fmt(batches)} nft processes`,
      met: done && count >= n && afterMs <= 1000,
      detail: `${fmt(count)} of ${fmt(n)} elements in banned4; daemon had processed ${fmt(processed)} events; ${done ? `events written over ${fmt(blastMs)} ms; the daemon decided the last ban ${fmt(decidedMs)} ms after the last write (its log line)` : `CUT at ${SIZES.daemonCapMs / 1000} s (the server was still writing: the daemon reads only as fast as it processes)`}; nft processes counted by fsguard_nft_batches_total (committed transactions), ${errors} nft errors`,
    };
  } finally {
    await teardown(r);
  }
}

/**
 * lib/nft alone: 100,000 ban() calls at once into the daemon's writer (real nft, real
 * kernel), until every promise resolved and the set holds them all. Separates the writer's
 * share of the flood figure from the event path and the policy.
 */
async function writerFlood(): Promise<Row> {
  deleteTable(TABLE);
  const { NftSetWriter, LibnftablesRunner, resolveNftLayout } = await import('../lib/nft/index.js');
  const { parseCidr } = await import('../lib/net/ip.js');
  let runs = 0;
  const libRunner = new LibnftablesRunner();
  const runner = { library: libRunner.library, get hungCalls() { return libRunner.hungCalls; }, run: (c: Parameters<typeof libRunner.run>[0]) => { runs++; return libRunner.run(c); } };
  const writer = new NftSetWriter(runner, resolveNftLayout({ table: TABLE }), { batchMs: 2 });
  try {
    await writer.setup();
    const n = SIZES.floodAttackers;
    const targets = Array.from({ length: n }, (_, i) => parseCidr(`198.${18 + (i >>> 16)}.${(i >>> 8) & 255}.${i & 255}`)!);
    runs = 0;
    const t0 = nowNs();
    const outcomes = await Promise.all(targets.map((t) => writer.ban(t, 3600, { rule: 'scanner_user_agent', offences: 1 })));
    const ms = (nowNs() - t0) / 1e6;
    const written = outcomes.filter((o) => o.status === 'written').length;
    const inKernel = setSize(TABLE, 'banned4');
    return {
      figure: 'nft writer alone: 100,000 ban() calls → all in the kernel',
      target: '(part of the flood figure)',
      measured: `${fmt(ms)} ms, ${runs} libnftables calls`,
      met: null,
      detail: `${fmt(written)} written, ${fmt(inKernel)} in banned4; in-process NftSetWriter with the daemon's batchMs (2) and maxBatch (5000)`,
    };
  } finally {
    await writer.close();
    deleteTable(TABLE);
  }
}

async function memory(args: Args): Promise<Row> {
  const r = await rig(args, 'memory');
  try {
    const n = SIZES.sprayEvents;
    await r.server.request({ cmd: 'load', name: 'spray', kind: 'spray', events: n, seed: 9, startUs: START_US }, 'loaded');
    const before = memoryMb(r.daemon.pid);
    const t0 = nowNs();
    void r.server.request({ cmd: 'blast', name: 'spray' }, 'blasted');
    const w = await r.daemon.waitForEvents(n, 50, SIZES.daemonCapMs);
    await sleep(1500); // the tracked-sources gauge is set on the daemon's 1 s tick
    const tracked = await r.daemon.metric('fsguard_policy_tracked_sources');
    const after = memoryMb(r.daemon.pid);
    const rate = w.seen / ((w.atNs - t0) / 1e9);
    return {
      figure: 'memory: 1,000,000 distinct IPv6 sources (spray)',
      target: 'RSS ≤ 250 MB, state bounded',
      measured: `peak RSS ${fmt(after.peak)} MB, tracked ${fmt(tracked)}${w.done ? '' : ` (only ${fmt(w.seen)} events processed)`}`,
      met: w.done && after.peak <= 250 && tracked < n,
      detail: `${w.done ? '' : `CUT at ${SIZES.daemonCapMs / 1000} s after ${fmt(w.seen)} of ${fmt(n)} events; `}RSS ${fmt(before.rss)} MB before, ${fmt(after.rss)} MB after (peak ${fmt(after.peak)} MB VmHWM); tracked sources+prefixes ${fmt(tracked)} (caps: maxTrackedSources 100,000, maxTrackedPrefixes 20,000, default config); ${fmt(rate)} events/s`,
    };
  } finally {
    await teardown(r);
  }
}

/** The big trace for simulate (cached: it is the same bytes every run). */
async function simulateTrace(n: number): Promise<string> {
  mkdirSync(CACHE, { recursive: true });
  const path = join(CACHE, `mixed-calls-${n}-s21.jsonl.gz`);
  if (existsSync(path) && statSync(path).size > 0) return path;
  log(`generating ${fmt(n)} events into ${path}`);
  const gzip = createGzip({ level: 1 });
  const out = gzip.pipe(createWriteStream(`${path}.tmp`));
  const renderer = new EventRenderer();
  let parts: string[] = [];
  for (const e of mixedTrace({ events: n, seed: 21, startUs: START_US })) {
    parts.push(renderer.body(e));
    if (parts.length === 4096) {
      if (!gzip.write(`${parts.join('\n')}\n`)) await once(gzip, 'drain');
      parts = [];
    }
  }
  if (parts.length) gzip.write(`${parts.join('\n')}\n`);
  gzip.end();
  await once(out, 'finish');
  spawnSync('mv', [`${path}.tmp`, path]);
  return path;
}

/** The same trace as plain JSON lines, the form FreeSWITCH traces are recorded in (cached beside it). */
async function plainTrace(gz: string): Promise<string> {
  const path = gz.replace(/\.gz$/, '');
  if (existsSync(path) && statSync(path).size > 0) return path;
  log(`unpacking ${gz}`);
  try {
    await pipeline(createReadStream(gz), createGunzip(), createWriteStream(`${path}.tmp`));
  } catch (err) {
    rmSync(`${path}.tmp`, { force: true });
    throw err;
  }
  spawnSync('mv', [`${path}.tmp`, path]);
  return path;
}

/** One `fsguard policy simulate --json` run, process start to exit. */
async function simulateRun(trace: string): Promise<{ seconds: number; status: number | null; events: number; bans: number }> {
  const outPath = join(CACHE, 'simulate-out.json');
  const t0 = nowNs();
  const status = await new Promise<number | null>((resolve) => {
    const out = createWriteStream(outPath);
    out.on('open', () => {
      const child = spawn(process.execPath, [FSGUARD, 'policy', 'simulate', trace, '--json'], { stdio: ['ignore', out, 'inherit'] });
      child.on('exit', (code) => resolve(code));
    });
  });
  const seconds = (nowNs() - t0) / 1e9;
  const result = JSON.parse(readFileSync(outPath, 'utf8')) as { events: number; bans: unknown[] };
  return { seconds, status, events: result.events, bans: result.bans.length };
}

/**
 * The figure: the plain trace (read once before, so the page cache holds it, as it would a
 * trace just recorded). The gzip form is reported beside it: there zlib inflates ~1.8 GB on a
 * third thread, sharing the two cores with the scanning thread and the policy's.
 */
async function simulate(): Promise<{ row: Row; rate: number }> {
  const n = SIZES.simulateEvents;
  const gz = await simulateTrace(n);
  // 1.8 GB on disk: when there is no room, the gzip trace alone is measured (and said so).
  const plain = await plainTrace(gz).catch((err: unknown) => {
    log(`no plain trace (${err instanceof Error ? err.message : String(err)}): simulate measured on the gzip trace only`);
    return gz;
  });
  await pipeline(createReadStream(plain), new Writable({ write: (_chunk, _enc, done) => done() }));
  const p = await simulateRun(plain);
  const z = await simulateRun(gz);
  const rate = p.events / p.seconds;
  return {
    rate,
    row: {
      figure: '`fsguard policy simulate` on a large trace',
      target: '≥ 500,000 events/s',
      measured: `${fmt(rate)} events/s (gzip: ${fmt(z.events / z.seconds)} events/s)`,
      met: p.status === 0 && p.events === n && z.status === 0 && z.events === n && z.bans === p.bans && rate >= 500_000,
      detail: `${fmt(p.events)} events as ${plain === gz ? 'gzip (no room for the plain trace)' : 'JSON lines'} (${fmt(statSync(plain).size / 1e6)} MB) in ${fmt(p.seconds, 2)} s wall, process start to exit; the same gzipped (${fmt(statSync(gz).size / 1e6)} MB) in ${fmt(z.seconds, 2)} s; ${fmt(p.bans)} bans both times`,
    },
  };
}

async function fail2ban(fsguardRates: { daemon: number | null; simulate: number | null }): Promise<Row> {
  const figure = 'fail2ban-regex, `freeswitch` filter, same attack traffic as log lines';
  let regex = spawnSync('fail2ban-regex', ['--version'], { encoding: 'utf8' });
  if (regex.error) {
    log('fail2ban-regex missing: apt-get install -y fail2ban');
    spawnSync('apt-get', ['install', '-y', 'fail2ban'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    regex = spawnSync('fail2ban-regex', ['--version'], { encoding: 'utf8' });
  }
  const filter = '/etc/fail2ban/filter.d/freeswitch.conf';
  if (regex.error || !existsSync(filter)) {
    return { figure, target: 'ratio reported', measured: 'skipped', met: null, detail: 'fail2ban is not installed and `apt-get install -y fail2ban` failed (no network?): row skipped' };
  }
  mkdirSync(CACHE, { recursive: true });
  const logPath = join(CACHE, 'freeswitch.log');
  const lines: string[] = [];
  let attackEvents = 0;
  for (const e of mixedTrace({ events: SIZES.throughputEvents, seed: 11, startUs: START_US })) {
    if (!e.attack) continue;
    attackEvents++;
    const l = logLine(e);
    if (l !== null) lines.push(l);
    if (lines.length >= SIZES.fail2banLines) break;
  }
  writeFileSync(logPath, `${lines.join('\n')}\n`);
  const t0 = nowNs();
  const r = spawnSync('fail2ban-regex', [logPath, filter], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const seconds = (nowNs() - t0) / 1e9;
  const matched = Number(/Lines: \d+ lines, \d+ ignored, (\d+) matched/.exec(r.stdout)?.[1] ?? NaN);
  const rate = lines.length / seconds;
  const ratio = (x: number | null): string => (x === null ? 'n/a' : `${fmt(x / rate, 1)}×`);
  return {
    figure,
    target: 'ratio fsguard/fail2ban reported',
    measured: `${fmt(rate)} lines/s; fsguard daemon ${ratio(fsguardRates.daemon)}, simulate ${ratio(fsguardRates.simulate)}`,
    met: null,
    detail: `${fmt(lines.length)} log lines (challenges and failures of the first ${fmt(attackEvents)} attack events of the throughput trace), ${fmt(matched)} matched by the filter, ${fmt(seconds, 2)} s (${regex.stdout.trim().split('\n')[0]}); ratios use this run's daemon throughput and simulate rates`,
  };
}

// ---- report -------------------------------------------------------------------------------

/** parseReferenceUs before the figures and after them. */
interface SpeedReference {
  readonly startUs: number;
  readonly endUs: number;
  /** roundTripFloor() right before the latency figure. */
  readonly roundTrip: RoundTrip;
}

/**
 * The machine's speed at the kind of work fsguard does (V8 parsing text and allocating), the
 * same measure in every run, so that figures from different machines or days can be compared:
 * µs per `JSON.parse` of the bench's own auth event bodies (~900 bytes), best of five rounds.
 * The targets were set on a machine where JSON.parse + normalize took 2.5-3.1 µs an event
 * (issue 10); the same tree's figures follow this number, not the CPU's model or clock (bench/RESULTS.md, session 8).
 */
function parseReferenceUs(): number {
  const renderer = new EventRenderer();
  const bodies: string[] = [];
  for (const e of mixedTrace({ events: 4_000, seed: 21, startUs: START_US })) {
    if (e.subclass !== 'CHANNEL_HANGUP_COMPLETE') bodies.push(renderer.body(e));
  }
  const rounds = 25;
  let best = Infinity;
  let names = 0;
  for (let r = 0; r < 5; r++) {
    const t0 = nowNs();
    for (let i = 0; i < rounds; i++) {
      for (const b of bodies) names += String((JSON.parse(b) as Record<string, unknown>)['Event-Name']).length;
    }
    best = Math.min(best, (nowNs() - t0) / 1e3 / (rounds * bodies.length));
  }
  // Every body has an Event-Name: reading it keeps the parse from being optimized away.
  if (names < bodies.length) throw new Error('reference bodies without Event-Name');
  return best;
}

function machine(reference: SpeedReference): string[] {
  const cpu = cpus();
  const nftVersion = spawnSync('nft', ['--version'], { encoding: 'utf8' }).stdout.trim();
  return [
    `CPU: ${cpu[0]?.model ?? 'unknown'}, ${cpu.length} cores`,
    `kernel: ${release()}`,
    `node: ${process.version}`,
    `nft: ${nftVersion}`,
    `memory: ${Math.round(Number(readFileSync('/proc/meminfo', 'utf8').match(/MemTotal:\s+(\d+)/)?.[1] ?? 0) / 1024 / 1024)} GB`,
    `speed: JSON.parse of the bench's auth event bodies ${fmt(reference.startUs, 2)} µs each before the figures, ${fmt(reference.endUs, 2)} µs after (2.5-3.1 µs with normalize on the machine the targets were set on)`,
    `wake-up floor: ${roundTripLine(reference.roundTrip)} (the latency figure's path wakes four idle threads: the daemon, the libuv thread calling libnftables, nft monitor, the bench)`,
  ];
}

function roundTripLine(r: RoundTrip): string {
  return `a byte to another process over loopback TCP and back, ${fmt(r.count)} one every ${SIZES.latencyGapMs} ms, p50 ${fmt(r.p50Ms, 2)} ms, p99 ${fmt(r.p99Ms, 2)} ms, max ${fmt(r.maxMs, 2)} ms`;
}

function table(rows: readonly Row[]): string {
  const lines = ['| figure | target | measured | result |', '|---|---|---|---|'];
  for (const r of rows) lines.push(`| ${r.figure} | ${r.target} | ${r.measured} | ${r.met === null ? '—' : r.met ? 'met' : '**MISSED**'} |`);
  return lines.join('\n');
}

function report(rows: readonly Row[], started: Date, seconds: number, argv: readonly string[], reference: SpeedReference): string {
  return [
    `Run ${started.toISOString()}, ${fmt(seconds)} s in total.`,
    '',
    '**Machine**',
    '',
    ...machine(reference).map((l) => `- ${l}`),
    '',
    '**Commands**',
    '',
    '```sh',
    'cd /work/main && npm run build',
    `npm run bench${argv.length ? ` -- ${argv.join(' ')}` : ''}   # = node dist/bench/run.js, re-executed under unshare -n (lo up)`,
    '```',
    '',
    `The daemon runs as \`node ${[...unitNodeFlags(), ''].join(' ')}bin/fsguard run --config …\` (the node flags of systemd/fsguard.service's ExecStart).`,
    '',
    table(rows),
    '',
    '**Details**',
    '',
    ...rows.map((r) => `- ${r.figure}: ${r.detail}`),
  ].join('\n');
}

const BEGIN = '<!-- bench:begin (generated by npm run bench; edit outside the markers) -->';
const END = '<!-- bench:end -->';

function writeResults(generated: string): string {
  const path = join(ROOT, 'bench', 'RESULTS.md');
  const old = existsSync(path) ? readFileSync(path, 'utf8') : '# fsguard benchmark\n\n';
  const block = `${BEGIN}\n${generated}\n${END}`;
  const a = old.indexOf(BEGIN);
  const b = old.indexOf(END);
  const next = a >= 0 && b > a ? `${old.slice(0, a)}${block}${old.slice(b + END.length)}` : `${old.trimEnd()}\n\n## Latest run\n\n${block}\n`;
  writeFileSync(path, next);
  return path;
}

/** The figures in the issue's order (the order of the table). */
const FIGURES = ['throughput', 'latency', 'flood', 'writer', 'memory', 'simulate', 'fail2ban', 'propagation', 'merged'] as const;

async function main(): Promise<number> {
  if (process.env.FSGUARD_BENCH_NETNS !== '1') return reexecInNetns();
  const argv = process.argv.slice(2);
  const args = parseArgs(argv);
  const want = (name: string): boolean => args.only === null || args.only.has(name);
  const started = new Date();
  const t0 = nowNs();
  /** Rows by figure name, printed in FIGURES order whatever order they ran in. */
  const byName = new Map<string, Row>();
  let daemonRate: number | null = null;
  let simulateRate: number | null = null;
  const run = async (name: string, f: () => Promise<Row>): Promise<void> => {
    if (!want(name)) return;
    const settled = await settle();
    log(`${name}… (the machine settled in ${fmt(settled.waitedMs / 1000, 1)} s: ${fmt(settled.busy * 100, 0)} % busy)`);
    const s = nowNs();
    try {
      const row = await f();
      byName.set(name, row);
      log(`${name}: ${row.measured} (${fmt((nowNs() - s) / 1e9, 1)} s)`);
    } catch (err) {
      byName.set(name, { figure: name, target: '', measured: 'error', met: false, detail: err instanceof Error ? err.message : String(err) });
      log(`${name} failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    }
  };
  const referenceStartUs = parseReferenceUs();
  log(`speed: JSON.parse of an auth event body ${fmt(referenceStartUs, 2)} µs`);
  const roundTrip = await roundTripFloor(SIZES.latencyBans, SIZES.latencyGapMs);
  log(`wake-up floor: ${roundTripLine(roundTrip)}`);
  // Latency first: millisecond figures are measured before the heavy ones leave the machine
  // reclaiming gigabytes (a 3 s pause after them was not always enough).
  await run('latency', () => latency(args));
  await run('throughput', async () => {
    const t = await throughput(args);
    daemonRate = t.rate;
    return t.row;
  });
  await run('flood', () => flood(args));
  await run('writer', () => writerFlood());
  await run('memory', () => memory(args));
  await run('simulate', async () => {
    const s = await simulate();
    simulateRate = s.rate;
    return s.row;
  });
  await run('fail2ban', () => fail2ban({ daemon: daemonRate, simulate: simulateRate }));
  // Issue 14: three daemons sharing one redis-server (bench/cluster.ts).
  await run('propagation', () => propagation());
  await run('merged', () => mergedThroughput());
  const rows = FIGURES.flatMap((name) => byName.get(name) ?? []);
  const seconds = (nowNs() - t0) / 1e9;
  const reference = { startUs: referenceStartUs, endUs: parseReferenceUs(), roundTrip };
  const text = report(rows, started, seconds, argv, reference);
  process.stdout.write(`\n${table(rows)}\n\n${rows.map((r) => `- ${r.figure}: ${r.detail}`).join('\n')}\n\nspeed: JSON.parse of an auth event body ${fmt(reference.startUs, 2)} µs before, ${fmt(reference.endUs, 2)} µs after\nwake-up floor: ${roundTripLine(roundTrip)}\ntotal ${fmt(seconds)} s\n`);
  if (args.write && args.only === null) log(`wrote ${writeResults(text)}`);
  const missed = rows.filter((r) => r.met === false);
  if (missed.length) process.stdout.write(`\nMISSED: ${missed.map((r) => r.figure).join('; ')}\n`);
  return 0;
}

main().then((code) => process.exit(code), (err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
