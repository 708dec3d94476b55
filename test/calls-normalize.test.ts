// Call events from the bytes of a real FreeSWITCH 1.10.9 (../shared/esl, "Call events"): the
// JSON and plain captures of cases a-e normalize to the same CallEvents, one per call, and the
// event source subscribes to CHANNEL_HANGUP_COMPLETE and delivers them from the captured bytes.
import t from 'tap';
import { normalizeCallEvent, type CallEvent } from '../lib/events/call-event.js';
import { EslEventSource, parsePlainEventBody, SUBSCRIPTION_COMMAND } from '../lib/esl/index.js';
import { EslTestServer } from './support/esl-server.js';
import { captureEventFrames, RecordingListener, RecordingLogger, waitFor } from './support/esl-test-helpers.js';

const json = captureEventFrames('esl_json_CHANNEL_calls.raw');
const plain = captureEventFrames('esl_plain_CHANNEL_calls.raw');

function headersOf(f: { body: Buffer }, format: 'json' | 'plain'): unknown {
  return format === 'json' ? JSON.parse(f.body.toString('utf8')) : parsePlainEventBody(f.body);
}

function callsOf(format: 'json' | 'plain'): { calls: CallEvent[]; dropped: Record<string, number> } {
  const calls: CallEvent[] = [];
  const dropped: Record<string, number> = {};
  for (const f of format === 'json' ? json : plain) {
    const r = normalizeCallEvent(headersOf(f, format), { profiles: null });
    if (r.ok) calls.push(r.event);
    else dropped[r.reason] = (dropped[r.reason] ?? 0) + 1;
  }
  return { calls, dropped };
}

t.test('the captures hold the same 56 events in the same order', async (t) => {
  t.equal(json.length, 56);
  t.same(plain.map((f) => f.name), json.map((f) => f.name));
});

t.test('one CallEvent per call, the same from JSON and plain', async (t) => {
  const j = callsOf('json');
  const p = callsOf('plain');
  t.equal(j.calls.length, 10, 'a 1, b 5, c 2, d 2: one per call (CREATE, ANSWER, HANGUP, DESTROY are not calls)');
  t.same(p.calls, j.calls, 'plain (URL-encoded, Hangup-Cause twice) gives exactly the JSON events');
  t.equal(j.dropped.call_refused_at_auth, 2, 'e1 and e2, refused at the auth step, are counted by their auth events instead');
  t.equal(j.dropped.not_call_event, 56 - 10 - 2);

  const [a, b1, b2, , , b5, c1, c2, d1, d2] = j.calls as [CallEvent, CallEvent, CallEvent, CallEvent, CallEvent, CallEvent, CallEvent, CallEvent, CallEvent, CallEvent];
  t.match(a, {
    kind: 'call', profile: 'external', context: 'public', destination: '00972592123456', hangupCause: 'NO_ROUTE_DESTINATION',
    outcome: 'unrouted', answeredSeconds: 0, account: null, userAgent: 'friendly-scanner', port: 60736,
    callId: 'fce5e699e75c41a2b1b43526a3232a36', timeUs: 1796110905981905,
  });
  t.equal(a.source.text, '203.0.113.70');
  t.same(a.switchAddresses, ['127.0.0.1', '::1']);
  t.equal(b1.destination, '9011441234567');
  t.equal(b2.destination, '+442071234567', 'plain %2B is a +');
  t.equal(b5.destination, '100');
  t.equal(new Set([b1, b2, b5].map((c) => c.port)).size, 3, 'a new source port per call');
  t.match(c1, { outcome: 'answered', hangupCause: 'NORMAL_CLEARING', destination: '5551000', account: null, userAgent: 'carrier-sbc/4.2' });
  t.ok(c1.answeredSeconds > 1 && c1.answeredSeconds < 1.1, `billed ~1.02 s (${c1.answeredSeconds})`);
  t.equal(c1.source.text, '198.51.100.40');
  t.match(c2, { outcome: 'unrouted', destination: '5559999' });
  t.match(d1, { profile: 'internal', context: 'default', outcome: 'answered', account: '1000', realm: '127.0.0.1', destination: '1001' });
  t.match(d2, { outcome: 'refused', hangupCause: 'CALL_REJECTED', account: '1000', destination: '0044207123456' });
});

