// The fast event-json path of `policy simulate` against what it replaces: EventJsonExtractor
// must give exactly JSON.parse's values for the headers normalize reads (or null, never a
// different answer), on the shared traces, generated variants and mutated or hostile lines;
// TraceDecoder must give exactly the records readline + JSON.parse + normalizeEvent gave,
// whatever the line ends, blank lines, encodings and chunking.
import t from 'tap';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { EVENT_HEADER_NAMES, EventJsonExtractor } from '../lib/events/fast-json.js';
import { loadLineScannerModule, WasmBodyReader } from '../lib/events/line-scanner.js';
import { normalizeEvent, normalizePreparsed, PreparsedEvent, SwitchAddressMemo } from '../lib/events/normalize.js';
import { scanTrace, TraceDecoder, type ReadTraceOptions, type TraceRecord, type TraceVisitor } from '../lib/trace/read-trace.js';
import { bruteForce, credentialScan, extensionScan, ipv6Rotation, ODD_AGENTS, rng, site, TraceBuilder } from './support/policy-traces.js';

const SCENARIOS = new URL('../../../shared/scenarios/', import.meta.url).pathname;

function sharedLines(): string[] {
  if (!existsSync(SCENARIOS)) return [];
  return readdirSync(SCENARIOS).filter((f) => f.endsWith('.jsonl'))
    .flatMap((f) => readFileSync(join(SCENARIOS, f), 'utf8').split('\n').filter((l) => l.trim() !== ''));
}

function variantLines(): string[] {
  const b = new TraceBuilder(41);
  site(b, { ip: '198.51.100.30', phones: 20, bootSpreadS: 10, durationS: 300, stale: 1, mistypers: 2, agents: ODD_AGENTS });
  bruteForce(b, { ip: '203.0.113.66', ratePerS: 5, count: 30, ua: 'friendly-scanner' });
  credentialScan(b, { ip: '203.0.113.67', ratePerS: 2, count: 20, ua: 'Zoiper rv2.10.19.4' });
  extensionScan(b, { ip: '203.0.113.68', ratePerS: 10, count: 30, ua: 'sipvicious' });
  ipv6Rotation(b, { prefix64: '2001:db8:bad:1', ratePerS: 5, count: 20, ua: 'x', mode: 'brute' });
  return b.build().map((e) => JSON.stringify(e));
}

/** Null when the extractor's answer agrees with JSON.parse (or it declined), else the difference. */
function disagreement(ex: EventJsonExtractor, line: string): string | null {
  const buf = Buffer.from(line, 'utf8');
  const got = ex.extract(buf);
  let parsed: unknown;
  try {
    parsed = JSON.parse(buf.toString('utf8'));
  } catch {
    return got === null ? null : 'accepted text JSON.parse rejects';
  }
  if (got === null) return null;
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return 'accepted a JSON value that is not an object';
  const obj = parsed as Record<string, unknown>;
  for (const name of EVENT_HEADER_NAMES) {
    const want = Object.prototype.hasOwnProperty.call(obj, name) ? obj[name] : undefined;
    if (got[name] !== want) return `${name}: ${JSON.stringify(got[name])} instead of ${JSON.stringify(want)}`;
  }
  return null;
}

t.test('extractor = JSON.parse on the shared traces and generated variants, and takes them all', async (t) => {
  const lines = [...sharedLines(), ...variantLines()];
  t.ok(lines.length > 1000, `${lines.length} lines`);
  const ex = new EventJsonExtractor();
  let taken = 0;
  const problems: string[] = [];
  for (const line of lines) {
    const d = disagreement(ex, line);
    if (d !== null && problems.length < 5) problems.push(`${d}: ${line.slice(0, 120)}`);
    if (ex.extract(Buffer.from(line)) !== null) taken++;
  }
  t.same(problems, []);
  // Every line without escapes or non-ASCII in a needed header takes the fast path.
  t.ok(taken >= lines.length * 0.95, `fast path for ${taken} of ${lines.length}`);
});

/**
 * One to three random edits of a line: insert a piece, delete up to 8 characters, replace one
 * by a piece, or (with `cut`) cut the line short or pad it with spaces.
 */
