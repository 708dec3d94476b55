// The machine's floor under the latency figure: one byte sent to another process over
// loopback TCP and echoed back, one every `gapMs` (the latency figure's spacing), with no
// work on either side. Each round trip is two wake-ups of an idle process; the latency
// figure's path has four (the daemon's main thread, the libuv thread that calls libnftables,
// `nft monitor`, the bench), so its p99 sits above this one's whatever fsguard does.
//
//   node dist/bench/round-trip.js          prints the figure
//   node dist/bench/round-trip.js --echo   the echoing peer (started by roundTripFloor)
import { spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { nowNs, percentile, sleep } from './harness.js';

export interface RoundTrip {
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly count: number;
}

/** Round trips after `warmup` uncounted ones (the peer's first replies run cold code). */
export async function roundTripFloor(count = 300, gapMs = 12, warmup = 20): Promise<RoundTrip> {
  const peer = spawn(process.execPath, [fileURLToPath(import.meta.url), '--echo'], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const [first] = (await once(peer.stdout, 'data')) as [Buffer];
    const port = Number(first.toString('utf8').trim());
    if (!Number.isInteger(port) || port <= 0) throw new Error(`round-trip peer printed no port: ${JSON.stringify(first.toString('utf8'))}`);
    const socket = connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    await once(socket, 'connect');
    const ms: number[] = [];
    for (let i = 0; i < warmup + count; i++) {
      const t0 = nowNs();
      const echoed = once(socket, 'data');
      socket.write('x');
      await echoed;
      if (i >= warmup) ms.push((nowNs() - t0) / 1e6);
      await sleep(gapMs);
    }
    socket.destroy();
    ms.sort((a, b) => a - b);
    return { p50Ms: percentile(ms, 50), p99Ms: percentile(ms, 99), maxMs: ms[ms.length - 1]!, count };
  } finally {
    peer.kill();
  }
}

function echo(): void {
  const server = createServer((s) => {
    s.setNoDelay(true);
    s.on('data', (d) => s.write(d));
  });
  server.listen(0, '127.0.0.1', () => {
    const address = server.address();
    process.stdout.write(`${typeof address === 'object' && address !== null ? address.port : 0}\n`);
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.includes('--echo')) echo();
  else {
    const r = await roundTripFloor();
    process.stdout.write(`loopback TCP round trip to another process, ${r.count} one every 12 ms: p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, max ${r.maxMs.toFixed(2)} ms\n`);
  }
}