t.test('malformed or partial channel events are dropped with a reason', async (t) => {
  const base = JSON.parse(json.find((f) => f.name === 'CHANNEL_HANGUP_COMPLETE')!.body.toString('utf8')) as Record<string, string>;
  const drop = (h: unknown, profiles: ReadonlySet<string> | null = null): string => {
    const r = normalizeCallEvent(h, { profiles });
    return r.ok ? 'ok' : r.reason;
  };
  t.equal(drop(base), 'ok');
  t.equal(drop({ ...base, 'Event-Date-Timestamp': 'x' }), 'bad_timestamp');
  t.equal(drop({ ...base, 'Caller-Network-Addr': '999.1.1.1' }), 'bad_address');
  const noAddr: Record<string, unknown> = { ...base };
  delete noAddr['Caller-Network-Addr'];
  delete noAddr['variable_sip_network_ip'];
  t.equal(drop(noAddr), 'missing_address', 'a caller profile without an address is not an auth refusal');
  t.equal(drop({ ...base, 'Call-Direction': 'outbound' }), 'outbound_leg', 'a leg to a gateway is not a call from it');
  t.equal(drop(base, new Set(['internal'])), 'profile_not_watched');
  const noDest: Record<string, unknown> = { ...base };
  delete noDest['Caller-Destination-Number'];
  delete noDest['variable_sip_req_user'];
  t.equal(drop(noDest), 'missing_destination');
  t.equal(drop({ ...base, 'Event-Name': 'CHANNEL_DESTROY' }), 'not_call_event', 'DESTROY repeats HANGUP_COMPLETE: one call counts once');
  t.equal(drop([]), 'not_call_event');
  const long = normalizeCallEvent({ ...base, variable_sip_user_agent: 'u'.repeat(5000) }, { profiles: null });
  t.equal(long.ok && long.event.userAgent.length, 256, 'attacker text is cut');
  t.equal(drop({ ...base, variable_sip_authorized: 'false', variable_sip_auth_username: '1000' }), 'ok');
  const forged = normalizeCallEvent({ ...base, variable_sip_authorized: 'false', variable_sip_auth_username: '1000' }, { profiles: null });
  t.equal(forged.ok && forged.event.account, null, 'only sip_authorized: true makes an account');
});

for (const format of ['json', 'plain'] as const) {
  t.test(`the event source subscribes to CHANNEL_HANGUP_COMPLETE and reads the captured ${format} bytes`, async (t) => {
    const server = await EslTestServer.start({ forceFormat: format === 'plain' ? 'plain' : null });
    const listener = new RecordingListener();
    const source = new EslEventSource({ host: '127.0.0.1', port: server.port, password: 'ClueCon', profiles: ['external', 'internal'] }, listener, { logger: new RecordingLogger() });
    t.teardown(async () => { await source.stop(); await server.close(); });
    source.start();
    await server.waitForSubscriptions(1);
    t.match(SUBSCRIPTION_COMMAND, /^event json HEARTBEAT CHANNEL_HANGUP_COMPLETE CUSTOM sofia::/);
    t.equal(server.sessions[0]!.subscribeCommands[0], SUBSCRIPTION_COMMAND);
    const sent = server.replayCaptured(json, plain);
    t.equal(sent, 12 + 8, 'FreeSWITCH sends only what was subscribed: 12 HANGUP_COMPLETE and 8 sofia events');
    await waitFor('the calls', () => listener.calls.length === 10 && listener.events.length === 8);
    t.same(listener.calls, callsOf('json').calls, 'the same CallEvents as normalizing the JSON capture directly');
    t.equal(listener.droppedBy('call_refused_at_auth'), 2);
    t.equal(listener.received.filter((r) => r.subclass === 'CHANNEL_HANGUP_COMPLETE').length, 12, 'every call counted as received');
  });
}

t.test('calls of an unwatched profile are counted and dropped', async (t) => {
  const server = await EslTestServer.start();
  const listener = new RecordingListener();
  const source = new EslEventSource({ host: '127.0.0.1', port: server.port, password: 'ClueCon', profiles: ['internal'] }, listener, { logger: new RecordingLogger() });
  t.teardown(async () => { await source.stop(); await server.close(); });
  source.start();
  await server.waitForSubscriptions(1);
  server.replayCaptured(json, plain);
  await waitFor('the calls', () => listener.calls.length === 2 && listener.droppedBy('profile_not_watched') >= 8);
  t.same(listener.calls.map((c) => c.destination), ['1001', '0044207123456'], 'only the internal profile\'s calls');
});

