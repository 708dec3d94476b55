// The event reader on the hot path (the wasm line scanner, lib/events/line-scanner.ts) against
// its reference, JSON.parse + normalizeEvent (normalizeCallEvent for a finished call): a
// differential fuzz test, seeded and reproducible (FSGUARD_FUZZ_SEED=<n> replays a run; every
// failure names its seed). The reader must give exactly the reference's event or drop for a
// body it takes, and leave the rest to JSON.parse;
// TraceDecoder (scanner + JSON.parse) must give exactly the records readline + JSON.parse +
// normalizeEvent give, whatever the line ends, blank lines, bytes and chunking, on one thread or
// with a scanning thread.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { loadLineScannerModule, WasmBodyReader } from '../lib/events/line-scanner.js';
import { readSequence } from '../lib/esl/event-sequence.js';
import { normalizeEvent, normalizePreparsed, PreparsedEvent, SwitchAddressMemo, type NormalizeOptions } from '../lib/events/normalize.js';
import { CALL_EVENT_NAME, normalizeCallEvent, normalizeCallValues, type CallNormalizeResult } from '../lib/events/call-event.js';
import type { NormalizeResult } from '../lib/events/auth-event.js';
import { scanTrace, TraceDecoder, type ReadTraceOptions, type TraceRecord, type TraceVisitor } from '../lib/trace/read-trace.js';
import { captureEventBodies, ESL_CAPTURES } from './support/esl-test-helpers.js';
import { bruteForce, credentialScan, extensionScan, ipv6Rotation, ODD_AGENTS, rng, site, TraceBuilder } from './support/policy-traces.js';

const SCENARIOS = new URL('../../../shared/scenarios/', import.meta.url).pathname;
/** The run's seed: each test derives its own from it. */
const SEED = Number(process.env.FSGUARD_FUZZ_SEED ?? 0x5eed) >>> 0;
const seedOf = (salt: number): number => (SEED ^ Math.imul(salt, 0x9e3779b1)) >>> 0;
const replay = `(seed ${SEED}: FSGUARD_FUZZ_SEED=${SEED} replays it)`;

function wasmModule(): WebAssembly.Module {
  const module = loadLineScannerModule();
  if (module instanceof Error) throw module;
  return module;
}

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

/** The reference: what the daemon and simulate made of a body before any fast reader. */
function referenceResult(body: Buffer, options: NormalizeOptions): NormalizeResult | CallNormalizeResult | 'not JSON' {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return 'not JSON';
  }
  const name = typeof parsed === 'object' && parsed !== null ? (parsed as { 'Event-Name'?: unknown })['Event-Name'] : undefined;
  return name === CALL_EVENT_NAME ? normalizeCallEvent(parsed, options) : normalizeEvent(parsed, options);
}

/**
 * Reads each body with `reader`: null when it agrees with the reference everywhere it took a
 * body (or declined), else the first difference. Also counts the bodies it took.
 */
function compareBodies(reader: WasmBodyReader, bodies: readonly Buffer[]): { problems: string[]; taken: number; calls: number; sequenced: number } {
  const p = new PreparsedEvent();
  // A profile filter, so "not watched" drops are compared too.
  const mine: NormalizeOptions = { profiles: new Set(['internal']), switchMemo: new SwitchAddressMemo() };
  const theirs: NormalizeOptions = { profiles: new Set(['internal']), switchMemo: new SwitchAddressMemo() };
  const problems: string[] = [];
  let taken = 0;
  let calls = 0;
  let sequenced = 0;
  for (const body of bodies) {
    const want = referenceResult(body, theirs);
    const read = reader.read(body, p);
    // The Event-Sequence the reader took is JSON.parse's (a repeated key: the last), read as the
    // gap tracker reads it (1-16 digits); on a body without repeated keys, what readSequence finds.
    if (reader.sequence >= 0) {
      sequenced++;
      const o = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
      const num = (v: unknown): number => (typeof v === 'string' && /^\d{1,16}$/.test(v) ? Number(v) : -1);
      const ts = num(o['Event-Date-Timestamp']);
      if ((num(o['Event-Sequence']) !== reader.sequence || (ts < 0 ? 0 : ts) !== reader.sequenceTimeUs) && problems.length < 5) {
        problems.push(`Event-Sequence ${reader.sequence} at ${reader.sequenceTimeUs}: ${JSON.stringify(body.toString('utf8')).slice(0, 200)}`);
      }
      const ref = readSequence(body, true);
      if (!/"Event-Sequence":[\s\S]*"Event-Sequence":/.test(body.toString('latin1')) && ref?.seq !== reader.sequence && problems.length < 5) {
        problems.push(`Event-Sequence ${reader.sequence}, readSequence ${JSON.stringify(ref)}: ${JSON.stringify(body.toString('utf8')).slice(0, 200)}`);
      }
    }
    if (read === 'other') continue;
    taken++;
    if (read === 'call') calls++;
    const got = JSON.stringify(read === 'auth' ? normalizePreparsed(p, mine) : normalizeCallValues(reader.callValues, mine));
    if (got !== JSON.stringify(want) && problems.length < 5) {
      problems.push(`${got.slice(0, 160)} instead of ${JSON.stringify(want).slice(0, 160)}: ${JSON.stringify(body.toString('utf8')).slice(0, 200)}`);
    }
  }
  return { problems, taken, calls, sequenced };
}

