// Notifications against real receivers: an HTTP server on loopback for the webhook and a
// real SMTP server (smtp-server, with STARTTLS and AUTH) for mail. The digest interval and
// the retry backoff run on injected timers; deliveries go over real sockets.
import t, { type Test } from 'tap';
import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { SMTPServer } from 'smtp-server';
import { parseCidr } from '../lib/net/ip.js';
import type { MailConfig, NotifyConfig } from '../lib/notify/config.js';
import { Notifier } from '../lib/notify/notifier.js';
import type { BanDecision, PolicyAlert, RuleId } from '../lib/policy/types.js';
import { terminalSafe } from '../lib/status/terminal-safe.js';
import { RecordingLogger } from './support/esl-test-helpers.js';
import { FakeTimers, until } from './support/fake-timers.js';
import { freeLoopbackPort } from './support/daemon-process.js';

const SECRET = 'webhook-s3cret-value';
const SMTP_PASSWORD = 'smtp-pa55word-value';

function notifyConfig(over: { mail?: Partial<Omit<MailConfig, 'smtp'>> & { smtp?: Partial<MailConfig['smtp']> }; webhook?: Partial<NotifyConfig['webhook']>; attempts?: number } = {}): NotifyConfig {
  return {
    digestSeconds: 60,
    digestFirst: 10,
    attempts: over.attempts ?? 5,
    retryMaxSeconds: 300,
    mail: {
      kinds: [], to: ['ops@example.test'], from: 'fsguard@pbx.example.test', transport: 'smtp', sendmailPath: '/usr/sbin/sendmail',
      ...over.mail,
      smtp: { host: '127.0.0.1', port: 25, security: 'starttls', user: '', password: '', caFile: '', ...over.mail?.smtp },
    },
    webhook: { kinds: [], url: '', secret: '', timeoutSeconds: 10, ...over.webhook },
  };
}

let serial = 0;
function ban(rule: RuleId, users: string[] = ['1000'], userAgents: string[] = ['friendly-scanner']): BanDecision {
  const n = serial++;
  const cidr = parseCidr(`10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`)!;
  return {
    target: { cidr, host: true }, seconds: 3600, rule, reason: `${rule} from ${cidr.text}`,
    evidence: { events: 40, challenges: 20, answeredFailures: 20, successes: 0, users, distinctUsers: users.length, userAgents, firstSeenUs: 0, lastSeenUs: 0 },
    atUs: 0, previousOffences: 0,
  };
}

interface Received {
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly json: { text: string; fsguard: { digest: boolean; total: number; byKind: Record<string, number>; byRule: Record<string, number>; notices: Array<Record<string, unknown>> } };
}

