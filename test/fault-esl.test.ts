// Faults on the FreeSWITCH side, with the real daemon, real nft in the test namespace and the
// test event socket: FreeSWITCH restarting mid-attack (process killed and started again on the
// same port), unreachable at start, a wrong password, an ESL ACL rejection and a half-open
// connection. Each asserts on what the daemon does (it reconnects, retries, says what is wrong,
// never logs the password) and on the kernel (bans stay). How fast it retries and when it gives
// a connection up are exact delays under fake timers (test/esl-reconnect.test.ts,
// test/esl-liveness.test.ts): no wall-clock windows or sleeps here, so a loaded machine cannot
// make these fail.
import t from 'tap';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { EslTestServer } from './support/esl-server.js';
import { netnsTestOptions } from './support/netns.js';
import { freeLoopbackPort } from './support/daemon-process.js';
import {
  allBannedKeys, elementIfAny, EslServerProcess, fetchMetrics, ipv4Of, metricValue, rigConfig,
  scannerEvents, startDaemon, traceFile, waitFor,
} from './support/fault-rig.js';

const OFFICE = '198.51.100.30';

t.test('FreeSWITCH restarts mid-attack: reconnected, re-subscribed, registrations re-seeded, bans kept', netnsTestOptions(), async (t) => {
  const registrations = [{ user: '1001', realm: 'pbx.example.com', ip: OFFICE }];
  let fs = await EslServerProcess.start({ registrations });
  const port = fs.port;
  t.teardown(() => fs.kill());
  const { table, config } = rigConfig(t, 'f_fsrestart', port, { metrics: { enabled: true, port: 0 } });
  const daemon = startDaemon(t, config);
  const metricsLine = await daemon.waitForLog('metrics port', (l) => typeof l.port === 'number' && /metrics/.test(l.msg ?? ''));
  await daemon.waitForLog('registrations seeded', (l) => l.registrations === 1 && /live registrations loaded: their sources/.test(l.msg ?? ''));
  t.equal((await fs.stats()).api, 1, 'registrations asked once on the first connection');

  // The attack before the restart.
  const first = Array.from({ length: 20 }, (_, i) => ipv4Of(0x010000 + i));
  await fs.replay(traceFile(scannerEvents(first)));
  await waitFor('first wave banned', () => first.every((ip) => elementIfAny(table, 'banned4', ip) !== undefined), 15_000);

  // FreeSWITCH dies hard (no disconnect notice), and stays away a moment.
  await fs.kill('SIGKILL');
  await daemon.waitForLog('disconnect noticed', (l) => /event socket disconnected/.test(l.msg ?? ''));
  const keysWhileDown = allBannedKeys(table);
  t.ok(first.every((ip) => keysWhileDown.has(ip)), 'every ban stays in the kernel while FreeSWITCH is down');

  // Back on the same port (within reconnectMaxSeconds of it: exact under fake timers).
  fs = await EslServerProcess.start({ port, registrations });
  t.equal(fs.port, port, 'same port');
  const stats = await waitFor('re-subscription', async () => {
    const s = await fs.stats();
    return s.subscriptions.length >= 1 ? s : undefined;
  }, 30_000, 25);
  t.match(stats.subscriptions[0], /^event json HEARTBEAT CHANNEL_HANGUP_COMPLETE CUSTOM sofia::pre_register/, 'the same subscription');
  await waitFor('registrations asked again', async () => (await fs.stats()).api >= 1, 5000);
  const seeds = await daemon.waitForLog('registrations re-seeded', (l) => l.registrations === 1 && /live registrations loaded: their sources/.test(l.msg ?? '') && daemon.lines.filter((x) => /live registrations loaded: their sources/.test(x.msg ?? '')).length >= 2);
  t.ok(seeds, 'live registrations re-seeded into the policy after the restart');

  // The attack goes on against the restarted switch; old bans are still there, new ones land.
  const second = Array.from({ length: 20 }, (_, i) => ipv4Of(0x020000 + i));
  await fs.replay(traceFile(scannerEvents(second)));
  await waitFor('second wave banned', () => second.every((ip) => elementIfAny(table, 'banned4', ip) !== undefined), 15_000);
  const keys = allBannedKeys(table);
  t.ok(first.every((ip) => keys.has(ip)), 'bans from before the restart are all still in the kernel');
  t.notOk(keys.has(OFFICE), 'the registered office is not banned');
  const body = await fetchMetrics(metricsLine.port as number);
  t.equal(metricValue(body, 'fsguard_esl_connected'), 1, 'connected gauge back to 1');
  t.ok(metricValue(body, 'fsguard_esl_reconnects_total') >= 1, 'the reconnect is counted');
  t.ok(daemon.running, 'daemon alive');
  t.same(daemon.strayStdout, [], 'stdout stayed JSON lines');
});

