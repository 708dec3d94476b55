// Faults of libnftables itself, injected through the backend the runner calls (the real
// library underneath): a call that hangs (it holds a worker thread and cannot be cancelled),
// a library that never answers at start, a stop signal during start or during a listing,
// `fsguard ban` with a hung write. Deadlines run on a manual scheduler: no test waits for them.
import t from 'tap';
import { Writable } from 'node:stream';
import { loadConfig } from '../lib/config/config.js';
import { STOP_LIMIT_MS, runDaemon } from '../lib/daemon/daemon.js';
import { LISTING_DEADLINE_MS, LibnftablesRunner, classifyRun, nftJson, type NftBackend, type Scheduler } from '../lib/nft/index.js';
import { createLogger } from '../lib/obs/logger.js';
import { EslTestServer } from './support/esl-server.js';
import { elementIfAny, fetchMetrics, ipv4Of, metricValue, rigConfig, scannerEvents, waitFor } from './support/fault-rig.js';
import { FaultyBackend, ManualScheduler } from './support/faulty-nft.js';
import { netnsTestOptions } from './support/netns.js';
import { cliEnv, fsguardCli, runProcess, writeConfig, type LogLine } from './support/daemon-process.js';
import { deleteTableIfExists, kernelElement, uniqueTableName } from './support/nft-kernel.js';

const ns = netnsTestOptions();

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

t.test('a hung call is reported timed out, its context dropped, the next call gets a new one; bounded', ns, async (t) => {
  const scheduler = new ManualScheduler();
  const backend = new FaultyBackend();
  const runner = new LibnftablesRunner({ backend, scheduler, timeoutMs: 5000, maxHungCalls: 2, maxContexts: 1 });
  t.teardown(() => backend.release());
  const list = [nftJson.listTables()];
  t.match(await runner.run(list), { kind: 'completed', ok: true }, 'the library answers');
  t.equal(backend.opened, 1);

  backend.hang = () => true;
  const first = runner.run(list);
  await turn();
  t.equal(scheduler.fire(5000), 1, 'one deadline ran');
  const timedOut = await first;
  t.same(timedOut, { kind: 'timed-out', afterMs: 5000, hungCalls: 1 });
  t.equal(classifyRun(timedOut, runner.library)?.kind, 'timeout', 'typed: timeout (retried by the writer)');
  t.equal(runner.hungCalls, 1);

  backend.hang = () => false;
  t.match(await runner.run(list), { kind: 'completed', ok: true }, 'the next call works');
  t.equal(backend.opened, 2, 'on a new context: the hung one is never used again');

  backend.hang = () => true;
  const second = runner.run(list);
  await turn();
  scheduler.fire(5000);
  t.match(await second, { kind: 'timed-out', hungCalls: 2 });
  const opened = backend.opened;
  t.same(await runner.run(list), { kind: 'overloaded', hungCalls: 2 }, 'past the bound, calls are refused at once');
  t.equal(backend.opened, opened, 'without taking a worker thread');

  backend.hang = () => false;
  backend.release();
  await waitFor('hung calls returned', () => runner.hungCalls === 0, 5000, 5);
  t.equal(backend.freed, 2, 'each hung context is freed when its call finally returns');
  t.match(await runner.run(list), { kind: 'completed', ok: true }, 'and the library is used again');
  await runner.close();
});

interface DaemonRun {
  readonly lines: LogLine[];
  readonly fatal: string[];
  readonly exits: number[];
  readonly signal: (name: NodeJS.Signals) => void;
  readonly done: Promise<number>;
}

