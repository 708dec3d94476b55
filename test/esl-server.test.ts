// The test event socket must be indistinguishable from FreeSWITCH 1.10 on the wire: its bytes
// are diffed against captures from a real one (../shared/esl).
import t, { type Test } from 'tap';
import { EslTestServer, registrationRow } from './support/esl-server.js';
import {
  apiResponse, DISCONNECT_NOTICE, fsUrlEncode, orderedEventHeaders, RUDE_REJECTION, serializePlainEvent, Subscription,
} from './support/esl-wire.js';
import { captureEventBodies, RawClient, readCapture, splitCapture, waitFor } from './support/esl-test-helpers.js';

async function withServer(t: Test, opts: Parameters<typeof EslTestServer.start>[0] = {}): Promise<EslTestServer> {
  const server = await EslTestServer.start(opts);
  t.teardown(() => server.close());
  return server;
}

async function client(t: Test, server: EslTestServer): Promise<RawClient> {
  const c = await RawClient.open(server.port);
  t.teardown(() => c.close());
  return c;
}

/** Plays a capture's `.sent` bytes, replays its events, and diffs everything received. */
async function diffAgainstCapture(t: Test, capture: string, sent: string): Promise<void> {
  const expected = readCapture(capture);
  const server = await withServer(t);
  const c = await client(t, server);
  c.send(readCapture(sent));
  await server.waitForSubscriptions(1);
  const replayed = server.replay(captureEventBodies('esl_json_CUSTOM_sofia.raw'));
  await c.waitForBytes(expected.length);
  await replayed;
  // Nothing more came: the reply to a command sent after the replay was written follows the
  // capture's bytes directly (one socket keeps the server's writes in order).
  const sentinel = apiResponse('-ERR fsguard-sentinel Command not found!\n');
  c.send('api fsguard-sentinel\n\n');
  const got = await c.waitForBytes(expected.length + sentinel.length);
  t.ok(got.subarray(expected.length).equals(sentinel), `${capture}: the sentinel's reply right after the capture's bytes`);
  const all = got.subarray(0, got.length - sentinel.length);
  t.equal(all.length, expected.length, `${capture}: same length`);
  if (!all.equals(expected)) {
    // Show the first differing frame rather than two 20 KB blobs.
    const a = splitCapture(expected);
    const b = splitCapture(got.subarray(0, Math.min(got.length, expected.length)));
    const i = a.findIndex((f, k) => !b[k] || !f.raw.equals(b[k]!.raw));
    t.equal(b[i]?.raw.toString('latin1'), a[i]?.raw.toString('latin1'), `${capture}: frame ${i}`);
  }
  t.ok(all.equals(expected), `${capture}: byte-identical`);
}

t.test('json handshake and event frames match esl_json_CUSTOM_sofia.raw byte for byte', async (t) => {
  await diffAgainstCapture(t, 'esl_json_CUSTOM_sofia.raw', 'esl_json_CUSTOM_sofia.raw.sent');
});

t.test('plain handshake and URL-encoded event frames match esl_plain_CUSTOM_sofia.raw byte for byte', async (t) => {
  // The same 22 events, captured by a second (plain) listener at the same time: the plain
  // encoder must turn each JSON body into exactly what FreeSWITCH wrote, duplicate
  // profile-name of register_failure included.
  await diffAgainstCapture(t, 'esl_plain_CUSTOM_sofia.raw', 'esl_plain_CUSTOM_sofia.raw.sent');
});

t.test('a wrong password gets -ERR invalid, the disconnect notice, and the socket closed (esl_bad_password.raw)', async (t) => {
  const server = await withServer(t);
  const c = await client(t, server);
  c.send('auth wrong\n\n');
  await c.waitForClose();
  t.ok(c.bytes.equals(readCapture('esl_bad_password.raw')), 'byte-identical');
  t.same(server.authLog.map((a) => a.accepted), [false]);
});

t.test('a command before auth gets -ERR command not found and the socket stays open (esl_cmd_before_auth.raw)', async (t) => {
  const server = await withServer(t);
  const c = await client(t, server);
  const expected = readCapture('esl_cmd_before_auth.raw');
  c.send('api status\n\n');
  await c.waitForBytes(expected.length);
  t.ok(c.bytes.subarray(0, expected.length).equals(expected), 'byte-identical');
  c.send('auth ClueCon\n\n');
  const accepted = 'Content-Type: command/reply\nReply-Text: +OK accepted\n\n';
  await c.waitForBytes(expected.length + accepted.length);
  // The auth reply follows the error directly: nothing else was sent, and the socket stayed open.
  t.equal(c.bytes.subarray(expected.length).toString(), accepted);
  t.notOk(c.closed, 'still open');
});

t.test('ACL rejection: text/rude-rejection, then the disconnect notice, then close', async (t) => {
  const server = await withServer(t);
  server.rudeRejection = true;
  const c = await client(t, server);
  await c.waitForClose();
  t.equal(c.bytes.toString(), RUDE_REJECTION + DISCONNECT_NOTICE);
  t.equal(RUDE_REJECTION, 'Content-Type: text/rude-rejection\nContent-Length: 24\n\nAccess Denied, go away.\n');
});

