// Traces carry call events: `fsguard policy simulate` and `explain` (the real CLI, a child
// process) replay the captured calls as the daemon judges them, both trace readers give the
// same records for them, and `fsguard policy` describes the call rules.
import t from 'tap';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { scanTrace, type TraceRecord, type TraceVisitor } from '../lib/trace/read-trace.js';
import { fsguardCli } from './support/daemon-process.js';
import { captureEventBodies } from './support/esl-test-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'fsguard-calls-'));
// Every event of the capture, CHANNEL_CREATE to DESTROY, as `event json` trace lines.
const lines = captureEventBodies('esl_json_CHANNEL_calls.raw');
const trace = join(dir, 'calls.jsonl');
writeFileSync(trace, `${lines.join('\n')}\n`);
const gz = join(dir, 'calls.jsonl.gz');
writeFileSync(gz, gzipSync(`${lines.join('\n')}\n`));

async function records(path: string, thread: boolean): Promise<TraceRecord[]> {
  const out: TraceRecord[] = [];
  const v: TraceVisitor = {
    event: (event, index, line) => { out.push({ kind: 'event', index, line, event }); },
    call: (event, index, line) => { out.push({ kind: 'call', index, line, event }); },
    dropped: (reason, detail, index, line) => { out.push({ kind: 'dropped', index, line, reason, detail }); },
    malformed: (detail, index, line) => { out.push({ kind: 'malformed', index, line, detail }); },
  };
  await scanTrace(path, { profiles: null, thread }, v);
  return out;
}

t.test('one call record per CHANNEL_HANGUP_COMPLETE, the rest dropped; the same on a scanning thread', async (t) => {
  const js = await records(trace, false);
  t.same(await records(trace, true), js);
  t.same(await records(gz, true), js);
  t.equal(js.filter((r) => r.kind === 'call').length, 10);
  t.equal(js.filter((r) => r.kind === 'event').length, 8);
  t.equal(js.filter((r) => r.kind === 'dropped' && r.reason === 'call_refused_at_auth').length, 2);
  t.same(js.filter((r) => r.kind === 'call').map((r) => (r as { event: { destination: string } }).event.destination).slice(1, 3), ['9011441234567', '+442071234567']);
});

t.test('policy simulate bans the scanners of the capture, not the carrier', async (t) => {
  for (const path of [trace, gz]) {
    const r = await fsguardCli(['policy', 'simulate', path, '--json']);
    t.equal(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as { events: number; bans: Array<{ target: string; rule: string; event_index: number }>; dropped: Record<string, number> };
    t.equal(doc.events, 56);
    t.same(doc.bans.map((b) => `${b.target} ${b.rule}`), [
      '203.0.113.70 call_scanner_user_agent',
      '203.0.113.71 call_probing_international',
      '203.0.113.72 scanner_user_agent',
    ]);
    t.equal(doc.bans[1]!.event_index, 14, 'at b\'s third HANGUP_COMPLETE');
    t.equal(doc.dropped.call_refused_at_auth, 2);
  }
});

t.test('policy explain walks a prober\'s calls', async (t) => {
  const r = await fsguardCli(['policy', 'explain', '203.0.113.71', '--trace', trace]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /call to "9011441234567" in public unrouted \(NO_ROUTE_DESTINATION\) unauthenticated/);
  t.match(r.stdout, /counted toward: .*call_probing_international 1\/3/);
  t.match(r.stdout, /BANNED: 203\.0\.113\.71 .* by call_probing_international/);
  const c = await fsguardCli(['policy', 'explain', '198.51.100.40', '--trace', trace, '--json']);
  const doc = JSON.parse(c.stdout) as { verdict: string[]; final: { rules: Array<{ rule: string; value: number; threshold: number }> } };
  t.match(doc.verdict[0], /^NOT BANNED/);
  t.match(doc.final.rules.find((x) => x.rule === 'call_probing'), { value: 1, threshold: 5 }, 'the carrier\'s one misdial');
});

t.test('fsguard policy describes the call rules and their knobs', async (t) => {
  const r = await fsguardCli(['policy']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /call_probing_international\s+3 distinct international\/premium numbers/);
  t.match(r.stdout, /toll_fraud: an authenticated account/);
  const j = await fsguardCli(['policy', '--json']);
  t.match(j.stdout, /"tollFraudBan"/);
});
