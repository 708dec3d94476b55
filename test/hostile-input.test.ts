// Attacker-controlled input through the real daemon (test event socket → fsguard run → real
// nft in the test namespace): hostile strings in every field the attacker writes, forged
// challenges from a registered site's address, and the addresses that must never be banned
// (allow-list, FreeSWITCH's own) whatever arrives from them.
import t from 'tap';
import { EslTestServer } from './support/esl-server.js';
import { fsguardCli, type LogLine } from './support/daemon-process.js';
import { netnsTestOptions } from './support/netns.js';
import { BAN_SETS, nftCli } from './support/nft-kernel.js';
import {
  allBannedKeys, elementIfAny, elementsIfAny, eventBody, rigConfig, startDaemon, waitFor, type EventSpec,
} from './support/fault-rig.js';

const OFFICE = '198.51.100.30';
const COMMENT = /^fsguard rule=[A-Za-z0-9_.:-]{1,48} n=\d{1,9}( note=[\x20-\x7e]*)?$/;
const HOSTILE = [
  'line1\nline2\r\n{"level":"error","msg":"forged entry"}',
  '\u001b[31mRED\u001b[0m\u001b]0;pwned\u0007\u001b[2J',
  'quote " single \' back \\ slash `tick` $(id) ; rm -rf / | nc x 1',
  'nul\u0000 del\u007f bidi\u202e\u2066 ls\u2028ps\u2029 lone\ud800 emoji🙂',
  `${'Z'.repeat(64 * 1024)}\n{"forged":true}`,
];

/** Brute force with answered failures: attempt FORBIDDEN + failure, many users. */
function bruteForce(ip: string, n: number, extra: Partial<EventSpec> = {}): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const user = String(2000 + i);
    const callId = `bf-${ip}-${i}`;
    out.push(eventBody({ ip, subclass: 'pre_register', user, callId, userAgent: 'Yealink SIP-T46S', ...extra }));
    out.push(eventBody({ ip, subclass: 'register_attempt', user, callId, authResult: 'FORBIDDEN', userAgent: 'Yealink SIP-T46S', ...extra }));
    out.push(eventBody({ ip, subclass: 'register_failure', user, userAgent: 'Yealink SIP-T46S', ...extra }));
  }
  return out;
}

function scanner(ip: string, n: number, extra: Partial<EventSpec> = {}): string[] {
  return Array.from({ length: n }, (_, i) => eventBody({ ip, userAgent: i % 2 ? 'friendly-scanner' : 'sipvicious', user: String(100 + i), callId: `sc-${ip}-${i}`, ...extra }));
}