t.test('the reader takes the shared traces and generated variants without JSON.parse, with its answers', async (t) => {
  const lines = [...sharedLines(), ...variantLines()];
  t.ok(lines.length > 1000, `${lines.length} lines`);
  const { problems, taken, sequenced } = compareBodies(new WasmBodyReader(wasmModule()), lines.map((l) => Buffer.from(l)));
  t.same(problems, []);
  t.ok(sequenced > lines.length / 2, `Event-Sequence read by the reader for ${sequenced}`);
  // Every regular auth event takes the fast path: a reader that declined everything would
  // agree with the reference trivially and pay for nothing.
  t.ok(taken >= lines.length * 0.95, `fast path for ${taken} of ${lines.length}`);
});

t.test('finished calls (CHANNEL_HANGUP_COMPLETE, several KB) are read without JSON.parse, with its answers', { skip: existsSync(ESL_CAPTURES) ? false : 'no shared captures' }, async (t) => {
  const bodies = captureEventBodies('esl_json_CHANNEL_calls.raw').map((b) => Buffer.from(b, 'utf8'));
  const hangups = bodies.filter((b) => b.includes(`"Event-Name":"${CALL_EVENT_NAME}"`));
  t.ok(hangups.length >= 10, `${hangups.length} hangup events`);
  t.ok(hangups.some((b) => b.length > 4000), 'bodies of several KB among them');
  t.ok(hangups.some((b) => b.includes('"variable_DP_MATCH":[')), 'and arrays of strings among their values');
  const { problems, taken, calls } = compareBodies(new WasmBodyReader(wasmModule()), bodies);
  t.same(problems, []);
  t.equal(calls, hangups.length, 'every hangup read by the reader');
  // The other channel events (CREATE, ANSWER, DESTROY…) are JSON.parse's; the auth events of the capture are the reader's.
  t.ok(taken - calls >= bodies.filter((b) => b.includes('"Event-Name":"CUSTOM"')).length - 2, `${taken - calls} auth events read without JSON.parse`);
});

/** Pieces the call mutator inserts: syntax, escapes, controls, arrays, and wanted call keys twice. */
const CALL_PIECES = ['"', '\\', '\n', '\u0001', '{', '}', ',', ':', 'x', '\\u00e9', '\\"', ' ', '[', ']', '["a"]', '[]', '["a",]', '[1]',
  '\u0001', 'é', ',"Hangup-Cause":"NORMAL_CLEARING"', ',"Caller-Network-Addr":"203.0.113.7"', ',"Caller-Network-Addr":["203.0.113.7"]',
  ',"variable_sip_authorized":"true"', ',"Call-Direction":"outbound"', ',"Event-Name":"CUSTOM"', ',"variable_sip_user_agent":"a\\"b"'];

