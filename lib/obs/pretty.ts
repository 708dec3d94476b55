// `fsguard logs`: the daemon's JSON log lines for a person (journalctl -u fsguard -o cat |
// fsguard logs). Log lines carry attacker text (user names, user agents, reasons quoting them)
// exactly, as JSON escapes; a pretty-printer that unescaped them onto a terminal would hand the
// attacker the operator's screen (pino-pretty does). Here every value goes through terminalSafe.
import { terminalSafe } from '../text/terminal.js';

/** Longest value shown per field; the JSON line keeps everything. */
const FIELD_CHARS = 300;
const FIXED = new Set(['level', 'time', 'msg', 'name', 'pid', 'hostname']);

function shown(value: unknown): string {
  if (typeof value === 'string') {
    const safe = terminalSafe(value, FIELD_CHARS);
    return /^[^\s"=]+$/.test(safe) ? safe : `"${safe.replace(/"/g, '\\"')}"`;
  }
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return terminalSafe(JSON.stringify(value) ?? String(value), FIELD_CHARS);
}

/** One log line for a terminal: `TIME LEVEL message key=value …`; a line that is not JSON is shown escaped. */
export function prettyLogLine(line: string): string {
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch {
    return terminalSafe(line, FIELD_CHARS * 4);
  }
  if (typeof record !== 'object' || record === null || Array.isArray(record)) return terminalSafe(line, FIELD_CHARS * 4);
  const r = record as Record<string, unknown>;
  const parts = [
    typeof r.time === 'string' ? terminalSafe(r.time, 40) : '-',
    (typeof r.level === 'string' ? terminalSafe(r.level, 8) : '-').toUpperCase().padEnd(5),
    typeof r.msg === 'string' ? terminalSafe(r.msg, FIELD_CHARS) : '',
  ];
  for (const [key, value] of Object.entries(r)) {
    if (FIXED.has(key)) continue;
    parts.push(`${terminalSafe(key, 64)}=${shown(value)}`);
  }
  return parts.join(' ');
}