function mutateLine(line: string, random: () => number, pieces: readonly string[], cut: boolean): string {
  const pick = (): string => pieces[Math.floor(random() * pieces.length)]!;
  let m = line;
  const edits = 1 + Math.floor(random() * 3);
  for (let k = 0; k < edits; k++) {
    const at = Math.floor(random() * (m.length + 1));
    const op = random();
    if (cut && op >= 0.8) {
      m = random() < 0.5 ? m.slice(0, at) : ` ${m} `;
      continue;
    }
    const o = cut ? op / 0.8 : op;
    if (o < 0.5) m = m.slice(0, at) + pick() + m.slice(at);
    else if (o < 0.75) m = m.slice(0, at) + m.slice(at + 1 + Math.floor(random() * 8));
    else m = m.slice(0, at) + pick() + m.slice(at + 1);
  }
  return m;
}

t.test('extractor = JSON.parse on mutated and hostile lines', async (t) => {
  const base = [...sharedLines().slice(0, 300), ...variantLines().slice(0, 300)];
  const random = rng(0xfa57);
  const pieces = ['"', '\\', '\\"', '\\\\', '\\u0041', '\\u00e9', '\\x', '\\u12', '\\n', '\\/', '{', '}', ':', ',', ' ', '\t', '\n', '\r',
    '\u0000', '\u001f', '\u007f', 'é', '\u2028', '\ud83d\ude00', 'null', '1', 'true', '[]', '{}', '"network-ip":"203.0.113.9",',
    '"network\\u002dip":"203.0.113.9",', '"user-agent":1,', '"Event-Name":"CUSTOM",', ',"call-id":"dup"', '"":"",', '  '];
  const ex = new EventJsonExtractor();
  const problems: string[] = [];
  let checked = 0;
  for (let round = 0; round < 40; round++) {
    for (const line of base) {
      const m = mutateLine(line, random, pieces, true);
      const d = disagreement(ex, m);
      checked++;
      if (d !== null && problems.length < 5) problems.push(`${d}: ${JSON.stringify(m).slice(0, 200)}`);
    }
  }
  // Hand-written edge cases.
  const edge = ['{}', ' { } ', '{"Event-Name":"CUSTOM"}', '{"Event-Name":"CUSTOM","Event-Name":"HEARTBEAT"}', '{"a":"\\"","user-agent":"x\\"y"}',
    '{"user-agent":"a\\\\"}', '{"user-agent":"a\\\\\\"b"}', '{"a":"\\u00zz"}', '{"a":"x"} x', '{"a":"x"', '{"a":"x",}', '{"a" : "x" , "realm" : "r" }',
    '{"realm":"' + 'r'.repeat(5000) + '"}', '[]', '"x"', '{"realm":null}', '{"realm":["a"]}', '{"__proto__":"x","realm":"y"}', '{"call-id":""}',
    '\ufeff{"realm":"r"}', '{"realm":"é"}', '{"realm":"a\u007fb"}'];
  for (const m of edge) {
    const d = disagreement(ex, m);
    checked++;
    if (d !== null) problems.push(`${d}: ${JSON.stringify(m).slice(0, 200)}`);
  }
  t.same(problems, [], `${checked} lines compared`);
  // Values come back as strings of their own, equal to JSON.parse's, and cached ones are reused.
  const line = Buffer.from('{"user-agent":"Yealink SIP-T46S 66.86.0.15","call-id":"abcdefghijklmnopqrstuvwxyz"}');
  const a = ex.extract(line)!;
  const b = ex.extract(line)!;
  t.equal(a['user-agent'], 'Yealink SIP-T46S 66.86.0.15');
  t.equal(a['user-agent'], b['user-agent']);
  t.equal(a['Event-Name'], undefined);
});