t.test(`differential fuzz: reader = JSON.parse + normalizeCallEvent on mutated call bodies ${replay}`, { skip: existsSync(ESL_CAPTURES) ? false : 'no shared captures' }, async (t) => {
  const hangups = captureEventBodies('esl_json_CHANNEL_calls.raw').filter((b) => b.includes(`"Event-Name":"${CALL_EVENT_NAME}"`));
  const random = rng(seedOf(2));
  const bodies: Buffer[] = [];
  for (let k = 0; k < 3000; k++) bodies.push(Buffer.from(mutateLine(hangups[k % hangups.length]!, random, CALL_PIECES, false), 'utf8'));
  const { problems, calls } = compareBodies(new WasmBodyReader(wasmModule()), bodies);
  t.same(problems, [], `${bodies.length} mutated call bodies compared`);
  // Most edits break the JSON; of the bodies that stay JSON, the reader takes most (78-82 %
  // over seeds: an edit inside a wanted value, an escape or an array there, is JSON.parse's).
  const parsed = bodies.filter((b) => { try { JSON.parse(b.toString('utf8')); return true; } catch { return false; } }).length;
  t.ok(calls >= parsed * 0.7, `${calls} of the ${parsed} still JSON read without JSON.parse`);
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

/** Pieces the mutator inserts: JSON syntax, escapes, control bytes, non-ASCII, wanted keys, long values. */
const PIECES = ['"', '\\', '\\"', '\\\\', '\\u0041', '\\u00e9', '\\x', '\\u12', '\\n', '\\/', '{', '}', ':', ',', ' ', '\t', '\n', '\r',
  '\u0000', '\u001f', '\u007f', 'é', '\u2028', '\ud83d\ude00', 'null', '1', 'true', '[]', '{}', '"network-ip":"203.0.113.9",',
  '"network\\u002dip":"203.0.113.9",', '"user-agent":1,', '"Event-Name":"CUSTOM",', ',"call-id":"dup"', '"":"",', '  ',
  '"auth-result":"RENEWED",', '"auth-result":"renewed",', '"Event-Subclass":"sofia::register_failure",', '"registration-type":"INVITE",',
  '"Event-Date-Timestamp":"99999999999999999",', '"network-port":"65536",', '"expires":"0",', '"profile-name":"external",',
  '"realm":"' + 'r'.repeat(300) + '",', '"to-user":"' + 'u'.repeat(256) + '",', '"username":"' + 'n'.repeat(257) + '",'];

t.test(`differential fuzz: reader = JSON.parse + normalizeEvent on mutated and hostile bodies ${replay}`, async (t) => {
  const base = [...sharedLines().slice(0, 300), ...variantLines().slice(0, 300)];
  const random = rng(seedOf(1));
  const bodies: Buffer[] = [];
  for (let round = 0; round < 40; round++) {
    for (const line of base) bodies.push(Buffer.from(mutateLine(line, random, PIECES, true), 'utf8'));
  }
  // Hand-written edge cases.
  const ev = '"Event-Name":"CUSTOM","Event-Subclass":"sofia::register_attempt","profile-name":"internal","network-ip":"203.0.113.9","Event-Date-Timestamp":"1893456000000000"';
  const edge = ['{}', ' { } ', '{"Event-Name":"CUSTOM"}', '{"Event-Name":"CUSTOM","Event-Name":"HEARTBEAT"}', `{${ev},"auth-result":"SUCCESS"}`,
    `{${ev},"auth-result":"SUCCESS","auth-result":"FORBIDDEN"}`, `{${ev},"auth-result":"SUCCES"}`, `{${ev},"auth-result":"SUCCESS "}`,
    `{${ev},"auth-result":"STALE","username":"unknown"}`, `{${ev},"auth-result":"RENEWED","user-agent":"x\\"y"}`, `{${ev},"auth-result":"RENEWED","user-agent":"a\\\\"}`,
    `{${ev},"auth-result":"RENEWED","network-ip":"::ffff:203.0.113.9"}`, `{${ev},"auth-result":"RENEWED","network-ip":"203.0.113.256"}`,
    `{${ev},"auth-result":"RENEWED","Event-Date-Timestamp":"9007199254740993"}`, `{${ev},"auth-result":"RENEWED","Event-Date-Timestamp":"0"}`,
    `{${ev},"auth-result":"RENEWED","profile-name":""}`, `{${ev},"auth-result":"RENEWED","profile-name":"external"}`,
    '{"a":"\\u00zz"}', '{"a":"x"} x', '{"a":"x"', '{"a":"x",}', '{"a" : "x" , "realm" : "r" }', '{"realm":"' + 'r'.repeat(5000) + '"}', '[]', '"x"',
    '{"realm":null}', '{"realm":["a"]}', '{"__proto__":"x","realm":"y"}', '\ufeff{"realm":"r"}', '{"realm":"é"}', '{"realm":"a\u007fb"}',
    // FreeSWITCH's compact form broken part-way (the scanner's short path hands over to its general one).
    `{${ev},"auth-result":"RENEWED", "realm":"r"}`, `{${ev},"auth-result":"RENEWED","realm" :"r"}`, `{${ev},"auth-result":"RENEWED","realm": "r"}`,
    `{${ev},"auth-result":"RENEWED","x":["a"],"realm":"r"}`, `{${ev},"auth-result":"RENEWED","re\\u0061lm":"r"}`, `{${ev},"auth-result":"RENEWED"} `,
    `{${ev},"auth-result":"RENEWED","user-agent":"a\\"","realm":"r"}`, `{${ev},"auth-result":"RENEWED","contact":"\\"1000\\" <sip:1000@x>","realm":"r"}`,
    `{${ev},"auth-result":"RENEWED","realm":"r"}}`, `{${ev},"auth-result":"RENEWED","realm":"r",}`, `{${ev},"auth-result":"RENEWED","realm":"r""}`];
  for (const m of edge) bodies.push(Buffer.from(m, 'utf8'));
  // Some bodies get a line feed inside (two lines to the scanner): JSON.parse decides, and the
  // values the scanner interned meanwhile must not leak into the next bodies' answers.
  for (let i = 0; i < 400; i++) {
    const x = base[Math.floor(random() * base.length)]!;
    bodies.splice(Math.floor(random() * bodies.length), 0, Buffer.from(`${x}\n${base[Math.floor(random() * base.length)]!}`));
  }
  const { problems, taken } = compareBodies(new WasmBodyReader(wasmModule()), bodies);
  t.same(problems, [], `${bodies.length} bodies compared`);
  t.ok(taken > bodies.length / 10, `${taken} of them read without JSON.parse`);
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

function collector(out: TraceRecord[]): TraceVisitor {
  return {
    event: (event, index, line) => { out.push({ kind: 'event', index, line, event }); },
    dropped: (reason, detail, index, line) => { out.push({ kind: 'dropped', index, line, reason, detail }); },
    malformed: (detail, index, line) => { out.push({ kind: 'malformed', index, line, detail }); },
  };
}

function decode(bytes: Buffer, chunkSizes: () => number): TraceRecord[] {
  const out: TraceRecord[] = [];
  const visitor = collector(out);
  const d = new TraceDecoder({ profiles: null });
  for (let at = 0; at < bytes.length;) {
    const n = Math.max(1, chunkSizes());
    d.feed(bytes.subarray(at, at + n), visitor);
    at += n;
  }
  d.finish(visitor);
  return out;
}

function firstDifference(got: readonly TraceRecord[], want: readonly TraceRecord[]): string | null {
  const a = got.map((r) => JSON.stringify(r));
  const b = want.map((r) => JSON.stringify(r));
  const i = a.findIndex((r, k) => r !== b[k]);
  if (i >= 0) return `record ${i} differs: ${a[i]?.slice(0, 300)} vs ${b[i]?.slice(0, 300)}`;
  if (a.length !== b.length) return `${a.length} records instead of ${b.length}`;
  return null;
}

t.test(`differential fuzz: TraceDecoder = readline + JSON.parse, whatever the line ends, blanks, bytes and chunks ${replay}`, async (t) => {
  const random = rng(seedOf(2));
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
    for (const size of sizes) {
      const diff = firstDifference(decode(bytes, size), want);
      if (diff !== null) {
        t.fail(`round ${round}: ${diff}`);
        return;
      }
    }
  }
  t.pass('same records for every chunking');
});

/** Trace lines mutated at random (escapes, control bytes, non-ASCII, long values), as one file's bytes. */
function mutatedTrace(seed: number, rounds: number): { bytes: Buffer; lines: number } {
  const base = [...sharedLines().slice(0, 200), ...variantLines().slice(0, 200)];
  const random = rng(seed);
  const pieces = PIECES.filter((p) => p !== '\n' && p !== '\r');
  const lines: string[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const line of base) {
      lines.push(random() < 0.7 ? mutateLine(line, random, pieces, false) : line);
    }
  }
  lines.push(`{"Event-Name":"CUSTOM","Event-Subclass":"sofia::pre_register","profile-name":"internal","network-ip":"203.0.113.5","Event-Date-Timestamp":"1893456000000000","user-agent":"${'x'.repeat(70000)}"}`);
  return { bytes: Buffer.from(`${lines.join('\n')}\n`, 'utf8'), lines: lines.length };
}

t.test(`differential fuzz: TraceDecoder = readline + JSON.parse on mutated traces, repeated values and long lines ${replay}`, async (t) => {
  // Values repeat across lines, so interned values are reused and pool entries are overwritten
  // by colliding ones.
  const random = rng(seedOf(3));
  const { bytes, lines } = mutatedTrace(seedOf(4), 25);
  const want = await reference(bytes);
  t.ok(want.filter((r) => r.kind === 'event').length > lines / 4, 'many lines are events');
  for (const size of [() => 1 << 20, () => 1 + Math.floor(random() * 300), () => 65536]) {
    t.equal(firstDifference(decode(bytes, size), want), null, `${lines} lines, same records`);
  }
});

/** Every record scanTrace gives for a file. */
async function scanFile(path: string, options: Omit<ReadTraceOptions, 'profiles'>): Promise<TraceRecord[]> {
  const out: TraceRecord[] = [];
  const n = await scanTrace(path, { profiles: null, ...options }, collector(out));
  if (n !== out.length) throw new Error(`scanTrace counted ${n} records and gave ${out.length}`);
  return out;
}

t.test(`scanTrace on a scanning thread = on one thread = the reference, plain and gzip, with lines longer than a slot ${replay}`, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fsguard-scan-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { bytes } = mutatedTrace(seedOf(5), 12);
  // A line of 5 MB (more than a slot holds) between ordinary ones, and no final line feed.
  const huge = `{"Event-Name":"CUSTOM","Event-Subclass":"sofia::pre_register","profile-name":"internal","network-ip":"203.0.113.7","Event-Date-Timestamp":"1893456000000001","user-agent":"${'y'.repeat(5 << 20)}"}`;
  const all = Buffer.concat([bytes, Buffer.from(`${huge}\n`), bytes, Buffer.from(variantLines()[0]!)]);
  const plain = join(dir, 'trace.jsonl');
  writeFileSync(plain, all);
  const gz = join(dir, 'trace.jsonl.gz');
  writeFileSync(gz, gzipSync(all));
  const want = await reference(all);
  t.ok(want.length > 9000, `${want.length} records`);
  t.ok(want.some((r) => r.kind === 'event' && r.event.source.text === '203.0.113.7'), 'the 5 MB line is an event');
  t.equal(firstDifference(await scanFile(plain, { thread: true }), want), null, 'plain file, scanning thread');
  t.equal(firstDifference(await scanFile(gz, { thread: true }), want), null, 'gzip file, scanning thread');
  t.equal(firstDifference(await scanFile(plain, { thread: false }), want), null, 'plain file, this thread');
  t.equal(firstDifference(await scanFile(gz, { thread: false }), want), null, 'gzip file, this thread');
});

t.test('a scan whose scanning thread dies is rejected with what it said, never a silent exit', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fsguard-scan-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const script = fileURLToPath(new URL('./support/scan-with-dying-worker.js', import.meta.url));
  for (const [name, said] of [['throws.jsonl', /throws\.jsonl: the scanning thread failed on purpose/], ['exits.jsonl', /exits\.jsonl: the scanning thread exited \(code 3\) before the end of the trace/]] as const) {
    const trace = join(dir, name);
    writeFileSync(trace, `${variantLines().join('\n')}\n`);
    const r = spawnSync(process.execPath, [script, trace], { encoding: 'utf8', timeout: 60_000 });
    t.equal(r.status, 1, `${name}: exit status 1 (stderr: ${r.stderr.slice(0, 300)})`);
    t.match(r.stdout, said, `${name}: the scan was rejected with the thread's reason`);
  }
});

t.test('scanTrace reports read errors with the path, on either thread', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fsguard-scan-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const visitor: TraceVisitor = { event: () => undefined, dropped: () => undefined, malformed: () => undefined };
  // A gzip stream cut in the middle: the first lines arrive, then the inflate error.
  const cut = join(dir, 'cut.jsonl.gz');
  const whole = gzipSync(Buffer.from(`${variantLines().join('\n')}\n`));
  writeFileSync(cut, whole.subarray(0, Math.floor(whole.length / 2)));
  for (const thread of [true, false]) {
    await t.rejects(scanTrace(cut, { profiles: null, thread }, visitor), /cut\.jsonl\.gz: unexpected end of file/);
    await t.rejects(scanTrace(join(dir, 'missing.jsonl'), { profiles: null, thread }, visitor), /missing\.jsonl: ENOENT/);
  }
});
