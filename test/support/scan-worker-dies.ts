// A scanning thread that fails before it hands anything over, for the test that a scan whose
// thread dies is rejected (test/event-reader.test.ts). How it dies is in its workerData's path:
// `…throws…` throws at load (as a missing wasm module would), `…exits…` ends the thread.
import { workerData } from 'node:worker_threads';
import type { ScanWorkerData } from '../../lib/trace/scan-protocol.js';

const { path } = workerData as ScanWorkerData;
if (path.includes('exits')) process.exit(3);
throw new Error('the scanning thread failed on purpose');
