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

t.test('durations: a number of seconds or a number with a unit, in the file and the environment', async (t) => {
  const f = write('dur.json', { policy: { banSeconds: '1h', banMaxSeconds: '7d', answerTimeoutSeconds: '2500ms' }, esl: { heartbeatTimeoutSeconds: '90s' }, profiles: { internal: { banSeconds: '2h' } } });
  const { config } = loadConfig(f, { FSGUARD_POLICY_LONG_WINDOW_SECONDS: '6h', FSGUARD_ESL_AUTH_RETRY_SECONDS: '1m' });
  t.equal(config.policy.banSeconds, 3600, '"1h" is an hour, not 1 s');
  t.equal(config.policy.banMaxSeconds, 604800, '"7d" is a week, not 7 s');
  t.equal(config.policy.answerTimeoutSeconds, 2.5);
  t.equal(config.esl.heartbeatTimeoutSeconds, 90);
  t.equal(config.profiles.internal?.banSeconds, 7200);
  t.equal(config.policy.longWindowSeconds, 21600);
  t.equal(config.esl.authRetrySeconds, 60);
  t.equal(loadConfig(null, { FSGUARD_POLICY_BAN_SECONDS: '2h' }).config.policy.banSeconds, 7200, 'FSGUARD_POLICY_BAN_SECONDS=2h is 2 hours, not 2 s');
  t.equal(loadConfig(null, { FSGUARD_POLICY_BAN_SECONDS: '120' }).config.policy.banSeconds, 120);
});

t.test('values are validated, never coerced: each case of issue 11', async (t) => {
  const one = (body: unknown, env: NodeJS.ProcessEnv = {}): string => problemsOf(() => loadConfig(body === null ? null : write('v.json', body), env)).join('\n');
  t.match(one({ esl: { port: '80 21' } }), /esl\.port = "80 21": expected a port number/);
  t.match(one({ esl: { port: '8021x' } }), /esl\.port = "8021x": expected a port number/);
  t.match(one(null, { FSGUARD_ESL_PORT: '8021x' }), /FSGUARD_ESL_PORT \(esl\.port\) = "8021x": expected a port number/);
  t.match(one(null, { FSGUARD_ESL_PORT: '80 21' }), /FSGUARD_ESL_PORT/);
  t.match(one({ metrics: { enabled: 'no' } }), /metrics\.enabled = "no": expected true or false/);
  t.match(one(null, { FSGUARD_METRICS_ENABLED: 'maybe' }), /FSGUARD_METRICS_ENABLED \(metrics\.enabled\) = "maybe": expected true or false/);
  t.match(one(null, { FSGUARD_METRICS_ENABLED: 'yes' }), /expected true or false/);
  t.equal(loadConfig(null, { FSGUARD_METRICS_ENABLED: 'false' }).config.metrics.enabled, false);
  t.equal(loadConfig(null, { FSGUARD_METRICS_ENABLED: 'true' }).config.metrics.enabled, true);
  t.match(one(null, { FSGUARD_ESL_HOTS: '10.0.0.1' }), /FSGUARD_ESL_HOTS: unknown variable \(did you mean FSGUARD_ESL_HOST\?\)/);
  t.match(one({ policy: { banSeconds: '1 hour' } }), /policy\.banSeconds = "1 hour": expected a duration: a number of seconds or a number with a unit/);
  t.match(one(null, { FSGUARD_POLICY_BAN_SECONDS: '2x' }), /FSGUARD_POLICY_BAN_SECONDS \(policy\.banSeconds\) = "2x": expected a duration/);
  t.match(one(null, { FSGUARD_POLICY_BRUTE_FORCE_FAILURES: '6x' }), /FSGUARD_POLICY_BRUTE_FORCE_FAILURES \(policy\.bruteForceFailures\) = "6x": expected a whole number/);
  t.match(one({ policy: { bruteForceFailures: '6' } }), /policy\.bruteForceFailures = "6": expected a whole number/);
  t.match(one({ nft: { chainPriority: 1.5 } }), /nft\.chainPriority = 1\.5: expected a whole number/);
  t.match(one({ nft: { ports: [5060, '5080'] } }), /nft\.ports\[1\] = "5080": expected a port number/);
  t.match(one(null, { FSGUARD_NFT_PORTS: '5060,50x' }), /FSGUARD_NFT_PORTS \(nft\.ports\)\[1\] = "50x": expected a port number/);
  t.match(one({ log: { level: 'verbose' } }), /log\.level = "verbose": expected one of "debug", "info", "warn", "error"/);
});

