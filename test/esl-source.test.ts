// The ESL event source against the test event socket over real TCP: handshake bytes, events,
// profile filter, reconnects, rejections, a hung peer, live registrations, hostile input.
import t, { type Test } from 'tap';
import { EventEmitter } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import modesl from 'modesl';
import { EslEventSource, SUBSCRIPTION_COMMAND, type EslSourceOptions } from '../lib/esl/index.js';
import { EslTestServer, type EslTestServerOptions } from './support/esl-server.js';
import { eventFrame } from './support/esl-wire.js';
import { FakeTimers } from './support/fake-timers.js';
import {
  captureEventBodies, readTrace, RecordingListener, RecordingLogger, waitFor,
} from './support/esl-test-helpers.js';

const CAPTURE = captureEventBodies('esl_json_CUSTOM_sofia.raw');
/** A register_failure from the capture (127.0.0.3, profile internal). */
const FAILURE = JSON.parse(CAPTURE[3]!) as Record<string, string>;

function failureEvent(overrides: Record<string, string | null> = {}): string {
  const e: Record<string, string> = { ...FAILURE };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === null) delete e[k];
    else e[k] = v;
  }
  return JSON.stringify(e);
}

async function serverFor(t: Test, opts: EslTestServerOptions = {}): Promise<EslTestServer> {
  const server = await EslTestServer.start(opts);
  t.teardown(() => server.close());
  return server;
}

interface Started {
  readonly source: EslEventSource;
  readonly listener: RecordingListener;
  readonly logger: RecordingLogger;
}

