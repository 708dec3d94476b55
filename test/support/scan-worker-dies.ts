// A scanning thread that fails before it hands anything over, for the test that a scan whose
// thread dies is rejected (test/event-reader.test.ts). How it dies is in the trace's file name:
// `exits…` ends the thread, anything else throws at load (as a missing wasm module would).
import { basename } from 'node:path';
import { workerData } from 'node:worker_threads';
import type { ScanWorkerData } from '../../lib/trace/scan-protocol.js';

const { path } = workerData as ScanWorkerData;
if (basename(path).startsWith('exits')) process.exit(3);
throw new Error('the scanning thread failed on purpose');
