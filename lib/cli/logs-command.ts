// `fsguard logs`: reads the daemon's JSON log lines on stdin and prints them for a person,
// attacker text escaped (lib/obs/pretty.ts). journalctl -u fsguard -o cat | fsguard logs
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { prettyLogLine } from '../obs/pretty.js';
import { UsageError } from './args.js';
import type { CliIo } from './main.js';

export async function runLogsCommand(argv: string[], io: CliIo, stdin: Readable = process.stdin): Promise<number> {
  if (argv.length) throw new UsageError(`logs: unexpected argument ${argv[0]} (it reads JSON log lines on stdin)`);
  const lines = createInterface({ input: stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    if (line === '') continue;
    if (!io.stdout.write(`${prettyLogLine(line)}\n`)) await new Promise((r) => io.stdout.once('drain', r));
  }
  return 0;
}
