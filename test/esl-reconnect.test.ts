// The event source's retry and liveness rules, with a fake connection, fake timers and a fake
// clock: exact delays instead of wall-clock sampling.
import t from 'tap';
import { EslEventSource, SUBSCRIPTION_COMMAND, type EslSourceOptions } from '../lib/esl/index.js';
import { RecordingListener, RecordingLogger } from './support/esl-test-helpers.js';
import { FakeSwitch, FakeTimers } from './support/fake-switch.js';

function setup(opts: Partial<EslSourceOptions> = {}, random = 0): {
  timers: FakeTimers; fs: FakeSwitch; listener: RecordingListener; logger: RecordingLogger; source: EslEventSource;
} {
  const timers = new FakeTimers(0);
  const fs = new FakeSwitch(timers);
  const listener = new RecordingListener();
  const logger = new RecordingLogger();
  const source = new EslEventSource(
    { host: '127.0.0.1', port: 8021, password: 'pw', profiles: null, ...opts },
    listener,
    { logger, timers, clock: () => timers.now, random: () => random, connect: fs.connect },
  );
  return { timers, fs, listener, logger, source };
}

t.test('FreeSWITCH down: capped exponential backoff, then connected at the next attempt', async (t) => {
  const { timers, fs, listener, source } = setup();
  source.start();
  timers.advance(10_000);
  // Each gap is the backoff delay plus the 1 ms the fake takes to refuse.
  t.same(fs.gaps().slice(0, 8), [101, 201, 401, 801, 1601, 2001, 2001, 2001]);
  fs.mode = 'accept';
  const upAt = timers.now;
  timers.advance(2100);
  t.equal(listener.connects, 1);
  t.ok(fs.links.at(-1)!.openedAt - upAt <= 2000, 'at most the cap after FreeSWITCH is back');
  t.same(fs.links.at(-1)!.commands, ['auth pw', SUBSCRIPTION_COMMAND, 'api show registrations as json']);
});

t.test('FreeSWITCH unreachable, or accepting and closing at once: one warning, then capped backoff', async (t) => {
  for (const mode of ['refuse', 'slam'] as const) {
    const { timers, fs, listener, logger, source } = setup();
    fs.mode = mode;
    source.start();
    timers.advance(60_000);
    // 100 ms doubling to the 2 s cap (+1 ms the fake takes to fail): 35 attempts in 60 s, not a tight loop.
    t.same(fs.gaps().slice(0, 7), [101, 201, 401, 801, 1601, 2001, 2001], `${mode}: capped exponential backoff`);
    t.equal(fs.links.length, 34, `${mode}: attempts in 60 s`);
    const warnings = logger.records.filter((r) => /cannot reach the FreeSWITCH event socket/.test(r.msg));
    t.equal(warnings.length, 2, `${mode}: one warning when it starts, one at the 30th failure, not one per attempt`);
    t.match(warnings[0]!.obj, { host: '127.0.0.1', port: 8021, failedAttempts: 1 });
    t.equal(listener.connects, 0);
  }
});

t.test('jitter shortens delays by up to reconnectJitter', async (t) => {
  const { timers, fs, source } = setup({ reconnectJitter: 0.5 }, 0.999);
  source.start();
  timers.advance(10_000);
  t.same(fs.gaps().slice(0, 7), [51, 101, 201, 401, 802, 1002, 1002], 'each delay about half (+1 ms to refuse)');
});

t.test('the backoff resets only after a stable connection', async (t) => {
  const { timers, fs, listener, source } = setup({ stableAfterMs: 10_000 });
  fs.mode = 'accept';
  source.start();
  timers.advance(5);
  t.equal(listener.connects, 1);
  // Flapping: dropped after 1 s each time, the delay keeps growing.
  const delaysAfterClose: number[] = [];
  const dropAndMeasure = (upFor: number): void => {
    timers.advance(upFor);
    const closedAt = timers.now;
    const count = fs.links.length;
    fs.links.at(-1)!.handlers.onClosed('closed by FreeSWITCH');
    timers.advance(5000);
    t.equal(fs.links.length, count + 1);
    delaysAfterClose.push(fs.links.at(-1)!.openedAt - closedAt);
  };
  for (let i = 0; i < 3; i++) dropAndMeasure(1000);
  t.same(delaysAfterClose, [100, 200, 400], 'not reset by short-lived connections');
  // Up for 10 s, then a restart: back to the first delay.
  dropAndMeasure(10_000);
  t.equal(delaysAfterClose[3], 100, 'reset after a stable connection');
  t.equal(listener.disconnects.length, 4);
});