/** An HTTP receiver on loopback; `answer` picks each response's status. */
async function receiver(t: Test, answer: (n: number) => number = () => 200): Promise<{ url: string; got: Received[]; server: Server }> {
  const got: Received[] = [];
  let requests = 0;
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => { body += d; }).on('end', () => {
      const status = answer(++requests);
      if (status === 200) got.push({ headers: req.headers, body, json: JSON.parse(body) as Received['json'] });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks/T000/B000/token-in-path`, got, server };
}

async function metric(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) return 0;
  const v = (await m.get()).values.find((x) => Object.entries(labels).every(([k, val]) => x.labels[k] === val));
  return v?.value ?? 0;
}

function rig(config: NotifyConfig): { notifier: Notifier; timers: FakeTimers; logger: RecordingLogger; registry: Registry } {
  const timers = new FakeTimers();
  const logger = new RecordingLogger();
  const registry = new Registry();
  const notifier = new Notifier(config, { logger, registry, timers, clock: timers.clock, origin: { hostname: 'pbx1' } });
  return { notifier, timers, logger, registry };
}

t.test('a flood of 10,000 bans: one message, then one digest per interval with the right counts', async (t) => {
  const hook = await receiver(t);
  const { notifier, timers, registry } = rig(notifyConfig({ webhook: { kinds: ['ban', 'alert'], url: hook.url, secret: SECRET } }));
  t.teardown(() => notifier.stop(0));

  for (let i = 0; i < 10_000; i++) notifier.banned(ban(i % 10 < 7 ? 'brute_force' : 'scanner_user_agent'), 3600, timers.now);
  t.equal(hook.got.length, 0, 'nothing is sent while the bans are decided: offering is synchronous');
  const sent = (n: number) => (): boolean => notifier.channelHealth()[0]!.messages === n;
  await until('the first ban as a message of its own', sent(1));
  const first = hook.got[0]!;
  t.equal(first.json.fsguard.digest, false);
  t.match(first.json.text, /^\*fsguard on pbx1: banned 10\.\d+\.\d+\.\d+ \(brute_force\)\*/);

  timers.advance(60_000);
  await until('the digest', sent(2));
  const digest = hook.got[1]!.json;
  t.equal(digest.fsguard.digest, true);
  t.equal(digest.fsguard.total, 9_999, 'every other ban is counted in the digest');
  t.same(digest.fsguard.byKind, { ban: 9_999, unban: 0, alert: 0 });
  t.same(digest.fsguard.byRule, { brute_force: 6_999, scanner_user_agent: 3_000 });
  t.equal(digest.fsguard.notices.length, 10, 'the first N in full');
  t.match(digest.text, /^\*fsguard on pbx1: 9,999 bans \(brute_force 6,999, scanner_user_agent 3,000\) in 1m\*/);
  t.match(digest.text, /… and 9,989 more notices/);

  // The flood goes on: still one message per interval.
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 1000; i++) notifier.banned(ban('brute_force'), 3600, timers.now);
    notifier.alerted({ kind: 'misprovisioned_device', source: '198.51.100.10', profile: 'internal', user: '1060', userAgent: 'Yealink', message: 'user 1060 has a stale password', atUs: 0 }, timers.now);
    timers.advance(60_000);
    await until(`digest ${round + 2}`, sent(3 + round));
    t.same(hook.got[2 + round]!.json.fsguard.byKind, { ban: 1000, unban: 0, alert: 1 }, `interval ${round + 2}: its own counts`);
  }
  timers.advance(60_000);
  timers.advance(600_000);
  await new Promise((r) => setImmediate(r));
  t.equal(hook.got.length, 5, '13,003 notices in 5 messages; a quiet interval sends nothing');
  t.equal(timers.scheduled, 0, 'quiet again: no timer left');
  t.equal(await metric(registry, 'fsguard_notify_messages_total', { channel: 'webhook' }), 5);
  t.equal(await metric(registry, 'fsguard_notify_notices_total', { channel: 'webhook', kind: 'ban' }), 13_000);

  // The signature: HMAC-SHA256 over "<timestamp>.<body>", as documented.
  for (const m of hook.got) {
    const ts = String(m.headers['x-fsguard-timestamp']);
    t.equal(m.headers['x-fsguard-signature'], `sha256=${createHmac('sha256', SECRET).update(`${ts}.${m.body}`).digest('hex')}`);
    t.equal(m.headers['content-type'], 'application/json');
  }
  t.equal(new Set(hook.got.map((m) => m.headers['x-fsguard-delivery'])).size, 5, 'one delivery id per message');
});

t.test('webhook: 5xx retried with backoff under the same delivery id, 4xx not; failures counted and logged without the URL\'s token', async (t) => {
  // The injected time at which each attempt reached the receiver.
  const attemptsAt: number[] = [];
  let now = (): number => 0;
  const hook = await receiver(t, (n) => { attemptsAt.push(now()); return n <= 2 ? 503 : 200; });
  const { notifier, timers, registry, logger } = rig(notifyConfig({ webhook: { kinds: ['ban'], url: hook.url, secret: SECRET } }));
  now = timers.clock;
  t.teardown(() => notifier.stop(0));
  const start = timers.now;
  notifier.banned(ban('brute_force'), 3600, timers.now);
  await until('first failure', () => logger.records.length >= 1);
  t.equal(hook.got.length, 0);
  t.equal(timers.nextDueIn(), 1000, 'the retry is the next timer, in 1 s');
  timers.advance(1000);
  await until('second failure', () => logger.records.length >= 2);
  t.equal(timers.nextDueIn(), 2000, 'the next retry in 2 s');
  timers.advance(2000);
  await until('delivered on the third attempt', () => notifier.channelHealth()[0]!.messages === 1);
  t.same(attemptsAt.map((at) => at - start), [0, 1000, 3000], 'each attempt made when its retry timer ran');
  t.equal(await metric(registry, 'fsguard_notify_failures_total', { channel: 'webhook' }), 2);
  t.equal(await metric(registry, 'fsguard_notify_messages_total', { channel: 'webhook' }), 1);
  t.match(logger.records[0], { level: 'warn', obj: { channel: 'webhook', attempt: 1, retryInMs: 1000 } });
  t.match(String((logger.records[0]!.obj as { error: string }).error), /HTTP 503/);
  t.notMatch(logger.text, /token-in-path|T000/, 'the URL\'s path (Slack\'s token) is never logged');
  t.notMatch(logger.text, new RegExp(SECRET), 'nor the secret');

  const refusing = await receiver(t, () => 404);
  const r2 = rig(notifyConfig({ webhook: { kinds: ['ban'], url: refusing.url } }));
  t.teardown(() => r2.notifier.stop(0));
  r2.notifier.banned(ban('brute_force'), 3600, r2.timers.now);
  await until('given up', () => r2.logger.records.some((r) => /notices are lost/.test(r.msg)));
  t.equal(await metric(r2.registry, 'fsguard_notify_failures_total', { channel: 'webhook' }), 1, 'a 404 is not retried');
  t.equal(await metric(r2.registry, 'fsguard_notify_dropped_notices_total', { channel: 'webhook' }), 1);
});

t.test('hostile user names and user agents are escaped in the webhook text', async (t) => {
  const hook = await receiver(t);
  const { notifier, timers } = rig(notifyConfig({ webhook: { kinds: ['ban', 'alert'], url: hook.url } }));
  t.teardown(() => notifier.stop(0));
  const user = '<!channel> @here `x` *b*';
  const agent = '\u001b[2J\u202eevil\r\n[click](http://evil.example)';
  notifier.alerted({ kind: 'misprovisioned_device', source: '198.51.100.10', profile: 'internal', user, userAgent: agent, message: `user ${user} at 198.51.100.10 (${agent}) failed`, atUs: 0 }, timers.now);
  await until('delivered', () => hook.got.length === 1);
  const text = hook.got[0]!.json.text;
  t.notMatch(text, /<!channel>/, 'no Slack control sequence');
  t.notMatch(text, /<http/, 'no Slack link');
  t.notMatch(text.replace(/`[^`]*`/g, ''), /\[[^\]]*\]\(/, 'no markdown link outside code spans');
  // eslint-disable-next-line no-control-regex
  t.notMatch(text, /[\u0000-\u0009\u000b-\u001f\u007f\u202e]/, 'no control or bidi characters (only the line breaks fsguard puts)');
  t.equal(text.split('\n').length, 2, 'the CR LF in the user agent did not make a line');
  t.match(text, /user `&lt;!channel&gt; @here \\x60x\\x60 \*b\*`/, 'the user inside a code span, its backticks escaped');
  t.ok(text.includes(`user agent \`${terminalSafe(agent, 120)}\``), 'control and bidi characters shown as escapes (terminalSafe)');
  t.match(text, /\\x40here/, 'a mention in the policy\'s sentence is defused');
  const notice = hook.got[0]!.json.fsguard.notices[0]!;
  t.equal(notice.userAgent, agent, 'the structured field carries the raw value, JSON-escaped');
});

