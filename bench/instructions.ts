// Instructions per event of `fsguard policy simulate`, counted by valgrind's callgrind: the same
// count for the same code, inputs and flags whatever else the machine is doing, so two trees
// (or two changes) compare on a loaded machine where seconds do not. It counts every thread's
// instructions (the scanning thread's too) under `node --single-threaded` (V8 compiles and
// collects on the main thread, so nothing is lost to threads valgrind runs one at a time) and
// `--predictable-gc-schedule` (without it V8 sizes its heap from timings). Two runs of the same
// tree still differ by up to 2.4 % now and then (mostly by 0.1 % or less): the scanning thread
// and the main thread interleave differently (bench/RESULTS.md, session 7). Differences
// smaller than that are not shown by one run of each.
//
//   node dist/bench/instructions.js [events] [tree ...]
//   node dist/bench/instructions.js --functions N [events] [tree]
//
// `events` (default 100,000) of the bench's mixed traffic with calls (the simulate figure's
// generator, seed 21); each tree (default: this one) is a checkout with its dist built. Per
// tree: (instructions for the trace − instructions for its first line) / (events − 1), which
// leaves out node's start and the module loading; warm-up (compiling the hot code) stays in,
// so compare equal `events` only. A run of 100,000 events takes 3-6 minutes a tree.
// `--functions N`: one run with node's `--perf-basic-prof`, and the N functions with the most
// instructions of their own, JavaScript named through the perf map node writes (callgrind
// knows only addresses there; the wasm scanner has no names and shows as one `(wasm or
// unnamed JIT code)` row).
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { EventRenderer, mixedTrace } from './gen.js';
import { CACHE, ROOT, START_US } from './harness.js';


async function traceOf(events: number): Promise<{ full: string; first: string }> {
  mkdirSync(CACHE, { recursive: true });
  const full = join(CACHE, `instructions-${events}-s21.jsonl`);
  const first = join(CACHE, `instructions-${events}-s21.first.jsonl`);
  if (!existsSync(full) || statSync(full).size === 0) {
    const out = createWriteStream(`${full}.tmp`);
    const renderer = new EventRenderer();
    for (const e of mixedTrace({ events, seed: 21, startUs: START_US })) {
      if (!out.write(`${renderer.body(e)}\n`)) await once(out, 'drain');
    }
    out.end();
    await once(out, 'finish');
    spawnSync('mv', [`${full}.tmp`, full]);
  }
  const text = readFileSync(full, 'latin1');
  writeFileSync(first, text.slice(0, text.indexOf('\n') + 1), 'latin1');
  return { full, first };
}

/**
 * Instructions callgrind counted for one simulate run of `trace` with `tree`'s code; with
 * `profile`, callgrind's output goes to profile.out and node writes its perf map (in profile.dir).
 */
