// `fsguard status [--json]`: the running daemon's one-screen summary, read from its status
// socket. With no daemon answering, it says so, gives the reason it can find (the unit's
// state, its last log line) and still lists the kernel's bans, which outlive the daemon.
// Exit status: 0 running, 3 not running (as `systemctl status`), 1 on other errors.
import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import type { FsguardConfig } from '../config/config.js';
import { renderStatus } from '../status/render.js';
import { readStatus, StatusUnavailable } from '../status/socket.js';
import { terminalSafe } from '../status/terminal-safe.js';
import { parseArgs, UsageError } from './args.js';
import type { CliIo } from './main.js';
import { isoTimeMs } from '../text/iso-time.js';

export const EXIT_NOT_RUNNING = 3;
const UNIT = 'fsguard.service';

interface DownReason {
  /** The socket's complaint: no socket, a stale one, no permission. */
  readonly socket: string;
  /** systemd's view, when systemd is there and knows the unit. */
  readonly unit: { readonly activeState: string; readonly subState: string; readonly result: string; readonly exitStatus: string; readonly since: string } | null;
  /** The unit's last journal line (its message), when journald has one. */
  readonly lastLogLine: string | null;
}

/** A program's stdout, or null when it is missing, fails or takes over 3 s (no shell). */
function run(command: string, args: string[]): Promise<string | null> {
  return new Promise((resolve) => {
    let out = '';
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'ignore'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => { if (out.length < 65536) out += d; });
    child.on('error', () => { clearTimeout(timer); resolve(null); });
    child.on('close', (code) => { clearTimeout(timer); resolve(code === 0 ? out : null); });
  });
}

async function unitState(): Promise<DownReason['unit']> {
  const out = await run('systemctl', ['show', UNIT, '--property=LoadState,ActiveState,SubState,Result,ExecMainStatus,StateChangeTimestamp']);
  if (out === null) return null;
  const p = new Map(out.split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const));
  if (p.get('LoadState') === 'not-found') return null;
  return { activeState: p.get('ActiveState') ?? '', subState: p.get('SubState') ?? '', result: p.get('Result') ?? '', exitStatus: p.get('ExecMainStatus') ?? '', since: p.get('StateChangeTimestamp') ?? '' };
}

async function lastLogLine(): Promise<string | null> {
  const out = await run('journalctl', ['--unit', UNIT, '--lines', '1', '--output', 'cat', '--no-pager', '--quiet']);
  const lineText = out?.trim().split('\n').pop();
  if (!lineText) return null;
  // fsguard logs JSON lines: show the message and, for a fatal one, its reason.
  try {
    const j = JSON.parse(lineText) as { msg?: unknown; time?: unknown };
    if (typeof j.msg === 'string') return `${typeof j.time === 'number' ? `${isoTimeMs(j.time)} ` : ''}${j.msg}`;
  } catch { /* not one of ours: shown as it is */ }
  return lineText;
}

function socketComplaint(err: StatusUnavailable, path: string): string {
  switch (err.code) {
    case 'ENOENT': return `no status socket at ${path}`;
    case 'ECONNREFUSED': return `nobody answers on ${path} (left by a daemon that stopped)`;
    case 'EACCES': case 'EPERM': return `no permission to read ${path} (root, or a member of the daemon's group)`;
    default: return err.message;
  }
}

/** Output of `fsguard bans` (the one lister of kernel bans), captured. */
async function kernelBans(config: FsguardConfig, json: boolean, io: CliIo): Promise<{ status: number; text: string }> {
  const { runBansCommand } = await import('./bans-command.js');
  let text = '';
  const capture = new Writable({ write(chunk: Buffer | string, _enc, done) { text += chunk.toString(); done(); } });
  try {
    const status = await runBansCommand('bans', json ? ['--json'] : [], config, { stdout: capture, stderr: io.stderr, env: io.env });
    return { status, text };
  } catch (err) {
    return { status: 1, text: json ? '' : `cannot read the kernel's bans: ${err instanceof Error ? err.message : String(err)}\n` };
  }
}

export async function runStatusCommand(argv: string[], config: FsguardConfig, configSource: string, io: CliIo): Promise<number> {
  const { flags, positionals } = parseArgs(argv, { json: false }, 'status');
  if (positionals.length) throw new UsageError(`status: unexpected argument ${positionals[0]}`);
  const json = flags.has('json');
  const path = config.status.socket;
  let unavailable: StatusUnavailable;
  if (!path) {
    unavailable = new StatusUnavailable('ENOENT', 'status.socket is empty in the config: the daemon serves no status');
  } else {
    try {
      const report = await readStatus(path);
      io.stdout.write(json ? `${JSON.stringify({ running: true, ...report })}\n` : renderStatus(report, Date.now()));
      return 0;
    } catch (err) {
      if (!(err instanceof StatusUnavailable)) throw err;
      unavailable = err;
    }
  }
  const [unit, lastLine] = await Promise.all([unitState(), lastLogLine()]);
  const reason: DownReason = { socket: path ? socketComplaint(unavailable, path) : unavailable.message, unit, lastLogLine: lastLine };
  const bans = await kernelBans(config, json, io);
  if (json) {
    let kernel: unknown = null;
    try { kernel = JSON.parse(bans.text); } catch { /* reported as null */ }
    io.stdout.write(`${JSON.stringify({ running: false, reason, config: configSource, kernel })}\n`);
    return EXIT_NOT_RUNNING;
  }
  const out: string[] = [`fsguard is NOT RUNNING: ${terminalSafe(reason.socket)}`];
  if (reason.unit) {
    const u = reason.unit;
    out.push(`  unit ${UNIT}: ${terminalSafe(u.activeState)} (${terminalSafe(u.subState)})${u.result && u.result !== 'success' ? `, result ${terminalSafe(u.result)}` : ''}${u.exitStatus && u.exitStatus !== '0' ? `, exit status ${terminalSafe(u.exitStatus)}` : ''}${u.since ? ` since ${terminalSafe(u.since)}` : ''}`);
  }
  if (reason.lastLogLine) out.push(`  last log line: ${terminalSafe(reason.lastLogLine, 300)}`);
  out.push(`  config ${terminalSafe(configSource)}`);
  out.push('bans in the kernel (they stay until they expire, with or without the daemon):');
  io.stdout.write(`${out.join('\n')}\n${bans.text.replace(/^/gm, '  ').replace(/ +$/, '')}`);
  return EXIT_NOT_RUNNING;
}