function selfSignedCert(dir: string): { key: string; cert: string; certFile: string } {
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  return { key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8'), certFile };
}

interface SmtpRig {
  readonly port: number;
  readonly messages: Array<{ raw: string; rcpt: string[]; secure: boolean; user: string | undefined }>;
  close(): Promise<void>;
}

async function smtpServer(t: Test, tls: { key: string; cert: string }, port = 0): Promise<SmtpRig> {
  const messages: SmtpRig['messages'] = [];
  const server = new SMTPServer({
    key: tls.key, cert: tls.cert,
    authMethods: ['PLAIN', 'LOGIN'],
    logger: false,
    onAuth(auth, session, cb) {
      if (!session.secure) return cb(new Error('STARTTLS first'));
      if (auth.username === 'fsguard' && auth.password === SMTP_PASSWORD) return cb(null, { user: 'fsguard' });
      return cb(new Error('Invalid username or password'));
    },
    onData(stream, session, cb) {
      let raw = '';
      stream.setEncoding('utf8');
      stream.on('data', (d: string) => { raw += d; });
      stream.on('end', () => {
        messages.push({ raw, rcpt: session.envelope.rcptTo.map((r) => r.address), secure: session.secure, user: session.user as string | undefined });
        cb();
      });
    },
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const addr = server.server.address() as AddressInfo;
  let closed = false;
  const close = (): Promise<void> => (closed ? Promise.resolve() : new Promise<void>((r) => { closed = true; server.close(() => r()); }));
  t.teardown(close);
  return { port: addr.port, messages, close };
}

t.test('mail over SMTP with STARTTLS and AUTH; hostile names escaped in headers and body', async (t) => {
  const tls = selfSignedCert(mkdtempSync(join(tmpdir(), 'fsguard-smtp-')));
  const smtp = await smtpServer(t, tls);
  const { notifier, timers, logger } = rig(notifyConfig({ mail: { kinds: ['ban', 'alert'], smtp: { port: smtp.port, user: 'fsguard', password: SMTP_PASSWORD, caFile: tls.certFile } } }));
  t.teardown(() => notifier.stop(0));
  const user = '1060\r\nBcc: victim@example.test';
  const agent = 'Yealink\u001b]0;owned\u0007\r\n.\r\nMAIL FROM:<x@evil.example>\u202e';
  notifier.banned(ban('brute_force', [user], [agent]), 3600, timers.now);
  await until('the mail', () => notifier.channelHealth()[0]!.messages === 1);
  const m = smtp.messages[0]!;
  t.ok(m.secure, 'delivered over TLS (STARTTLS)');
  t.equal(m.user, 'fsguard', 'authenticated');
  t.same(m.rcpt, ['ops@example.test'], 'only the configured recipient');
  const [head = '', body = ''] = m.raw.split(/\r?\n\r?\n/, 2).length === 2 ? [m.raw.slice(0, m.raw.search(/\r?\n\r?\n/)), m.raw.slice(m.raw.search(/\r?\n\r?\n/))] : [m.raw, ''];
  t.notMatch(head, /^bcc:/im, 'no header injected');
  t.match(head, /^Subject: fsguard on pbx1: banned 10\.\d+\.\d+\.\d+ \(brute_force\)$/m, 'the subject holds only fsguard\'s words and the address');
  t.match(head, /^X-Fsguard-Digest: no$/m);
  const text = body.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
  t.ok(text.includes(`users "${terminalSafe(user)}"`), 'the user name escaped in the body');
  t.ok(text.includes(`user agents "${terminalSafe(agent)}"`), 'the user agent escaped, its CR LF . CR LF defused');
  // eslint-disable-next-line no-control-regex
  t.notMatch(m.raw, /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f\u202e]/, 'no control or bidi character anywhere in the message');
  t.notMatch(logger.text, new RegExp(SMTP_PASSWORD), 'the password is never logged');
});

t.test('SMTP server down: retried with backoff, counted, nothing blocks; delivered once it is back', async (t) => {
  const tls = selfSignedCert(mkdtempSync(join(tmpdir(), 'fsguard-smtp-')));
  const port = await freeLoopbackPort();
  const { notifier, timers, registry, logger } = rig(notifyConfig({ mail: { kinds: ['ban'], smtp: { port, user: 'fsguard', password: SMTP_PASSWORD, caFile: tls.certFile } } }));
  t.teardown(() => notifier.stop(0));
  notifier.banned(ban('brute_force'), 3600, timers.now);
  await until('first attempt failed', () => logger.records.some((r) => r.level === 'warn'));
  t.equal(await metric(registry, 'fsguard_notify_failures_total', { channel: 'mail' }), 1);
  t.match(String((logger.records.find((r) => r.level === 'warn')!.obj as { error: string }).error), /ECONNREFUSED/);
  // Bans keep coming while mail is down: offered at once, folded into the next digest.
  for (let i = 0; i < 500; i++) notifier.banned(ban('scanner_user_agent'), 3600, timers.now);
  timers.advance(1000);
  await until('second attempt failed', () => logger.records.filter((r) => r.level === 'warn').length === 2);
  const smtp = await smtpServer(t, tls, port);
  timers.advance(2000);
  await until('delivered on the third attempt', () => notifier.channelHealth()[0]!.messages === 1);
  t.equal(await metric(registry, 'fsguard_notify_failures_total', { channel: 'mail' }), 2);
  t.equal(await metric(registry, 'fsguard_notify_messages_total', { channel: 'mail' }), 1);
  timers.advance(60_000);
  await until('the digest of what came meanwhile', () => notifier.channelHealth()[0]!.messages === 2);
  t.match(smtp.messages[1]!.raw, /^Subject: fsguard on pbx1: 500 bans \(scanner_user_agent 500\) in /m);
  t.equal(notifier.channelHealth()[0]!.failures, 2);
  t.notMatch(logger.text + JSON.stringify(notifier.channelHealth()), new RegExp(SMTP_PASSWORD), 'no password in logs or health');

  // Down for good: every attempt fails, then the message is given up and its notices counted lost.
  await smtp.close();
  const r2 = rig(notifyConfig({ attempts: 3, mail: { kinds: ['ban'], smtp: { port, security: 'none' } } }));
  t.teardown(() => r2.notifier.stop(0));
  r2.notifier.banned(ban('brute_force'), 3600, r2.timers.now);
  for (let attempt = 1; attempt <= 3; attempt++) {
    await until(`attempt ${attempt} failed`, () => r2.logger.records.filter((r) => /notification failed/.test(r.msg)).length === attempt);
    r2.timers.advance(60_000);
  }
  await until('given up', () => r2.logger.records.some((r) => /notices are lost/.test(r.msg)));
  t.equal(await metric(r2.registry, 'fsguard_notify_failures_total', { channel: 'mail' }), 3);
  t.equal(await metric(r2.registry, 'fsguard_notify_dropped_notices_total', { channel: 'mail' }), 1);
});

t.test('a wrong SMTP password: refused, logged, never shown', async (t) => {
  const tls = selfSignedCert(mkdtempSync(join(tmpdir(), 'fsguard-smtp-')));
  const smtp = await smtpServer(t, tls);
  const wrong = 'not-the-Pa55word-1234';
  const { notifier, timers, logger } = rig(notifyConfig({ attempts: 1, mail: { kinds: ['alert'], smtp: { port: smtp.port, user: 'fsguard', password: wrong, caFile: tls.certFile } } }));
  t.teardown(() => notifier.stop(0));
  const alert: PolicyAlert = { kind: 'near_miss', source: '203.0.113.9', profile: 'external', message: 'close to a ban', atUs: 0 };
  notifier.alerted(alert, timers.now);
  await until('given up', () => logger.records.some((r) => /notices are lost/.test(r.msg)));
  t.equal(smtp.messages.length, 0);
  t.match(logger.text, /EAUTH/, 'says why: authentication');
  t.notMatch(logger.text + JSON.stringify(notifier.channelHealth()), new RegExp(wrong), 'the password is in no log line nor the status');
});

t.test('a webhook that never answers: the attempt times out on the injected clock, its request is dropped, the retry goes out', async (t) => {
  let requests = 0;
  let aborted = 0;
  const server = createServer((req, res) => {
    requests++;
    req.on('close', () => { if (!res.writableEnded) aborted++; });
    if (requests > 1) { req.resume(); req.on('end', () => res.writeHead(200).end()); }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => { server.closeAllConnections(); return new Promise<void>((r) => server.close(() => r())); });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  const { notifier, timers, logger } = rig(notifyConfig({ webhook: { kinds: ['ban'], url, timeoutSeconds: 10 } }));
  t.teardown(() => notifier.stop(0));
  notifier.banned(ban('brute_force'), 3600, timers.now);
  await until('the request arrives', () => requests === 1);
  timers.advance(10_000);
  t.match(logger.records[0], { level: 'warn', obj: { channel: 'webhook', attempt: 1, error: 'no answer within 10s', retryInMs: 1000 } });
  await until('the hanging request dropped', () => aborted === 1);
  timers.advance(1000);
  await until('delivered on the retry', () => notifier.channelHealth()[0]!.messages === 1);
  t.equal(requests, 2);
});

t.test('a notifier replaced on reload hands its metric names to the new one', async (t) => {
  const registry = new Registry();
  const logger = new RecordingLogger();
  const first = new Notifier(notifyConfig(), { logger, registry });
  await first.stop(0);
  t.throws(() => new Notifier(notifyConfig(), { logger, registry }), 'two notifiers cannot share the names');
  first.unregister(registry);
  const second = new Notifier(notifyConfig({ webhook: { kinds: ['ban'], url: 'http://127.0.0.1:9/x' } }), { logger, registry });
  t.ok(registry.getSingleMetric('fsguard_notify_failures_total'), 'the new counters are registered');
  await second.stop(0);
});
