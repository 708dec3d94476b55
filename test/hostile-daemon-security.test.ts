// Security of the daemon itself: the ESL password never appears in logs, CLI output or crash
// output; a config file others can read is warned about; metrics listen on loopback only.
import t from 'tap';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../lib/config/config.js';
import { cliEnv, FSGUARD, fsguardCli, runProcess, writeConfig, type ProcessResult } from './support/daemon-process.js';
import { EslTestServer } from './support/esl-server.js';
import { netnsTestOptions } from './support/netns.js';
import { rigConfig, scannerEvents, startDaemon, waitFor } from './support/fault-rig.js';

const SECRET = 'Pw-s3cr3t-XYZ';
/** The password, and the forms it could leak in (JSON-escaped, URL-encoded, base64). */
const LEAKS = [SECRET, encodeURIComponent(SECRET), Buffer.from(SECRET).toString('base64'), 's3cr3t'];
const leaked = (text: string): string[] => LEAKS.filter((l) => text.includes(l));

/** Runs the CLI with a clean environment (plus `env`). */
function runCli(args: readonly string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 20_000): Promise<ProcessResult> {
  return runProcess(FSGUARD, args, { env: cliEnv(env), timeoutMs, killSignal: 'SIGTERM' });
}

t.test('the ESL password never appears in logs, even at debug level, across reconnects and reloads', netnsTestOptions(), async (t) => {
  const server = await EslTestServer.start({ heartbeatIntervalMs: 500, password: SECRET });
  t.teardown(() => server.close());
  const { config } = rigConfig(t, 's_pwlog', server.port, { esl: { password: SECRET } });
  const daemon = startDaemon(t, config);
  await server.waitForSubscriptions(1);
  t.ok(server.sessions[0]!.received.toString('latin1').includes(`auth ${SECRET}`), 'the password did go to the event socket (so the test would see a leak)');
  await server.replay(scannerEvents(['10.60.0.1', '10.60.0.2']));
  server.dropConnections();
  await server.waitForSubscriptions(2);
  daemon.child.kill('SIGHUP');
  await daemon.waitForLog('reloaded', (l) => l.msg === 'config reloaded');
  server.password = 'changed';
  server.dropConnections();
  await daemon.waitForLog('password refused', (l) => l.level === 'error' && /password/.test(l.msg ?? ''));
  // The last line of the refusal (the link closed, the retry scheduled) is checked too.
  await daemon.waitForLog('the link closed after the refusal', (l) => l.msg === 'event socket connection closed after a rejection');
  t.equal(await daemon.stop('SIGTERM'), 0);
  const all = daemon.lines.map((l) => JSON.stringify(l)).join('\n') + daemon.strayStdout.join('\n') + daemon.stderr;
  // The lines checked cover every phase: bans, the reconnect, the reload, the refused password
  // (a count alone failed under load, when fewer debug lines were written).
  const messages = new Set(daemon.lines.map((l) => l.msg));
  t.ok(daemon.lines.length > 10, `${daemon.lines.length} log lines checked`);
  t.ok(daemon.lines.some((l) => l.msg === 'config reloaded') && daemon.lines.some((l) => l.level === 'error' && /password/.test(l.msg ?? '')),
    `lines of the reload and the refused password among them (${[...messages].slice(0, 12).join(' | ')})`);
  t.same(leaked(all), [], 'no log line, stray output or stderr holds the password');
});

t.test('the password is not printed by check, policy, or any error path', netnsTestOptions(), async (t) => {
  const server = await EslTestServer.start({ password: SECRET });
  t.teardown(() => server.close());
  const { config } = rigConfig(t, 's_pwcli', server.port, { esl: { password: SECRET } });
  const outputs: Array<[string, { status: number | null; stdout: string; stderr: string }]> = [];
  outputs.push(['check (ok)', await fsguardCli(['check', '--config', config])]);
  t.equal(outputs[0]![1].status, 0, outputs[0]![1].stderr);
  server.password = 'other';
  outputs.push(['check (refused)', await fsguardCli(['check', '--config', config])]);
  t.equal(outputs[1]![1].status, 1);
  outputs.push(['policy', await fsguardCli(['policy', '--config', config])]);
  outputs.push(['policy --json', await fsguardCli(['policy', '--json', '--config', config])]);
  // Broken configs that involve the password: the problem is named, never the value.
  const dir = mkdtempSync(join(tmpdir(), 'fsguard-pw-'));
  const bad = (name: string, body: string): string => { const p = join(dir, name); writeFileSync(p, body); chmodSync(p, 0o600); return p; };
  outputs.push(['line break in file', await runCli(['run', '--config', bad('lb.json', JSON.stringify({ esl: { password: `${SECRET}\nevent plain ALL` } }))])]);
  outputs.push(['array password', await runCli(['run', '--config', bad('arr.json', JSON.stringify({ esl: { password: [SECRET] } }))])]);
  outputs.push(['typo key', await runCli(['run', '--config', bad('typo.json', JSON.stringify({ esl: { passwrod: SECRET } }))])]);
  outputs.push(['not JSON', await runCli(['run', '--config', bad('nojson.json', `{"esl": {"password": "${SECRET}"`)])]);
  outputs.push(['line break in env', await runCli(['check'], { FSGUARD_ESL_PASSWORD: `${SECRET}\r\nexit` })]);
  // Fatal at start (libnftables missing) with the password only in the environment.
  outputs.push(['nft missing', await runCli(['run', '--config', writeConfig({ nft: { library: '/nonexistent/libnftables.so.1' } })], { FSGUARD_ESL_PASSWORD: SECRET })]);
  for (const [what, r] of outputs) {
    t.same(leaked(r.stdout + r.stderr), [], `${what}: password not printed (exit ${r.status})`);
  }
  t.match(outputs[4]![1].stderr, /esl\.password: must not contain a line break/, 'the line-break problem is named');
  t.not(outputs[4]![1].status, 0);
});