/** The reader this replaced (readline + JSON.parse + normalizeEvent), as the reference. */
async function reference(bytes: Buffer): Promise<TraceRecord[]> {
  const out: TraceRecord[] = [];
  const lines = createInterface({ input: Readable.from([bytes]), crlfDelay: Infinity });
  const opts = { profiles: null, switchMemo: new SwitchAddressMemo() };
  let index = 0;
  let line = 0;
  for await (const text of lines) {
    line++;
    if (text.length === 0 || text.trim().length === 0) continue;
    const i = index++;
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (err) {
      out.push({ kind: 'malformed', index: i, line, detail: `not JSON: ${err instanceof Error ? err.message : String(err)}`.slice(0, 200) });
      continue;
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      out.push({ kind: 'malformed', index: i, line, detail: 'not a JSON object' });
      continue;
    }
    const r = normalizeEvent(body, opts);
    out.push(r.ok ? { kind: 'event', index: i, line, event: r.event } : { kind: 'dropped', index: i, line, reason: r.reason, detail: r.detail });
  }
  return out;
}

function decode(bytes: Buffer, chunkSizes: () => number, scanner: 'wasm' | 'javascript'): TraceRecord[] {
  const out: TraceRecord[] = [];
  const visitor: TraceVisitor = {
    event: (event, index, line) => { out.push({ kind: 'event', index, line, event }); },
    dropped: (reason, detail, index, line) => { out.push({ kind: 'dropped', index, line, reason, detail }); },
    malformed: (detail, index, line) => { out.push({ kind: 'malformed', index, line, detail }); },
  };
  const d = new TraceDecoder({ profiles: null, scanner });
  if (d.scanner !== scanner) throw new Error(`asked for the ${scanner} scanner, got ${d.scanner}`);
  for (let at = 0; at < bytes.length;) {
    const n = Math.max(1, chunkSizes());
    d.feed(bytes.subarray(at, at + n), visitor);
    at += n;
  }
  d.finish(visitor);
  return out;
}

t.test('TraceDecoder = readline + JSON.parse, whatever the line ends, blanks, bytes and chunks', async (t) => {
  const random = rng(0xdec0de);
  const good = variantLines().slice(0, 400);
  const ends = ['\n', '\r\n', '\r', '\n\n', '\r\r\n', '\n  \n', '\n\t\n', '\n\u00a0\n', '\n\ufeff\n'];
  const oddLines = ['{"Event-Name":"CUSTOM","Event-Subclass":"sofia::pre_register","realm":"é"}', 'not json', '[1,2]', '{"a":"b\tc"}', '\ufeff{}',
    Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xe2, 0x82, 0x22, 0x7d]).toString('latin1'), '{"user-agent":"\u0000"}', '   {}   ', '"x"'];
  for (let round = 0; round < 12; round++) {
    const parts: Buffer[] = [];
    for (let k = 0; k < 300; k++) {
      const text = random() < 0.85 ? good[Math.floor(random() * good.length)]! : oddLines[Math.floor(random() * oddLines.length)]!;
      // Most lines as UTF-8; the raw-byte line as its bytes (invalid UTF-8).
      parts.push(text === oddLines[5] ? Buffer.from(text, 'latin1') : Buffer.from(text, 'utf8'));
      parts.push(Buffer.from(ends[Math.floor(random() * ends.length)]!, 'utf8'));
    }
    if (round % 3 === 0) parts.push(Buffer.from(good[0]!)); // no final line end
    if (round % 3 === 1) parts.push(Buffer.from('{"realm":"x"}\r'));
    const bytes = Buffer.concat(parts);
    const want = await reference(bytes);
    const sizes = [() => 1 << 20, () => 1 + Math.floor(random() * 7), () => 1 + Math.floor(random() * 4096), () => 997];
    for (const scanner of ['wasm', 'javascript'] as const) {
      for (const size of sizes) {
        const got = decode(bytes, size, scanner);
        const diff = firstDifference(got, want);
        if (diff !== null) {
          t.fail(`round ${round}, ${scanner} scanner: ${diff}`);
          return;
        }
      }
    }
  }
  t.pass('same records for every chunking, with either scanner');
});

function firstDifference(got: readonly TraceRecord[], want: readonly TraceRecord[]): string | null {
  const a = got.map((r) => JSON.stringify(r));
  const b = want.map((r) => JSON.stringify(r));
  const i = a.findIndex((r, k) => r !== b[k]);
  if (i >= 0) return `record ${i} differs: ${a[i]?.slice(0, 300)} vs ${b[i]?.slice(0, 300)}`;
  if (a.length !== b.length) return `${a.length} records instead of ${b.length}`;
  return null;
}