t.test('FreeSWITCH unreachable at start: one clear warning, retries, connects once it is up', netnsTestOptions(), async (t) => {
  const port = await freeLoopbackPort();
  const { table, config } = rigConfig(t, 'f_unreach', port);
  const daemon = startDaemon(t, config);
  await daemon.waitForLog('running', (l) => l.msg === 'fsguard running');
  const warn = await daemon.waitForLog('unreachable warning', (l) => l.level === 'warn' && /cannot reach the FreeSWITCH event socket/.test(l.msg ?? ''));
  t.match(String(warn.host), '127.0.0.1');
  t.equal(warn.port, port, 'names the address it tries');
  const connecting = (): number => daemon.lines.filter((l) => /connecting to the FreeSWITCH event socket/.test(l.msg ?? '')).length;
  await waitFor('four attempts', () => connecting() >= 4, 30_000);
  // One warning when FreeSWITCH cannot be reached, the next only at the 30th failure.
  const warnings = daemon.lines.filter((l) => /cannot reach the FreeSWITCH event socket/.test(l.msg ?? '')).length;
  t.equal(warnings, 1, `one warning, not one per attempt (${connecting()} attempts)`);
  t.ok(daemon.running, 'no crash');
  t.equal(daemon.stderr, '', 'nothing on stderr');

  const server = await EslTestServer.start({ port, heartbeatIntervalMs: 1000 });
  t.teardown(() => server.close());
  await server.waitForSubscriptions(1, 30_000);
  await server.replay(scannerEvents(['10.9.9.9']));
  await waitFor('ban after late start', () => elementIfAny(table, 'banned4', '10.9.9.9'), 10_000);
  t.pass('protects once connected');
});

t.test('a socket that accepts and closes at once is not hammered', netnsTestOptions(), async (t) => {
  const accepted: number[] = [];
  const server = createServer((s: Socket) => { accepted.push(Date.now()); s.destroy(); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const { config } = rigConfig(t, 'f_slam', (server.address() as AddressInfo).port);
  const daemon = startDaemon(t, config);
  await daemon.waitForLog('running', (l) => l.msg === 'fsguard running');
  await waitFor('four connections', () => accepted.length >= 4, 30_000);
  // Each slammed connection is a failure like a refused one: the same capped backoff (exact
  // delays under fake timers in test/esl-reconnect.test.ts), one warning, no crash.
  const warnings = daemon.lines.filter((l) => /cannot reach the FreeSWITCH event socket/.test(l.msg ?? '')).length;
  t.equal(warnings, 1, `one warning for ${accepted.length} slammed connections`);
  t.ok(daemon.running, 'no crash');
});

t.test('wrong password: clear error, retried, recovers when fixed', netnsTestOptions(), async (t) => {
  const server = await EslTestServer.start({ heartbeatIntervalMs: 1000, password: 'S3cret-right' });
  t.teardown(() => server.close());
  const { table, config } = rigConfig(t, 'f_pw', server.port, { esl: { password: 'Wr0ng-pass', authRetrySeconds: 1 } });
  const daemon = startDaemon(t, config);
  const err = await daemon.waitForLog('password error', (l) => l.level === 'error' && /password/.test(l.msg ?? ''));
  t.match(err.msg, /esl\.password/, 'the message says what to fix');
  // Retried every authRetrySeconds (exact under fake timers in test/esl-reconnect.test.ts).
  await waitFor('a retry', () => server.authLog.length >= 2, 30_000);
  t.equal(err.retryInMs, 1000, 'says when it retries');
  t.ok(server.authLog.every((a) => !a.accepted), 'every attempt refused');
  t.ok(daemon.running, 'no crash');
  t.notOk(daemon.lines.some((l) => JSON.stringify(l).includes('Wr0ng-pass')), 'the password is never logged');
  t.notMatch(daemon.stderr, /Wr0ng-pass/);

  server.password = 'Wr0ng-pass';
  await server.waitForSubscriptions(1, 10_000);
  await server.replay(scannerEvents(['10.8.8.8']));
  await waitFor('ban after the password was fixed', () => elementIfAny(table, 'banned4', '10.8.8.8'), 10_000);
  t.pass('recovers without a restart once the passwords match');
});

t.test('ESL ACL rejection: clear error, slow retries, recovers when allowed', netnsTestOptions(), async (t) => {
  const server = await EslTestServer.start({ heartbeatIntervalMs: 1000 });
  server.rudeRejection = true;
  t.teardown(() => server.close());
  const { config } = rigConfig(t, 'f_acl', server.port, { esl: { authRetrySeconds: 1 } });
  const daemon = startDaemon(t, config);
  const err = await daemon.waitForLog('ACL error', (l) => l.level === 'error' && /ACL/.test(l.msg ?? ''));
  t.match(err.msg, /apply-inbound-acl/, 'names the FreeSWITCH setting');
  await waitFor('a retry', () => server.connectionLog.length >= 2, 30_000);
  t.equal(err.retryInMs, 1000, 'retried every authRetrySeconds, not by the fast backoff');
  t.equal(server.authLog.length, 0, 'never got as far as sending a password');
  t.ok(daemon.running, 'no crash');
  server.rudeRejection = false;
  await server.waitForSubscriptions(1, 10_000);
  t.pass('connects once the ACL lets it in');
});

// The half-open peer (socket open, nothing said) is test/esl-liveness.test.ts: a real TCP
// server and fake timers give the exact timeout instead of a 5 s wall-clock wait.
