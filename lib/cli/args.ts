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

const UNITS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 };

/** `90`, `90s`, `15m`, `1h`, `2d`, `1w` → seconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([smhdw]?)$/.exec(text.trim());
  if (!m) throw new UsageError(`not a duration: ${JSON.stringify(text)} (use e.g. 90s, 15m, 1h, 2d)`);
  const seconds = Math.round(Number(m[1]) * (UNITS[m[2] || 's'] ?? 1));
  if (seconds < 1 || seconds > 365 * 86400) throw new UsageError(`duration out of range (1s to 365d): ${text}`);
  return seconds;
}

/** Seconds → `1h02m`, `45s`, `3d04h`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(s / 86400)}d${String(Math.floor((s % 86400) / 3600)).padStart(2, '0')}h`;
}
