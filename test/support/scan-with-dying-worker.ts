// Run as its own process (`node scan-with-dying-worker.js TRACE`): scans TRACE on a scanning
// thread that dies (scan-worker-dies.ts) and prints how the scan ended. A process of its own,
// because what broke was the process exiting with status 0 and nothing printed once nothing but
// the scan's wait was left in its event loop; the test runner's process always has more.
import { scanTraceThreaded, type TraceVisitor } from '../../lib/trace/read-trace.js';

const visitor: TraceVisitor = { event: () => undefined, dropped: () => undefined, malformed: () => undefined };
const trace = process.argv[2]!;
try {
  const n = await scanTraceThreaded(trace, { profiles: null }, visitor, new URL('./scan-worker-dies.js', import.meta.url));
  process.stdout.write(`resolved ${n}\n`);
} catch (err) {
  process.stdout.write(`rejected: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
