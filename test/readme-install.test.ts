// The README's "Install as a service" steps, run as written: the files its `cp` names are copied
// to a folder standing for /opt/fsguard, built there, and the copy runs with the node flags and
// the paths of the systemd unit. A source the build reads but the README does not copy (the
// wasm scanner once) fails here instead of on a user's server.
import t from 'tap';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliEnv, ROOT, runProcess } from './support/daemon-process.js';

const README = readFileSync(join(ROOT, 'README.md'), 'utf8');
const UNIT = readFileSync(join(ROOT, 'systemd/fsguard.service'), 'utf8');
const INSTALL_DIR = '/opt/fsguard';

/** What the README's `sudo cp -r … /opt/fsguard/` line copies. */
function copiedByReadme(): string[] {
  const line = README.split('\n').find((l) => /^sudo cp -r .* \/opt\/fsguard\/\s*$/.test(l));
  if (line === undefined) throw new Error('README: no `sudo cp -r … /opt/fsguard/` line');
  return line.trim().split(/\s+/).slice(3, -1);
}

/** The unit's ExecStart, split into words. */
function execStart(): string[] {
  const line = UNIT.split('\n').find((l) => l.startsWith('ExecStart='));
  if (line === undefined) throw new Error('systemd/fsguard.service: no ExecStart');
  return line.slice('ExecStart='.length).trim().split(/\s+/);
}

t.test('the README install steps build a copy that runs as the unit starts it', async (t) => {
  const items = copiedByReadme();
  t.ok(items.length > 3, `the README copies ${items.join(' ')}`);
  const opt = mkdtempSync(join(tmpdir(), 'fsguard-opt-'));
  t.teardown(() => rmSync(opt, { recursive: true, force: true }));
  for (const item of items) cpSync(join(ROOT, item), join(opt, item), { recursive: true });
  // `npm ci` would fetch the same locked packages: the test uses the ones installed here.
  symlinkSync(join(ROOT, 'node_modules'), join(opt, 'node_modules'));
  const built = await runProcess('sh', ['-c', `cd '${opt}' && npm run build`], { env: cliEnv(), timeoutMs: 300_000 });
  t.equal(built.status, 0, `npm run build in the copy: ${built.stderr.slice(-600)}`);

  const words = execStart();
  t.match(words[0], /\/node$/, 'the unit starts node');
  const at = words.findIndex((w) => w.startsWith(INSTALL_DIR));
  t.equal(words[at], `${INSTALL_DIR}/bin/fsguard`, 'the unit runs the copied bin/fsguard');
  const nodeFlags = words.slice(1, at);
  const bin = join(opt, 'bin/fsguard');
  const doc = UNIT.split('\n').find((l) => l.startsWith('Documentation=file://'));
  if (doc !== undefined) t.ok(existsSync(doc.slice('Documentation=file://'.length).replace(INSTALL_DIR, opt)), `${doc} is copied`);

  // The shipped config, as installed to /etc/fsguard, is valid, and the copy judges a trace.
  const shown = await runProcess(process.execPath, [...nodeFlags, bin, 'policy', '--config', join(opt, 'conf/fsguard.json')]);
  t.equal(shown.status, 0, `fsguard policy with the shipped config: ${shown.stderr}`);
  t.match(shown.stdout, /brute_force/, 'it lists the rules');
  const trace = join(ROOT, '../shared/scenarios/brute-force-one-user.jsonl');
  const simulated = await runProcess(process.execPath, [...nodeFlags, bin, 'policy', 'simulate', trace, '--json']);
  t.equal(simulated.status, 0, simulated.stderr);
  const bans = (JSON.parse(simulated.stdout) as { bans: unknown[] }).bans;
  t.ok(bans.length > 0, `the copy bans the brute forcer (${bans.length} ban(s))`);
});
