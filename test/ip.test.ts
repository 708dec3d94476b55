import t from 'tap';
import { parseIp, parseCidr, cidrContainsIp, ipv6PrefixText } from '../lib/net/ip.js';

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
