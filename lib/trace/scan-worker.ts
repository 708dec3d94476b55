// The scanning thread of `policy simulate` (see scanTraceThreaded in read-trace.ts): reads one
// trace file (plain or gzip) and runs the wasm line scanner over it, handing each scan's
// records and the bytes of their lines to the main thread through a SlotRing; the main thread
// turns them into events and runs the policy. Reading, inflating and scanning then cost the
// policy's thread nothing.
import { getPriority, setPriority } from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { loadLineScannerModule, RECORD_SIZE, WasmLineScanner } from '../events/line-scanner.js';
import { traceChunks } from './read-trace.js';
import { SlotKind, SlotRing, type ScanWorkerData, type ScanWorkerMessage } from './scan-protocol.js';

/**
 * How much nicer than the thread that started it this thread runs. It reads ahead of the
 * policy's thread (the ring is mostly full and this thread waits on it), so on a machine with
 * two cores it should not take a core the policy's thread could use. On Linux the nice value is
 * per thread (setpriority with pid 0 is the calling thread). Relative, and only ever up: raising
 * a nice value is never refused, while setting one below what a niced process already has is,
 * for anyone but root.
 */
const SCAN_THREAD_NICER_BY = 10;
const NICEST = 19;

async function main(): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error('scan-worker runs as a worker thread');
  // Elsewhere (macOS, the BSDs) the same call renices the whole process.
  if (process.platform === 'linux') setPriority(Math.min(NICEST, getPriority() + SCAN_THREAD_NICER_BY));
  const data = workerData as ScanWorkerData;
  const ring = new SlotRing(data.ring);
  const module = loadLineScannerModule();
  if (module instanceof Error) throw module;
  const scanner = new WasmLineScanner(module);
  let seq = 0;
  // scanner.records and scanner.bytes are read afresh each time: growing the memory replaces them.
  const start = (k: number): number => scanner.records[k * RECORD_SIZE]!;
  const end = (k: number): number => scanner.records[k * RECORD_SIZE + 1]!;

  /** Hands records [from, to) of the last scan over (the caller has checked they fit a slot). */
  const handOver = (from: number, to: number): void => {
    ring.waitEmpty(seq);
    const slot = ring.slotOf(seq);
    const base = start(from);
    ring.records[slot]!.set(scanner.records.subarray(from * RECORD_SIZE, to * RECORD_SIZE));
    ring.bytes[slot]!.set(scanner.bytes.subarray(base, end(to - 1)));
    ring.publish(seq++, SlotKind.batch, to - from, base);
  };

  /** One line longer than a slot: as a message. */
  const sendLong = (k: number): void => {
    ring.waitEmpty(seq);
    const base = start(k);
    const message: ScanWorkerMessage = {
      kind: 'batch',
      records: scanner.records.slice(k * RECORD_SIZE, (k + 1) * RECORD_SIZE),
      bytes: new Uint8Array(scanner.bytes.subarray(base, end(k))),
    };
    port.postMessage(message, [message.records.buffer, message.bytes.buffer]);
    ring.publish(seq++, SlotKind.message, 1, base);
  };

  const scanAll = (): void => {
    for (;;) {
      const n = scanner.scan();
      let k = 0;
      while (k < n) {
        const capacity = ring.bytes[ring.slotOf(seq)]!.length;
        let j = k;
        while (j < n && end(j) - start(k) <= capacity) j++;
        if (j === k) sendLong(k++);
        else { handOver(k, j); k = j; }
      }
      if (n < WasmLineScanner.RECORDS) break;
    }
    scanner.compact();
  };

  try {
    for await (const chunk of traceChunks(data.path)) {
      scanner.append(chunk);
      scanAll();
    }
    scanner.endInput();
    scanAll();
  } catch (err) {
    ring.waitEmpty(seq);
    const message: ScanWorkerMessage = { kind: 'error', message: err instanceof Error ? err.message : String(err) };
    port.postMessage(message);
    ring.publish(seq++, SlotKind.error, 0, 0);
    return;
  }
  ring.waitEmpty(seq);
  ring.publish(seq++, SlotKind.end, 0, 0);
}

void main();
