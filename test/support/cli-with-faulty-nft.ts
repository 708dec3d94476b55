// Run as its own process (`node cli-with-faulty-nft.js [--answer-late] TEXT fsguard-args...`):
// the real CLI (main), its libnftables behind a FaultyBackend that holds every call whose JSON
// includes TEXT. By default each held call's deadline passes at once (a hung library); with
// --answer-late the call is answered instead, before its deadline, and the deadline it had is
// said on stderr (`held a libnftables call: deadline N ms`): a slow call, a huge table's listing.
// A process of its own: a command left with a hung call ends the process with _exit, as
// `fsguard` run by a user would.
import { main } from '../../lib/cli/main.js';
import { FaultyBackend, ManualScheduler } from './faulty-nft.js';

const args = process.argv.slice(2);
const answerLate = args[0] === '--answer-late';
const [text, ...argv] = answerLate ? args.slice(1) : args;
if (text === undefined) throw new Error('usage: cli-with-faulty-nft [--answer-late] TEXT fsguard-args...');
const scheduler = new ManualScheduler();
const backend = new FaultyBackend(scheduler);
backend.hang = (json) => json.includes(text);
backend.onHeld = answerLate
  ? () => { process.stderr.write(`held a libnftables call: deadline ${scheduler.last?.delayMs} ms\n`); setImmediate(() => backend.release()); }
  : () => { setImmediate(() => backend.passDeadlines()); };
process.exitCode = await main(argv, { stdout: process.stdout, stderr: process.stderr, env: process.env, nftBackend: backend, nftScheduler: scheduler });
