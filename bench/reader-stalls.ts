// The event reader alone, as the latency figure uses it: one scanner event every 12 ms into a
// fresh WasmBodyReader, each read() timed. `node dist/bench/reader-stalls.js [eager]`: with
// `eager`, V8 is told (as `fsguard run` does, lib/daemon/daemon.ts) to compile the wasm with
// TurboFan at load instead of Liftoff first and TurboFan once hot. Prints the load time and how
// many reads took over 0.5 ms (the tier-up stalls).
import { setFlagsFromString } from 'node:v8';
import { performance } from 'node:perf_hooks';
import { EventRenderer, prng, scannerEvent } from './gen.js';

const READS = 400;
const WARMUP = 30;
const GAP_MS = 12;

async function main(): Promise<void> {
  const eager = process.argv[2] === 'eager';
  if (eager) { setFlagsFromString('--no-liftoff'); setFlagsFromString('--no-wasm-lazy-compilation'); }
  const t0 = performance.now();
  const { createEventBodyReader } = await import('../lib/events/line-scanner.js');
  const { PreparsedEvent } = await import('../lib/events/normalize.js');
  const reader = createEventBodyReader();
  const loadMs = performance.now() - t0;
  const renderer = new EventRenderer();
  const r = prng(7);
  const p = new PreparsedEvent();
  const ms: number[] = [];
  for (let i = 0; i < READS; i++) {
    const body = Buffer.from(renderer.body(scannerEvent(i, 1_893_456_000_000_000 + i * GAP_MS * 1000, r)));
    const t = performance.now();
    reader.read(body, p);
    ms.push(performance.now() - t);
    await new Promise((resolve) => setTimeout(resolve, GAP_MS));
  }
  const s = ms.slice(WARMUP).sort((a, b) => a - b);
  const at = (q: number): string => s[Math.min(s.length - 1, Math.floor(q * s.length))]!.toFixed(3);
  console.log(`${eager ? 'eager TurboFan' : 'default tiering'}: load ${loadMs.toFixed(1)} ms; read p50 ${at(0.5)} ms, p99 ${at(0.99)} ms, max ${s[s.length - 1]!.toFixed(3)} ms; ${s.filter((x) => x > 0.5).length} of ${s.length} reads over 0.5 ms`);
}

void main().then(() => process.exit(0), (err: unknown) => { console.error(err); process.exit(1); });
