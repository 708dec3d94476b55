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
//
// `events` (default 100,000) of the bench's mixed traffic with calls (the simulate figure's
// generator, seed 21); each tree (default: this one) is a checkout with its dist built. Per
// tree: (instructions for the trace − instructions for its first line) / (events − 1), which
// leaves out node's start and the module loading; warm-up (compiling the hot code) stays in,
// so compare equal `events` only. A run of 100,000 events takes 3-6 minutes a tree.
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { join, resolve } from 'node:path';
import { EventRenderer, mixedTrace } from './gen.js';
import { ROOT } from './harness.js';

const START_US = 1_893_456_000_000_000;
const CACHE = join(process.env.TMPDIR ?? '/tmp', 'fsguard-bench');

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

/** Instructions callgrind counted for one simulate run of `trace` with `tree`'s code. */
function instructions(tree: string, trace: string): Promise<number> {
  return new Promise((done, fail) => {
    const child = spawn('valgrind', ['--tool=callgrind', '--callgrind-out-file=/dev/null',
      process.execPath, '--single-threaded', '--predictable-gc-schedule', join(tree, 'bin/fsguard'), 'policy', 'simulate', trace, '--json'], { stdio: ['ignore', 'ignore', 'pipe'] });
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

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const events = args[0] !== undefined && /^\d+$/.test(args[0]) ? Number(args.shift()) : 100_000;
  const trees = args.length > 0 ? args.map((t) => resolve(t)) : [ROOT];
  const { full, first } = await traceOf(events);
  for (const tree of trees) {
    // The two runs of a tree at once: valgrind is one thread, and the machine has two cores.
    const [all, one] = await Promise.all([instructions(tree, full), instructions(tree, first)]);
    const perEvent = (all - one) / (events - 1);
    console.log(`${tree}: ${Math.round(perEvent).toLocaleString('en-US')} instructions per event (${events.toLocaleString('en-US')} events: ${all.toLocaleString('en-US')}; first line alone: ${one.toLocaleString('en-US')})`);
  }
}

void main().then(() => process.exit(0), (err: unknown) => { console.error(err instanceof Error ? err.message : err); process.exit(1); });
