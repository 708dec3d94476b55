// Process plumbing for the benchmark: the replay server and the real `fsguard run` daemon as
// child processes, their CPU time and memory from /proc, the daemon's Prometheus metrics, and
// the kernel's view of the ban sets through `nft`.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { closeSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export const ROOT = new URL('../../', import.meta.url).pathname;
export const FSGUARD = join(ROOT, 'bin/fsguard');
const SERVER = new URL('./replay-server.js', import.meta.url).pathname;

/** The time of the generated traffic's first event (µs): every trace of the bench starts there. */
export const START_US = 1_893_456_000_000_000;
/** Where generated traces and run outputs are kept between runs. */
export const CACHE = join(process.env.TMPDIR ?? '/tmp', 'fsguard-bench');

export const nowNs = (): number => Number(process.hrtime.bigint());
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Busy and total jiffies of the whole machine so far (/proc/stat's first line; iowait is idle). */
function machineJiffies(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const total = v.reduce((a, b) => a + b, 0);
  return { busy: total - (v[3] ?? 0) - (v[4] ?? 0), total };
}

export interface Settled {
  readonly waitedMs: number;
  /** The machine's busy share over the last half second looked at (0-1, all cores). */
  readonly busy: number;
}

/**
 * Lets the machine settle before a figure: the bench's own garbage from the figure before (the
 * throughput figure's 1.4 GB of frames, collected by V8's threads while the next figure ran:
 * simulate right after it made 11-25 % fewer events/s than alone) is collected now when the
 * bench runs with --expose-gc, then this waits until the machine is under `maxBusy` busy for
 * half a second, or `maxMs`.
 */
export async function settle(maxBusy = 0.1, maxMs = 15_000): Promise<Settled> {
  const t0 = Date.now();
  (globalThis as { gc?: () => void }).gc?.();
  for (;;) {
    const a = machineJiffies();
    await sleep(500);
    const b = machineJiffies();
    const busy = b.total > a.total ? (b.busy - a.busy) / (b.total - a.total) : 0;
    if (busy < maxBusy || Date.now() - t0 >= maxMs) return { waitedMs: Date.now() - t0, busy };
  }
}

/** Clock ticks per second of /proc/<pid>/stat's utime/stime (sysconf(_SC_CLK_TCK)). */
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** User + system CPU seconds the process has used (all its threads: JS, GC, libuv pool). */
export function cpuSeconds(pid: number): number {
  return statCpu(`/proc/${pid}/stat`);
}

function statCpu(path: string): number {
  const stat = readFileSync(path, 'utf8');
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** CPU seconds of the threads of a process: `main`, and the others by thread name (node names few). */
export function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = tid === String(pid) ? 'main' : `${readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim()} (other threads)`;
      out.set(name, (out.get(name) ?? 0) + statCpu(`/proc/${pid}/task/${tid}/stat`));
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return out;
}

/** VmRSS and VmHWM (peak RSS) in MB. */
export function memoryMb(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

export type ServerMessage = Record<string, unknown> & { event: string };

/** The replay server process (bench/replay-server.ts). */
export class ReplayServer {
  private readonly waiters: Array<{ event: string; resolve: (m: ServerMessage) => void }> = [];
  private readonly seen: ServerMessage[] = [];
  port = 0;

  private constructor(readonly child: ChildProcess) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = JSON.parse(line) as ServerMessage;
      if (m.event === 'error') process.stderr.write(`replay server: ${String(m.message)}\n`);
      const i = this.waiters.findIndex((w) => w.event === m.event);
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(m);
      else this.seen.push(m);
    });
    child.stderr!.on('data', (d: Buffer) => process.stderr.write(d));
  }

  static async start(): Promise<ReplayServer> {
    const child = spawn(process.execPath, ['--max-old-space-size=8192', SERVER], { stdio: ['pipe', 'pipe', 'pipe'] });
    const s = new ReplayServer(child);
    const listening = await s.next('listening');
    s.port = Number(listening.port);
    return s;
  }

  /** The next message of this kind (or one that already came). */
  next(event: string, timeoutMs = 600_000): Promise<ServerMessage> {
    const i = this.seen.findIndex((m) => m.event === event);
    if (i >= 0) return Promise.resolve(this.seen.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`replay server: no ${event} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({ event, resolve: (m) => { clearTimeout(timer); resolve(m); } });
    });
  }

  send(command: object): void {
    this.child.stdin!.write(`${JSON.stringify(command)}\n`);
  }

  async request(command: object, answer: string): Promise<ServerMessage> {
    const reply = this.next(answer);
    this.send(command);
    return reply;
  }

  stop(): void {
    this.child.kill('SIGKILL');
  }
}

export interface DaemonOptions {
  readonly table: string;
  readonly eslPort: number;
  readonly metricsPort: number;
  readonly policy?: Record<string, unknown>;
  readonly nft?: Record<string, unknown>;
  /** Extra node flags for the daemon (e.g. --cpu-prof). */
  readonly nodeArgs?: readonly string[];
  /** Further config sections (e.g. `cluster`, for bench/cluster.ts). */
  readonly config?: Record<string, unknown>;
}

/** `fsguard run` as the operator starts it, with its log going to a file (as journald would take it). */
export class Daemon {
  readonly logPath: string;

  private constructor(readonly child: ChildProcess, readonly metricsPort: number, private readonly dir: string) {
    this.logPath = join(dir, 'daemon.log');
  }

  static start(o: DaemonOptions): Daemon {
    const dir = mkdtempSync(join(tmpdir(), 'fsguard-bench-'));
    const configPath = join(dir, 'fsguard.json');
    writeFileSync(configPath, JSON.stringify({
      esl: { host: '127.0.0.1', port: o.eslPort, password: 'ClueCon' },
      // The ban journal beside the config: the bench never writes the host's /var/lib/fsguard.
      nft: { table: o.table, journalDir: join(dir, 'journal'), ...o.nft },
      policy: o.policy ?? {},
      metrics: { enabled: true, host: '127.0.0.1', port: o.metricsPort },
      log: { level: 'info' },
      ...o.config,
    }), { mode: 0o600 });
    const log = openSync(join(dir, 'daemon.log'), 'w');
    const env = { ...process.env };
    delete env.NODE_OPTIONS;
    const child = spawn(process.execPath, [...(o.nodeArgs ?? []), FSGUARD, 'run', '--config', configPath], { stdio: ['ignore', log, log], env });
    closeSync(log);
    return new Daemon(child, o.metricsPort, dir);
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** The daemon's metrics, summed over labels: name → value. */
  metrics(): Promise<Map<string, number>> {
    return new Promise((resolve, reject) => {
      const req = get({ host: '127.0.0.1', port: this.metricsPort, path: '/metrics', agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => { text += d; }).on('end', () => {
          const out = new Map<string, number>();
          for (const line of text.split('\n')) {
            if (line.startsWith('#') || line === '') continue;
            const m = /^([a-zA-Z_:][\w:]*)(?:\{[^}]*\})? (\S+)$/.exec(line);
            if (m) out.set(m[1]!, (out.get(m[1]!) ?? 0) + Number(m[2]));
          }
          resolve(out);
        });
      });
      req.on('error', reject);
    });
  }

  async metric(name: string): Promise<number> {
    return (await this.metrics()).get(name) ?? 0;
  }

  /** Waits until the daemon is subscribed and serving metrics. */
  async ready(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        if ((await this.metric('fsguard_esl_connected')) === 1) return;
      } catch { /* not listening yet */ }
      if (this.child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`daemon not ready (exit ${this.child.exitCode}); log:\n${readFileSync(this.logPath, 'utf8').slice(-2000)}`);
      }
      await sleep(50);
    }
  }

  /**
   * Polls until events_total reaches `count` or the deadline passes (a slow daemon must not
   * stretch the benchmark past its time budget); `atNs` is when the last poll saw `seen`.
   * Every `pollMs` near the end (the last 2 %), every 250 ms before: a scrape costs the daemon
   * ~0.5 ms of its thread, and scraping 50 times a second took 2 % of it from the figure.
   */
  async waitForEvents(count: number, pollMs: number, timeoutMs: number): Promise<{ done: boolean; seen: number; atNs: number }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const seen = await this.metric('fsguard_events_total');
      const atNs = nowNs();
      if (seen >= count) return { done: true, seen, atNs };
      if (Date.now() > deadline) return { done: false, seen, atNs };
      await sleep(seen >= count * 0.98 ? pollMs : Math.max(pollMs, 250));
    }
  }

  /**
   * Stops the daemon and removes its folder (config, journal, log: 20-60 MB a daemon, and a
   * full run starts a dozen), unless FSGUARD_BENCH_DEBUG is set: then the log stays to be read.
   */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise((resolve) => this.child.once('exit', resolve));
      this.child.kill('SIGTERM');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    if (process.env.FSGUARD_BENCH_DEBUG) process.stderr.write(`[bench] daemon log kept: ${this.logPath}\n`);
    else rmSync(this.dir, { recursive: true, force: true });
  }
}

// ---- the kernel's side ---------------------------------------------------------------------

export function nft(args: readonly string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync('nft', args, { encoding: 'utf8', maxBuffer: 512 * 1024 * 1024 });
  return { status: r.status ?? 1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** Number of elements in a set (0 when the set or table is missing). */
export function setSize(table: string, set: string): number {
  const r = nft(['-j', 'list', 'set', 'inet', table, set]);
  if (r.status !== 0) return 0;
  const doc = JSON.parse(r.stdout) as { nftables: Array<{ set?: { elem?: unknown[] } }> };
  return doc.nftables.reduce((n, o) => n + (o.set?.elem?.length ?? 0), 0);
}

export function deleteTable(table: string): void {
  nft(['delete', 'table', 'inet', table]);
}


/**
 * `nft monitor new elements`: the hrtime at which each address first showed up in a set
 * (the kernel's netlink notification, read as soon as nft prints it).
 */
export class ElementMonitor {
  readonly firstSeen = new Map<string, number>();
  private readonly child: ChildProcess;

  constructor(table: string) {
    this.child = spawn('stdbuf', ['-oL', 'nft', 'monitor', 'new', 'elements'], { stdio: ['ignore', 'pipe', 'ignore'] });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const t = nowNs();
      if (process.env.FSGUARD_BENCH_DEBUG) process.stderr.write(`monitor: ${line}\n`);
      // `add element …`, or `create element …` for elements written with create.
      if (!/^(?:add|create) element inet /.test(line) || !line.includes(` inet ${table} `)) return;
      const m = /\{ ([0-9a-f.:]+)[ /]/.exec(line);
      if (m && !this.firstSeen.has(m[1]!)) this.firstSeen.set(m[1]!, t);
    });
  }

  stop(): void {
    this.child.kill('SIGTERM');
  }
}

/**
 * Whether the kernel drops traffic from one address now, asked of the datapath itself: the
 * address is put on lo, a datagram from it and then one from 127.0.0.1 go to a local
 * receiver; the control datagram arriving without the probe before it (loopback keeps their
 * order) means fsguard's chain dropped the probe, i.e. the element is in the set. A probe
 * costs microseconds. (`nft get element` dumps the whole set in nft 1.0.6: ~1.5 s of CPU
 * with 100,000 elements, so polling with it took a core from the daemon under test and
 * answered seconds late; `nft monitor` loses element notifications at flood rates.)
 */
export class DropProbe {
  private seq = 0;
  private readonly arrivals: Array<{ kind: 'p' | 'c'; seq: number }> = [];
  private waiter: (() => void) | null = null;

  private constructor(
    private readonly ip: string,
    private readonly receiver: UdpSocket,
    private readonly probe: UdpSocket,
    private readonly control: UdpSocket,
    private readonly port: number,
  ) {
    receiver.on('message', (msg: Buffer) => {
      const [kind, seq] = msg.toString('latin1').split(':');
      this.arrivals.push({ kind: kind === 'p' ? 'p' : 'c', seq: Number(seq) });
      if (kind === 'c') this.waiter?.();
    });
  }

  static async open(ip: string): Promise<DropProbe> {
    const r = spawnSync('ip', ['addr', 'add', `${ip}/32`, 'dev', 'lo'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ip addr add ${ip}: ${r.stderr}`);
    const bind = (s: UdpSocket, address: string): Promise<void> => new Promise((resolve) => s.bind({ address, port: 0 }, resolve));
    const receiver = createSocket('udp4');
    const probe = createSocket('udp4');
    const control = createSocket('udp4');
    await bind(receiver, '127.0.0.1');
    await bind(probe, ip);
    await bind(control, '127.0.0.1');
    return new DropProbe(ip, receiver, probe, control, receiver.address().port);
  }

  /**
   * True when the probe datagram was dropped (the address is banned in the kernel): twice in
   * a row, so a probe overtaken by its control datagram cannot stamp a ban early.
   */
  async dropped(): Promise<boolean> {
    return (await this.once()) && this.once();
  }

  private async once(): Promise<boolean> {
    const seq = ++this.seq;
    this.arrivals.length = 0;
    const controlSeen = new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 200);
      this.waiter = () => { clearTimeout(timer); resolve(true); };
    });
    this.probe.send(`p:${seq}`, this.port, '127.0.0.1');
    this.control.send(`c:${seq}`, this.port, '127.0.0.1');
    const answered = await controlSeen;
    this.waiter = null;
    return answered && !this.arrivals.some((a) => a.kind === 'p' && a.seq === seq);
  }

  close(): void {
    for (const s of [this.receiver, this.probe, this.control]) s.close();
    spawnSync('ip', ['addr', 'del', `${this.ip}/32`, 'dev', 'lo']);
  }
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}
