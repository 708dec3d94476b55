// rediss:// against a real redis-server with TLS (a certificate made by the test with openssl),
// on a loopback port inside the test's namespace: the CA given in cluster.tlsCaFile is
// trusted, a server signed by another is refused with the reason.
import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { checkCluster, publishManualAction } from '../lib/cluster/cli.js';
import { clusterCodec, MESSAGE_FIELD } from '../lib/cluster/codec.js';
import { loadConfig, type FsguardConfig } from '../lib/config/config.js';
import { parseCidr } from '../lib/net/ip.js';
import { clusterTestOptions } from './support/cluster-rig.js';

/** Fixed: the namespace is the test run's own; no other test listens here. */
const TLS_PORT = 16479;

function makeCert(dir: string, name: string): { cert: string; key: string } | string {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { encoding: 'utf8' });
  return r.status === 0 ? { cert, key } : `openssl: ${r.error?.message ?? r.stderr}`;
}

const opts = clusterTestOptions();
if (!opts.skip && spawnSync('openssl', ['version'], { stdio: 'ignore' }).status !== 0) opts.skip = 'openssl is missing (apt-get install -y openssl)';

t.test('rediss://: the configured CA is trusted, another is refused with the reason', opts, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fsguard-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const server = makeCert(dir, 'server');
  const other = makeCert(dir, 'other');
  if (typeof server === 'string' || typeof other === 'string') { t.fail(String(typeof server === 'string' ? server : other)); return; }
  const redis = spawn('redis-server', ['--port', '0', '--tls-port', String(TLS_PORT), '--bind', '127.0.0.1', '--tls-cert-file', server.cert, '--tls-key-file', server.key, '--tls-ca-cert-file', server.cert, '--tls-auth-clients', 'no', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { redis.kill('SIGKILL'); });
  let out = '';
  redis.stdout!.setEncoding('utf8').on('data', (d: string) => { out += d; });
  const deadline = Date.now() + 30_000;
  while (!/ready to accept connections/i.test(out)) {
    if (redis.exitCode !== null || Date.now() > deadline) { t.fail(`redis-server with TLS did not start: ${out}`); return; }
    await new Promise((r) => setTimeout(r, 20));
  }
  const base = loadConfig(null, {}).config;
  const configWith = (cluster: Partial<FsguardConfig['cluster']>): FsguardConfig => ({ ...base, cluster: { ...base.cluster, enabled: true, stream: 'fsguard:tls', node: 'tls', ...cluster } });

  const trusted = configWith({ url: `rediss://localhost:${TLS_PORT}`, tlsCaFile: server.cert });
  t.match(await checkCluster(trusted), /^cluster: ok \(rediss:\/\/localhost:16479, stream fsguard:tls/, 'check connects over TLS');
  await publishManualAction(trusted, { type: 'ban', target: parseCidr('203.0.113.9')!, seconds: 60, note: 'tls' });
  const client = new Redis({ host: 'localhost', port: TLS_PORT, tls: { ca: readFileSync(server.cert), servername: 'localhost' }, protocol: 2 });
  t.teardown(() => client.disconnect());
  const entries = await client.xrange('fsguard:tls', '-', '+');
  const message = clusterCodec().decode(entries[0]![1][entries[0]![1].indexOf(MESSAGE_FIELD) + 1]!);
  t.match(message, { ok: true, message: { type: 'ban', note: 'tls', seconds: 60 } }, 'the manual ban went through the TLS connection');

  await t.rejects(checkCluster(configWith({ url: `rediss://localhost:${TLS_PORT}`, tlsCaFile: other.cert })), /^cluster: rediss:\/\/localhost:16479: .*(certificate|self.signed)/i, 'a server signed by another CA is refused, with why');
});