t.test('wrong password and ACL rejection retry every authRetryMs, whatever the backoff', async (t) => {
  for (const [mode, kind] of [['wrong-password', 'invalid_password'], ['acl', 'acl_rejected']] as const) {
    const { timers, fs, listener, logger, source } = setup({ authRetryMs: 30_000, reconnectInitialMs: 1, reconnectMaxMs: 2 });
    fs.mode = mode;
    source.start();
    timers.advance(121_000);
    t.equal(fs.links.length, 5, `${kind}: one attempt at start, then one every 30 s`);
    t.same(fs.gaps(), [30_001, 30_001, 30_001, 30_001], '30 s after each rejection (+1 ms to be rejected)');
    t.equal(listener.rejections.length, 5);
    t.ok(listener.rejections.every((r) => r.kind === kind));
    t.equal(logger.records.filter((r) => r.level === 'error').length, 5);
    t.ok(fs.links.every((l) => l.destroyedWith !== null), 'the rejected connection is closed by us too');
    fs.mode = 'accept';
    timers.advance(30_000);
    t.equal(listener.connects, 1, `${kind}: recovers at the next slow retry`);
  }
});

t.test('heartbeat watchdog: frames keep it alive, silence kills it', async (t) => {
  const { timers, fs, listener, source } = setup({ heartbeatTimeoutMs: 60_000 });
  fs.mode = 'accept';
  source.start();
  timers.advance(5);
  const link = fs.links[0]!;
  const heartbeat = (): void => {
    link.handlers.onEventFrame({ contentType: 'text/event-json', headers: new Map(), body: Buffer.from('{"Event-Name":"HEARTBEAT"}') });
  };
  for (let i = 0; i < 10; i++) { timers.advance(20_000); heartbeat(); }
  t.equal(link.destroyedWith, null, 'HEARTBEAT every 20 s: alive after 200 s');
  timers.advance(59_000);
  t.equal(link.destroyedWith, null, '59 s of silence is not yet dead');
  timers.advance(1_000);
  t.equal(link.destroyedWith, 'heartbeat timeout', 'dead at 60 s');
  t.same(listener.disconnects, ['heartbeat timeout']);
  timers.advance(200);
  t.equal(listener.connects, 2, 'reconnected');
  t.equal(listener.events.length, 0);
  t.equal(listener.dropped.length, 0, 'HEARTBEAT is not a dropped event');
});

t.test('a peer that accepts but never asks for auth times out the handshake', async (t) => {
  const { timers, fs, listener, source } = setup({ handshakeTimeoutMs: 10_000 });
  fs.mode = 'silent';
  source.start();
  timers.advance(9_999);
  t.equal(fs.links[0]!.destroyedWith, null);
  timers.advance(2);
  t.equal(fs.links[0]!.destroyedWith, 'handshake timeout');
  t.equal(listener.disconnects.length, 0, 'never connected, so no disconnect');
  timers.advance(200);
  t.equal(fs.links.length, 2, 'retried');
});

t.test('stop() during the backoff wait cancels the retry', async (t) => {
  const { timers, fs, source } = setup();
  source.start();
  timers.advance(50);
  await source.stop();
  timers.advance(60_000);
  t.equal(fs.links.length, 1);
});

t.test('a password with a line break is refused (it would inject commands after auth)', async (t) => {
  t.throws(() => setup({ password: 'pw\n\nevent plain ALL' }), /line breaks/);
});
