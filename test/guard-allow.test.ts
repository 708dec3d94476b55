// The guard's own last check before the kernel: the allow-list of every profile, and the one a
// config reload brings (it was kept from the start: an address taken off the list by a reload
// was refused as protected at every ban, while the policy believed it banned).
import t from 'tap';
import { Guard } from '../lib/daemon/guard.js';
import { parseIp } from '../lib/net/ip.js';
import { FsguardMetrics } from '../lib/obs/metrics.js';
import { createPolicy } from '../lib/policy/engine.js';
import { allowedEverywhere, DEFAULT_POLICY_SETTINGS } from '../lib/policy/settings.js';
import type { AuthEvent } from '../lib/events/auth-event.js';
import { RecordingLogger } from './support/esl-test-helpers.js';
import { netnsTestOptions } from './support/netns.js';
import { kernelWriter } from './support/nft-kernel.js';

const T0 = 1_793_610_000_000_000;
let n = 0;
const scanner = (ip: string): AuthEvent => ({
  kind: 'challenge', profile: 'internal', source: parseIp(ip)!, port: 5060, userAgent: 'friendly-scanner', callId: `g${++n}`,
  timeUs: T0 + n * 1_000_000, switchAddresses: ['192.0.2.10'], fromUser: '100', toUser: '100',
});

t.test('a reload that takes an address off the allow-list lets its next ban reach the kernel', netnsTestOptions(), async (t) => {
  const PARTNER = '198.51.100.77';
  const before = { ...DEFAULT_POLICY_SETTINGS, allow: [...DEFAULT_POLICY_SETTINGS.allow, `${PARTNER}/32`] };
  const writer = kernelWriter(t, 'allow');
  const logger = new RecordingLogger();
  const guard = new Guard(createPolicy(before), writer, logger, new FsguardMetrics(false), { allow: allowedEverywhere(before, {}) });
  await guard.start();
  guard.onEvent(scanner(PARTNER));
  await writer.flush();
  t.equal(guard.knownBans, 0, 'allowed: not banned');
  // The reload: the partner is off the list.
  guard.replacePolicy(createPolicy(DEFAULT_POLICY_SETTINGS), allowedEverywhere(DEFAULT_POLICY_SETTINGS, {}));
  guard.onEvent(scanner(PARTNER));
  await writer.flush();
  t.equal(guard.knownBans, 1, 'banned once it is off the list');
  t.notOk(logger.records.some((r) => /protected|allow-list/.test(r.msg) || /allow-list/.test(JSON.stringify(r.obj ?? {}))), 'nothing refused as protected');
});

t.test('an address allowed on one profile only is never written to the kernel', netnsTestOptions(), async (t) => {
  const PARTNER = '198.51.100.78';
  const overrides = { external: { allow: [`${PARTNER}/32`] } };
  const writer = kernelWriter(t, 'allowp');
  const guard = new Guard(createPolicy(DEFAULT_POLICY_SETTINGS, overrides), writer, new RecordingLogger(), new FsguardMetrics(false), { allow: allowedEverywhere(DEFAULT_POLICY_SETTINGS, overrides) });
  await guard.start();
  guard.onEvent(scanner(PARTNER));
  guard.onEvent(scanner('203.0.113.9'));
  await writer.flush();
  t.equal(guard.knownBans, 1, 'only the other address is banned');
});
