// Static guarantees over lib/: nothing an attacker writes can reach a shell, and the daemon
// opens no outbound connection except to the configured event socket.
import t from 'tap';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const LIB = new URL('../../lib/', import.meta.url).pathname;

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sources(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

/** The file without comments (so a comment mentioning exec() is not a finding). */
function code(path: string): string {
  return readFileSync(path, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

const files = sources(LIB).map((p) => ({ path: relative(LIB, p), text: code(p) }));

t.test('lib/ has sources to check', async (t) => {
  t.ok(files.length >= 20, `${files.length} files`);
  t.ok(files.some((f) => f.path === 'nft/libnftables.ts'), 'including the libnftables binding');
});

t.test('nothing reaches a shell', async (t) => {
  for (const f of files) {
    t.notMatch(f.text, /shell\s*:\s*(true|['"`])/, `${f.path}: no shell: true`);
    // (RegExp's .exec() is fine: only bare calls of imported child_process functions count.)
    t.notMatch(f.text, /(?<![\w.])(exec|execSync|execFile|execFileSync|spawnSync|fork)\s*\(/, `${f.path}: no exec/execFile/spawnSync/fork`);
    t.notMatch(f.text, /child_process['"]\s*\)?\s*\.\s*exec|require\(\s*['"](node:)?child_process/, `${f.path}: no exec through a module object`);
    for (const m of f.text.matchAll(/import\s+(type\s+)?(\{[^}]*\}|\*\s+as\s+\w+|\w+)\s+from\s+['"](node:)?child_process['"]/g)) {
      t.match(m[2]!, /^\{\s*spawn\s*(,\s*type\s+\w+\s*)*\}$/, `${f.path}: imports only spawn from child_process (${m[2]})`);
    }
    t.notMatch(f.text, /\beval\s*\(|new\s+Function\s*\(/, `${f.path}: no eval`);
    t.notMatch(f.text, /['"`](\/bin\/)?(ba|da)?sh['"`]/, `${f.path}: never names a shell`);
  }
  // The daemon starts no process at all: the kernel is reached through libnftables, in-process.
  // Only `fsguard status`, with the daemon down, asks systemctl and journalctl why (fixed
  // arguments, no shell, a person's command, never the daemon's).
  t.same(files.filter((f) => /child_process/.test(f.text)).map((f) => f.path), ['cli/status-command.ts'], 'only the status command imports child_process');
  t.same(files.filter((f) => /\bspawn\s*\(/.test(f.text)).map((f) => f.path), ['cli/status-command.ts'], 'only it spawns');
  const status = files.find((f) => f.path === 'cli/status-command.ts')?.text ?? '';
  t.same([...status.matchAll(/run\('(\w+)'/g)].map((m) => m[1]), ['systemctl', 'journalctl'], 'and only systemctl and journalctl');
  // Native code comes in through one file, and only two libraries: libnftables and libc's _exit.
  t.same(files.filter((f) => /koffi/.test(f.text)).map((f) => f.path), ['nft/libnftables.ts'], 'only the libnftables binding uses koffi');
  const binding = files.find((f) => f.path === 'nft/libnftables.ts')?.text ?? '';
  t.same([...binding.matchAll(/\.load\(([^)]*)\)/g)].map((m) => m[1]), ['path', "'libc.so.6'"], 'it loads the configured libnftables and libc');
});

t.test('no data leaves the host: no outbound clients besides the event socket and the notifications asked for', async (t) => {
  // The webhook and mail notifications (off unless configured; the unit still allows only
  // localhost) and the status client's Unix socket are the reviewed exceptions.
  const OUTBOUND: Readonly<Record<string, RegExp>> = { 'notify/webhook.ts': /\bfetch\s*\(/, 'status/socket.ts': /createConnection\s*\(\{\s*path\s*\}\)/ };
  for (const f of files) {
    const text = OUTBOUND[f.path] ? f.text.replace(new RegExp(OUTBOUND[f.path]!.source, 'g'), '') : f.text;
    t.notMatch(text, /\bfetch\s*\(|\bhttps?\.(request|get)\s*\(|node:https|node:dgram|\bdgram\b|node:tls|\bnet\.connect\b|createConnection\s*\(/, `${f.path}: no outbound client`);
  }
  t.same(files.filter((f) => /nodemailer/.test(f.text)).map((f) => f.path), ['notify/mail.ts'], 'mail only through notify/mail.ts');
  // The cluster's Redis (off unless configured): clients made in two reviewed places only.
  t.same(files.filter((f) => /\bnew\s+(Redis|Cluster)\s*\(/.test(f.text)).map((f) => f.path).sort(), ['cluster/cli.ts', 'cluster/redis-link.ts'], 'Redis clients only in the cluster\'s link and its CLI');
  t.same(files.filter((f) => /from 'ioredis'/.test(f.text) && !f.path.startsWith('cluster/')).map((f) => f.path), [], 'ioredis only under cluster/');
  const servers = files.filter((f) => /\bcreateServer\s*\(/.test(f.text)).map((f) => f.path);
  t.same(servers, ['obs/metrics.ts', 'status/socket.ts'], 'the only listeners: the metrics endpoint and the status Unix socket');
  const unit = readFileSync(new URL('../../systemd/fsguard.service', import.meta.url), 'utf8');
  t.match(unit, /^IPAddressDeny=any$/m, 'the unit denies every address');
  t.match(unit, /^IPAddressAllow=localhost$/m, 'but localhost');
  const conf = JSON.parse(readFileSync(new URL('../../conf/fsguard.json', import.meta.url), 'utf8')) as { metrics?: { host?: string } };
  t.equal(conf.metrics?.host ?? '127.0.0.1', '127.0.0.1', 'the shipped config serves metrics on loopback');
});
