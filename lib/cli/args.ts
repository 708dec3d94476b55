import { DURATION_FORMS, parseDurationSeconds } from '../text/duration.js';

// A small, strict argument parser: known flags only, values where declared, a clear error
// otherwise. (Node's util.parseArgs would do, but its errors name no command.)
export interface ParsedArgs {
  readonly positionals: string[];
  readonly flags: Map<string, string | true>;
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** `spec` maps a flag name (without --) to whether it takes a value. */
export function parseArgs(argv: readonly string[], spec: Readonly<Record<string, boolean>>, command: string): ParsedArgs {
  const positionals: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') { positionals.push(...argv.slice(i + 1)); break; }
    if (!a.startsWith('--') || a === '--') { positionals.push(a); continue; }
    const eq = a.indexOf('=');
    const name = a.slice(2, eq === -1 ? undefined : eq);
    if (!(name in spec)) throw new UsageError(`${command}: unknown option --${name}`);
    if (spec[name]) {
      const value = eq !== -1 ? a.slice(eq + 1) : argv[++i];
      if (value === undefined) throw new UsageError(`${command}: --${name} needs a value`);
      flags.set(name, value);
    } else {
      if (eq !== -1) throw new UsageError(`${command}: --${name} takes no value`);
      flags.set(name, true);
    }
  }
  return { positionals, flags };
}

/** `fsguard ban --for`: a duration (lib/text/duration.ts) from 1 s to 365 d, seconds rounded. */
export function parseDuration(text: string): number {
  const parsed = parseDurationSeconds(text);
  if (parsed === null) throw new UsageError(`not a duration: ${JSON.stringify(text)} (expected ${DURATION_FORMS})`);
  const seconds = Math.round(parsed);
  if (seconds < 1 || seconds > 365 * 86400) throw new UsageError(`duration out of range (1s to 365d): ${text}`);
  return seconds;
}
