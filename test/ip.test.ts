import t from 'tap';
import { parseIp, parseCidr, cidrContainsIp, ipValue, ipv6PrefixText, makeCidr } from '../lib/net/ip.js';

t.test('parseIp canonicalizes and rejects garbage', async (t) => {
  t.same(parseIp('203.0.113.66'), { family: 4, text: '203.0.113.66' });
  t.same(parseIp('::ffff:203.0.113.66'), { family: 4, text: '203.0.113.66' });
  t.same(parseIp('::FFFF:CB00:7142'), { family: 4, text: '203.0.113.66' });
  t.same(parseIp('2001:DB8:0:0:0:0:0:1'), { family: 6, text: '2001:db8::1' });
  t.same(parseIp('2001:db8:0:0:1:0:0:1'), { family: 6, text: '2001:db8::1:0:0:1' });
  t.same(parseIp('[2001:db8::5]'), { family: 6, text: '2001:db8::5' });
  t.same(parseIp('::'), { family: 6, text: '::' });
  t.same(parseIp('64:ff9b::192.0.2.1'), { family: 6, text: '64:ff9b::c000:201' });
  for (const bad of ['', 'localhost', '1.2.3', '1.2.3.256', '01.2.3.4', '1:2:3:4:5:6:7:8:9', '1::2::3', 'fe80::1%eth0', '::g', '1.2.3.4 ', 'x'.repeat(70)]) {
    t.equal(parseIp(bad), null, `rejects ${JSON.stringify(bad)}`);
  }
});

t.test('CIDR parsing and containment', async (t) => {
  const c = parseCidr('203.0.113.77/24');
  t.equal(c?.text, '203.0.113.0/24');
  t.ok(c && cidrContainsIp(c, parseIp('203.0.113.5')!));
  t.notOk(c && cidrContainsIp(c, parseIp('203.0.114.5')!));
  t.equal(parseCidr('2001:db8:bad:1::7/64')?.text, '2001:db8:bad:1::/64');
  t.equal(parseCidr('10.0.0.1')?.text, '10.0.0.1');
  t.equal(parseCidr('10.0.0.1/33'), null);
  t.equal(parseCidr('10.0.0.1/'), null);
  t.equal(ipv6PrefixText(parseIp('2001:db8:bad:1:aa:bb:cc:dd')!, 64), '2001:db8:bad:1::/64');
  t.equal(ipv6PrefixText(parseIp('2001:db8:bad:1:aa:bb:cc:dd')!, 56), '2001:db8:bad::/56');
});

t.test('a host parsed by parseCidr is what makeCidr makes of its value (the host path skips the mask); IPv4 values by octets', async (t) => {
  let seed = 7;
  // The high bits of the generator: its low bits cycle with a short period.
  const next = (n: number): number => { seed = (Math.imul(seed, 1103515245) + 12345) >>> 0; return (seed >>> 8) % n; };
  const hex = (): string => next(0x10000).toString(16);
  const inputs = ['0.0.0.0', '255.255.255.255', '::', '::1', '::ffff:192.0.2.1', '[2001:db8::1]', '2001:DB8:0:0:0:0:0:1', '::ffff:0:1'];
  for (let i = 0; i < 2000; i++) {
    inputs.push(`${next(256)}.${next(256)}.${next(256)}.${next(256)}`);
    inputs.push(`${hex()}:${hex()}:${hex()}:${hex()}:${hex()}:${hex()}:${hex()}:${hex()}`);
    inputs.push(`2001:db8:${hex()}::${next(2) ? hex() : '0'}`);
  }
  let compared = 0;
  const differing: string[] = [];
  for (const raw of inputs) {
    const a = parseIp(raw);
    const host = parseCidr(raw);
    if ((host === null) !== (a === null)) differing.push(`${raw}: parseIp ${JSON.stringify(a)}, parseCidr ${JSON.stringify(host)}`);
    if (a === null || host === null) continue;
    const slow = makeCidr(a.family, ipValue(a), a.family === 4 ? 32 : 128);
    if (host.family !== slow.family || host.prefixLength !== slow.prefixLength || host.network !== slow.network || host.text !== slow.text || host.value !== slow.value) {
      differing.push(`${raw}: ${host.text} ${host.value} against ${slow.text} ${slow.value}`);
    }
    if (a.family === 4 && ipValue(a) !== a.text.split('.').reduce((v, o) => v * 256n + BigInt(o), 0n)) differing.push(`${raw}: value ${ipValue(a)}`);
    compared++;
  }
  t.same(differing, [], 'every host the same both ways');
  t.ok(compared > 6000, `${compared} compared`);
});
