// The test event socket as its own process, for end-to-end tests and benchmarks:
//
//   node dist/test/support/esl-server-main.js [--host 127.0.0.1] [--port 0] [--password ClueCon]
//     [--trace FILE.jsonl] [--rate EVENTS_PER_S] [--drop-after N] [--wait-subscribers 1]
//     [--format json|plain] [--heartbeat-ms 20000] [--registrations FILE.json] [--rude]
//
// Prints one JSON line per happening on stdout, first {"event":"listening","host":…,"port":…}.
// With --trace, the trace is replayed once --wait-subscribers clients have subscribed, then
// {"event":"replayed","count":N} is printed. Commands, one per line on stdin:
//   replay FILE [RATE] | drop | hang | resume | rude on|off | password PW | heartbeat | stats | quit
// (--registrations: a JSON array of {user, realm, ip, port?, expires?, profile?}.)
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { EslTestServer, type RegistrationSpec } from './esl-server.js';

interface MainArgs {
  host: string;
  port: number;
  password: string;
  trace: string | null;
  rate: number;
  dropAfter: number | null;
  waitSubscribers: number;
  format: 'json' | 'plain' | null;
  heartbeatMs: number;
  registrations: string | null;
  rude: boolean;
}

function parseArgs(argv: readonly string[]): MainArgs {
  const args: MainArgs = {
    host: '127.0.0.1', port: 0, password: 'ClueCon', trace: null, rate: 0, dropAfter: null,
    waitSubscribers: 1, format: null, heartbeatMs: 20_000, registrations: null, rude: false,
  };
  const number = (name: string, v: string | undefined): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < 0) throw new Error(`${name} needs a number, got ${JSON.stringify(v)}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = argv[i + 1];
    switch (flag) {
      case '--host': args.host = value ?? args.host; i++; break;
      case '--port': args.port = number(flag, value); i++; break;
      case '--password': args.password = value ?? ''; i++; break;
      case '--trace': args.trace = value ?? null; i++; break;
      case '--rate': args.rate = number(flag, value); i++; break;
      case '--drop-after': args.dropAfter = number(flag, value); i++; break;
      case '--wait-subscribers': args.waitSubscribers = number(flag, value); i++; break;
      case '--heartbeat-ms': args.heartbeatMs = number(flag, value); i++; break;
      case '--registrations': args.registrations = value ?? null; i++; break;
      case '--rude': args.rude = true; break;
      case '--format':
        if (value !== 'json' && value !== 'plain') throw new Error('--format is json or plain');
        args.format = value; i++; break;
      default: throw new Error(`unknown argument ${flag}`);
    }
  }
  return args;
}

function say(obj: object): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const registrations = args.registrations
    ? JSON.parse(readFileSync(args.registrations, 'utf8')) as RegistrationSpec[]
    : [];
  const server = await EslTestServer.start({
    host: args.host,
    port: args.port,
    password: args.password,
    heartbeatIntervalMs: args.heartbeatMs > 0 ? args.heartbeatMs : null,
    forceFormat: args.format,
    registrations,
  });
  server.rudeRejection = args.rude;
  say({ event: 'listening', host: server.host, port: server.port });

  const replay = async (file: string, rate: number, dropAfter: number | null): Promise<void> => {
    const count = await server.replayFile(file, {
      ...(rate > 0 ? { eventsPerSecond: rate } : {}),
      ...(dropAfter !== null ? { dropAfter } : {}),
    });
    say({ event: 'replayed', file, count });
  };

  if (args.trace) {
    const trace = args.trace;
    void server.waitForSubscriptions(Math.max(1, args.waitSubscribers), 24 * 3600_000)
      .then(() => replay(trace, args.rate, args.dropAfter))
      .catch((err: unknown) => say({ event: 'error', message: String(err) }));
  }

  const stats = (): object => ({
    event: 'stats',
    connections: server.connectionLog.length,
    open: server.openSessions.length,
    authAttempts: server.authLog.length,
    authRejected: server.authLog.filter((a) => !a.accepted).length,
    subscriptions: server.sessions.flatMap((s) => s.subscribeCommands),
    api: server.apiLog.length,
  });

  const quit = async (): Promise<void> => {
    await server.close();
    say({ event: 'closed' });
    process.exit(0);
  };
  process.on('SIGTERM', () => void quit());
  process.on('SIGINT', () => void quit());

  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    const [cmd, ...rest] = line.trim().split(/\s+/);
    switch (cmd) {
      case 'replay':
        if (rest[0]) void replay(rest[0], Number(rest[1] ?? 0), null).catch((err: unknown) => say({ event: 'error', message: String(err) }));
        break;
      case 'drop': server.dropConnections(); say({ event: 'dropped' }); break;
      case 'hang': server.setHung(true); say({ event: 'hung' }); break;
      case 'resume': server.setHung(false); say({ event: 'resumed' }); break;
      case 'rude': server.rudeRejection = rest[0] !== 'off'; say({ event: 'rude', on: server.rudeRejection }); break;
      case 'password': server.password = rest.join(' '); say({ event: 'password' }); break;
      case 'heartbeat': say({ event: 'heartbeat', sent: server.sendHeartbeat() }); break;
      case 'stats': say(stats()); break;
      case 'quit': void quit(); break;
      case '': case undefined: break;
      default: say({ event: 'error', message: `unknown command ${cmd}` });
    }
  });
  // stdin closing (parent gone) is not a reason to stop: SIGTERM or `quit` is.
}

main().catch((err: unknown) => {
  process.stderr.write(`esl-server: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
});
