// `fsguard <command>`: dispatch, config loading and error reporting shared by all commands.
import { ConfigError, loadConfig, type LoadedConfig } from '../config/config.js';
import { UsageError } from './args.js';

import type { Writable } from 'node:stream';
import type { NftBackend, Scheduler } from '../nft/index.js';

export interface CliIo {
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly env: NodeJS.ProcessEnv;
  /** libnftables for `bans`, `ban` and `unban` (tests wrap it to inject faults); default the library named by nft.library. */
  readonly nftBackend?: NftBackend;
  /** Runs the deadlines of their libnftables calls; default real timers. */
  readonly nftScheduler?: Scheduler;
}

const USAGE = `usage: fsguard <command> [--config FILE] ...
  run                          the daemon (SIGTERM: flush and exit; SIGHUP: reload config)
  bans [--json]                current bans in the kernel: target, time left, rule, reason
  ban ADDR|CIDR [--for 1h] [--reason TEXT]
  unban ADDR|CIDR
  check                        validate config, nft, and the event socket login
  status [--json]              the running daemon at a glance (or why it is not running, and the kernel's bans)
  policy [--json]              the effective policy in plain words
  policy simulate TRACE... [--json]
  policy explain ADDR --trace FILE [--json]
  logs                         the daemon's JSON log lines (stdin) for a person, attacker text escaped
`;

/** Pulls `--config FILE` / `--config=FILE` out of argv (it is accepted by every command). */
function takeConfigFlag(argv: readonly string[]): { file: string | null; rest: string[] } {
  const rest: string[] = [];
  let file: string | null = null;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--config') {
      const v = argv[++i];
      if (v === undefined) throw new UsageError('--config needs a file');
      file = v;
    } else if (a.startsWith('--config=')) {
      file = a.slice('--config='.length);
    } else {
      rest.push(a);
    }
  }
  return { file, rest };
}

export async function main(argv: readonly string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env }): Promise<number> {
  const say = (s: string): void => { io.stderr.write(`${s}\n`); };
  // `fsguard bans | head`: a reader that went away is not an error worth a stack trace.
  io.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  try {
    const { file, rest } = takeConfigFlag(argv);
    const [command, ...args] = rest;
    if (!command || command === 'help' || command === '--help' || command === '-h') {
      (command ? io.stdout : io.stderr).write(USAGE);
      return command ? 0 : 2;
    }
    const load = (): LoadedConfig => {
      const loaded = loadConfig(file, io.env);
      for (const w of loaded.warnings) say(`fsguard: warning: ${w}`);
      return loaded;
    };
    switch (command) {
      case 'run': {
        const { runDaemonCommand } = await import('./run-command.js');
        return await runDaemonCommand(args, file, io);
      }
      case 'bans':
      case 'ban':
      case 'unban': {
        const { runBansCommand } = await import('./bans-command.js');
        return await runBansCommand(command, args, load().config, io);
      }
      case 'status': {
        const { config, source } = load();
        const { runStatusCommand } = await import('./status-command.js');
        return await runStatusCommand(args, config, source, io);
      }
      case 'check': {
        const { runCheckCommand } = await import('./check-command.js');
        return await runCheckCommand(args, file, io);
      }
      case 'policy': {
        const { config } = load();
        const { runPolicyCommand } = await import('./policy-command.js');
        return await runPolicyCommand(args, {
          stdout: io.stdout,
          stderr: io.stderr,
          settings: config.policy,
          profileOverrides: config.profiles,
          watchedProfiles: config.esl.profiles.length ? [...config.esl.profiles] : null,
        });
      }
      case 'logs': {
        const { runLogsCommand } = await import('./logs-command.js');
        return await runLogsCommand(args, io);
      }
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}\n${USAGE}`);
    }
  } catch (err) {
    return reportFailure(err, say);
  }
}

/** Says why a command failed (one line, for `say` to put on stderr); returns its exit code. */
export function reportFailure(err: unknown, say: (line: string) => void): number {
  if (err instanceof UsageError) { say(`fsguard: ${err.message}`); return 2; }
  if (err instanceof ConfigError) { say(`fsguard: ${err.message}`); return 78; /* EX_CONFIG */ }
  say(`fsguard: ${err instanceof Error ? err.message : String(err)}`);
  return 1;
}