function startSource(t: Test, port: number, opts: Partial<EslSourceOptions> = {}): Started {
  const listener = new RecordingListener();
  const logger = new RecordingLogger();
  const source = new EslEventSource(
    { host: '127.0.0.1', port, password: 'ClueCon', profiles: null, ...opts },
    listener,
    { logger },
  );
  source.start();
  t.teardown(() => source.stop());
  return { source, listener, logger };
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

t.test('handshake: exact bytes on the wire, one subscription with HEARTBEAT before CUSTOM', async (t) => {
  const server = await serverFor(t, {
    password: 'S3cret pw',
    registrations: [{ user: '1000', realm: 'pbx.example.com', ip: '198.51.100.10', port: 5070, expires: 1795255267 }],
  });
  const { listener, logger } = startSource(t, server.port, { password: 'S3cret pw' });
  await waitFor('connected', () => listener.connects === 1 && listener.registrations.length === 1);
  const wire = server.sessions[0]!.received.toString('latin1');
  t.equal(wire, 'auth S3cret pw\n\n'
    + 'event json HEARTBEAT CHANNEL_HANGUP_COMPLETE CUSTOM sofia::pre_register sofia::register_attempt sofia::register_failure sofia::register\n\n'
    + 'api show registrations as json\n\n', 'nothing but auth, the subscription and the registrations query');
  t.equal(SUBSCRIPTION_COMMAND, server.sessions[0]!.subscribeCommands[0]);
  t.notMatch(wire, /BACKGROUND_JOB|CHANNEL_EXECUTE_COMPLETE/, "modesl's own events are not subscribed");
  const sub = server.sessions[0]!.subscription;
  t.same([...sub.events].sort(), ['CHANNEL_HANGUP_COMPLETE', 'CUSTOM', 'HEARTBEAT'], 'one channel event: one per finished call');
  t.same([...sub.subclasses].sort(), ['sofia::pre_register', 'sofia::register', 'sofia::register_attempt', 'sofia::register_failure']);
  t.equal(sub.format, 'json');
  t.same(listener.registrations[0], [{
    source: { family: 4, text: '198.51.100.10' }, user: '1000', realm: 'pbx.example.com', userAgent: '', expiresAtSec: 1795255267,
  }]);
  t.notMatch(logger.text, /S3cret/, 'the password is never logged');
});

t.test('events from the capture and a scenario trace arrive as AuthEvents', async (t) => {
  const server = await serverFor(t);
  const { listener } = startSource(t, server.port);
  await waitFor('connected', () => listener.connects === 1);
  await server.replay(CAPTURE);
  await waitFor('22 events', () => listener.events.length === 22);
  t.same(listener.events.map((e) => e.kind).slice(0, 4), ['challenge', 'challenge', 'attempt', 'failure']);
  const first = listener.events[0]!;
  t.match(first, {
    kind: 'challenge', profile: 'internal', source: { family: 4, text: '127.0.0.2' }, port: 5072,
    userAgent: 'sipp-test-noauth', callId: '1-22620@127.0.0.2', timeUs: 1795255147463595, switchAddresses: ['192.0.2.2', 'fd00::2'],
  });
  const renewed = listener.events.find((e) => e.kind === 'attempt' && e.source.text === '127.0.0.5');
  t.match(renewed, { kind: 'attempt', result: 'success' }, 'RENEWED is a success');
  t.same(listener.received.length, 22);
  t.same(listener.received[3], { subclass: 'sofia::register_failure', profile: 'internal' });
  t.equal(listener.dropped.length, 0);

  const trace = readTrace('brute-force-one-user.jsonl').slice(0, 2000);
  await server.replay(trace);
  await waitFor('2000 trace events', () => listener.events.length === 22 + 2000);
  t.ok(listener.events.some((e) => e.source.text === '203.0.113.66' && e.kind === 'failure'), 'the attacker is seen');
  t.equal(listener.dropped.length, 0);
});

t.test('only watched profiles are processed; others are counted and dropped', async (t) => {
  const server = await serverFor(t);
  const { listener } = startSource(t, server.port, { profiles: ['external'] });
  await waitFor('connected', () => listener.connects === 1);
  await server.replay(CAPTURE);
  await waitFor('all 22 seen', () => listener.events.length + listener.dropped.length === 22);
  t.ok(listener.events.length > 0);
  t.ok(listener.events.every((e) => e.profile === 'external' && e.source.text === '127.0.0.10'), 'only case g (external)');
  t.equal(listener.droppedBy('profile_not_watched'), 22 - listener.events.length);
  t.equal(listener.received.length, 22, 'events_total still counts every received auth event');
});

// How often a rejected or unreachable source retries is exact under fake timers
// (test/esl-reconnect.test.ts); over real TCP these wait for events, never for time.
t.test('wrong password: clear error, onAuthRejected, retried, recovers', async (t) => {
  const server = await serverFor(t, { password: 'right' });
  const { listener, logger } = startSource(t, server.port, {
    password: 'wrong-pw-123', authRetryMs: 300, reconnectInitialMs: 5, reconnectMaxMs: 10,
  });
  // The server logs an attempt before the client has read the refusal: wait for both.
  await waitFor('three attempts, each refused', () => server.authLog.length >= 3 && listener.rejections.length >= 3, 10_000);
  t.ok(server.authLog.every((a) => !a.accepted));
  t.ok(listener.rejections.every((r) => r.kind === 'invalid_password'));
  t.equal(listener.connects, 0);
  const err = logger.records.find((r) => r.level === 'error');
  t.match(err?.msg, /password/, 'the error says what is wrong');
  t.notMatch(logger.text, /wrong-pw-123/, 'the password is never logged');

  // Fixing the password on the FreeSWITCH side: the next slow retry gets in.
  server.password = 'wrong-pw-123';
  await waitFor('connected', () => listener.connects === 1, 10_000);
});

t.test('ESL ACL rejection (text/rude-rejection): clear error, onAuthRejected, retried, recovers', async (t) => {
  const server = await serverFor(t);
  server.rudeRejection = true;
  const { listener, logger } = startSource(t, server.port, { authRetryMs: 300, reconnectInitialMs: 5, reconnectMaxMs: 10 });
  await waitFor('three connections', () => server.connectionLog.length >= 3 && listener.rejections.length >= 3, 10_000);
  t.ok(listener.rejections.every((r) => r.kind === 'acl_rejected'));
  t.match(logger.records.find((r) => r.level === 'error')?.msg, /ACL/);
  t.equal(server.authLog.length, 0, 'no password sent to a socket that refused us');
  server.rudeRejection = false;
  await waitFor('connected', () => listener.connects === 1, 10_000);
});

t.test('server drops the connection mid-trace: reconnect, subscribe again, keep delivering', async (t) => {
  const server = await serverFor(t);
  const { listener } = startSource(t, server.port);
  await waitFor('connected', () => listener.connects === 1);
  const trace = readTrace('brute-force-one-user.jsonl').slice(0, 600);
  const sent = await server.replay(trace, { dropAfter: 300 });
  t.equal(sent, 300);
  await waitFor('disconnected', () => listener.disconnects.length === 1);
  await server.waitForSubscriptions(2, 3000);
  await waitFor('reconnected', () => listener.connects === 2);
  t.equal(server.sessions.length, 2);
  t.equal(server.sessions[1]!.received.toString('latin1'),
    `auth ClueCon\n\n${SUBSCRIPTION_COMMAND}\n\napi show registrations as json\n\n`, 'the second connection subscribes again');
  await server.replay(trace.slice(300));
  await waitFor('600 events', () => listener.events.length === 600);
  t.equal(listener.events[599]!.timeUs, Number((JSON.parse(trace[599]!) as Record<string, string>)['Event-Date-Timestamp']));
  t.equal(listener.registrations.length, 2, 'live registrations asked again on reconnect');
});

t.test('FreeSWITCH down at start, then up: one warning, connected once it listens', async (t) => {
  const port = await freePort();
  const { listener, logger } = startSource(t, port);
  const attempts = (): number => logger.records.filter((r) => /connecting to the FreeSWITCH event socket/.test(r.msg)).length;
  await waitFor('four attempts', () => attempts() >= 4, 10_000);
  t.equal(listener.connects, 0);
  const warnings = logger.records.filter((r) => r.level === 'warn' && /cannot reach/.test(r.msg));
  t.equal(warnings.length, 1, 'one warning for the outage, not one per attempt');
  const server = await serverFor(t, { port });
  await waitFor('connected', () => listener.connects === 1, 10_000);
  t.equal(server.sessions.length, 1);
});

// The half-open peer is test/esl-liveness.test.ts (real TCP, fake timers: exact timeouts).

t.test('live registrations on every connect; empty and garbage answers handled', async (t) => {
  const answers = [
    '{"row_count": 0}\n',
    'garbage that is not json',
    '-ERR no reply\n',
    JSON.stringify({ row_count: 3, rows: [
      { reg_user: '1001', realm: 'r', network_ip: '::ffff:198.51.100.11', expires: '1795255300' },
      { reg_user: '1002', realm: 'r', network_ip: 'not-an-ip' },
      'not a row',
    ] }),
  ];
  let call = 0;
  const server = await serverFor(t, { apiHandler: () => answers[call++] ?? null });
  const { listener, logger } = startSource(t, server.port, { reconnectInitialMs: 10, reconnectMaxMs: 20 });
  for (let i = 1; i <= answers.length; i++) {
    await waitFor(`connection ${i}`, () => listener.connects === i);
    await waitFor(`answer ${i} read`, () => listener.registrations.length + logger.records.filter((r) => /could not read live registrations/.test(r.msg)).length === i);
    if (i < answers.length) server.dropConnections();
  }
  t.same(listener.registrations, [
    [],
    [{ source: { family: 4, text: '198.51.100.11' }, user: '1001', realm: 'r', userAgent: '', expiresAtSec: 1795255300 }],
  ], 'empty table → [], garbage and -ERR → nothing, mapped addresses normalized, bad rows skipped');
  t.equal(logger.records.filter((r) => /could not read live registrations/.test(r.msg)).length, 2);
  t.equal(server.apiLog.length, 4);
});

t.test('hostile input is counted by reason and skipped; the connection survives', async (t) => {
  const server = await serverFor(t);
  const { listener } = startSource(t, server.port, { frameLimits: { maxHeaderBytes: 64 * 1024, maxBodyBytes: 256 * 1024 } });
  await waitFor('connected', () => listener.connects === 1);
  let good = 0;
  /** Sends `bad`, then a good event, and waits until the good one arrived. */
  const thenGood = async (what: string, bad: string | Buffer): Promise<void> => {
    good++;
    const marker = `good-${good}`;
    server.sendRaw(bad);
    server.sendRaw(eventFrame('json', failureEvent({ 'user-agent': marker })));
    await waitFor(`the good event after ${what}`, () => listener.events.some((e) => e.userAgent === marker), 3000);
  };
  const body = failureEvent();
  const len = Buffer.byteLength(body);

  await thenGood('a non-numeric Content-Length', `Content-Length: 12x\nContent-Type: text/event-json\n\n${body}`);
  t.equal(listener.droppedBy('bad_content_length'), 1);
  await thenGood('a missing Content-Length', `Content-Type: text/event-json\n\n${body}`);
  t.equal(listener.droppedBy('missing_content_length'), 1);
  await thenGood('a Content-Length too long', `Content-Length: ${len + 60}\nContent-Type: text/event-json\n\n${body}`);
  await thenGood('a Content-Length too short', `Content-Length: ${len - 30}\nContent-Type: text/event-json\n\n${body}`);
  t.equal(listener.droppedBy('bad_json'), 2);
  await thenGood('garbage JSON', eventFrame('json', '{"Event-Name":"CUSTOM",'));
  t.equal(listener.droppedBy('bad_json'), 3);
  for (const v of ['[1,2]', '42', 'null', '"text"']) await thenGood(`non-object JSON ${v}`, eventFrame('json', v));
  t.equal(listener.droppedBy('not_an_object'), 4);
  await thenGood('garbage between frames', 'hello\x00\xff there\n\n');
  await thenGood('a 70 KB header line', `X-Junk: ${'A'.repeat(70_000)}\n\n`);
  await thenGood('invalid UTF-8 in a frame header', Buffer.from([0xff, 0xfe, 0x3a, 0x20, 0x78, 0x0a, 0x0a]));
  t.ok(listener.droppedBy('bad_frame_header') >= 3);
  await thenGood('a frame over the size limit', `Content-Length: 300000\nContent-Type: text/event-json\n\n${'x'.repeat(300_000)}`);
  t.equal(listener.droppedBy('frame_too_large'), 1);
  await thenGood('a frame nobody asked for', 'Content-Type: log/data\nContent-Length: 5\n\nhello');
  t.equal(listener.droppedBy('unknown_content_type'), 1);

  await thenGood('an event without network-ip', eventFrame('json', failureEvent({ 'network-ip': null })));
  t.equal(listener.droppedBy('missing_address'), 1);
  for (const ip of ['not-an-ip', '999.1.1.1', '1.2.3.4; DROP TABLE', 'fe80::1%eth0', `1${'1'.repeat(65_536)}`]) {
    await thenGood(`network-ip ${ip.slice(0, 20)}`, eventFrame('json', failureEvent({ 'network-ip': ip })));
  }
  t.equal(listener.droppedBy('bad_address'), 5);

  // Attacker text that must not hide the attacker: delivered, truncated, verbatim.
  const before = listener.events.length;
  server.sendRaw(eventFrame('json', failureEvent({ 'user-agent': '%C3', 'network-ip': '203.0.113.5' })));
  server.sendRaw(eventFrame('json', failureEvent({ 'user-agent': 'U'.repeat(64 * 1024), 'network-ip': '203.0.113.6' })));
  server.sendRaw(eventFrame('json', Buffer.concat([
    Buffer.from(failureEvent({ 'network-ip': '203.0.113.7', 'user-agent': null }).slice(0, -1)),
    Buffer.from(',"user-agent":"X'),
    Buffer.from([0xc3, 0x28]), // not UTF-8: a lead byte followed by `(`
    Buffer.from('"}'),
  ])));
  server.sendRaw(eventFrame('json', failureEvent({ 'network-ip': '::ffff:203.0.113.8' })));
  await thenGood('attacker strings', '');
  const delivered = listener.events.slice(before);
  t.equal(delivered.find((e) => e.source.text === '203.0.113.5')?.userAgent, '%C3', 'a %C3 user agent is just a string in JSON');
  t.equal(delivered.find((e) => e.source.text === '203.0.113.6')?.userAgent.length, 256, '64 KB user agent truncated, event kept');
  t.equal(delivered.find((e) => e.source.text === '203.0.113.7')?.userAgent, 'X\uFFFD(', 'invalid UTF-8 replaced, event kept');
  t.ok(delivered.some((e) => e.source.text === '203.0.113.8'), 'IPv4-mapped address normalized');

  const byReason: Record<string, number> = {};
  for (const d of listener.dropped) byReason[d.reason] = (byReason[d.reason] ?? 0) + 1;
  t.same(byReason, {
    // The orphan bodies after a bad/missing/short Content-Length, garbage, 70 KB, invalid UTF-8.
    bad_frame_header: 6,
    bad_content_length: 1,
    missing_content_length: 1,
    bad_json: 3,
    not_an_object: 4,
    frame_too_large: 1,
    unknown_content_type: 1,
    missing_address: 1,
    bad_address: 5,
  }, 'every malformed piece counted once, under its reason');
  t.equal(listener.connects, 1, 'never reconnected');
  t.equal(listener.disconnects.length, 0);
  t.equal(server.openSessions.length, 1);
});

t.test('a connection closed inside a frame counts truncated_frame and reconnects', async (t) => {
  const server = await serverFor(t);
  const { listener } = startSource(t, server.port, { reconnectInitialMs: 10 });
  await waitFor('connected', () => listener.connects === 1);
  server.sendRaw('Content-Length: 500\nContent-Type: text/event-json\n\n{"Event-Name":');
  // FIN after the bytes (not a reset): they are read before the close, whatever the load.
  for (const s of server.sessions) s.socket.end();
  await waitFor('reconnected', () => listener.connects === 2, 3000);
  t.equal(listener.droppedBy('truncated_frame'), 1);
});

t.test('plain frames: a %C3 user agent is decoded safely (modesl\'s own parser throws on it)', async (t) => {
  // Why the source never lets modesl parse: its header decoding throws inside the socket's
  // data handler, an uncaught exception in a real daemon.
  const fakeSocket = new EventEmitter();
  new modesl.Parser(fakeSocket);
  const plain = 'Event-Name: CUSTOM\nuser-agent: %C3\n\n';
  t.throws(() => fakeSocket.emit('data', Buffer.from(`Content-Length: ${plain.length}\nContent-Type: text/event-plain\n\n${plain}`)), URIError);

  const server = await serverFor(t, { forceFormat: 'plain' });
  const { listener } = startSource(t, server.port);
  await waitFor('connected', () => listener.connects === 1);
  server.emitEvent(failureEvent({ 'user-agent': '%C3', 'network-ip': '203.0.113.9' }));
  server.emitEvent(failureEvent({ 'user-agent': 'friendly-scanner', 'network-ip': '203.0.113.10' }));
  await waitFor('both events', () => listener.events.length === 2);
  t.equal(listener.events[0]!.userAgent, '\uFFFD', '%C3 alone is not UTF-8: replaced, not thrown');
  t.match(listener.events[1], { kind: 'failure', userAgent: 'friendly-scanner', profile: 'internal', method: 'REGISTER' }, 'duplicate profile-name handled');
});

t.test('a listener that throws does not stop the source', async (t) => {
  const server = await serverFor(t);
  const { listener, logger } = startSource(t, server.port);
  await waitFor('connected', () => listener.connects === 1);
  let calls = 0;
  listener.onEvent = () => { calls++; throw new Error('downstream bug'); };
  await server.replay(CAPTURE.slice(0, 5));
  await waitFor('5 calls', () => calls === 5);
  t.equal(logger.records.filter((r) => r.level === 'error' && /listener threw/.test(r.msg)).length, 5);
  t.equal(listener.disconnects.length, 0);
});

t.test('stop(): says exit, resolves, and never reconnects', async (t) => {
  const server = await serverFor(t);
  const upTimers = new FakeTimers(0);
  const listener = new RecordingListener();
  const logger = new RecordingLogger();
  const source = new EslEventSource({ host: '127.0.0.1', port: server.port, password: 'ClueCon', profiles: null, reconnectInitialMs: 10 }, listener, { logger, timers: upTimers, clock: () => upTimers.now, random: () => 0 });
  t.teardown(() => source.stop());
  source.start();
  await waitFor('connected', () => listener.connects === 1);
  await source.stop();
  t.equal(listener.disconnects.at(-1), 'stopped');
  await waitFor('exit received', () => /exit\n\n$/.test(server.sessions[0]!.received.toString()));
  t.equal(upTimers.scheduled, 0, 'no timer left: no retry, no watchdog');
  upTimers.advance(60_000);
  t.equal(logger.records.filter((r) => /^connecting to/.test(r.msg)).length, 1, 'no connection attempt after stop()');
  t.equal(server.connectionLog.length, 1);
  t.notOk(source.connected);
  await source.stop();

  // Stopping while FreeSWITCH is unreachable resolves at once and cancels the retry.
  const port = await freePort();
  const timers = new FakeTimers(0);
  const downListener = new RecordingListener();
  const downLogger = new RecordingLogger();
  const down = new EslEventSource({ host: '127.0.0.1', port, password: 'ClueCon', profiles: null, reconnectInitialMs: 10 }, downListener, { logger: downLogger, timers, clock: () => timers.now, random: () => 0 });
  t.teardown(() => down.stop());
  down.start();
  await waitFor('the first attempt refused', () => downLogger.records.some((r) => /cannot reach/.test(r.msg)));
  const attempts = (): number => downLogger.records.filter((r) => /^connecting to/.test(r.msg)).length;
  t.equal(timers.scheduled, 1, 'a retry is due');
  timers.advance(1_000);
  await waitFor('the second attempt refused', () => attempts() === 2 && timers.scheduled === 1);
  await down.stop();
  t.equal(timers.scheduled, 0, 'stop() cancelled the retry');
  timers.advance(60_000);
  t.equal(attempts(), 2, 'no attempt after stop()');
  t.equal(downListener.connects, 0, 'never connected');
});