t.test('hostile strings in user agent, users and call-id: one JSON line per log entry, sanitized nft comments', netnsTestOptions(), async (t) => {
  const server = await EslTestServer.start({ heartbeatIntervalMs: 1000, registrations: [{ user: '1001', realm: 'pbx.example.com', ip: OFFICE }] });
  t.teardown(() => server.close());
  const { table, config } = rigConfig(t, 'h_strings', server.port);
  const daemon = startDaemon(t, config);
  await server.waitForSubscriptions(1);
  await daemon.waitForLog('registrations', (l) => l.registrations === 1 && /live registrations loaded: their/.test(l.msg ?? ''));

  const events: string[] = [];
  HOSTILE.forEach((s, i) => {
    const ip = `10.44.0.${i + 1}`;
    // Scanner verdict with the hostile text as user agent suffix, users and call-id.
    events.push(eventBody({ ip, userAgent: `friendly-scanner ${s}`, user: s, callId: s }));
    // Brute force with hostile users / call-ids / user agent.
    for (let k = 0; k < 8; k++) {
      const user = `${s}${k}`;
      events.push(eventBody({ ip: `10.45.0.${i + 1}`, subclass: 'pre_register', user, callId: `${s}#${k}`, userAgent: s }));
      events.push(eventBody({ ip: `10.45.0.${i + 1}`, subclass: 'register_attempt', user, callId: `${s}#${k}`, authResult: 'FORBIDDEN', userAgent: s }));
      events.push(eventBody({ ip: `10.45.0.${i + 1}`, subclass: 'register_failure', user, userAgent: s }));
    }
  });
  // A misprovisioned phone at the registered office (one user, stale password): its alert
  // names the hostile user and user agent.
  const staleUser = `1001${HOSTILE.slice(0, 4).join('')}`;
  for (let k = 0; k < 4; k++) {
    events.push(eventBody({ ip: OFFICE, subclass: 'register_attempt', user: staleUser, callId: `mis-${k}`, authResult: 'FORBIDDEN', userAgent: HOSTILE[4] }));
    events.push(eventBody({ ip: OFFICE, subclass: 'register_failure', user: staleUser, userAgent: HOSTILE[4] }));
  }
  await server.replay(events);
  const targets = HOSTILE.flatMap((_, i) => [`10.44.0.${i + 1}`, `10.45.0.${i + 1}`]);
  await waitFor('every hostile source banned', () => targets.every((ip) => elementIfAny(table, 'banned4', ip)), 15_000);
  await daemon.waitForLog('an alert naming a hostile user', (l) => l.event === 'alert' && typeof l.user === 'string');
  // A plain scanner last: once its ban line is in, every line about the events before it is.
  const LAST = '10.46.0.99';
  await server.replay(scanner(LAST, 1));
  await daemon.waitForLog('the last scanner banned', (l) => l.event === 'ban' && l.target === LAST);

  t.same(daemon.strayStdout.slice(0, 3), [], 'every stdout line parsed as JSON (no line was broken or forged)');
  t.notOk(daemon.lines.some((l) => l.forged === true || l.msg === 'forged entry'), 'no forged log entry');
  const banLines = daemon.lines.filter((l) => l.event === 'ban');
  t.ok(banLines.length >= targets.length, `${banLines.length} ban lines`);
  const longest = Math.max(...daemon.lines.map((l) => JSON.stringify(l).length));
  t.ok(longest < 16 * 1024, `attacker text is truncated in logs: longest line ${longest} bytes`);
  const uaLogged = banLines.flatMap((l) => ((l.evidence as { userAgents?: string[] }).userAgents ?? []));
  t.ok(uaLogged.some((ua) => ua.includes('\u001b[31m')), 'hostile text is logged as data (escaped inside a JSON string), not dropped');
  t.ok(daemon.lines.some((l: LogLine) => l.event === 'alert' && String(l.user).includes('\n')), 'alerts carry the hostile user as a JSON string');

  for (const set of BAN_SETS) {
    for (const e of elementsIfAny(table, set)) t.match(e.comment ?? '', COMMENT, `comment of ${e.key} is fsguard's own format`);
  }
  // An operator's --reason is the only free text that reaches a comment: sanitized.
  // (argv cannot carry NUL bytes; everything else goes.)
  const ban = await fsguardCli(['ban', '10.46.0.1', '--reason', HOSTILE.join(' ').replace(/\u0000/g, ''), '--config', config]);
  t.equal(ban.status, 0, ban.stderr);
  const manual = elementIfAny(table, 'banned4', '10.46.0.1');
  t.match(manual?.comment ?? '', COMMENT, `manual comment sanitized: ${JSON.stringify(manual?.comment)}`);
  t.ok((manual?.comment ?? '').length <= 128, 'and short');
  // The text form of the set (what an admin reads) stays one element per line.
  const listing = nftCli(['list', 'set', 'inet', table, 'banned4']);
  t.notMatch(listing, /[\u0000-\u0008\u000b-\u001f\u007f]/, 'no control characters in nft list output');
  const bans = await fsguardCli(['bans', '--config', config]);
  // The ban by hand shows its --reason (the operator's text, as sanitized into the comment);
  // no other line shows text from the network.
  t.notMatch(bans.stdout, /[\u0000-\u0008\u000b-\u001f\u007f]/, 'fsguard bans prints no control characters');
  const lines = bans.stdout.split('\n');
  t.match(lines.find((l) => l.startsWith('10.46.0.1 ')) ?? '', /manual: line1\?line2/, 'the hand ban\'s reason, sanitized');
  t.same(lines.filter((l) => !l.startsWith('10.46.0.1 ') && /forged|pwned|RED/.test(l)), [], 'fsguard bans prints no attacker text');
  t.notOk(allBannedKeys(table).has(OFFICE), 'the office with the misprovisioned phone is not banned');
  t.ok(daemon.running);
});

