// Shared pieces of the fault and hostile-input tests: sofia auth events stamped with the
// current time (the daemon's policy clock is wall time, so recorded traces from another day
// would be judged as old), a test event socket as a separate process that can be killed and
// restarted on the same port, a daemon rig, and kernel/metrics readers.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Test } from 'tap';
import { DaemonProcess, writeConfig } from './daemon-process.js';
import type { RegistrationSpec } from './esl-server.js';
import { BAN_SETS, banTargetOf, deleteTableIfExists, kernelElement, kernelElements, uniqueTableName, type RawElement } from './nft-kernel.js';

export const SWITCH_V4 = '192.0.2.10';

export type Subclass = 'pre_register' | 'register_attempt' | 'register_failure' | 'register';

export interface EventSpec {
  readonly ip: string;
  readonly subclass?: Subclass;
  readonly userAgent?: string;
  readonly user?: string;
  readonly callId?: string;
  readonly authResult?: 'SUCCESS' | 'RENEWED' | 'STALE' | 'FORBIDDEN';
  /** Microseconds; default now. */
  readonly timeUs?: number;
  readonly switchV4?: string;
  readonly switchV6?: string;
  readonly profile?: string;
}

let sequence = 1;

/** One sofia auth event as the body of an `event json` frame (FreeSWITCH's header names). */
export function eventObject(e: EventSpec): Record<string, string> {
  const timeUs = e.timeUs ?? Date.now() * 1000;
  const d = new Date(Math.floor(timeUs / 1000));
  const user = e.user ?? '1000';
  const subclass = e.subclass ?? 'pre_register';
  const h: Record<string, string> = {
    'Event-Name': 'CUSTOM',
    'Core-UUID': '21636369-8b52-9b4a-97b7-50923ceb3ffd',
    'FreeSWITCH-Hostname': 'pbx1',
    'FreeSWITCH-Switchname': 'pbx1',
    'FreeSWITCH-IPv4': e.switchV4 ?? SWITCH_V4,
    'FreeSWITCH-IPv6': e.switchV6 ?? '::1',
    'Event-Date-Local': d.toISOString().slice(0, 19).replace('T', ' '),
    'Event-Date-GMT': d.toUTCString(),
    'Event-Date-Timestamp': String(timeUs),
    'Event-Calling-File': 'sofia_reg.c',
    'Event-Calling-Function': 'sofia_reg_handle_register_token',
    'Event-Calling-Line-Number': '1999',
    'Event-Sequence': String(sequence++),
    'Event-Subclass': `sofia::${subclass}`,
    'profile-name': e.profile ?? 'internal',
    'network-ip': e.ip,
    'network-port': '5060',
    'user-agent': e.userAgent ?? 'friendly-scanner',
  };
  if (subclass === 'register_failure') {
    h['to-user'] = user;
    h['to-host'] = 'pbx.example.com';
    h['registration-type'] = 'REGISTER';
    return h;
  }
  h['from-user'] = user;
  h['from-host'] = 'pbx.example.com';
  h['to-user'] = user;
  h['to-host'] = 'pbx.example.com';
  h['contact'] = `"${user}" <sip:${user}@${e.ip}:5060>`;
  h['call-id'] = e.callId ?? `c${sequence}-${Math.random().toString(36).slice(2)}`;
  h['expires'] = '120';
  if (subclass === 'register_attempt') {
    h['username'] = user;
    h['realm'] = 'pbx.example.com';
    h['auth-result'] = e.authResult ?? 'FORBIDDEN';
  }
  if (subclass === 'register') {
    h['username'] = user;
    h['realm'] = 'pbx.example.com';
  }
  return h;
}

export function eventBody(e: EventSpec): string {
  return JSON.stringify(eventObject(e));
}

/** A scanner's REGISTER challenged once from each of these addresses (bans on the first). */
export function scannerEvents(ips: readonly string[], userAgent = 'friendly-scanner'): string[] {
  return ips.map((ip) => eventBody({ ip, userAgent }));
}

/** Distinct documentation-range-free IPv4 test sources: 10.x.y.z from an index. */
export function ipv4Of(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until it returns a value (not undefined/false) or the time is up. */
export async function waitFor<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await sleep(everyMs);
  }
}

/** Every element of one set, or [] when the table or set does not exist. */
export function elementsIfAny(table: string, set: string): RawElement[] {
  try {
    return kernelElements(table, set);
  } catch {
    return [];
  }
}

export function elementIfAny(table: string, set: string, key: string): RawElement | undefined {
  try {
    return kernelElement(table, set, key);
  } catch {
    return undefined;
  }
}

/** Every banned target across the ban sets (a /64 as `…::/64`); a failed listing throws (an empty answer would hide it). */
export function allBannedKeys(table: string): Set<string> {
  return new Set(BAN_SETS.flatMap((s) => kernelElements(table, s).map((e) => banTargetOf(s, e.key))));
}

/** Prometheus text → value of an unlabelled series (or the sum over its label sets). */
export function metricValue(body: string, name: string): number {
  let sum = 0;
  let found = false;
  for (const line of body.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? ([-+0-9.eE]+|NaN)$/.exec(line);
    if (m && m[1] === name) { sum += Number(m[3]); found = true; }
  }
  return found ? sum : Number.NaN;
}

