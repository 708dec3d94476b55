// Redis Sentinel: a real master, replica and Sentinel on loopback ports inside the test's
// namespace. fsguard finds the master through the Sentinel (cluster.sentinels), and after a
// failover it writes to the new master without a change of config.
import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { checkCluster, publishManualAction } from '../lib/cluster/cli.js';
import { clusterCodec, MESSAGE_FIELD } from '../lib/cluster/codec.js';
import { loadConfig, type FsguardConfig } from '../lib/config/config.js';
import { parseCidr } from '../lib/net/ip.js';
import { clusterTestOptions } from './support/cluster-rig.js';

/** Fixed: the namespace is the test run's own; no other test listens on these. */
const MASTER = 16490;
const REPLICA = 16491;
const SENTINEL = 16492;
const MASTER_NAME = 'fsguard-test';
const STREAM = 'fsguard:sentinel';

async function startRedis(t: Test, args: readonly string[], ready: RegExp): Promise<ChildProcess> {
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { child.kill('SIGKILL'); });
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  const deadline = Date.now() + 30_000;
  while (!ready.test(out)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`redis-server ${args.join(' ')} did not start: ${out}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return child;
}

/** Polls `probe` until it holds (a real failover takes the Sentinel a few seconds). */
async function until(what: string, probe: () => Promise<boolean>, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function bansIn(port: number): Promise<string[]> {
  const client = new Redis({ host: '127.0.0.1', port, protocol: 2, maxRetriesPerRequest: 1 });
  try {
    const entries = await client.xrange(STREAM, '-', '+');
    return entries.map(([, fields]) => clusterCodec().decode(fields[fields.indexOf(MESSAGE_FIELD) + 1]!))
      .flatMap((m) => (m.ok && m.message.type === 'ban' ? [m.message.target.text] : []));
  } finally {
    client.disconnect();
  }
}

t.test('cluster.sentinels: the master is found through the Sentinel, and after a failover the new one is written to', clusterTestOptions(), async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fsguard-sentinel-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const common = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  await startRedis(t, ['--port', String(MASTER), '--dir', dir, '--dbfilename', 'm.rdb', ...common], /ready to accept connections/i);
  await startRedis(t, ['--port', String(REPLICA), '--dir', dir, '--dbfilename', 'r.rdb', '--replicaof', '127.0.0.1', String(MASTER), ...common], /ready to accept connections/i);
  // The Sentinel rewrites its config file: one of its own in the test's folder.
  const sentinelConf = join(dir, 'sentinel.conf');
  writeFileSync(sentinelConf, [
    `port ${SENTINEL}`, 'bind 127.0.0.1', `dir ${dir}`,
    `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${MASTER} 1`,
    `sentinel down-after-milliseconds ${MASTER_NAME} 1000`,
    `sentinel failover-timeout ${MASTER_NAME} 10000`,
  ].join('\n') + '\n');
  await startRedis(t, [sentinelConf, '--sentinel'], /monitor master/i);
  const sentinel = new Redis({ host: '127.0.0.1', port: SENTINEL, protocol: 2, maxRetriesPerRequest: 1 });
  t.teardown(() => sentinel.disconnect());
  // The Sentinel has seen the replica (it can fail over to it) before the test goes on.
  await until('the Sentinel to see the replica', async () => ((await sentinel.call('SENTINEL', 'REPLICAS', MASTER_NAME)) as unknown[]).length === 1);

  const base = loadConfig(null, {}).config;
  const config: FsguardConfig = { ...base, cluster: { ...base.cluster, enabled: true, url: 'redis://', sentinels: [`127.0.0.1:${SENTINEL}`], sentinelMaster: MASTER_NAME, stream: STREAM, node: 'sentinel-test' } };
  t.match(await checkCluster(config), new RegExp(`^cluster: ok \\(sentinel ${MASTER_NAME} via 127.0.0.1:${SENTINEL}, stream ${STREAM}`), 'check reaches the master through the Sentinel');
  await publishManualAction(config, { type: 'ban', target: parseCidr('203.0.113.1')!, seconds: 60, note: 'before failover' });
  t.same(await bansIn(MASTER), ['203.0.113.1'], 'written to the master the Sentinel named');

  // Replication is asynchronous: the replica has the entry before it is promoted.
  await until('the replica to have the entry', async () => (await bansIn(REPLICA)).length === 1);
  await sentinel.call('SENTINEL', 'FAILOVER', MASTER_NAME);
  await until('the Sentinel to name the replica as master', async () => {
    const addr = (await sentinel.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER_NAME)) as string[];
    return addr[1] === String(REPLICA);
  });
  await until('the promoted replica to accept writes', async () => {
    const c = new Redis({ host: '127.0.0.1', port: REPLICA, protocol: 2, maxRetriesPerRequest: 1 });
    try { return (await c.call('ROLE') as unknown[])[0] === 'master'; } finally { c.disconnect(); }
  });
  await publishManualAction(config, { type: 'ban', target: parseCidr('203.0.113.2')!, seconds: 60, note: 'after failover' });
  t.same(await bansIn(REPLICA), ['203.0.113.1', '203.0.113.2'], 'the same config now writes to the new master (which has the history)');
});
