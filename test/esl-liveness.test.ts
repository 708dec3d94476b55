// What keeps an event-socket connection alive (only complete frames: junk is a dead peer), and
// lost-event awareness from Event-Sequence: fake timers and a fake clock for exact delays, the
// real capture bytes of ../shared/esl, and a real TCP server streaming junk.
import t from 'tap';
import {
  EslEventSource, EventSequenceTracker, readCoreUuid, readSequence, type EslFrame, type EslSourceOptions,
} from '../lib/esl/index.js';
import { EslTestServer } from './support/esl-server.js';
import { readCapture, RecordingListener, RecordingLogger, splitCapture, waitFor } from './support/esl-test-helpers.js';
import { FakeSwitch, FakeTimers } from './support/fake-switch.js';
import { netnsTestOptions } from './support/netns.js';
import { kernelWriter } from './support/nft-kernel.js';

function setup(opts: Partial<EslSourceOptions> = {}): { timers: FakeTimers; fs: FakeSwitch; listener: RecordingListener; logger: RecordingLogger; source: EslEventSource } {
  const timers = new FakeTimers(0);
  const fs = new FakeSwitch(timers);
  const listener = new RecordingListener();
  const logger = new RecordingLogger();
  const source = new EslEventSource({ host: '127.0.0.1', port: 8021, password: 'pw', profiles: null, ...opts }, listener, { logger, timers, clock: () => timers.now, random: () => 0, connect: fs.connect });
  return { timers, fs, listener, logger, source };
}

const jsonFrame = (body: string | Buffer): EslFrame => ({ contentType: 'text/event-json', headers: new Map(), body: Buffer.isBuffer(body) ? body : Buffer.from(body) });

t.test('watchdog: junk that never forms a frame is no sign of life', async (t) => {
  const { timers, fs, listener, source } = setup({ heartbeatTimeoutMs: 60_000 });
  fs.mode = 'accept';
  source.start();
  timers.advance(5);
  const link = fs.links[0]!;
  t.equal(listener.connects, 1);
  // Every second: garbage between frames, a frame of an unknown type, an "event" that is not JSON.
  for (let s = 1; s < 60; s++) {
    timers.advance(1000);
    link.handlers.onMalformed('bad_frame_header', 'garbage between frames');
    link.handlers.onMalformed('unknown_content_type', 'Content-Type "x/junk"');
    link.handlers.onEventFrame(jsonFrame('{not json at all'));
    link.handlers.onEventFrame(jsonFrame('12345'));
  }
  t.equal(link.destroyedWith, null, '59 s after the last real frame: not yet');
  timers.advance(1000);
  t.equal(link.destroyedWith, 'heartbeat timeout', 'dead 60 s after the last complete frame, junk or not');
  t.same(listener.disconnects, ['heartbeat timeout']);
  timers.advance(200);
  t.equal(listener.connects, 2, 'reconnected');
});

t.test('watchdog: any complete event counts as life, not only HEARTBEAT', async (t) => {
  const { timers, fs, source } = setup({ heartbeatTimeoutMs: 60_000 });
  fs.mode = 'accept';
  source.start();
  timers.advance(5);
  const link = fs.links[0]!;
  for (let i = 0; i < 5; i++) {
    timers.advance(50_000);
    link.handlers.onEventFrame(jsonFrame('{"Event-Name":"CHANNEL_CREATE","Event-Sequence":"7"}'));
  }
  t.equal(link.destroyedWith, null, 'an event every 50 s keeps a 60 s watchdog happy');
});