export async function fetchMetrics(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  return res.text();
}

/** The test event socket (test/support/esl-server-main.ts) as a separate, killable process. */
export class EslServerProcess {
  readonly events: Array<Record<string, unknown>> = [];
  stderr = '';
  private readonly exited: Promise<void>;
  private alive = true;

  private constructor(readonly child: ChildProcess, readonly port: number) {
    this.exited = once(child, 'exit').then(() => { this.alive = false; });
  }

  /** Starts it (port 0 = any) and resolves once it listens. */
  static async start(args: { port?: number; heartbeatMs?: number; registrations?: readonly RegistrationSpec[]; rude?: boolean; password?: string } = {}): Promise<EslServerProcess> {
    const script = new URL('./esl-server-main.js', import.meta.url).pathname;
    const argv = [script, '--port', String(args.port ?? 0), '--heartbeat-ms', String(args.heartbeatMs ?? 1000)];
    if (args.password !== undefined) argv.push('--password', args.password);
    if (args.rude) argv.push('--rude');
    if (args.registrations) {
      const dir = mkdtempSync(join(tmpdir(), 'fsguard-regs-'));
      const file = join(dir, 'registrations.json');
      writeFileSync(file, JSON.stringify(args.registrations));
      argv.push('--registrations', file);
    }
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    const child = spawn(process.execPath, argv, { stdio: ['pipe', 'pipe', 'pipe'], env });
    const lines = createInterface({ input: child.stdout! });
    const events: Array<Record<string, unknown>> = [];
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const listening = new Promise<Record<string, unknown>>((resolve, reject) => {
      lines.on('line', (line) => {
        let ev: Record<string, unknown>;
        try { ev = JSON.parse(line) as Record<string, unknown>; } catch { return; }
        events.push(ev);
        if (ev.event === 'listening') resolve(ev);
      });
      child.on('exit', (code) => reject(new Error(`esl-server-main exited (${code}) before listening: ${stderr}`)));
    });
    const ev = await listening;
    const proc = new EslServerProcess(child, ev.port as number);
    proc.events.push(...events);
    lines.removeAllListeners('line');
    lines.on('line', (line) => {
      try { proc.events.push(JSON.parse(line) as Record<string, unknown>); } catch { /* not ours */ }
    });
    child.stderr!.on('data', (d: string) => { proc.stderr += d; });
    return proc;
  }

  get running(): boolean {
    return this.alive;
  }

  send(command: string): void {
    this.child.stdin!.write(`${command}\n`);
  }

  /** Asks for `stats` and resolves with the answer. */
  async stats(): Promise<{ connections: number; open: number; authAttempts: number; authRejected: number; subscriptions: string[]; api: number }> {
    const before = this.events.length;
    this.send('stats');
    const ev = await waitFor('stats answer', () => this.events.slice(before).find((e) => e.event === 'stats'), 5000, 5);
    return ev as unknown as { connections: number; open: number; authAttempts: number; authRejected: number; subscriptions: string[]; api: number };
  }

  /** Replays a file of event bodies (one per line) and resolves when it was sent. */
  async replay(file: string): Promise<void> {
    const before = this.events.length;
    this.send(`replay ${file}`);
    await waitFor(`replay of ${file}`, () => this.events.slice(before).find((e) => e.event === 'replayed' || e.event === 'error'), 60_000, 10);
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.alive) return;
    this.child.kill(signal);
    await this.exited;
  }
}

/** Writes event bodies to a temporary .jsonl file (for EslServerProcess.replay). */
export function traceFile(lines: readonly string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'fsguard-trace-'));
  const file = join(dir, 'trace.jsonl');
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

export interface RigOptions {
  readonly esl?: Record<string, unknown>;
  readonly nft?: Record<string, unknown>;
  readonly metrics?: Record<string, unknown>;
  readonly policy?: Record<string, unknown>;
  readonly log?: Record<string, unknown>;
  readonly env?: NodeJS.ProcessEnv;
}

/** A config for a daemon under test: its own table, fast reconcile, debug logs, no metrics. */
export function rigConfig(t: Test, label: string, eslPort: number, o: RigOptions = {}): { table: string; config: string } {
  const table = uniqueTableName(label);
  const config = writeConfig({
    esl: { host: '127.0.0.1', port: eslPort, password: 'ClueCon', authRetrySeconds: 1, ...o.esl },
    nft: { table, reconcileSeconds: 0.5, journalDir: mkdtempSync(join(tmpdir(), 'fsguard-journal-')), ...o.nft },
    metrics: { enabled: false, ...o.metrics },
    ...(o.policy ? { policy: o.policy } : {}),
    log: { level: 'debug', ...o.log },
  });
  t.teardown(() => deleteTableIfExists('inet', table));
  return { table, config };
}

/** Starts a daemon that is SIGKILLed at teardown if still running. */
export function startDaemon(t: Test, config: string, env: NodeJS.ProcessEnv = {}): DaemonProcess {
  const d = DaemonProcess.start(config, env);
  t.teardown(() => d.stop('SIGKILL'));
  return d;
}

/** Connection attempts recorded by the in-process test server within [from, to). */
export function attemptsBetween(log: ReadonlyArray<{ at: number }>, from: number, to: number): number {
  return log.filter((c) => c.at >= from && c.at < to).length;
}