/** `fsguard run` in this process, its libnftables behind `backend`, its deadlines on `scheduler`. */
function startDaemon(configFile: string, backend: NftBackend, scheduler: Scheduler): DaemonRun {
  const lines: LogLine[] = [];
  let partial = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      partial += chunk.toString('utf8');
      let nl: number;
      while ((nl = partial.indexOf('\n')) >= 0) {
        lines.push(JSON.parse(partial.slice(0, nl)) as LogLine);
        partial = partial.slice(nl + 1);
      }
      cb();
    },
  });
  const { config } = loadConfig(configFile, {});
  const handlers = new Map<string, () => void>();
  const fatal: string[] = [];
  const exits: number[] = [];
  const done = runDaemon(configFile, config, {
    logger: createLogger(config.log.level, sink),
    fatal: (line) => fatal.push(line),
    env: {},
    onSignal: (signal, handler) => {
      handlers.set(signal, handler);
      return () => { if (handlers.get(signal) === handler) handlers.delete(signal); };
    },
    setV8Flags: () => undefined,
    nftBackend: backend,
    nftScheduler: scheduler,
    exitNow: (code) => exits.push(code),
  });
  return { lines, fatal, exits, done, signal: (name) => handlers.get(name)?.() };
}

t.test('at start, libnftables that does not answer is fatal at the 10 s deadline, with one line', ns, async (t) => {
  const scheduler = new ManualScheduler();
  const backend = new FaultyBackend();
  backend.hang = () => true;
  t.teardown(() => backend.release());
  const { config } = rigConfig(t, 'l_starthang', 1);
  const d = startDaemon(config, backend, scheduler);
  await waitFor('the start deadline', () => scheduler.waiting(10_000) === 1, 5000, 5);
  t.equal(d.fatal.length, 0, 'nothing fatal before the deadline');
  scheduler.fire(10_000);
  t.equal(await d.done, 1, 'exit code 1');
  t.same(d.fatal, ['nftables did not answer within 10 s at start (a libnftables call hung: is the kernel\'s netlink stuck?)'], 'one clear line');
  t.same(d.exits, [1], 'with the call still hung, the exit does not wait for its worker thread (_exit)');
});

t.test('SIGTERM during a hung start exits 0 at once', ns, async (t) => {
  const scheduler = new ManualScheduler();
  const backend = new FaultyBackend();
  backend.hang = () => true;
  t.teardown(() => backend.release());
  const { config } = rigConfig(t, 'l_termstart', 1);
  const d = startDaemon(config, backend, scheduler);
  await waitFor('start under way', () => backend.held > 0, 5000, 5);
  d.signal('SIGTERM');
  t.equal(await d.done, 0, 'exit 0');
  await turn();
  t.same(d.fatal, []);
  t.ok(d.lines.some((l) => /stopping during start/.test(l.msg ?? '')), 'says so');
  t.same(d.exits, [0], 'without waiting for the hung call');
});

t.test('at start, a listing that takes longer than the deadlines (a large table) is waited for, not judged hung', ns, async (t) => {
  const scheduler = new ManualScheduler();
  const backend = new FaultyBackend();
  // The first listing of the table (with its bans) is held; the cheap probe (list chains) answers.
  let listings = 0;
  backend.hang = (text) => text.includes('"list":{"table"') && listings++ === 0;
  t.teardown(() => backend.release());
  const { config } = rigConfig(t, 'l_slowlist', 1);
  const d = startDaemon(config, backend, scheduler);
  await waitFor('the read-back under way', () => backend.held > 0, 5000, 5);
  t.equal(scheduler.waiting(10_000), 0, 'nft answered the probe: the start deadline is off');
  t.equal(scheduler.waiting(LISTING_DEADLINE_MS), 1, `the listing has a deadline of its own (${LISTING_DEADLINE_MS / 1000} s)`);
  t.equal(scheduler.fire(5000), 0, 'no write deadline runs on it');
  backend.release();
  await waitFor('running', () => d.lines.some((l) => l.msg === 'fsguard running'), 5000, 5);
  t.same(d.fatal, [], 'nothing fatal');
  t.notOk(d.lines.some((l) => /did not answer/.test(l.msg ?? '')), 'nothing reported hung');
  d.signal('SIGTERM');
  t.equal(await d.done, 0);
});

