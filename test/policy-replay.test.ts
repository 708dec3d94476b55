// Exact replay (issue 9): the same traces through the real daemon (`fsguard run`, real nft in
// a private network namespace, the test event-socket server) and through `fsguard policy
// simulate --json` give the same bans: target, rule and order. The shared scenarios and the
// generator's slow-link, forged-failure and reordered variants.
import t from 'tap';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EslTestServer } from './support/esl-server.js';
import { DaemonProcess, fsguardCli, writeConfig, type LogLine } from './support/daemon-process.js';
import { netnsTestOptions } from './support/netns.js';
import { deleteTableIfExists, uniqueTableName } from './support/nft-kernel.js';
import { extensionScan, forgedFailures, site, TraceBuilder, bruteForce } from './support/policy-traces.js';

const SCENARIOS = new URL('../../../shared/scenarios/', import.meta.url).pathname;

function variants(): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const slow = new TraceBuilder(9301, 'internal', { rttS: [0.3, 1.5], loss: 0.3, reorderMs: 50 });
  site(slow, { ip: '198.51.100.30', phones: 300, bootSpreadS: 2, durationS: 300, stale: 2 });
  extensionScan(slow, { ip: '203.0.113.77', ratePerS: 5, count: 200, ua: 'Zoiper rv2.10.19.4', startS: 1 });
  bruteForce(slow, { ip: '203.0.113.66', ratePerS: 2, count: 100, ua: 'Zoiper rv2.10.19.4', startS: 20 });
  out['variant-slow-lossy-link'] = slow.build().map((e) => JSON.stringify(e));
  const forged = new TraceBuilder(9302);
  site(forged, { ip: '198.51.100.30', phones: 40, bootSpreadS: 10, durationS: 600 });
  forgedFailures(forged, { ip: '198.51.100.30', users: ['1005'], count: 80, ratePerS: 4, ua: 'Yealink SIP-T46S 66.86.0.15', startS: 60, nonceFrom: '203.0.113.99' });
  forgedFailures(forged, { ip: '198.51.100.77', users: ['1005'], count: 20, ratePerS: 4, ua: 'Yealink SIP-T46S 66.86.0.15', startS: 200, nonceFrom: '203.0.113.99' });
  out['variant-forged-failures'] = forged.build().map((e) => JSON.stringify(e));
  // Timer-driven decisions only: ten unanswered challenges at 1/s, then silence.
  const silent = new TraceBuilder(9303);
  site(silent, { ip: '198.51.100.30', phones: 10, bootSpreadS: 5, durationS: 30 });
  extensionScan(silent, { ip: '203.0.113.78', ratePerS: 1, count: 10, ua: 'Zoiper rv2.10.19.4', startS: 40 });
  out['variant-silent-prober'] = silent.build().map((e) => JSON.stringify(e));
  return out;
}

/**
 * One event from FreeSWITCH's own address 200 s after the last: the daemon processes every
 * deadline still pending on it (its timers would after the same time). Simulate gets it too.
 */
function withSentinel(lines: readonly string[]): string[] {
  const last = JSON.parse(lines[lines.length - 1]!) as Record<string, string>;
  const sentinel = {
    'Event-Name': 'CUSTOM', 'Event-Subclass': 'sofia::pre_register', 'Event-Date-Timestamp': String(Number(last['Event-Date-Timestamp']) + 200_000_000),
    'FreeSWITCH-IPv4': last['FreeSWITCH-IPv4'] ?? '192.0.2.10', 'profile-name': last['profile-name'] ?? 'internal',
    'network-ip': last['FreeSWITCH-IPv4'] ?? '192.0.2.10', 'network-port': '5060', 'call-id': 'sentinel', 'from-user': 'sentinel', 'to-user': 'sentinel', 'user-agent': 'fsguard-test',
  };
  return [...lines, JSON.stringify(sentinel)];
}

async function eventsCounted(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let n = 0;
  for (const line of text.split('\n')) if (line.startsWith('fsguard_events_total{')) n += Number(line.slice(line.lastIndexOf(' ') + 1));
  return n;
}

interface BanKey { target: string; rule: string }

const traces: Record<string, string[]> = {};
for (const f of readdirSync(SCENARIOS).filter((n) => n.endsWith('.jsonl')).sort()) {
  traces[f.replace(/\.jsonl$/, '')] = readFileSync(join(SCENARIOS, f), 'utf8').split('\n').filter((l) => l.trim() !== '');
}
Object.assign(traces, variants());

t.test('the daemon and simulate decide the same bans, in the same order', { ...netnsTestOptions(), timeout: 900_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fsguard-replay-'));
  for (const [name, raw] of Object.entries(traces)) {
    // The silent prober's ban comes from the daemon's own timer (no later event): no sentinel.
    const timerOnly = name === 'variant-silent-prober';
    const lines = timerOnly ? raw : withSentinel(raw);
    const file = join(dir, `${name}.jsonl`);
    writeFileSync(file, `${lines.join('\n')}\n`);
    const server = await EslTestServer.start({ heartbeatIntervalMs: 1000 });
    const table = uniqueTableName('replay');
    const config = writeConfig({
      esl: { host: '127.0.0.1', port: server.port, password: 'ClueCon' },
      nft: { table, reconcileSeconds: 5 },
      metrics: { enabled: true, host: '127.0.0.1', port: 0 },
      log: { level: 'info' },
    });
    const sim = await fsguardCli(['policy', 'simulate', file, '--json', '--config', config]);
    t.equal(sim.status, 0, sim.stderr);
    const fromSimulate = (JSON.parse(sim.stdout) as { bans: BanKey[] }).bans.map((b) => ({ target: b.target, rule: b.rule }));
    const daemon = DaemonProcess.start(config);
    try {
      const metrics = await daemon.waitForLog('metrics port', (l) => l.msg === 'metrics at /metrics', 20_000);
      await server.waitForSubscriptions(1);
      await server.replay(lines);
      const deadline = Date.now() + 120_000;
      while ((await eventsCounted(metrics.port as number)) < lines.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      t.equal(await eventsCounted(metrics.port as number), lines.length, `${name}: the daemon read every event`);
      if (timerOnly) {
        t.ok(fromSimulate.length > 0, 'simulate drains the pending deadlines at the end of the trace');
        await daemon.waitForLog('the ban decided by the deadline timer', (l) => l.event === 'ban', 30_000);
      }
      t.equal(await daemon.stop('SIGTERM'), 0, `${name}: the daemon stops cleanly`);
      const fromDaemon: BanKey[] = daemon.lines.filter((l: LogLine) => l.event === 'ban').map((l) => ({ target: String(l.target), rule: String(l.rule) }));
      t.same(fromDaemon, fromSimulate, `${name}: ${fromSimulate.length} bans, same targets, rules and order`);
    } finally {
      await daemon.stop('SIGKILL');
      await server.close();
      deleteTableIfExists('inet', table);
    }
  }
});