/** Trace lines mutated at random (escapes, control bytes, non-ASCII, long values), as one file's bytes. */
function mutatedTrace(seed: number, rounds: number): { bytes: Buffer; lines: number } {
  const base = [...sharedLines().slice(0, 200), ...variantLines().slice(0, 200)];
  const random = rng(seed);
  const pieces = ['"', '\\', '\\"', '\\\\', '\\u0041', '\\u00e9', '\\x', '\\u12', '\\n', '{', '}', ':', ',', ' ', '\t', '\u0000', '\u007f', 'é',
    '"network-ip":"203.0.113.9",', '"network\\u002dip":"203.0.113.9",', '"user-agent":1,', '"Event-Name":"CUSTOM",', ',"call-id":"dup"', '"":"",',
    '"realm":"' + 'r'.repeat(300) + '",', '"to-user":"' + 'u'.repeat(255) + '",', '"username":"' + 'n'.repeat(257) + '",'];
  const lines: string[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const line of base) {
      lines.push(random() < 0.7 ? mutateLine(line, random, pieces, false) : line);
    }
  }
  lines.push(`{"Event-Name":"CUSTOM","Event-Subclass":"sofia::pre_register","profile-name":"internal","network-ip":"203.0.113.5","Event-Date-Timestamp":"1893456000000000","user-agent":"${'x'.repeat(70000)}"}`);
  return { bytes: Buffer.from(`${lines.join('\n')}\n`, 'utf8'), lines: lines.length };
}

t.test('wasm line scanner = JavaScript extractor on mutated and hostile lines, and on long lines', async (t) => {
  // The wasm scanner's JSON reading, key matching and value interning against the JavaScript
  // extractor (itself held to JSON.parse above), over lines mutated at random; values repeat
  // across lines so interned values are reused, and pool entries are overwritten by colliding ones.
  const random = rng(0x5ca9);
  const { bytes, lines } = mutatedTrace(0x5ca9, 25);
  const sizes = [() => 1 << 20, () => 1 + Math.floor(random() * 300), () => 65536];
  const want = decode(bytes, sizes[0]!, 'javascript');
  t.ok(want.filter((r) => r.kind === 'event').length > lines / 4, 'many lines are events');
  for (const size of sizes) {
    t.equal(firstDifference(decode(bytes, size, 'wasm'), want), null, `${lines} lines, same records`);
  }
});

/** Every record scanTrace gives for a file. */
async function scanFile(path: string, options: Omit<ReadTraceOptions, 'profiles'>): Promise<TraceRecord[]> {
  const out: TraceRecord[] = [];
  const visitor: TraceVisitor = {
    event: (event, index, line) => { out.push({ kind: 'event', index, line, event }); },
    dropped: (reason, detail, index, line) => { out.push({ kind: 'dropped', index, line, reason, detail }); },
    malformed: (detail, index, line) => { out.push({ kind: 'malformed', index, line, detail }); },
  };
  const n = await scanTrace(path, { profiles: null, ...options }, visitor);
  if (n !== out.length) throw new Error(`scanTrace counted ${n} records and gave ${out.length}`);
  return out;
}

