// Faults on the FreeSWITCH side, with the real daemon, real nft in the test namespace and the
// test event socket: FreeSWITCH restarting mid-attack (process killed and started again on the
// same port), unreachable at start, a wrong password, an ESL ACL rejection and a half-open
// connection. Each asserts on what the daemon does (reconnect time, attempt rate, log lines)
// and on the kernel (bans stay).
import t from 'tap';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { EslTestServer } from './support/esl-server.js';
import { netnsTestOptions } from './support/netns.js';
import {
  allBannedKeys, attemptsBetween, elementIfAny, EslServerProcess, fetchMetrics, ipv4Of, metricValue, rigConfig,
  scannerEvents, sleep, startDaemon, traceFile, waitFor,
} from './support/fault-rig.js';

const OFFICE = '198.51.100.30';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

t.test('FreeSWITCH restarts mid-attack: back within 2 s, re-subscribed, registrations re-seeded, bans kept', netnsTestOptions(), async (t) => {
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
  await sleep(700);

  // Back on the same port: measure from the moment it listens to the moment it sees our subscription.
  fs = await EslServerProcess.start({ port, registrations });
  const backAt = Date.now();
  t.equal(fs.port, port, 'same port');
  const stats = await waitFor('re-subscription', async () => {
    const s = await fs.stats();
    return s.subscriptions.length >= 1 ? s : undefined;
  }, 10_000, 25);
  const reconnectMs = Date.now() - backAt;
  t.ok(reconnectMs <= 2000, `reconnected and subscribed ${reconnectMs} ms after the socket was back (<= 2000)`);
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

t.test('FreeSWITCH unreachable at start: one clear warning, bounded retry rate, connects once it is up', netnsTestOptions(), async (t) => {
  const port = await freePort();
  const { table, config } = rigConfig(t, 'f_unreach', port);
  const daemon = startDaemon(t, config);
  await daemon.waitForLog('running', (l) => l.msg === 'fsguard running');
  const startedAt = Date.now();
  const warn = await daemon.waitForLog('unreachable warning', (l) => l.level === 'warn' && /cannot reach the FreeSWITCH event socket/.test(l.msg ?? ''));
  t.match(String(warn.host), '127.0.0.1');
  t.equal(warn.port, port, 'names the address it tries');
  await sleep(6000);
  const attempts = daemon.lines.filter((l) => /connecting to the FreeSWITCH event socket/.test(l.msg ?? '')).length;
  const windowS = (Date.now() - startedAt) / 1000;
  t.ok(attempts >= 3, `it keeps retrying (${attempts} attempts in ${windowS.toFixed(1)} s)`);
  // Backoff 100 ms doubling to a 2 s cap, jitter shortens by up to half: ~10 in 6 s at most.
  t.ok(attempts <= 15, `no tight loop: ${attempts} attempts in ${windowS.toFixed(1)} s`);
  const warnings = daemon.lines.filter((l) => /cannot reach the FreeSWITCH event socket/.test(l.msg ?? '')).length;
  t.ok(warnings <= 2, `one warning, not one per attempt (${warnings})`);
  t.ok(daemon.running, 'no crash');
  t.equal(daemon.stderr, '', 'nothing on stderr');

  const server = await EslTestServer.start({ port, heartbeatIntervalMs: 1000 });
  t.teardown(() => server.close());
  const upAt = Date.now();
  await server.waitForSubscriptions(1, 10_000);
  t.ok(Date.now() - upAt <= 2500, `connected ${Date.now() - upAt} ms after FreeSWITCH came up`);
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
  const from = Date.now();
  await sleep(6000);
  const n = attemptsBetween(accepted.map((at) => ({ at })), from, Date.now());
  t.ok(n >= 2 && n <= 15, `${n} connections in 6 s`);
  t.ok(daemon.running, 'no crash');
});

t.test('wrong password: clear error, retries only every authRetrySeconds, recovers when fixed', netnsTestOptions(), async (t) => {
  const server = await EslTestServer.start({ heartbeatIntervalMs: 1000, password: 'S3cret-right' });
  t.teardown(() => server.close());
  const { table, config } = rigConfig(t, 'f_pw', server.port, { esl: { password: 'Wr0ng-pass', authRetrySeconds: 2 } });
  const daemon = startDaemon(t, config);
  const err = await daemon.waitForLog('password error', (l) => l.level === 'error' && /password/.test(l.msg ?? ''));
  t.match(err.msg, /esl\.password/, 'the message says what to fix');
  const from = Date.now();
  await sleep(7000);
  const n = attemptsBetween(server.connectionLog, from, Date.now());
  t.ok(n >= 2 && n <= 5, `about one attempt per 2 s: ${n} connections in 7 s`);
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
  const { config } = rigConfig(t, 'f_acl', server.port, { esl: { authRetrySeconds: 2 } });
  const daemon = startDaemon(t, config);
  const err = await daemon.waitForLog('ACL error', (l) => l.level === 'error' && /ACL/.test(l.msg ?? ''));
  t.match(err.msg, /apply-inbound-acl/, 'names the FreeSWITCH setting');
  const from = Date.now();
  await sleep(7000);
  const n = attemptsBetween(server.connectionLog, from, Date.now());
  t.ok(n >= 2 && n <= 5, `about one attempt per 2 s: ${n} connections in 7 s`);
  t.equal(server.authLog.length, 0, 'never got as far as sending a password');
  t.ok(daemon.running, 'no crash');
  server.rudeRejection = false;
  await server.waitForSubscriptions(1, 10_000);
  t.pass('connects once the ACL lets it in');
});

t.test('half-open connection: missing HEARTBEATs detected, connection made again', netnsTestOptions(), async (t) => {
  // The config minimum is 5 s: FreeSWITCH sends HEARTBEAT every 20 s, so anything shorter
  // than a few heartbeats would tear down healthy connections. 5 s keeps the test short.
  const server = await EslTestServer.start({ heartbeatIntervalMs: 500 });
  t.teardown(() => server.close());
  const { table, config } = rigConfig(t, 'f_hung', server.port, { esl: { heartbeatTimeoutSeconds: 5 } });
  const daemon = startDaemon(t, config);
  await server.waitForSubscriptions(1);
  await sleep(1200);
  const hungAt = Date.now();
  server.setHung(true);
  const line = await daemon.waitForLog('heartbeat timeout', (l) => /no HEARTBEAT/.test(l.msg ?? ''), 15_000);
  const detectedMs = Date.now() - hungAt;
  t.ok(detectedMs >= 4000 && detectedMs <= 8000, `detected ${detectedMs} ms after the peer went silent (timeout 5 s)`);
  t.equal(line.timeoutMs, 5000);
  server.setHung(false);
  // If the first new connection landed while still hung, the 10 s handshake timeout retries it.
  await server.waitForSubscriptions(2, 25_000);
  t.ok(server.openSessions.length >= 1, 're-established');
  await server.replay(scannerEvents(['10.7.7.7']));
  await waitFor('ban over the new connection', () => elementIfAny(table, 'banned4', '10.7.7.7'), 10_000);
  t.ok(daemon.running, 'no crash');
});
