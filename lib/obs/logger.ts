// JSON-lines logging on stdout (journald keeps one line per entry). pino escapes every
// string value, so attacker text (user agents, users, call-ids with newlines or ANSI
// escapes) can never break a line or forge another entry.
import { pino, type Logger as PinoLogger } from 'pino';

/** The logging surface modules depend on; pino satisfies it, tests can pass a recorder. */
export interface Logger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Keys whose values must never reach a log line, wherever they appear. */
const REDACT = ['password', '*.password', '*.*.password', 'esl.password', 'config.esl.password'];

export function createLogger(level: LogLevel, destination: NodeJS.WritableStream = process.stdout): PinoLogger {
  return pino(
    {
      level,
      base: { name: 'fsguard' },
      redact: { paths: REDACT, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/** A logger that drops everything (for CLI subcommands that print their own output). */
export const silentLogger = (): Logger => ({ debug() {}, info() {}, warn() {}, error() {} });
