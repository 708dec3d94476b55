// Unit tests of the pure parts of lib/esl: framing (against the real captures, split at every
// byte), plain value decoding, the registrations answer, the backoff schedule.
import t from 'tap';
import {
  decodePlainValue, EslFrameParser, parsePlainEventBody, parseRegistrations, type EslFrame,
} from '../lib/esl/index.js';
import { ReconnectBackoff } from '../lib/esl/backoff.js';
import { readCapture, splitCapture } from './support/esl-test-helpers.js';

interface Parsed {
  readonly frames: Array<{ type: string; body: string | null }>;
  readonly malformed: string[];
}

function parseAll(chunks: readonly Buffer[], end = false): Parsed {
  const frames: Parsed['frames'] = [];
  const malformed: string[] = [];
  const p = new EslFrameParser({
    onFrame: (f: EslFrame) => { frames.push({ type: f.contentType, body: f.body ? f.body.toString('latin1') : null }); },
    onMalformed: (reason) => { malformed.push(reason); },
  });
  for (const c of chunks) p.push(c);
  if (end) p.end();
  return { frames, malformed };
}

function expectedFrames(data: Buffer): Parsed['frames'] {
  return splitCapture(data).map((f) => ({ type: f.headers['Content-Type']!, body: f.body ? f.body.toString('latin1') : null }));
}

t.test('captures frame identically however the bytes are chunked', async (t) => {
  for (const name of ['esl_json_CUSTOM_sofia.raw', 'esl_plain_CUSTOM_sofia.raw', 'esl_plain_ALL.raw', 'esl_bad_password.raw']) {
    const data = readCapture(name);
    const expected = expectedFrames(data);
    t.same(parseAll([data]), { frames: expected, malformed: [] }, `${name}: one chunk`);
    const step = name === 'esl_plain_ALL.raw' ? 997 : 1;
    let failures = 0;
    for (let cut = 1; cut < data.length; cut += step) {
      const got = parseAll([data.subarray(0, cut), data.subarray(cut)]);
      if (got.malformed.length > 0 || got.frames.length !== expected.length
        || got.frames.some((f, i) => f.type !== expected[i]!.type || f.body !== expected[i]!.body)) failures++;
    }
    t.equal(failures, 0, `${name}: split in two at every ${step === 1 ? '' : `${step}th `}byte`);
  }
  const json = readCapture('esl_json_CUSTOM_sofia.raw');
  const bytewise = parseAll(Array.from({ length: json.length }, (_, i) => json.subarray(i, i + 1)));
  t.same(bytewise.frames, expectedFrames(json), 'one byte at a time');
});

t.test('framing edge cases', async (t) => {
  t.same(parseAll([Buffer.from('\n\r\nContent-Type: auth/request\n\n\n')]).frames, [{ type: 'auth/request', body: null }], 'stray line ends between frames are skipped');
  t.same(parseAll([Buffer.from('Content-Type: command/reply\r\nReply-Text: +OK\r\n\nContent-Length: 0\nContent-Type: api/response\n\n')]).frames,
    [{ type: 'command/reply', body: null }, { type: 'api/response', body: '' }], 'CR before LF and an empty body');
  t.same(parseAll([Buffer.from('Content-Length: 5\nContent-Type: api/response\n\nab')], true).malformed, ['truncated_frame']);
  t.same(parseAll([Buffer.from('Content-Length: -1\nContent-Type: api/response\n\n')]).malformed, ['bad_content_length']);
  t.same(parseAll([Buffer.from('Content-Length: 3\n\nabcContent-Type: auth/request\n\n')]), {
    frames: [{ type: 'auth/request', body: null }], malformed: ['bad_frame_header'],
  }, 'no Content-Type: the body is skipped by its length');
  const garbage = parseAll([Buffer.from('x'.repeat(70_000))]);
  t.same(garbage.malformed, ['bad_frame_header'], 'an endless header block is dropped, not buffered forever');
  // A sink may say the body was not what it claimed: framing resumes inside it.
  const frames: string[] = [];
  const p = new EslFrameParser({
    onFrame: (f) => { frames.push(f.contentType); return f.contentType === 'text/event-json' ? 3 : undefined; },
    onMalformed: () => {},
  });
  p.push(Buffer.from('Content-Length: 31\nContent-Type: text/event-json\n\n{}}Content-Type: auth/request\n\n'));
  t.same(frames, ['text/event-json', 'auth/request']);
});

