// Notifications from the real daemon: bans of a replayed trace reach a webhook on loopback
// (signed), while the mail server is down — retried and counted, and the bans reach the kernel
// all the same. The secrets are in no log line, status output or check output.
import t from 'tap';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { EslTestServer } from './support/esl-server.js';
import { fsguardCli, writeConfig, startDaemonWith, freeLoopbackPort } from './support/daemon-process.js';
import { netnsTestOptions } from './support/netns.js';
import { kernelElements, uniqueTableName } from './support/nft-kernel.js';
import type { StatusReport } from '../lib/status/report.js';

const SCENARIOS = new URL('../../../shared/scenarios/', import.meta.url).pathname;
const trace = (name: string): string[] => readFileSync(join(SCENARIOS, `${name}.jsonl`), 'utf8').split('\n').filter(Boolean);
const ATTACKER = '203.0.113.66';
const HOOK_SECRET = 'hook-S3cret-4242';
const SMTP_PASSWORD = 'smtp-S3cret-4343';
const TOKEN = 'XyZtoken9876';

async function waitUntil(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

t.test('the daemon notifies a webhook, keeps banning with the mail server down, and shows neither secret', netnsTestOptions(), async (t) => {
  const got: Array<{ headers: IncomingHttpHeaders; body: string }> = [];
  const hook = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => { got.push({ headers: req.headers, body }); res.writeHead(200).end(); });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => hook.close(() => r())));
  const server = await EslTestServer.start({ heartbeatIntervalMs: 500 });
  const table = uniqueTableName('ntf');
  const smtpPort = await freeLoopbackPort();
  const config = writeConfig({
    esl: { host: '127.0.0.1', port: server.port, password: 'ClueCon' },
    nft: { table, reconcileSeconds: 0.5 },
    metrics: { enabled: false },
    notify: {
      digestSeconds: 1,
      mail: { kinds: ['ban'], to: ['ops@example.test'], transport: 'smtp', smtp: { host: '127.0.0.1', port: smtpPort, user: 'fsguard', password: SMTP_PASSWORD } },
      webhook: { kinds: ['ban', 'alert'], url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hooks/${TOKEN}`, secret: HOOK_SECRET },
    },
    log: { level: 'debug' },
  });
  const daemon = startDaemonWith(t, config, server, table);
  await server.waitForSubscriptions(1);
  await server.replay([...trace('brute-force-one-user'), ...trace('mass-reboot-office')]);

  await waitUntil('the attacker in the kernel', () => kernelElements(table, 'banned4').some((e) => e.key === ATTACKER));
  // The trace's last decision: the stale-password phones of the reboot.
  await daemon.waitForLog('the misprovisioned-phone alerts', (l) => l.event === 'alert' && l.kind === 'misprovisioned_device');
  const decided = (): number => daemon.lines.filter((l) => l.event === 'ban' || l.event === 'alert').length;
  const notified = (): number => got.map((m) => (JSON.parse(m.body) as { fsguard: { total: number } }).fsguard.total).reduce((a, b) => a + b, 0);
  // The first notice goes at once, the rest in the digest one interval (1 s) later.
  await waitUntil('every ban and alert notified', () => notified() > 0 && notified() === decided()).catch((err: Error) => {
    throw new Error(`${err.message}: ${notified()} notified, ${decided()} decided; ${got.length} messages`);
  });
  const banLines = daemon.lines.filter((l) => l.event === 'ban');
  const alertLines = daemon.lines.filter((l) => l.event === 'alert');
  t.ok(got.length >= 1 && got.length <= 3, `${banLines.length + alertLines.length} notices in ${got.length} webhook messages`);
  const texts = got.map((m) => (JSON.parse(m.body) as { text: string }).text).join('\n');
  t.match(texts, new RegExp(`banned ${ATTACKER.replace(/\./g, '\\.')} for `), 'the ban is in the text');
  t.match(texts, /misprovisioned_device from 198\.51\.100\.10/, 'the stale-password alert too');
  for (const m of got) {
    const ts = String(m.headers['x-fsguard-timestamp']);
    t.equal(m.headers['x-fsguard-signature'], `sha256=${createHmac('sha256', HOOK_SECRET).update(`${ts}.${m.body}`).digest('hex')}`, 'signed');
  }

  // Mail: the server is down; retried, counted, logged — and nothing else is affected.
  await daemon.waitForLog('mail retry', (l) => l.channel === 'mail' && /notification failed: will retry/.test(l.msg ?? ''));
  t.ok(daemon.running, 'the daemon runs on');
  const st = await fsguardCli(['status', '--json', '--config', config]);
  t.equal(st.status, 0, st.stderr);
  const s = JSON.parse(st.stdout) as StatusReport;
  const mail = s.notifications.find((c) => c.channel === 'mail');
  t.ok(mail && mail.failures >= 1 && mail.messages === 0, `mail failures counted (${mail?.failures})`);
  t.match(mail?.lastError ?? '', /ECONNREFUSED/);
  t.match(s.notifications.find((c) => c.channel === 'webhook'), { messages: got.length, failures: 0 });
  t.equal(s.bans.sinceStart.total, banLines.length, 'every decided ban counted');
  t.equal(s.bans.now.ipv4Hosts, kernelElements(table, 'banned4').length, 'and in the kernel');
  const human = await fsguardCli(['status', '--config', config]);
  t.match(human.stdout, /notify mail +ban: 0 sent, \d+ failed attempts?/);

  const check = await fsguardCli(['check', '--config', config]);
  t.equal(check.status, 1, 'check fails: the SMTP server does not answer');
  t.match(check.stderr, new RegExp(`^notify: SMTP 127\\.0\\.0\\.1:${smtpPort} \\(starttls, user fsguard\\): .*ECONNREFUSED`, 'm'));
  t.match(check.stdout, /^notify: webhook ban, alert to http:\/\/127\.0\.0\.1:\d+\/…, signed \(X-Fsguard-Signature\); not called by check$/m, 'the webhook without its path');

  t.equal(await daemon.stop('SIGTERM'), 0);
  const everything = [daemon.lines.map((l) => JSON.stringify(l)).join('\n'), daemon.strayStdout.join('\n'), daemon.stderr, st.stdout, human.stdout, check.stdout, check.stderr].join('\n');
  for (const secret of [HOOK_SECRET, SMTP_PASSWORD, TOKEN]) t.notOk(everything.includes(secret), `${secret.slice(0, 6)}…: in no log line, status or check output`);
});

t.test('unban notices: a ban that expires, and one lifted by hand', netnsTestOptions(), async (t) => {
  const got: string[] = [];
  const hook = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => { got.push(body); res.writeHead(200).end(); });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => hook.close(() => r())));
  const server = await EslTestServer.start({ heartbeatIntervalMs: 500 });
  const table = uniqueTableName('unb');
  const config = writeConfig({
    esl: { host: '127.0.0.1', port: server.port, password: 'ClueCon' },
    nft: { table, reconcileSeconds: 0.5 },
    metrics: { enabled: false },
    notify: { digestSeconds: 1, webhook: { kinds: ['unban'], url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook` } },
  });
  const daemon = startDaemonWith(t, config, server, table);
  await server.waitForSubscriptions(1);
  const known = async (): Promise<number> => {
    const r = await fsguardCli(['status', '--json', '--config', config]);
    return (JSON.parse(r.stdout) as StatusReport).bans.now.ipv4Hosts;
  };
  const texts = (): string => got.map((b) => (JSON.parse(b) as { text: string }).text).join('\n');
  t.equal((await fsguardCli(['ban', '203.0.113.201', '--for', '1h', '--config', config])).status, 0);
  await waitUntil('the ban adopted by the daemon', async () => (await known()) === 1);
  t.equal((await fsguardCli(['unban', '203.0.113.201', '--config', config])).status, 0);
  await waitUntil('the lifted notice', () => /ban lifted by hand: 203\.0\.113\.201 \(manual\)/.test(texts()));
  // Long enough to be read back (reconciles are spaced by how long one takes) before it expires.
  t.equal((await fsguardCli(['ban', '203.0.113.200', '--for', '12s', '--config', config])).status, 0);
  await waitUntil('the short ban adopted by the daemon', async () => (await known()) === 1);
  await waitUntil('the expired notice', () => /ban expired: 203\.0\.113\.200 \(manual\)/.test(texts()), 45_000).catch((err: Error) => {
    throw new Error(`${err.message}; got: ${texts()}; log: ${daemon.lines.filter((l) => JSON.stringify(l).includes('203.0.113.200') || l.channel !== undefined).map((l) => JSON.stringify(l)).join('\n')}`);
  });
  const total = got.map((b) => (JSON.parse(b) as { fsguard: { byKind: { unban: number } } }).fsguard.byKind.unban).reduce((a, b) => a + b, 0);
  t.equal(total, 2, 'two unbans, notified once each');
});
