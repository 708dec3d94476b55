// The shared scenario judge (../shared/scenarios/check.mjs) against the real CLI.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const root = new URL('../../', import.meta.url).pathname;
const judge = new URL('../shared/scenarios/check.mjs', `file://${root}`).pathname;
const present = existsSync(judge);
const skip = present ? false
  : process.env.FSGUARD_REQUIRE_SCENARIOS === '1' ? false
  : `no shared scenarios at ${judge}`;

t.test('every shared scenario passes with the default policy', { skip }, async (t) => {
  const r = spawnSync(process.execPath, [judge, '--', './bin/fsguard', 'policy', 'simulate'], { cwd: root, encoding: 'utf8', timeout: 300_000 });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  t.equal(r.status, 0, `judge output:\n${r.stdout}\n${r.stderr}`);
  t.match(last, /^\d+ passed, 0 failed$/);
});