t.test('retry intervals have sane minimums', async (t) => {
  const one = (esl: unknown): string => problemsOf(() => loadConfig(write('m.json', { esl }), {})).join('\n');
  t.match(one({ authRetrySeconds: 0 }), /esl\.authRetrySeconds = 0: must be at least 1 s/, 'a wrong password is not retried in a tight loop');
  t.match(one({ reconnectMaxSeconds: 0 }), /esl\.reconnectMaxSeconds = 0: must be at least 0\.5 s/);
  t.match(one({ heartbeatTimeoutSeconds: 1 }), /esl\.heartbeatTimeoutSeconds = 1: must be at least 5 s/);
  t.match(problemsOf(() => loadConfig(write('m2.json', { nft: { reconcileSeconds: 0.1 } }), {})).join('\n'), /nft\.reconcileSeconds = 0\.1: must be at least 0\.5 s/);
});

t.test('every bad key and every unknown variable is reported at once', async (t) => {
  const f = write('four.json', { esl: { port: '80 21', authRetrySeconds: 0 }, metrics: { enabled: 'no' }, policy: { banSeconds: '1 hour' }, nft: { tabel: 'x' } });
  const problems = problemsOf(() => loadConfig(f, { FSGUARD_ESL_HOTS: 'x', FSGUARD_METRICS_ENABLED: 'maybe', FSGUARD_NETNS: '1', FSGUARD_REQUIRE_NETNS: '1' }));
  t.equal(problems.length, 6, problems.join('\n'));
  for (const key of ['FSGUARD_ESL_HOTS', 'esl.authRetrySeconds', 'esl.port', 'FSGUARD_METRICS_ENABLED', 'policy.banSeconds', 'nft.tabel']) {
    t.ok(problems.some((p) => p.startsWith(key)), `${key} named`);
  }
  t.notOk(problems.some((p) => /FSGUARD_(REQUIRE_)?NETNS/.test(p)), 'the test harness switches are not config variables');
  const pw = problemsOf(() => loadConfig(write('pw.json', { esl: { password: 42 } }), {})).join('\n');
  t.match(pw, /esl\.password = \[redacted\]: expected a string/, 'a sensitive value is not echoed');
});

t.test('fsguard check (a child process) names every problem, as run and SIGHUP do', async (t) => {
  const { runProcess, FSGUARD, cliEnv } = await import('./support/daemon-process.js');
  const f = write('check.json', { esl: { port: '80 21' }, metrics: { enabled: 'no' }, policy: { banSeconds: '7 days' } });
  const r = await runProcess(FSGUARD, ['check', '--config', f], { env: cliEnv({ FSGUARD_ESL_HOTS: 'x', FSGUARD_POLICY_BAN_MAX_SECONDS: '2h' }) });
  t.equal(r.status, 1);
  const lines = r.stderr.trim().split('\n');
  t.equal(lines.length, 4, r.stderr);
  t.match(r.stderr, /config: esl\.port = "80 21": expected a port number/);
  t.match(r.stderr, /config: metrics\.enabled = "no"/);
  t.match(r.stderr, /config: policy\.banSeconds = "7 days": expected a duration/);
  t.match(r.stderr, /config: FSGUARD_ESL_HOTS: unknown variable/);
  t.equal(r.stdout, '', 'nothing claims the config is ok');
});
