// The notify and status config sections: strict like the rest (every bad key named in one
// run), and no secret in an error, a warning or a redacted dump.
import t from 'tap';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, redactedConfig } from '../lib/config/config.js';

const dir = mkdtempSync(join(tmpdir(), 'fsguard-nconf-'));
const write = (name: string, body: unknown): string => {
  const p = join(dir, name);
  writeFileSync(p, JSON.stringify(body));
  chmodSync(p, 0o600);
  return p;
};
const problemsOf = (fn: () => unknown): readonly string[] => {
  try { fn(); } catch (err) { if (err instanceof ConfigError) return err.problems; throw err; }
  return [];
};
const PASSWORD = 'Sm7p-pass-WORD';
const SECRET = 'h00k-secret-VALUE';

t.test('defaults: no notification, the status socket in /run/fsguard', async (t) => {
  const c = loadConfig(null, {}).config;
  t.same(c.notify.mail.kinds, []);
  t.same(c.notify.webhook.kinds, []);
  t.equal(c.notify.digestSeconds, 60);
  t.equal(c.status.socket, '/run/fsguard/status.sock');
});

t.test('a good mail and webhook setup loads, also from the environment', async (t) => {
  const c = loadConfig(write('good.json', {
    notify: {
      mail: { kinds: ['ban', 'alert'], to: ['ops@example.test'], transport: 'smtp', smtp: { host: 'mail.example.test', port: 587, user: 'fsguard', password: PASSWORD } },
      webhook: { kinds: ['ban'], url: 'https://hooks.example.test/services/T0/B0/tok', secret: SECRET },
    },
  }), {}).config;
  t.same(c.notify.mail.kinds, ['ban', 'alert']);
  t.equal(c.notify.mail.smtp.security, 'starttls', 'STARTTLS required by default');
  const env = loadConfig(null, { FSGUARD_NOTIFY_WEBHOOK_URL: 'http://127.0.0.1:9/x', FSGUARD_NOTIFY_WEBHOOK_KINDS: 'ban,unban', FSGUARD_NOTIFY_MAIL_SMTP_PASSWORD: PASSWORD }).config;
  t.same(env.notify.webhook.kinds, ['ban', 'unban']);
  t.equal(env.notify.mail.smtp.password, PASSWORD);
  const shown = JSON.stringify(redactedConfig(c));
  t.notOk(shown.includes(PASSWORD), 'redacted: no SMTP password');
  t.notOk(shown.includes(SECRET), 'redacted: no webhook secret');
  t.notOk(shown.includes('/services/T0/B0/tok'), 'redacted: no webhook path (Slack puts its token there)');
  t.match(shown, /https:\/\/hooks\.example\.test\/…/);
});

t.test('every bad notify or status key is named in one run; no secret in the messages', async (t) => {
  const problems = problemsOf(() => loadConfig(write('bad.json', {
    notify: {
      digestSeconds: 0,
      digestFirst: 0,
      mail: { kinds: ['ban', 'bans'], to: ['not an address'], from: 'x', transport: 'smtp', smtp: { security: 'none', user: 'u', password: PASSWORD, caFile: '/nonexistent/ca.pem' } },
      webhook: { kinds: ['alert'], url: `ftp://host/${SECRET}`, secret: SECRET, timeoutSeconds: -1 },
    },
    status: { socket: 'relative/path.sock' },
  }), {}));
  const text = problems.join('\n');
  for (const key of ['notify.digestSeconds', 'notify.digestFirst', 'notify.mail.kinds[1]', 'notify.mail.to[0]', 'notify.mail.from', 'notify.mail.smtp.security', 'notify.mail.smtp.caFile', 'notify.webhook.url', 'notify.webhook.timeoutSeconds', 'status.socket']) {
    t.match(text, key, `${key} named`);
  }
  t.notOk(text.includes(PASSWORD), 'no SMTP password in the problems');
  t.notOk(text.includes(SECRET), 'no webhook secret (nor the URL holding it) in the problems');

  const unknown = problemsOf(() => loadConfig(write('typo.json', { notify: { webhook: { secrte: SECRET } } }), {}));
  t.match(unknown.join('\n'), /notify\.webhook\.secrte/, 'an unknown key is refused');
  t.notOk(unknown.join('\n').includes(SECRET), 'without its value');
  const wrongType = problemsOf(() => loadConfig(write('type.json', { notify: { mail: { smtp: { password: [PASSWORD] } } } }), {}));
  t.match(wrongType.join('\n'), /notify\.mail\.smtp\.password/, 'a password of the wrong type is named');
  t.notOk(wrongType.join('\n').includes(PASSWORD), 'but not shown');

  t.match(problemsOf(() => loadConfig(write('nomail.json', { notify: { mail: { kinds: ['ban'] } } }), {})).join('\n'), /notify\.mail\.to: needed/);
  t.match(problemsOf(() => loadConfig(write('nohook.json', { notify: { webhook: { kinds: ['ban'] } } }), {})).join('\n'), /notify\.webhook\.url: needed/);
});