t.test('plain values decode like FreeSWITCH and never throw', async (t) => {
  t.equal(decodePlainValue('%C3'), '\uFFFD', 'a lone UTF-8 lead byte');
  t.equal(decodePlainValue('%C3%A9t%C3%A9'), 'été');
  t.equal(decodePlainValue('%4'), '%4');
  t.equal(decodePlainValue('%zz%'), '%zz%');
  t.equal(decodePlainValue('a+b%20c'), 'a+b c', '+ is not a space');
  t.equal(decodePlainValue('%3a%3A'), '::', 'either case');

  // The plain capture decodes to exactly the values of the json capture of the same events.
  const plain = splitCapture(readCapture('esl_plain_CUSTOM_sofia.raw')).filter((f) => f.headers['Content-Type'] === 'text/event-plain');
  const json = splitCapture(readCapture('esl_json_CUSTOM_sofia.raw')).filter((f) => f.headers['Content-Type'] === 'text/event-json');
  t.equal(plain.length, 22);
  let mismatches = 0;
  plain.forEach((f, i) => {
    const h = parsePlainEventBody(f.body!);
    const j = JSON.parse(json[i]!.body!.toString('utf8')) as Record<string, string>;
    for (const [k, v] of Object.entries(j)) {
      const got = h[k];
      if ((Array.isArray(got) ? got[0] : got) !== v) mismatches++;
    }
  });
  t.equal(mismatches, 0, 'all 22 events, every header');
  const failure = parsePlainEventBody(plain[3]!.body!);
  t.same(failure['profile-name'], ['internal', 'internal'], 'the repeated header is kept as an array');
});

t.test('show registrations as json answers', async (t) => {
  t.same(parseRegistrations('{"row_count": 0}\n'), { ok: true, registrations: [], skippedRows: 0 });
  t.same(parseRegistrations('{"row_count":0,"rows":[]}'), { ok: true, registrations: [], skippedRows: 0 });
  t.match(parseRegistrations(''), { ok: false });
  t.match(parseRegistrations('-ERR no reply\n'), { ok: false, reason: '-ERR no reply' });
  t.match(parseRegistrations('+OK'), { ok: false });
  t.match(parseRegistrations('[]'), { ok: false });
  t.match(parseRegistrations('{"rows":{}}'), { ok: false });
  t.match(parseRegistrations('{"row_count":2}'), { ok: false }, 'rows missing although rows are counted');
  const r = parseRegistrations(JSON.stringify({
    row_count: 3,
    rows: [
      { reg_user: '1000', realm: 'pbx', network_ip: '2001:DB8::5', network_port: '5060', expires: '1795255267', url: 'sofia/internal/sip:1000@[2001:db8::5]:5060' },
      { reg_user: '1001', realm: 'pbx', network_ip: '198.51.100.7', expires: '0' },
      { reg_user: '1002', realm: 'pbx', network_ip: 7 },
    ],
  }));
  t.same(r, {
    ok: true,
    skippedRows: 1,
    registrations: [
      { source: { family: 6, text: '2001:db8::5' }, user: '1000', realm: 'pbx', userAgent: '', expiresAtSec: 1795255267 },
      { source: { family: 4, text: '198.51.100.7' }, user: '1001', realm: 'pbx', userAgent: '', expiresAtSec: null },
    ],
  });
});

t.test('reconnect backoff: exponential, capped, jittered, resettable', async (t) => {
  const none = new ReconnectBackoff({ initialMs: 100, maxMs: 2000, jitter: 0.5 }, () => 0);
  t.same(Array.from({ length: 7 }, () => none.next()), [100, 200, 400, 800, 1600, 2000, 2000]);
  t.equal(none.attempts, 7);
  none.reset();
  t.equal(none.next(), 100);
  const full = new ReconnectBackoff({ initialMs: 100, maxMs: 2000, jitter: 0.5 }, () => 0.999999);
  const delays = Array.from({ length: 8 }, () => full.next());
  t.ok(delays.every((d, i) => d >= Math.min(2000, 100 * 2 ** i) / 2 - 1), 'jitter takes at most half');
  t.ok(delays.every((d) => d <= 2000), 'never above the cap');
  const many = new ReconnectBackoff({ initialMs: 100, maxMs: 2000, jitter: 0.5 }, () => 0);
  for (let i = 0; i < 2000; i++) many.next();
  t.equal(many.next(), 2000, 'no overflow after many failures');
});

t.test('event json frames on the fast path: same frames, headers on demand, limits kept', async (t) => {
  const body = '{"Event-Name":"HEARTBEAT"}';
  const frame = `Content-Length: ${body.length}\nContent-Type: text/event-json\n\n${body}`;
  const seen: EslFrame[] = [];
  const malformed: string[] = [];
  const p = new EslFrameParser({ onFrame: (f) => { seen.push(f); }, onMalformed: (r) => { malformed.push(r); } }, { maxHeaderBytes: 1024, maxBodyBytes: 64 });
  p.push(Buffer.from(`${frame}${frame}Content-Length: 0065\nContent-Type: text/event-json\n\n${'x'.repeat(65)}${frame}`));
  t.same(seen.map((f) => [f.contentType, f.body?.toString('latin1')]), [['text/event-json', body], ['text/event-json', body], ['text/event-json', body]]);
  t.same([...seen[0]!.headers], [['Content-Length', String(body.length)], ['Content-Type', 'text/event-json']], 'the header block, built when asked');
  t.same(malformed, ['frame_too_large'], 'a body over the limit is still refused (and skipped)');
  const variants = [
    `Content-Length: ${body.length}\r\nContent-Type: text/event-json\r\n\n${body}`,
    `Content-Type: text/event-json\nContent-Length: ${body.length}\n\n${body}`,
    `Content-Length: ${body.length}\nContent-Type: text/event-json\nX-Extra: 1\n\n${body}`,
  ];
  t.same(parseAll(variants.map((v) => Buffer.from(v))).frames.map((f) => f.body), [body, body, body], 'other header blocks take the general path');
});
