// FreeSWITCH's addresses in the table (sets freeswitch4/6: what `fsguard ban` refuses) stay there
// for as long as the daemon runs: their elements are timed, so the guard writes them again each
// day, and again into a table recreated behind its back.
import t from 'tap';
import { Guard } from '../lib/daemon/guard.js';
import type { AuthEvent } from '../lib/events/auth-event.js';
import { parseIp } from '../lib/net/ip.js';
import { FsguardMetrics } from '../lib/obs/metrics.js';
import { createPolicy } from '../lib/policy/engine.js';
import { DEFAULT_POLICY_SETTINGS } from '../lib/policy/settings.js';
import { RecordingLogger, waitFor } from './support/esl-test-helpers.js';
import { netnsTestOptions } from './support/netns.js';
import { kernelElement, kernelWriter, nftCli, uniqueTableName } from './support/nft-kernel.js';

const SWITCH = '192.0.2.10';
const WEEK = 7 * 86_400;

t.test('FreeSWITCH\'s addresses are written again each day and into a recreated table', netnsTestOptions(), async (t) => {
  const label = 'swrenew';
  const table = uniqueTableName(label);
  const writer = kernelWriter(t, label);
  let wallMs = Date.now();
  const guard = new Guard(createPolicy(DEFAULT_POLICY_SETTINGS), writer, new RecordingLogger(), new FsguardMetrics(false), { allow: [] }, () => wallMs);
  await guard.start();
  const event = (ip: string): AuthEvent => ({
    kind: 'challenge', profile: 'internal', source: parseIp(ip)!, port: 5060, userAgent: 'Yealink SIP-T54W', callId: `sw${ip}`,
    timeUs: wallMs * 1000, switchAddresses: [SWITCH], fromUser: '100', toUser: '100',
  });
  guard.onEvent(event('198.51.100.5'));
  await waitFor('the address recorded', () => kernelElement(table, 'freeswitch4', SWITCH) !== undefined);
  t.equal(kernelElement(table, 'freeswitch4', SWITCH)?.timeout, WEEK, 'for a week');

  // Its element as it will be days later: an hour left.
  nftCli(['delete', 'element', 'inet', table, 'freeswitch4', `{ ${SWITCH} }`]);
  nftCli(['add', 'element', 'inet', table, 'freeswitch4', `{ ${SWITCH} timeout 1h }`]);
  wallMs += 3_600_000;
  await guard.reconcile();
  t.equal(kernelElement(table, 'freeswitch4', SWITCH)?.timeout, 3600, 'not rewritten within the day');
  wallMs += 86_400_000;
  await guard.reconcile();
  await waitFor('the address renewed', () => kernelElement(table, 'freeswitch4', SWITCH)?.timeout === WEEK);
  t.pass('a day on, the reconcile wrote it again for a week');

  // The table is deleted and recreated (the writer does so at its next write, then tells the guard).
  nftCli(['delete', 'table', 'inet', table]);
  await writer.setup();
  t.equal(kernelElement(table, 'freeswitch4', SWITCH), undefined, 'the new table has none');
  await guard.onTableRecreated();
  await waitFor('the address in the new table', () => kernelElement(table, 'freeswitch4', SWITCH) !== undefined);
  t.pass('written into the recreated table');
  await guard.flush();
});
