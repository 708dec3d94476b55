// What an idle spell costs the next piece of work on this machine: the same reads of objects
// scattered over ~20 MB, timed back to back and then right after the thread slept for a while
// (blocked, as the daemon is in epoll between the latency figure's events, one every 12 ms).
// The daemon's path from a socket read to the libnftables call is tens of microseconds warm;
// what it takes in the latency figure is mostly this (bench/RESULTS.md, session 17).
//
//   node dist/bench/cold-cache.js
import { nowNs } from './harness.js';

const OBJECTS = 400_000;
const READS = 20_000;
const ROUNDS = 200;
const IDLE_MS = [0.2, 0.5, 1, 2, 5, 12];

const objects = Array.from({ length: OBJECTS }, (_, i) => ({ a: i, b: String(i) }));
/** A stride prime to OBJECTS: each read lands on another object, far from the last one. */
const STRIDE = 7919;

function reads(count: number): number {
  let sum = 0;
  for (let i = 0; i < count; i++) sum += objects[(i * STRIDE) % OBJECTS]!.a;
  return sum;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
/** Blocks the thread (Atomics.wait): no timer, no event loop turn, nothing else run. */
function sleep(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

function medianUs(samples: number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[sorted.length >> 1]! / 1000;
}

function timed(idleMs: number | null): number {
  const samples: number[] = [];
  let sink = 0;
  for (let r = 0; r < ROUNDS; r++) {
    if (idleMs !== null) sleep(idleMs);
    const t = nowNs();
    sink += reads(READS);
    samples.push(nowNs() - t);
  }
  if (sink === -1) process.stdout.write('');
  return medianUs(samples);
}

for (let i = 0; i < 100; i++) reads(READS);
process.stdout.write(`${READS.toLocaleString('en-US')} reads of objects spread over ${OBJECTS.toLocaleString('en-US')}, median of ${ROUNDS}:\n`);
process.stdout.write(`  back to back          ${timed(null).toFixed(0)} µs\n`);
for (const ms of IDLE_MS) process.stdout.write(`  after ${String(ms).padEnd(4)} ms asleep   ${timed(ms).toFixed(0)} µs\n`);
