// Run as its own process (`node cli-with-faulty-nft.js TEXT fsguard-args...`): the real CLI
// (main), its libnftables behind a FaultyBackend that holds every call whose JSON includes
// TEXT, each held call's deadline passing at once. A process of its own: a command left with a
// hung call ends the process with _exit, as `fsguard` run by a user would.
import { main } from '../../lib/cli/main.js';
import { FaultyBackend, ManualScheduler } from './faulty-nft.js';

const [text, ...argv] = process.argv.slice(2);
if (text === undefined) throw new Error('usage: cli-with-faulty-nft TEXT fsguard-args...');
const scheduler = new ManualScheduler();
const backend = new FaultyBackend(scheduler);
backend.hang = (json) => json.includes(text);
backend.onHeld = () => { setImmediate(() => backend.passDeadlines()); };
process.exitCode = await main(argv, { stdout: process.stdout, stderr: process.stderr, env: process.env, nftBackend: backend, nftScheduler: scheduler });