t.test('watchdog over real TCP: a peer streaming junk is reconnected after heartbeatTimeoutMs', async (t) => {
  const server = await EslTestServer.start({ heartbeatIntervalMs: null });
  t.teardown(() => server.close());
  const timers = new FakeTimers(0);
  const listener = new RecordingListener();
  const logger = new RecordingLogger();
  const source = new EslEventSource({ host: '127.0.0.1', port: server.port, password: 'ClueCon', profiles: null, heartbeatTimeoutMs: 60_000 }, listener, { logger, timers, clock: () => timers.now, random: () => 0 });
  t.teardown(() => source.stop());
  source.start();
  await server.waitForSubscriptions(1);
  await waitFor('connected', () => listener.connects === 1);
  const session = server.openSessions[0]!;
  // Ten seconds of fake time per burst of junk; each burst must have reached the parser first.
  for (let burst = 1; burst <= 5; burst++) {
    const seen = listener.dropped.length;
    session.write(`junk ${burst} that is no header\n\nContent-Type: x/junk\nContent-Length: 3\n\nabc\n\n`);
    await waitFor(`junk burst ${burst} parsed`, () => listener.dropped.length >= seen + 2);
    timers.advance(10_000);
  }
  t.equal(listener.disconnects.length, 0, '50 s: still connected');
  t.ok(listener.dropped.some((d) => d.reason === 'bad_frame_header'), 'the junk was seen and counted');
  timers.advance(10_000);
  await waitFor('disconnected', () => listener.disconnects.length > 0);
  t.same(listener.disconnects, ['heartbeat timeout'], '60 s after the last complete frame: presumed dead');
  timers.advance(200);
  await server.waitForSubscriptions(2);
  t.equal(server.connectionLog.length, 2, 'a new connection was made');
});

t.test('watchdog over real TCP: a half-open peer (silent, socket open) is reconnected; a hung one times out the handshake', async (t) => {
  const server = await EslTestServer.start({ heartbeatIntervalMs: null });
  t.teardown(() => server.close());
  const timers = new FakeTimers(0);
  const listener = new RecordingListener();
  const logger = new RecordingLogger();
  const source = new EslEventSource({ host: '127.0.0.1', port: server.port, password: 'ClueCon', profiles: null, heartbeatTimeoutMs: 5_000, handshakeTimeoutMs: 10_000 }, listener, { logger, timers, clock: () => timers.now, random: () => 0 });
  t.teardown(() => source.stop());
  source.start();
  await server.waitForSubscriptions(1);
  await waitFor('connected', () => listener.connects === 1);
  server.emitEvent(JSON.stringify({ 'Event-Name': 'HEARTBEAT', 'Event-Sequence': '1' }));
  // An auth event behind it: once that is read, so is the HEARTBEAT (frames are read in order).
  server.emitEvent(JSON.stringify({
    'Event-Name': 'CUSTOM', 'Event-Subclass': 'sofia::pre_register', 'Event-Sequence': '2', 'Event-Date-Timestamp': '1795255200000000',
    'profile-name': 'internal', 'network-ip': '198.51.100.7', 'network-port': '5060', 'call-id': 'hb-1', 'to-user': '1000', 'from-user': '1000',
  }));
  await waitFor('heartbeat read', () => listener.events.length === 1);
  t.equal(listener.dropped.length, 0, 'the HEARTBEAT and the event were read, nothing dropped');
  server.setHung(true);
  timers.advance(4_999);
  t.equal(listener.disconnects.length, 0, 'silent for 4.999 s: still up');
  timers.advance(1);
  await waitFor('disconnected', () => listener.disconnects.length > 0);
  t.same(listener.disconnects, ['heartbeat timeout']);
  t.ok(logger.records.some((r) => r.level === 'warn' && /no HEARTBEAT/.test(r.msg) && (r.obj as { timeoutMs?: number }).timeoutMs === 5000), 'one warning naming the timeout');
  // Still hung: the next connection gets TCP but no auth/request, so the handshake times out.
  timers.advance(100);
  await waitFor('second connection', () => server.connectionLog.length === 2);
  timers.advance(10_000);
  await waitFor('handshake timeout logged', () => logger.records.some((r) => /handshake timed out/.test(r.msg)));
  server.setHung(false);
  // The closes and reconnects happen on real sockets: let fake time pass in 100 ms steps
  // until the source, after its backoff, is subscribed again.
  await waitFor('connected again', () => { timers.advance(100); return listener.connects === 2; });
  t.ok(server.connectionLog.length >= 3);
  t.pass('re-established once the peer answers');
});

// ---------------------------------------------------------------- Event-Sequence