t.test('a stop while a reconcile lists a large table is bounded: the listing is not waited for', ns, async (t) => {
  const scheduler = new ManualScheduler();
  const backend = new FaultyBackend();
  t.teardown(() => backend.release());
  const { config } = rigConfig(t, 'l_stoplist', 1);
  const d = startDaemon(config, backend, scheduler);
  await waitFor('running', () => d.lines.some((l) => l.msg === 'fsguard running'), 15_000, 5);
  // The next listing of the table (a periodic reconcile) takes as long as its deadline allows.
  backend.hang = (text) => text.includes('"list":{"table"');
  await waitFor('a reconcile\'s listing under way', () => backend.held > 0, 15_000, 5);
  t.equal(scheduler.waiting(LISTING_DEADLINE_MS), 1, `on the listing deadline (${LISTING_DEADLINE_MS / 1000} s)`);
  d.signal('SIGTERM');
  await waitFor('the pending bans written (none)', () => d.lines.some((l) => /^pending bans written/.test(l.msg ?? '')), 15_000, 5);
  t.equal(scheduler.waiting(STOP_LIMIT_MS), 1, 'the stop limit is armed');
  await turn();
  t.notOk(d.lines.some((l) => /^stopped/.test(l.msg ?? '')), 'the stop waits for the listing until the limit');
  t.equal(scheduler.fire(STOP_LIMIT_MS), 1, `the stop limit (${STOP_LIMIT_MS / 1000} s) passes`);
  t.equal(await d.done, 0, 'exit 0');
  await turn();
  t.equal(scheduler.waiting(LISTING_DEADLINE_MS), 1, 'the listing\'s own deadline never came');
  t.ok(d.lines.some((l) => /still running .* not waited for/.test(l.msg ?? '')), 'says so');
  t.same(d.exits, [0], 'the exit does not wait for the listing\'s worker thread (_exit)');
  t.same(d.fatal, []);
});

t.test('hung writes: reported and counted, the daemon keeps deciding, the bans wait and land once nft answers', ns, async (t) => {
  const server = await EslTestServer.start({ heartbeatIntervalMs: 1000 });
  t.teardown(() => server.close());
  const scheduler = new ManualScheduler();
  const backend = new FaultyBackend(scheduler);
  t.teardown(() => backend.release());
  const { table, config } = rigConfig(t, 'l_hung', server.port, { metrics: { enabled: true, port: 0 } });
  const d = startDaemon(config, backend, scheduler);
  t.teardown(() => d.signal('SIGTERM'));
  const port = (await waitFor('metrics port', () => d.lines.find((l) => typeof l.port === 'number' && /metrics/.test(l.msg ?? '')))).port as number;
  await server.waitForSubscriptions(1);

  // Every write into banned4 hangs from now on.
  backend.hang = (text) => text.includes(`"table":"${table}","name":"banned4"`);
  const wave1 = Array.from({ length: 5 }, (_, i) => ipv4Of(0x0a0000 + i));
  await server.replay(scannerEvents(wave1));
  await waitFor('wave 1 decided', () => wave1.every((ip) => d.lines.some((l) => l.event === 'ban' && l.target === ip)));
  await waitFor('the write hangs', () => backend.held >= 1);
  t.equal(backend.passDeadlines(), 1, 'its deadline passes');
  await waitFor('the retry hangs too', () => backend.held >= 2);
  t.equal(backend.passDeadlines(), 1, 'the retry\'s deadline passes');
  await waitFor('reported as failed, kept for retry', () => d.lines.find((l) => /ban not written to the kernel: will retry/.test(l.msg ?? '')), 10_000);
  const hungLines = d.lines.filter((l) => /nft run failed/.test(l.msg ?? '') && l.kind === 'timeout');
  t.equal(hungLines.length, 2, 'each hung call logged as a timeout');
  t.equal(metricValue(await fetchMetrics(port), 'fsguard_nft_hung_calls_total'), 2, 'and counted');

  // Still deciding while nft is stuck.
  const wave2 = Array.from({ length: 5 }, (_, i) => ipv4Of(0x0a1000 + i));
  await server.replay(scannerEvents(wave2));
  await waitFor('wave 2 decided while nft hangs', () => wave2.every((ip) => d.lines.some((l) => l.event === 'ban' && l.target === ip)));
  t.notOk([...wave1, ...wave2].some((ip) => elementIfAny(table, 'banned4', ip)), 'none of them in the kernel yet');

  // nft answers again: the stuck calls return, and every decided ban is written.
  backend.hang = () => false;
  backend.release();
  await waitFor('every ban in the kernel', () => [...wave1, ...wave2].every((ip) => elementIfAny(table, 'banned4', ip)), 20_000);
  t.pass('all 10 bans reached the kernel');
  d.signal('SIGTERM');
  t.equal(await d.done, 0);
  t.same(d.exits, [], 'a normal exit: nothing hung any more');
});

