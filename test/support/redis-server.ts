// A real redis-server for the cluster tests, started by the test on a Unix socket in its own
// temporary folder (never a system instance, no TCP port), without persistence: a restart
// is an empty Redis, as after a crash of a cache-only one. Optional ACL user with a password.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

export function redisSkipReason(): string | null {
  const r = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
  if (r.error || r.status !== 0) {
    return process.env.FSGUARD_REQUIRE_NETNS === '1' ? null : 'redis-server is missing (apt-get install -y redis-server)';
  }
  return null;
}

export interface RedisAcl {
  readonly user: string;
  readonly password: string;
}

export class TestRedis {
  private child: ChildProcess | null = null;
  private output = '';
  readonly socket: string;

  private constructor(private readonly dir: string, private readonly acl: RedisAcl | null) {
    this.socket = join(dir, 'redis.sock');
  }

  static async start(acl: RedisAcl | null = null): Promise<TestRedis> {
    const r = new TestRedis(mkdtempSync(join(tmpdir(), 'fsguard-redis-')), acl);
    await r.startProcess();
    return r;
  }

  get url(): string {
    return `unix://${this.socket}`;
  }

  get running(): boolean {
    return this.child !== null;
  }

  /** A client for the test's own look at the stream. */
  client(): Redis {
    return new Redis({ path: this.socket, protocol: 2, ...(this.acl ? { username: this.acl.user, password: this.acl.password } : {}), maxRetriesPerRequest: 1 });
  }

  private async startProcess(): Promise<void> {
    const args = ['--port', '0', '--unixsocket', this.socket, '--unixsocketperm', '700', '--save', '', '--appendonly', 'no', '--dir', this.dir];
    if (this.acl) args.push('--user', 'default', 'off', '--user', this.acl.user, 'on', `>${this.acl.password}`, '~*', '&*', '+@all');
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.output = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => { this.output += d; });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => { this.output += d; });
    child.on('exit', () => { if (this.child === child) this.child = null; });
    this.child = child;
    const deadline = Date.now() + 10_000;
    while (!/ready to accept connections/i.test(this.output)) {
      if (this.child === null) throw new Error(`redis-server exited: ${this.output}`);
      if (Date.now() > deadline) throw new Error(`redis-server not ready within 10 s: ${this.output}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** SIGKILL, as a crash: what was in memory is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    this.child = null;
    rmSync(this.socket, { force: true });
  }

  restart(): Promise<void> {
    return this.startProcess();
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
