// End to end with the real bytes of the call captures: the test event socket sends what a real
// FreeSWITCH 1.10.9 sent for cases a-e (only the frames the daemon subscribed to), the real
// `fsguard run` decides, real nft in a private namespace holds the bans. The scanners of cases
// a (friendly-scanner, one call) and b (a phone user agent, five numbers) are banned; the
// carrier of case c and the account of case d are not; the calls are counted by outcome.
import t from 'tap';
import { EslTestServer } from './support/esl-server.js';
import { writeConfig, type LogLine, startDaemonWith } from './support/daemon-process.js';
import { captureEventFrames } from './support/esl-test-helpers.js';
import { netnsTestOptions } from './support/netns.js';
import { kernelElements, uniqueTableName } from './support/nft-kernel.js';

const json = captureEventFrames('esl_json_CHANNEL_calls.raw');
const plain = captureEventFrames('esl_plain_CHANNEL_calls.raw');

t.test('the captured calls: scanners of cases a and b banned, the carrier of case c not', netnsTestOptions(), async (t) => {
  const server = await EslTestServer.start({ heartbeatIntervalMs: 1000 });
  const table = uniqueTableName('e2e_calls');
  const config = writeConfig({
    esl: { host: '127.0.0.1', port: server.port, password: 'ClueCon', authRetrySeconds: 1 },
    nft: { table, reconcileSeconds: 0.5 },
    metrics: { enabled: true, host: '127.0.0.1', port: 0 },
    log: { level: 'debug' },
  });
  const daemon = startDaemonWith(t, config, server, table);
  await server.waitForSubscriptions(1);
  t.match(server.sessions[0]!.subscribeCommands[0], /^event json HEARTBEAT CHANNEL_HANGUP_COMPLETE CUSTOM /);
  t.equal(server.replayCaptured(json, plain), 20, '12 CHANNEL_HANGUP_COMPLETE and 8 sofia events: what FreeSWITCH sends for that subscription');

  const banOf = (target: string) => (l: LogLine): boolean => l.event === 'ban' && l.target === target;
  const a = await daemon.waitForLog('case a banned', banOf('203.0.113.70'));
  t.equal(a.rule, 'call_scanner_user_agent');
  const b = await daemon.waitForLog('case b banned', banOf('203.0.113.71'));
  t.equal(b.rule, 'call_probing_international');
  t.match((b.evidence as { calls?: { numbers?: string[] } }).calls?.numbers, ['9011441234567', '+442071234567', '0046812345678']);
  // The last frames are e1's and e2's hangups, dropped as counted by their auth events: once
  // both are in the log, every call before them was judged.
  const refusedAtAuth = (l: LogLine): boolean => l.reason === 'call_refused_at_auth';
  await daemon.waitForLog('e1 and e2 judged', () => daemon.lines.filter(refusedAtAuth).length === 2);

  // Every ban decided is written, in batches: wait for all three (the last may be a batch later).
  const deadline = Date.now() + 30_000;
  let banned = new Set<string>();
  while (Date.now() < deadline) {
    banned = new Set(kernelElements(table, 'banned4').map((e) => e.key));
    if (['203.0.113.70', '203.0.113.71', '203.0.113.72'].every((ip) => banned.has(ip))) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  t.ok(banned.has('203.0.113.70'), 'case a (friendly-scanner, one call) is in the kernel set');
  t.ok(banned.has('203.0.113.71'), 'case b (Zoiper, five numbers abroad) is in the kernel set');
  t.ok(banned.has('203.0.113.72'), 'case e1 (sipcli, challenged) is banned by its auth event');
  t.notOk(banned.has('198.51.100.40'), 'the carrier of case c (an answered DID, a misdial) is not banned');
  t.notOk(banned.has('198.51.100.41'), 'the phone of case d (authenticated calls) is not banned');
  t.notOk(banned.has('203.0.113.73'), 'case e2 (one wrong password) is not banned');
  const el = kernelElements(table, 'banned4').find((e) => e.key === '203.0.113.71');
  t.match(el?.comment ?? '', /rule=call_probing_international/);

  const listening = await daemon.waitForLog('metrics port', (l) => /metrics at/.test(l.msg ?? ''));
  const body = await (await fetch(`http://127.0.0.1:${String(listening.port)}/metrics`)).text();
  const metric = (name: string): number => Number(new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\d+)$`, 'm').exec(body)?.[1] ?? -1);
  t.equal(metric('fsguard_calls_total{profile="external",outcome="unrouted"}'), 7, 'a, b and c2: unrouted');
  t.equal(metric('fsguard_calls_total{profile="external",outcome="answered"}'), 1, 'c1');
  t.equal(metric('fsguard_calls_total{profile="internal",outcome="refused"}'), 1, 'd2');
  t.equal(metric('fsguard_bans_total{rule="call_probing_international"}'), 1);
  t.equal(metric('fsguard_events_dropped_total{reason="call_refused_at_auth"}'), 2);
  t.equal(metric('fsguard_events_total{subclass="CHANNEL_HANGUP_COMPLETE",profile="external"}'), 8);
});
