// Seeding before judging (issue 9): at every (re)connect the daemon holds events until the
// answer to `show registrations` is in, then judges them in order. Here FreeSWITCH sends
// forged challenges "from" a registered office (attack-tool user agent: a ban at once for an
// unproven source) before it answers: the office is not banned; a real scanner in the same
// burst still is. With everything real: the daemon, nft in a namespace, the event socket.
import t from 'tap';
import { EslTestServer } from './support/esl-server.js';
import { writeConfig, startDaemonWith } from './support/daemon-process.js';
import { netnsTestOptions } from './support/netns.js';
import { uniqueTableName } from './support/nft-kernel.js';

const OFFICE = '198.51.100.30';
const SCANNER = '203.0.113.70';

function challenge(ip: string, i: number, nowUs: number): string {
  return JSON.stringify({
    'Event-Name': 'CUSTOM', 'Event-Subclass': 'sofia::pre_register', 'Event-Date-Timestamp': String(nowUs + i * 1000),
    'FreeSWITCH-IPv4': '192.0.2.10', 'profile-name': 'internal', 'network-ip': ip, 'network-port': '5060',
    'call-id': `forged-${ip}-${i}`, 'from-user': String(100 + i), 'to-user': String(100 + i), 'user-agent': 'friendly-scanner',
  });
}

t.test('events before the registrations answer wait for it: a registered office is not framed at connect', netnsTestOptions(), async (t) => {
  const nowUs = Date.now() * 1000;
  const server = await EslTestServer.start({
    heartbeatIntervalMs: 1000,
    registrations: [{ user: '1000', realm: 'pbx.example.com', ip: OFFICE, expires: Math.floor(Date.now() / 1000) + 3600 }],
    // FreeSWITCH queues events while it works on the api command: they reach fsguard first.
    apiHandler: (command, srv) => {
      if (command === 'show registrations as json') {
        for (let i = 0; i < 20; i++) srv.emitEvent(challenge(OFFICE, i, nowUs));
        srv.emitEvent(challenge(SCANNER, 0, nowUs));
      }
      return null;
    },
  });
  const table = uniqueTableName('seed');
  const config = writeConfig({
    esl: { host: '127.0.0.1', port: server.port, password: 'ClueCon' },
    nft: { table, reconcileSeconds: 5 },
    metrics: { enabled: false },
    log: { level: 'info' },
  });
  const daemon = startDaemonWith(t, config, server, table);
  await daemon.waitForLog('the scanner banned', (l) => l.event === 'ban' && l.target === SCANNER, 20_000);
  const loaded = await daemon.waitForLog('registrations loaded', (l) => l.msg === 'live registrations loaded: their sources count as legitimate');
  t.ok((loaded.held as number) >= 21, `${String(loaded.held)} events were held until the answer`);
  t.equal(await daemon.stop('SIGTERM'), 0);
  t.same(daemon.lines.filter((l) => l.event === 'ban' && l.target === OFFICE), [], 'the registered office is not banned');
});
