// JSON-lines logging on stdout (journald keeps one line per entry). pino escapes every
// string value, so attacker text (user agents, users, call-ids with newlines or ANSI
// escapes) can never break a line or forge another entry.
import { pino, type Logger as PinoLogger } from 'pino';
import { isoTimeMs } from '../text/iso-time.js';

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

/** Where log lines go: what pino needs of a destination. */
export interface LineSink {
  write(chunk: string): unknown;
}

/**
 * Hands the lines written during one turn of the event loop to `destination` as one write.
 * Under a flood every ban is a log line; on a file or a pipe (journald) each write is a
 * system call, so a socket read that decides 60 bans made 60 of them. The lines go out right
 * after the turn that produced them (setImmediate), and on process exit at the latest.
 */
export class TurnBufferedSink implements LineSink {
  private parts: string[] = [];
  private scheduled = false;
  private readonly flushNow = (): void => this.flush();

  constructor(private readonly destination: LineSink) {}

  write(chunk: string): boolean {
    this.parts.push(chunk);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushNow);
      // A process that exits in this turn (a crash, process.exit) still writes them.
      process.once('exit', this.flushNow);
    }
    return true;
  }

  flush(): void {
    if (!this.scheduled) return;
    this.scheduled = false;
    process.removeListener('exit', this.flushNow);
    const parts = this.parts;
    this.parts = [];
    this.destination.write(parts.length === 1 ? parts[0]! : parts.join(''));
  }
}

export function createLogger(level: LogLevel, destination: LineSink = process.stdout): PinoLogger {
  return pino(
    {
      level,
      base: { name: 'fsguard' },
      redact: { paths: REDACT, censor: '[redacted]' },
      // pino's isoTime is `new Date().toISOString()`: a runtime call per line (iso-time.ts).
      timestamp: () => `,"time":"${isoTimeMs(Date.now())}"`,
      formatters: { level: (label) => ({ level: label }) },
    },
    new TurnBufferedSink(destination),
  );
}

interface ChildLogger extends Logger {
  child(bindings: object, options: { redact: string[] }): Logger;
}

function hasChild(logger: Logger): logger is ChildLogger {
  return typeof (logger as Partial<ChildLogger>).child === 'function';
}

/**
 * The same logger without the redaction pass, for hot-path lines whose keys fsguard fixes
 * (the ban and alert lines: target, rule, evidence…), which can never hold a password.
 * Redacting `*.password` / `*.*.password` walks every key of every line and more than
 * doubles pino's cost per line (bench/RESULTS.md, "Changes" and session 10).
 */
export function unredacted(logger: Logger): Logger {
  return hasChild(logger) ? logger.child({}, { redact: [] }) : logger;
}

/** A logger that drops everything (for CLI subcommands that print their own output). */
export const silentLogger = (): Logger => ({ debug() {}, info() {}, warn() {}, error() {} });
