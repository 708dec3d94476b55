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
  t.ok(files.some((f) => f.path === 'nft/runner.ts'), 'including the nft runner');
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
  // Every process fsguard starts is the configured nft binary with constant arguments.
  const spawns = files.flatMap((f) => [...f.text.matchAll(/\bspawn\s*\(([^,]+),\s*(\[[^\]]*\])/g)].map((m) => ({ path: f.path, program: m[1]!.trim(), args: m[2]! })));
  const allSpawnCalls = files.reduce((n, f) => n + [...f.text.matchAll(/\bspawn\s*\(/g)].length, 0);
  t.equal(spawns.length, allSpawnCalls, 'every spawn call has a literal argument array');
  t.ok(spawns.length >= 1);
  for (const s of spawns) {
    t.match(s.program, /^this\.(binary|options\.binary)$/, `${s.path}: spawns the configured nft binary (${s.program})`);
    t.match(s.args, /^\[(\s*'[-a-z]+'\s*,?)+\]$/, `${s.path}: with constant arguments ${s.args}`);
  }
  t.notOk(files.some((f) => /child_process/.test(f.text) && !['nft/runner.ts', 'daemon/nft-monitor.ts'].includes(f.path)), 'only the nft runner and monitor import child_process');
});

t.test('no data leaves the host: no outbound clients besides the event socket', async (t) => {
  for (const f of files) {
    t.notMatch(f.text, /\bfetch\s*\(|\bhttps?\.(request|get)\s*\(|node:https|node:dgram|\bdgram\b|node:tls|\bnet\.connect\b|createConnection\s*\(/, `${f.path}: no outbound client`);
  }
  const servers = files.filter((f) => /\bcreateServer\s*\(/.test(f.text)).map((f) => f.path);
  t.same(servers, ['obs/metrics.ts'], 'the only listener is the metrics endpoint');
  const unit = readFileSync(new URL('../../systemd/fsguard.service', import.meta.url), 'utf8');
  t.match(unit, /^IPAddressDeny=any$/m, 'the unit denies every address');
  t.match(unit, /^IPAddressAllow=localhost$/m, 'but localhost');
  const conf = JSON.parse(readFileSync(new URL('../../conf/fsguard.json', import.meta.url), 'utf8')) as { metrics?: { host?: string } };
  t.equal(conf.metrics?.host ?? '127.0.0.1', '127.0.0.1', 'the shipped config serves metrics on loopback');
});