t.test('fsguard ban whose write hangs says why it failed (the hung call) and exits non-zero', ns, async (t) => {
  const table = uniqueTableName('l_banhung');
  t.teardown(() => deleteTableIfExists('inet', table));
  const config = writeConfig({ esl: { host: '127.0.0.1', port: 1 }, nft: { table }, metrics: { enabled: false } });
  const script = new URL('./support/cli-with-faulty-nft.js', import.meta.url).pathname;
  // The writes into the host set hang; the table's setup and listing answer.
  const r = await runProcess(process.execPath, [script, `"name":"banned4","elem"`, 'ban', '198.51.100.60', '--config', config], { env: cliEnv() });
  t.equal(r.status, 1, 'exit 1');
  t.match(r.stderr, /^fsguard: ban 198\.51\.100\.60 failed: .*libnftables call.* hung/, `says why: ${r.stderr}`);
  t.equal(r.stdout, '', 'and claims nothing on stdout');
  t.equal(kernelElement(table, 'banned4', '198.51.100.60'), undefined, 'not banned');
});

t.test('fsguard bans/ban/unban: a library that does not answer is said at the 10 s probe, in one line; a listing that takes long (a huge table) is waited for', ns, async (t) => {
  const table = uniqueTableName('l_clihung');
  t.teardown(() => deleteTableIfExists('inet', table));
  const config = writeConfig({ esl: { host: '127.0.0.1', port: 1 }, nft: { table }, metrics: { enabled: false } });
  const script = new URL('./support/cli-with-faulty-nft.js', import.meta.url).pathname;
  for (const command of [['bans'], ['ban', '198.51.100.61'], ['unban', '198.51.100.61']]) {
    // Every call hangs (each deadline passes at once: the test waits for none).
    const r = await runProcess(process.execPath, [script, '', ...command, '--config', config], { env: cliEnv() });
    t.equal(r.status, 1, `${command[0]}: exit 1`);
    t.equal(r.stderr, 'fsguard: nftables did not answer within 10 s (a libnftables call hung: is the kernel\'s netlink stuck?)\n', `${command[0]}: one clear line, at the probe's deadline`);
  }
  const ban = await fsguardCli(['ban', '198.51.100.62', '--config', config]);
  t.equal(ban.status, 0, ban.stderr);
  // The table's listing is slow; the probe answered: it is answered late, and listed.
  const r = await runProcess(process.execPath, [script, '--answer-late', '"list":{"table"', 'bans', '--config', config], { env: cliEnv() });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /198\.51\.100\.62/, 'the ban listed');
  t.equal(r.stderr, `held a libnftables call: deadline ${LISTING_DEADLINE_MS} ms\n`, `the listing had its own deadline (${LISTING_DEADLINE_MS / 1000} s), not the probe's`);
});