/** The event frames of a capture, as the frame parser hands them to the source. */
function captureFrames(name: string): EslFrame[] {
  return splitCapture(readCapture(name))
    .filter((f) => f.headers['Content-Type'] === 'text/event-json' || f.headers['Content-Type'] === 'text/event-plain')
    .map((f) => ({ contentType: f.headers['Content-Type']!, headers: new Map(), body: f.body! }));
}

t.test('Event-Sequence is read from real JSON and plain bodies (not from variable_Event-Sequence)', async (t) => {
  const json = captureFrames('esl_json_CHANNEL_calls.raw');
  const plain = captureFrames('esl_plain_CHANNEL_calls.raw');
  t.equal(json.length, plain.length);
  for (let i = 0; i < json.length; i++) {
    const parsed = JSON.parse(json[i]!.body!.toString('utf8')) as Record<string, string>;
    const j = readSequence(json[i]!.body!, true);
    t.same(j, { seq: Number(parsed['Event-Sequence']), timeUs: Number(parsed['Event-Date-Timestamp']) }, `json frame ${i}`);
    t.same(readSequence(plain[i]!.body!, false), j, `plain frame ${i} reads the same`);
    t.equal(readCoreUuid(json[i]!.body!, true), parsed['Core-UUID']);
    t.equal(readCoreUuid(plain[i]!.body!, false), parsed['Core-UUID']);
  }
  t.equal(readSequence(Buffer.from('{"variable_Event-Sequence":"5","x":"\\"Event-Sequence\\":\\"9"}'), true), null, 'neither a variable nor attacker text');
  t.equal(readSequence(Buffer.from('Event-Name: X\nvariable_Event-Sequence: 5\n'), false), null);
  // Whitespace JSON allows around the colon (FreeSWITCH writes none), and the key's name as a value first.
  t.same(readSequence(Buffer.from('{"x":"Event-Sequence","Event-Sequence" :\t"562", "Event-Date-Timestamp":\n"7"}'), true), { seq: 562, timeUs: 7 });
  t.equal(readSequence(Buffer.from('{"Event-Sequence" "5"}'), true), null, 'no colon: not a key');
});

t.test('the real captures, full of jumps and run over several threads, hold no gap', async (t) => {
  for (const name of ['esl_json_CUSTOM_sofia.raw', 'esl_plain_CUSTOM_sofia.raw', 'esl_plain_ALL.raw', 'esl_json_CHANNEL_calls.raw', 'esl_plain_CHANNEL_calls.raw']) {
    const { timers, fs, listener, source } = setup();
    fs.mode = 'accept';
    source.start();
    timers.advance(5);
    const frames = captureFrames(name);
    for (const f of frames) fs.links[0]!.handlers.onEventFrame(f);
    t.ok(frames.length > 20, `${name}: ${frames.length} events`);
    t.same(listener.gaps, [], `${name}: no gap`);
  }
});

t.test('EventSequenceTracker: late events are not gaps, a burst of lost numbers is, once', async (t) => {
  const tr = new EventSequenceTracker(1000);
  t.equal(tr.observe(100, 1_000, 'uuid-a'), null);
  t.equal(tr.observe(103, 2_000, null), null, 'numbers of events not subscribed to');
  t.equal(tr.observe(102, 2_100, null), null, 'a late event (dispatched by another thread)');
  t.equal(tr.observe(101, 2_200, null), null);
  t.equal(tr.late, 2);
  t.equal(tr.observe(1104, 3_000, null), null, '1000 skipped: at the threshold, not beyond');
  t.same(tr.observe(2200, 9_000, null), { kind: 'stream', fromSeq: 1104, toSeq: 2200, fromUs: 3_000, toUs: 9_000, missing: 1095 });
  t.equal(tr.observe(2201, 9_100, null), null, 'the gap is reported once');
  t.equal(tr.observe(1500, 9_200, null), null, 'a straggler from inside the gap is late, not a new gap');
});