t.test('api/response framing and show registrations as json', async (t) => {
  const server = await withServer(t);
  const c = await client(t, server);
  c.send('auth ClueCon\n\napi show registrations as json\n\n');
  const empty = '{"row_count": 0}\n';
  const head = 'Content-Type: auth/request\n\nContent-Type: command/reply\nReply-Text: +OK accepted\n\n';
  const expected = `${head}Content-Type: api/response\nContent-Length: ${empty.length}\n\n${empty}`;
  await c.waitForBytes(expected.length);
  t.equal(c.bytes.toString(), expected, 'empty table as FreeSWITCH prints it');

  server.registrations = [{ user: '1000', realm: 'pbx.example.com', ip: '198.51.100.10', port: 5070, expires: 1795255267 }];
  const before = c.bytes.length;
  c.send('api show registrations as json\n\napi no_such_thing\n\n');
  const row = registrationRow(server.registrations[0]!);
  const body = JSON.stringify({ row_count: 1, rows: [row] });
  const unknown = '-ERR no_such_thing Command not found!\n';
  const replies = `Content-Type: api/response\nContent-Length: ${body.length}\n\n${body}`
    + `Content-Type: api/response\nContent-Length: ${unknown.length}\n\n${unknown}`;
  await c.waitForBytes(before + replies.length);
  t.equal(c.bytes.subarray(before).toString(), replies);
  t.same(Object.keys(row), ['reg_user', 'realm', 'token', 'url', 'expires', 'network_ip', 'network_port', 'network_proto', 'hostname', 'metadata'], 'core registrations table columns');
});

t.test('subscriptions follow mod_event_socket: every token after CUSTOM is a subclass', async (t) => {
  const s = new Subscription();
  t.equal(s.apply('event json CUSTOM sofia::register BACKGROUND_JOB CHANNEL_EXECUTE_COMPLETE'), '+OK event listener enabled json');
  t.notOk(s.matches('BACKGROUND_JOB', null), 'BACKGROUND_JOB after CUSTOM is a subclass, not an event');
  t.ok(s.matches('CUSTOM', 'BACKGROUND_JOB'));
  t.ok(s.matches('CUSTOM', 'sofia::register'));
  t.notOk(s.matches('CUSTOM', 'sofia::pre_register'));
  t.notOk(s.matches('HEARTBEAT', null));
  const s2 = new Subscription();
  t.equal(s2.apply('event HEARTBEAT'), '+OK event listener enabled plain', 'format defaults to plain');
  t.equal(new Subscription().apply('event json nonsense'), '-ERR no keywords supplied');
  const all = new Subscription();
  all.apply('event plain all');
  t.ok(all.matches('CUSTOM', 'anything'), 'ALL includes every CUSTOM subclass');

  // End to end: only matching events reach the client.
  const server = await withServer(t);
  const c = await client(t, server);
  c.send('auth ClueCon\n\nevent json HEARTBEAT CUSTOM sofia::register\n\n');
  await server.waitForSubscriptions(1);
  const bodies = captureEventBodies('esl_json_CUSTOM_sofia.raw');
  const sent = bodies.map((b) => server.emitEvent(b));
  t.same(sent.filter((n) => n > 0).length, 1, 'one sofia::register in the capture');
  t.equal(server.sendHeartbeat(), 1, 'HEARTBEAT goes to the subscriber');
  t.same(server.sessions[0]!.subscribeCommands, ['event json HEARTBEAT CUSTOM sofia::register']);
});

t.test('plain values are encoded like switch_url_encode: no double encoding of %XX', async (t) => {
  t.equal(fsUrlEncode('%C3'), '%C3', 'an existing upper-case escape is kept (the modesl crash case)');
  t.equal(fsUrlEncode('%c3'), '%25c3', 'lower-case hex is not an escape to FreeSWITCH');
  t.equal(fsUrlEncode('%4'), '%254');
  t.equal(fsUrlEncode('é'), '%C3%A9');
  t.equal(fsUrlEncode('Sat, 21 Nov (UDP)'), 'Sat,%2021%20Nov%20(UDP)');
  t.equal(fsUrlEncode('a\nb'), 'a%0Ab');
  t.equal(serializePlainEvent([['a', ''], ['b', 'x']]), 'a: _undef_\nb: x\n\n', 'empty values are _undef_');
  t.same(orderedEventHeaders('{"profile-name":"internal","x":"1","profile-name":"internal"}'),
    [['profile-name', 'internal'], ['x', '1'], ['profile-name', 'internal']], 'duplicate keys kept in order');
  t.equal(orderedEventHeaders('[1]'), null);
});

t.test('test hooks: hung server says nothing and closes nothing; drop resets connections', async (t) => {
  const server = await withServer(t, { heartbeatIntervalMs: 20 });
  server.setHung(true);
  const c = await client(t, server);
  c.send('auth ClueCon\n\n');
  await waitFor('the auth to reach the hung server', () => server.sessions[0]?.received.toString('latin1').includes('auth ClueCon') === true);
  const ticks = server.heartbeatTicks;
  await waitFor('three heartbeat ticks while hung', () => server.heartbeatTicks >= ticks + 3);
  t.equal(c.bytes.length, 0, 'no greeting, no reply, no heartbeat');
  t.notOk(c.closed);
  server.setHung(false);
  server.dropConnections();
  await c.waitForClose();
  t.equal(server.connectionLog.length, 1);
});