t.test('a crash prints no secret: uncaught exception in the running daemon', netnsTestOptions(), async (t) => {
  const server = await EslTestServer.start({ heartbeatIntervalMs: 500, password: SECRET });
  t.teardown(() => server.close());
  const { config } = rigConfig(t, 's_crash', server.port, { esl: { password: SECRET } });
  // Preloaded into the daemon: once the test has seen it log in (the flag file appears),
  // something throws where nothing catches. The poll only paces the check; what decides the
  // moment is the login the test server saw, not a guess of how long start-up takes.
  const dir = mkdtempSync(join(tmpdir(), 'fsguard-crash-'));
  const crash = join(dir, 'crash.mjs');
  const flag = join(dir, 'logged-in');
  writeFileSync(crash, [
    "import { existsSync } from 'node:fs';",
    `const flag = ${JSON.stringify(flag)};`,
    "const poll = setInterval(() => { if (existsSync(flag)) { clearInterval(poll); throw new Error('forced crash for the test'); } }, 20);",
    '',
  ].join('\n'));
  const running = runProcess(process.execPath, [`--import=${crash}`, FSGUARD, 'run', '--config', config], { timeoutMs: 60_000 });
  await waitFor('the daemon logs in', () => server.authLog.some((a) => a.accepted));
  writeFileSync(flag, '');
  const result = await running;
  t.match(result.stderr, /forced crash for the test/, 'it did crash, with a stack on stderr');
  t.not(result.status, 0, 'non-zero exit');
  t.ok(server.authLog.some((a) => a.accepted), 'after logging in with the password');
  t.same(leaked(result.stdout + result.stderr), [], 'neither the crash output nor the log holds the password');
});

t.test('a config file every user can read triggers a warning at start (and in check)', netnsTestOptions(), async (t) => {
  const server = await EslTestServer.start({});
  t.teardown(() => server.close());
  const { config } = rigConfig(t, 's_mode', server.port);
  const quiet = startDaemon(t, config);
  await quiet.waitForLog('running', (l) => l.msg === 'fsguard running');
  t.notOk(quiet.lines.some((l) => /readable by every user/.test(l.msg ?? '')), 'mode 600: no warning');
  await quiet.stop('SIGTERM');
  chmodSync(config, 0o644);
  const loud = startDaemon(t, config);
  const w = await loud.waitForLog('warning', (l) => /readable by every user/.test(l.msg ?? ''));
  t.equal(w.level, 'warn');
  t.match(w.msg, /chmod 640/, 'says how to fix it');
  await loud.waitForLog('still runs', (l) => l.msg === 'fsguard running');
  const check = await fsguardCli(['check', '--config', config]);
  t.match(check.stderr, /config: warning: .*readable by every user/);
});

t.test('metrics listen on loopback by default, never on all addresses', netnsTestOptions(), async (t) => {
  const defaults = loadConfig(null, {}).config;
  t.equal(defaults.metrics.host, '127.0.0.1', 'built-in default host');
  t.equal(defaults.metrics.enabled, true, 'metrics are on by default, so the default host matters');
  const server = await EslTestServer.start({});
  t.teardown(() => server.close());
  // No metrics.host in the file: the default applies. Port 0 so parallel tests cannot collide.
  const { config } = rigConfig(t, 's_metrics', server.port, { metrics: { enabled: true, port: 0 } });
  const daemon = startDaemon(t, config);
  const line = await daemon.waitForLog('metrics line', (l) => typeof l.port === 'number' && /metrics/.test(l.msg ?? ''));
  t.equal(line.host, '127.0.0.1');
  const port = line.port as number;
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  const listening = await waitFor('the listening socket', () => {
    const rows = [...readFileSync('/proc/net/tcp', 'utf8').split('\n'), ...readFileSync('/proc/net/tcp6', 'utf8').split('\n')]
      .map((l) => l.trim().split(/\s+/)).filter((c) => c[1]?.endsWith(`:${hexPort}`) && c[3] === '0A');
    return rows.length ? rows.map((c) => c[1]!) : undefined;
  }, 5000);
  t.same(listening, [`0100007F:${hexPort}`], `only 127.0.0.1:${port} listens (${listening.join(', ')})`);
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  t.equal(res.status, 200);
});