t.test('forged challenges from a registered site\'s address never ban it', netnsTestOptions(), async (t) => {
  const registrations = Array.from({ length: 5 }, (_, i) => ({ user: String(1001 + i), realm: 'pbx.example.com', ip: OFFICE }));
  const server = await EslTestServer.start({ heartbeatIntervalMs: 1000, registrations });
  t.teardown(() => server.close());
  const { table, config } = rigConfig(t, 'h_forged', server.port);
  const daemon = startDaemon(t, config);
  await server.waitForSubscriptions(1);
  await daemon.waitForLog('registrations', (l) => l.registrations === 5 && /live registrations loaded: their/.test(l.msg ?? ''));
  // The same spray from the office (forged: UDP source spoofed) and from an unregistered
  // address (the control: the spray is ban-worthy by itself).
  const CONTROL = '10.47.0.1';
  // A second control: 12 challenges with a phone's user agent, too few for a flood, so only
  // their timing out unanswered can ban it. Challenges time out in the order they came: once it
  // is banned, the office's challenges (sent before) have timed out and been judged too.
  const TIMED = '10.47.0.2';
  const spray = [...scanner(OFFICE, 400), ...scanner(CONTROL, 400), ...scanner(TIMED, 12, { userAgent: 'Yealink SIP-T46S' })];
  await server.replay(spray, { eventsPerSecond: 400 });
  await waitFor('control banned', () => elementIfAny(table, 'banned4', CONTROL), 15_000);
  const timed = await daemon.waitForLog('the timed control banned', (l) => l.event === 'ban' && l.target === TIMED, 30_000);
  t.equal(timed.rule, 'unanswered_challenges', 'banned when its challenges timed out');
  t.notOk(elementIfAny(table, 'banned4', OFFICE), 'the registered office is not in the set');
  t.notOk(daemon.lines.some((l) => l.event === 'ban' && l.target === OFFICE), 'and no ban was decided for it');
  t.ok(daemon.lines.some((l) => l.target === CONTROL && l.event === 'ban'), 'the same spray bans an unregistered address');
});

t.test('the allow-list and FreeSWITCH\'s own addresses are never banned, whatever arrives', netnsTestOptions(), async (t) => {
  const server = await EslTestServer.start({ heartbeatIntervalMs: 1000 });
  t.teardown(() => server.close());
  const SWITCH6 = '2001:db8:5::10';
  const { table, config } = rigConfig(t, 'h_allow', server.port, {
    policy: { allow: ['127.0.0.0/8', '::1/128', '203.0.113.0/28'] },
  });
  const daemon = startDaemon(t, config);
  await server.waitForSubscriptions(1);
  const sw = { switchV4: '192.0.2.10', switchV6: SWITCH6 };
  const protectedSources = ['127.0.0.1', '127.9.9.9', '::1', '203.0.113.5', '192.0.2.10', SWITCH6];
  const events: string[] = [];
  for (const ip of protectedSources) events.push(...scanner(ip, 30, sw), ...bruteForce(ip, 30, sw));
  // Neighbours of the switch's IPv6 address spray scanners: hosts may be banned, never the
  // /64 that holds the switch.
  const neighbours = Array.from({ length: 40 }, (_, i) => `2001:db8:5::${(0x100 + i).toString(16)}`);
  for (const ip of neighbours) events.push(...scanner(ip, 3, sw));
  // Control: the same from ordinary addresses is banned.
  const controls = ['10.48.0.1', '10.48.0.2'];
  events.push(...scanner(controls[0]!, 30, sw), ...bruteForce(controls[1]!, 30, sw));
  // Last, a control only the timing out of its challenges can ban (see the forged-challenge
  // test above): once it is banned, every challenge before it was judged.
  const TIMED = '10.48.0.3';
  events.push(...scanner(TIMED, 12, { ...sw, userAgent: 'Yealink SIP-T46S' }));
  await server.replay(events, { eventsPerSecond: 2000 });
  await waitFor('controls banned', () => controls.every((ip) => elementIfAny(table, 'banned4', ip)), 15_000);
  const timed = await daemon.waitForLog('the timed control banned', (l) => l.event === 'ban' && l.target === TIMED, 30_000);
  t.equal(timed.rule, 'unanswered_challenges', 'banned when its challenges timed out');
  await waitFor('the timed control in the kernel', () => elementIfAny(table, 'banned4', TIMED), 15_000);
  const keys = allBannedKeys(table);
  t.same(protectedSources.filter((ip) => keys.has(ip)), [], 'no protected address in any set');
  t.notOk([...keys].some((k) => k.startsWith('2001:db8:5::/')), 'the switch\'s /64 is not banned');
  t.ok(neighbours.some((ip) => keys.has(ip)), 'its scanning neighbours are banned one by one');
  t.notOk(daemon.lines.some((l) => l.event === 'ban' && protectedSources.includes(String(l.target))), 'no ban decided for them');
  // fsguard ban refuses them by hand too.
  for (const ip of ['127.0.0.1', '203.0.113.9']) {
    const r = await fsguardCli(['ban', ip, '--config', config]);
    t.equal(r.status, 2, `fsguard ban ${ip} refused`);
  }
});