t.test('scanTrace on a scanning thread = on one thread, plain and gzip, with lines longer than a slot', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fsguard-scan-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { bytes } = mutatedTrace(0x7e4d, 12);
  // A line of 5 MB (more than a slot holds) between ordinary ones, and no final line feed.
  const huge = `{"Event-Name":"CUSTOM","Event-Subclass":"sofia::pre_register","profile-name":"internal","network-ip":"203.0.113.7","Event-Date-Timestamp":"1893456000000001","user-agent":"${'y'.repeat(5 << 20)}"}`;
  const all = Buffer.concat([bytes, Buffer.from(`${huge}\n`), bytes, Buffer.from(variantLines()[0]!)]);
  const plain = join(dir, 'trace.jsonl');
  writeFileSync(plain, all);
  const gz = join(dir, 'trace.jsonl.gz');
  writeFileSync(gz, gzipSync(all));
  const want = await scanFile(plain, { scanner: 'javascript' });
  t.ok(want.length > 9000, `${want.length} records`);
  t.ok(want.some((r) => r.kind === 'event' && r.event.source.text === '203.0.113.7'), 'the 5 MB line is an event');
  t.equal(firstDifference(await scanFile(plain, { thread: true }), want), null, 'plain file, scanning thread');
  t.equal(firstDifference(await scanFile(gz, { thread: true }), want), null, 'gzip file, scanning thread');
  t.equal(firstDifference(await scanFile(plain, { thread: false, scanner: 'wasm' }), want), null, 'plain file, wasm on this thread');
  t.equal(firstDifference(await scanFile(gz, { thread: false, scanner: 'wasm', firstIndex: 0 }), want), null, 'gzip file, wasm on this thread');
});

t.test('scanTrace on a scanning thread reports read errors with the path', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fsguard-scan-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const visitor: TraceVisitor = { event: () => undefined, dropped: () => undefined, malformed: () => undefined };
  // A gzip stream cut in the middle: the first lines arrive, then the inflate error.
  const cut = join(dir, 'cut.jsonl.gz');
  const whole = gzipSync(Buffer.from(`${variantLines().join('\n')}\n`));
  writeFileSync(cut, whole.subarray(0, Math.floor(whole.length / 2)));
  await t.rejects(scanTrace(cut, { profiles: null, thread: true }, visitor), /cut\.jsonl\.gz: unexpected end of file/);
  await t.rejects(scanTrace(join(dir, 'missing.jsonl'), { profiles: null, thread: true }, visitor), /ENOENT/);
});

t.test('WasmBodyReader = EventJsonExtractor on ESL bodies, mutated and hostile, line feeds inside included', async (t) => {
  // The daemon reads each frame's body with it: the same answer as the extractor (declines
  // included), and after a body it declined for a line feed inside, repeated values are still right.
  const module = loadLineScannerModule();
  if (module instanceof Error) throw module;
  const reader = new WasmBodyReader(module);
  const extractor = new EventJsonExtractor();
  const { bytes } = mutatedTrace(0xb0d7, 6);
  const bodies = bytes.toString('utf8').split('\n').filter((l) => l.length > 0);
  const random = rng(0xb0d7);
  const problems: string[] = [];
  const preparsed = new PreparsedEvent();
  // A profile filter, so "not watched" drops are compared too.
  const options = { profiles: new Set(['internal']), switchMemo: new SwitchAddressMemo() };
  let taken = 0;
  let fast = 0;
  for (let i = 0; i < bodies.length; i++) {
    let body = bodies[i]!;
    // Some bodies get a line feed inside (between two copies of a line: two lines to the scanner).
    if (random() < 0.05) body = `${body}\n${bodies[(i + 1) % bodies.length]}`;
    const buf = Buffer.from(body, 'utf8');
    const got = reader.read(buf, preparsed);
    const want = extractor.extract(buf);
    if (got !== null) taken++;
    if (got === preparsed) {
      // A regular auth event: the event (or drop) must be what normalizeEvent makes of the headers.
      fast++;
      const a = JSON.stringify(normalizePreparsed(preparsed, options));
      const b = want === null ? 'null headers' : JSON.stringify(normalizeEvent(want, options));
      if (a !== b && problems.length < 5) problems.push(`${a.slice(0, 150)} vs ${b.slice(0, 150)}: ${JSON.stringify(body).slice(0, 150)}`);
    } else if (JSON.stringify(got) !== JSON.stringify(want) && problems.length < 5) {
      problems.push(`${JSON.stringify(got)?.slice(0, 150)} vs ${JSON.stringify(want)?.slice(0, 150)}: ${JSON.stringify(body).slice(0, 150)}`);
    }
  }
  t.same(problems, [], `${bodies.length} bodies`);
  t.ok(taken > bodies.length / 4, `${taken} read without JSON.parse`);
  t.ok(fast > bodies.length / 5, `${fast} regular auth events made without a headers object`);
});
