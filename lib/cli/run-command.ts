// `fsguard run [--config FILE]`
import { loadConfig } from '../config/config.js';
import { runDaemon } from '../daemon/daemon.js';
import { exitWithHungCalls } from '../nft/index.js';
import { createLogger } from '../obs/logger.js';
import { parseArgs, UsageError } from './args.js';
import type { CliIo } from './main.js';

export async function runDaemonCommand(argv: string[], configFile: string | null, io: CliIo): Promise<number> {
  const { positionals } = parseArgs(argv, {}, 'run');
  if (positionals.length) throw new UsageError(`run: unexpected argument ${positionals[0]}`);
  const { config, source, warnings } = loadConfig(configFile, io.env);
  const logger = createLogger(config.log.level, io.stdout);
  for (const w of warnings) logger.warn({}, w);
  logger.info({ config: source }, 'config loaded');
  return runDaemon(configFile, config, {
    logger,
    env: io.env,
    fatal: (line) => io.stderr.write(`fsguard: ${line}\n`),
    exitNow: exitWithHungCalls,
    onSignal: (signal, handler) => {
      process.on(signal, handler);
      return () => { process.off(signal, handler); };
    },
  });
}