function instructions(tree: string, trace: string, profile?: { readonly dir: string; readonly out: string }): Promise<number> {
  return new Promise((done, fail) => {
    const node = [process.execPath, '--single-threaded', '--predictable-gc-schedule', ...(profile ? ['--perf-basic-prof'] : [])];
    const child = spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${profile ? profile.out : '/dev/null'}`,
      ...node, join(tree, 'bin/fsguard'), 'policy', 'simulate', trace, '--json'], { stdio: ['ignore', 'ignore', 'pipe'], ...(profile ? { cwd: profile.dir } : {}) });
    let err = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => { err += d; });
    child.on('error', fail);
    child.on('exit', () => {
      const m = /Collected : (\d+)/.exec(err);
      if (m) done(Number(m[1]));
      else fail(new Error(`callgrind counted nothing for ${tree} (is valgrind installed? apt-get install -y valgrind):\n${err.slice(-2000)}`));
    });
  });
}

/** The perf map's code ranges, in the order node wrote them (a later entry at an address wins: code space is reused). */
function perfMap(path: string): { start: number; end: number; name: string }[] {
  const out: { start: number; end: number; name: string }[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^([0-9a-f]+) ([0-9a-f]+) (.*)$/.exec(line);
    if (m) out.push({ start: parseInt(m[1]!, 16), end: parseInt(m[1]!, 16) + parseInt(m[2]!, 16), name: m[3]!.replace(/^JS:/, '') });
  }
  return out;
}

/** The `top` functions by their own instructions in a callgrind output, JIT addresses named through `map`. */
function topFunctions(out: string, mapPath: string, top: number): string[] {
  const annotated = spawnSync('callgrind_annotate', ['--threshold=100', out], { encoding: 'utf8', maxBuffer: 1 << 30 });
  if (annotated.status !== 0) throw new Error(`callgrind_annotate failed: ${annotated.stderr}`);
  const ranges = perfMap(mapPath);
  const named = (address: number): string => {
    let name = '(wasm or unnamed JIT code)';
    for (const r of ranges) if (r.start <= address && address < r.end) name = r.name;
    return name;
  };
  const self = new Map<string, number>();
  let total = 0;
  for (const line of annotated.stdout.split('\n')) {
    const m = /^\s*([\d,]+) \([ \d.]+%\)\s+(.*)$/.exec(line);
    if (!m || m[2]!.startsWith('PROGRAM TOTALS')) continue;
    const n = Number(m[1]!.replace(/,/g, ''));
    const jit = /^\?\?\?:0x([0-9a-f]+) \[\?\?\?\]/.exec(m[2]!);
    const name = jit ? named(parseInt(jit[1]!, 16)) : m[2]!.replace(/^\?\?\?:/, '').replace(/\(.*$/, '').slice(0, 100);
    self.set(name, (self.get(name) ?? 0) + n);
    total += n;
  }
  return [...self].sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([name, n]) => `${(n / 1e6).toFixed(1).padStart(9)} M ${((100 * n) / total).toFixed(2).padStart(6)} %  ${name}`);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  let functions = 0;
  if (args[0] === '--functions') {
    args.shift();
    functions = Number(args.shift());
    if (!Number.isInteger(functions) || functions <= 0) throw new Error('--functions takes a count: node dist/bench/instructions.js --functions 40 [events] [tree]');
  }
  const events = args[0] !== undefined && /^\d+$/.test(args[0]) ? Number(args.shift()) : 100_000;
  const trees = args.length > 0 ? args.map((t) => resolve(t)) : [ROOT];
  const { full, first } = await traceOf(events);
  if (functions > 0) {
    const dir = mkdtempSync(join(tmpdir(), 'fsguard-instructions-'));
    try {
      const out = join(dir, 'callgrind.out');
      const all = await instructions(trees[0]!, full, { dir, out });
      // The profiled node's pid (its perf map's name) is in callgrind's header.
      const pid = /^pid: (\d+)$/m.exec(readFileSync(out, 'latin1').slice(0, 4096))?.[1];
      if (pid === undefined) throw new Error(`no pid in ${out}`);
      const mapPath = `/tmp/perf-${pid}.map`;
      console.log(`${trees[0]}: ${all.toLocaleString('en-US')} instructions for ${events.toLocaleString('en-US')} events; by function (own instructions):`);
      for (const line of topFunctions(out, mapPath, functions)) console.log(line);
      rmSync(mapPath, { force: true });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    return;
  }
  for (const tree of trees) {
    // The two runs of a tree at once: valgrind is one thread, and the machine has two cores.
    const [all, one] = await Promise.all([instructions(tree, full), instructions(tree, first)]);
    const perEvent = (all - one) / (events - 1);
    console.log(`${tree}: ${Math.round(perEvent).toLocaleString('en-US')} instructions per event (${events.toLocaleString('en-US')} events: ${all.toLocaleString('en-US')}; first line alone: ${one.toLocaleString('en-US')})`);
  }
}

void main().then(() => process.exit(0), (err: unknown) => { console.error(err instanceof Error ? err.message : err); process.exit(1); });
