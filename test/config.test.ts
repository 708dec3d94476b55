import t from 'tap';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../lib/config/config.js';

const root = new URL('../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'fsguard-config-'));
const write = (name: string, body: unknown, mode = 0o600): string => {
  const p = join(dir, name);
  writeFileSync(p, typeof body === 'string' ? body : JSON.stringify(body));
  chmodSync(p, mode);
  return p;
};
const problemsOf = (fn: () => unknown): readonly string[] => {
  try { fn(); } catch (err) { if (err instanceof ConfigError) return err.problems; throw err; }
  return [];
};

t.test('conf/fsguard.json is exactly the built-in defaults', async (t) => {
  const shipped = JSON.parse(readFileSync(join(root, 'conf/fsguard.json'), 'utf8'));
  const defaults = loadConfig(null, {}).config;
  t.same(shipped, JSON.parse(JSON.stringify(defaults)));
  t.equal(defaults.esl.host, '127.0.0.1');
  t.equal(defaults.esl.port, 8021);
  t.equal(defaults.esl.password, 'ClueCon');
  t.equal(defaults.metrics.host, '127.0.0.1', 'metrics on loopback by default');
});

t.test('environment overrides every section', async (t) => {
  const { config } = loadConfig(null, {
    FSGUARD_ESL_HOST: '::1', FSGUARD_ESL_PORT: '8022', FSGUARD_ESL_PASSWORD: 's3cret',
    FSGUARD_NFT_TABLE: 'guard2', FSGUARD_NFT_PORTS: '5060,5080', FSGUARD_METRICS_ENABLED: 'false',
    FSGUARD_ESL_PROFILES: 'internal,external', FSGUARD_POLICY_BAN_SECONDS: '7200',
  });
  t.equal(config.esl.host, '::1');
  t.equal(config.esl.port, 8022);
  t.equal(config.esl.password, 's3cret');
  t.equal(config.nft.table, 'guard2');
  t.same(config.nft.ports, [5060, 5080]);
  t.equal(config.metrics.enabled, false);
  t.same(config.esl.profiles, ['internal', 'external']);
  t.equal(config.policy.banSeconds, 7200);
});

t.test('FSGUARD_CONFIG names the file; file values apply, env wins over file', async (t) => {
  const f = write('a.json', { esl: { port: 9000 }, nft: { table: 'fromfile' } });
  const { config, source } = loadConfig(null, { FSGUARD_CONFIG: f, FSGUARD_NFT_TABLE: 'fromenv' });
  t.equal(config.esl.port, 9000);
  t.equal(config.nft.table, 'fromenv');
  t.match(source, f);
});

t.test('wrong configs are refused, each problem naming its key', async (t) => {
  t.match(problemsOf(() => loadConfig(write('b.json', { esl: { hots: 'x' } }), {})).join('\n'), /esl\.hots/);
  t.match(problemsOf(() => loadConfig(write('c.json', { esl: { port: 'eighty' } }), {})).join('\n'), /esl\.port/);
  t.match(problemsOf(() => loadConfig(write('d.json', { nft: { table: 'bad name;' } }), {})).join('\n'), /nft\.table/);
  t.match(problemsOf(() => loadConfig(write('e.json', { nft: { ports: [5060, 70000] } }), {})).join('\n'), /nft\.ports\[1\]/);
  t.match(problemsOf(() => loadConfig(write('f.json', { policy: { allow: ['10.0.0.0/8', 'nonsense'] } }), {})).join('\n'), /policy\.allow/);
  t.match(problemsOf(() => loadConfig(write('g.json', { profiles: { internal: { banSecs: 3 } } }), {})).join('\n'), /profiles\.internal\.banSecs/);
  t.match(problemsOf(() => loadConfig(write('h.json', '{ not json'), {})).join('\n'), /not valid JSON/);
  t.match(problemsOf(() => loadConfig(join(dir, 'missing.json'), {})).join('\n'), /cannot read config file/);
  const both = problemsOf(() => loadConfig(write('i.json', { esl: { hots: 'x' }, profiles: { internal: { nope: 1 } } }), {}));
  t.equal(both.length, 2, 'one run names every problem');
});

t.test('a world-readable config warns; the password never appears in errors', async (t) => {
  const f = write('j.json', { esl: { password: 'TopSecret99' } }, 0o644);
  t.match(loadConfig(f, {}).warnings.join('\n'), /readable by every user/);
  t.same(loadConfig(write('k.json', { esl: { password: 'TopSecret99' } }, 0o640), {}).warnings, []);
  const bad = problemsOf(() => loadConfig(write('l.json', { esl: { password: 'TopSecret99', port: -1 } }), {}));
  t.ok(bad.length > 0);
  t.notMatch(bad.join('\n'), /TopSecret99/);
});
