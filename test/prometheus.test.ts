// The shipped monitoring: contrib/prometheus/fsguard.rules.yml passes promtool's check and
// its own unit tests, and a real Prometheus scraping a real daemon (inside the test's network
// namespace, on loopback) answers every query of contrib/grafana/fsguard.json with data, and
// loads the rules without error.
import t from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EslTestServer } from './support/esl-server.js';
import { DaemonProcess, ROOT, writeConfig, freeLoopbackPort } from './support/daemon-process.js';
import { netnsTestOptions } from './support/netns.js';
import { deleteTableIfExists, uniqueTableName } from './support/nft-kernel.js';

const RULES = join(ROOT, 'contrib/prometheus/fsguard.rules.yml');
const RULE_TESTS = join(ROOT, 'contrib/prometheus/fsguard.rules.test.yml');
const DASHBOARD = join(ROOT, 'contrib/grafana/fsguard.json');
const SCENARIOS = new URL('../../../shared/scenarios/', import.meta.url).pathname;
const trace = (name: string): string[] => readFileSync(join(SCENARIOS, `${name}.jsonl`), 'utf8').split('\n').filter(Boolean);

const have = (cmd: string): boolean => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
// CI installs Debian's prometheus package (.ci/run): there a missing tool is a failure, not a skip.
const promSkip = (cmd: string): string | false => (have(cmd) || process.env.CI ? false : `${cmd} is not installed (apt-get install -y --no-install-recommends prometheus)`);

interface Panel { type: string; title: string; targets?: Array<{ expr: string }>; datasource?: unknown }

function dashboardQueries(): Array<{ panel: string; expr: string }> {
  const d = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] };
  return d.panels.flatMap((p) => (p.targets ?? []).map((x) => ({ panel: p.title, expr: x.expr })));
}

t.test('promtool: the rules are valid and their unit tests pass', { skip: promSkip('promtool') }, async (t) => {
  const check = spawnSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' });
  t.equal(check.status, 0, `${check.stdout}${check.stderr}`);
  t.match(check.stdout, /SUCCESS: 6 rules found/);
  const unit = spawnSync('promtool', ['test', 'rules', RULE_TESTS], { encoding: 'utf8' });
  t.equal(unit.status, 0, `${unit.stdout}${unit.stderr}`);
});

t.test('the dashboard: every panel with queries names its data source; the panels the issue asks for are there', async (t) => {
  const d = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { uid: string; panels: Panel[]; templating: { list: Array<{ name: string }> } };
  t.equal(d.uid, 'fsguard');
  t.same(d.templating.list.map((v) => v.name), ['datasource', 'instance']);
  for (const p of d.panels.filter((x) => x.type !== 'row')) {
    t.ok(p.targets && p.targets.length > 0, `${p.title}: has queries`);
    t.ok(p.datasource, `${p.title}: has a data source`);
  }
  const exprs = dashboardQueries().map((q) => q.expr).join('\n');
  for (const metric of ['fsguard_events_total', 'fsguard_bans_total', 'fsguard_policy_tracked_sources', 'fsguard_esl_connected', 'fsguard_nft_errors_total', 'fsguard_nft_batches_total', 'fsguard_alerts_total']) {
    t.match(exprs, metric, `a panel shows ${metric}`);
  }
  t.match(exprs, /sum by \(subclass\)/, 'events by kind');
  t.match(exprs, /sum by \(profile\)/, 'events by profile');
  t.match(exprs, /sum by \(rule\)/, 'bans by rule');
});

async function getJson(url: string): Promise<{ status: number; body: unknown }> {
  try {
    const res = await fetch(url);
    return { status: res.status, body: res.headers.get('content-type')?.includes('json') ? await res.json() : await res.text() };
  } catch {
    return { status: 0, body: null };
  }
}