t.test('EventSequenceTracker: across a reconnect, the same FreeSWITCH continues; a restarted one starts over', async (t) => {
  const tr = new EventSequenceTracker(1000);
  tr.observe(500, 10_000, 'uuid-a');
  tr.observe(510, 11_000, null);
  tr.newConnection();
  t.same(tr.observe(530, 15_000, 'uuid-a'), { kind: 'reconnect', fromSeq: 510, toSeq: 530, fromUs: 11_000, toUs: 15_000, missing: 19 }, 'events fired while away, however few');
  tr.newConnection();
  t.equal(tr.observe(12, 20_000, 'uuid-b'), null, 'a new Core-UUID: FreeSWITCH restarted, its counter reset: ignored');
  t.same(tr.observe(5000, 21_000, null), { kind: 'stream', fromSeq: 12, toSeq: 5000, fromUs: 20_000, toUs: 21_000, missing: 4987 });
  tr.newConnection();
  t.equal(tr.observe(5001, 22_000, 'uuid-b'), null, 'nothing skipped across this reconnect');
});

t.test('the source reports a gap to its listener and logs its window once per gap', async (t) => {
  const { timers, fs, listener, logger, source } = setup({ eventGapThreshold: 1000 });
  fs.mode = 'accept';
  source.start();
  timers.advance(5);
  const ev = (seq: number, ts: number, uuid = 'c0ffee00-0000-4000-8000-000000000001'): EslFrame => jsonFrame(JSON.stringify({
    'Event-Name': 'HEARTBEAT', 'Core-UUID': uuid, 'Event-Date-Timestamp': String(ts), 'Event-Sequence': String(seq),
  }));
  const link = fs.links[0]!;
  link.handlers.onEventFrame(ev(10, 1_793_610_000_000_000));
  link.handlers.onEventFrame(ev(5000, 1_793_610_020_000_000));
  link.handlers.onEventFrame(ev(5001, 1_793_610_020_000_100));
  t.equal(listener.gaps.length, 1);
  t.match(listener.gaps[0], { kind: 'stream', fromUs: 1_793_610_000_000_000, toUs: 1_793_610_020_000_000, missing: 4989 });
  const lines = logger.records.filter((r) => /Event-Sequence jumped/.test(r.msg));
  t.equal(lines.length, 1, 'one line for the window');
  t.match(lines[0]!.obj, { from: '2026-11-02T09:00:00.000Z', to: '2026-11-02T09:00:20.000Z', missing: 4989 });
  // FreeSWITCH drops the connection; the new one continues the same counter.
  link.handlers.onClosed('closed by FreeSWITCH');
  timers.advance(200);
  fs.links[1]!.handlers.onEventFrame(ev(5200, 1_793_610_030_000_000));
  t.equal(listener.gaps.length, 2);
  t.match(listener.gaps[1], { kind: 'reconnect', fromSeq: 5001, toSeq: 5200, missing: 198 });
});

t.test('the guard counts each gap and hands its window to the policy', netnsTestOptions(), async (t) => {
  const { Guard } = await import('../lib/daemon/guard.js');
  const { FsguardMetrics } = await import('../lib/obs/metrics.js');
  const { createPolicy } = await import('../lib/policy/engine.js');
  const { DEFAULT_POLICY_SETTINGS } = await import('../lib/policy/settings.js');
  const noted: unknown[] = [];
  const policy = Object.assign(createPolicy(DEFAULT_POLICY_SETTINGS), {
    noteEventGap: (g: unknown) => { noted.push(g); },
  });
  const metrics = new FsguardMetrics(false);
  const guard = new Guard(policy, kernelWriter(t, 'gaps'), new RecordingLogger(), metrics, { allow: [] });
  await guard.start();
  guard.onEventGap({ kind: 'stream', fromSeq: 10, toSeq: 5000, fromUs: 1_000, toUs: 2_000, missing: 4989 });
  guard.onEventGap({ kind: 'reconnect', fromSeq: 5000, toSeq: 5200, fromUs: 3_000, toUs: 4_000, missing: 199 });
  t.same(noted, [{ fromUs: 1_000, toUs: 2_000, missing: 4989 }, { fromUs: 3_000, toUs: 4_000, missing: 199 }]);
  const text = await metrics.registry.metrics();
  t.match(text, /fsguard_esl_event_gaps_total\{kind="stream"\} 1/);
  t.match(text, /fsguard_esl_event_gaps_total\{kind="reconnect"\} 1/);
  t.match(text, /fsguard_esl_events_missing_total\{kind="stream"\} 4989/);
});