t.test('a real Prometheus scraping a real daemon: every dashboard query returns data, the rules load', { ...netnsTestOptions(), ...(promSkip('prometheus') ? { skip: promSkip('prometheus') } : {}) }, async (t) => {
  const server = await EslTestServer.start({ heartbeatIntervalMs: 500 });
  const table = uniqueTableName('prom');
  const deadWebhook = await freeLoopbackPort();
  const config = writeConfig({
    esl: { host: '127.0.0.1', port: server.port, password: 'ClueCon' },
    nft: { table, reconcileSeconds: 0.5 },
    metrics: { enabled: true, host: '127.0.0.1', port: 0 },
    // A webhook nobody answers: the notification failure counter has a series to show.
    notify: { webhook: { kinds: ['ban'], url: `http://127.0.0.1:${deadWebhook}/hook` } },
    status: { socket: '' },
  });
  const daemon = DaemonProcess.start(config);
  let prometheus: ChildProcess | null = null;
  t.teardown(async () => {
    if (prometheus && prometheus.exitCode === null) {
      prometheus.kill('SIGTERM');
      await new Promise((r) => prometheus!.once('exit', r));
    }
    await daemon.stop('SIGKILL');
    await server.close();
    deleteTableIfExists('inet', table);
  });
  const metricsLine = await daemon.waitForLog('metrics listening', (l) => /metrics at \/metrics/.test(l.msg ?? ''));
  const metricsPort = Number(metricsLine.port);
  await server.waitForSubscriptions(1);
  const events = [...trace('brute-force-one-user'), ...trace('mass-reboot-office')];
  // And one event with an impossible address: a series for the drops panel.
  const bad = JSON.parse(events[0]!) as Record<string, string>;
  bad['network-ip'] = '999.1.1.1';
  await server.replay([...events, JSON.stringify(bad)]);
  await daemon.waitForLog('a notification failure', (l) => /notification failed/.test(l.msg ?? ''));

  const dir = mkdtempSync(join(tmpdir(), 'fsguard-prom-'));
  const promPort = await freeLoopbackPort();
  writeFileSync(join(dir, 'prometheus.yml'), [
    'global:',
    '  scrape_interval: 1s',
    '  evaluation_interval: 1s',
    'rule_files:',
    `  - ${RULES}`,
    'scrape_configs:',
    '  - job_name: fsguard',
    '    static_configs:',
    `      - targets: ['127.0.0.1:${metricsPort}']`,
    '',
  ].join('\n'));
  let promLog = '';
  prometheus = spawn('prometheus', [
    `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn',
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  prometheus.stderr!.setEncoding('utf8').on('data', (d: string) => { promLog = (promLog + d).slice(-4000); });
  const api = `http://127.0.0.1:${promPort}`;

  // Bounded: Prometheus is up within seconds and scrapes every second.
  const deadline = Date.now() + 60_000;
  const waitFor = async (what: string, ok: () => Promise<boolean>): Promise<void> => {
    while (!(await ok())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\nprometheus: ${promLog}`);
      if (prometheus!.exitCode !== null) throw new Error(`prometheus exited ${prometheus!.exitCode}: ${promLog}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  await waitFor('prometheus ready', async () => (await getJson(`${api}/-/ready`)).status === 200);
  await waitFor('the daemon scraped', async () => {
    const r = await getJson(`${api}/api/v1/query?query=${encodeURIComponent('up{job="fsguard"}')}`);
    const result = (r.body as { data?: { result?: Array<{ value: [number, string] }> } } | null)?.data?.result ?? [];
    return result.length === 1 && result[0]!.value[1] === '1';
  });

  // Grafana's variables, as Grafana would fill them: all instances; a rate window of several scrapes.
  const fill = (expr: string): string => expr.replace(/\$__rate_interval/g, '10s').replace(/\$instance/g, '.*');
  for (const q of dashboardQueries()) {
    let last: unknown = null;
    await waitFor(`data for ${q.panel}: ${q.expr}`, async () => {
      const r = await getJson(`${api}/api/v1/query?query=${encodeURIComponent(fill(q.expr))}`);
      last = r.body;
      const body = r.body as { status?: string; data?: { result?: unknown[] } } | null;
      return body?.status === 'success' && (body.data?.result?.length ?? 0) > 0;
    }).catch((err: Error) => { throw new Error(`${err.message}\nlast answer: ${JSON.stringify(last)}`); });
    t.pass(`${q.panel}: ${q.expr}`);
  }

  // The rules load and evaluate against the daemon's series without error.
  await waitFor('rules evaluated', async () => {
    const r = await getJson(`${api}/api/v1/rules`);
    const rules = ((r.body as { data?: { groups?: Array<{ rules: Array<{ health: string }> }> } } | null)?.data?.groups ?? []).flatMap((g) => g.rules);
    return rules.length === 6 && rules.every((x) => x.health === 'ok');
  });
  t.pass('6 rules loaded, every one evaluated with health ok');
  const firing = await getJson(`${api}/api/v1/query?query=${encodeURIComponent('ALERTS{alertname="FsguardEventSocketDown"}')}`);
  t.same((firing.body as { data: { result: unknown[] } }).data.result, [], 'connected: the event-socket-down alert is not pending');
});
