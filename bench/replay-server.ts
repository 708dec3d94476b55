// The benchmark's FreeSWITCH: a lean event socket in its own process, speaking
// mod_event_socket's protocol over TCP (auth/request, `auth`, `event json …`,
// `api show registrations as json`, `exit`; frames byte-identical to test/support/esl-wire.ts)
// to one subscriber, the daemon under test.
//
// Traffic is generated and framed in memory *before* it is timed (bench/gen.ts), so during a
// measurement this process only writes bytes. Control: one JSON command per stdin line, one
// JSON answer per stdout line. Times are process.hrtime (CLOCK_MONOTONIC, shared by every
// process on the machine), in nanoseconds, so the bench can subtract them from its own.
//
//   {"cmd":"load","name":N,"kind":"mixed"|"flood"|"spray","events":n,"seed":s,"startUs":t}
//       → {"event":"loaded","name":N,"events":n,"bytes":b}
//   {"cmd":"blast","name":N[,"rate":r]}   every frame, as fast as the socket drains (or r events/s)
//       → {"event":"blasted","startNs","lastWriteNs","flushedNs"}
//   {"cmd":"paced","count":n,"gapMs":g,"startUs":t}   one scanner event per attacker, spaced
//       → {"event":"paced","sent":[[ip, writeNs], …]}
//   {"cmd":"quit"}
import { createServer, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { AUTH_REQUEST, apiResponse, commandReply, eventFrame } from '../test/support/esl-wire.js';
import { EventRenderer, ipv6Spray, mixedTrace, prng, scannerEvent, type SynthEvent } from './gen.js';

/** Frames are joined into writes of about this size (FreeSWITCH writes one event at a time,
 *  but the kernel coalesces them on a busy socket the same way). */
const CHUNK_BYTES = 256 * 1024;

const nowNs = (): number => Number(process.hrtime.bigint());
const say = (obj: object): void => { process.stdout.write(`${JSON.stringify(obj)}\n`); };

type Command =
  | { cmd: 'load'; name: string; kind: 'mixed' | 'flood' | 'spray'; events: number; seed: number; startUs: number }
  | { cmd: 'blast'; name: string; rate?: number }
  | { cmd: 'paced'; count: number; gapMs: number; startUs: number; seed: number }
  | { cmd: 'quit' };

/** Frames one body exactly as eventFrame does (checked against it for the first frame). */
function frameText(body: string): string {
  return `Content-Length: ${Buffer.byteLength(body, 'utf8')}\nContent-Type: text/event-json\n\n${body}`;
}

interface Framed {
  readonly chunks: Buffer[];
  /** Events in each chunk. */
  readonly counts: number[];
  readonly events: number;
  readonly bytes: number;
}

function frames(events: Iterable<SynthEvent>): Framed {
  const renderer = new EventRenderer();
  const chunks: Buffer[] = [];
  const counts: number[] = [];
  let parts: string[] = [];
  let inChunk = 0;
  let size = 0;
  let count = 0;
  let bytes = 0;
  for (const e of events) {
    const text = frameText(renderer.body(e));
    if (count === 0) {
      const body = text.slice(text.indexOf('\n\n') + 2);
      if (!eventFrame('json', body).equals(Buffer.from(text, 'utf8'))) throw new Error('framing differs from esl-wire eventFrame');
    }
    parts.push(text);
    size += text.length;
    count++;
    inChunk++;
    if (size >= CHUNK_BYTES) {
      const b = Buffer.from(parts.join(''), 'utf8');
      chunks.push(b);
      counts.push(inChunk);
      inChunk = 0;
      bytes += b.length;
      parts = [];
      size = 0;
    }
  }
  if (parts.length) {
    const b = Buffer.from(parts.join(''), 'utf8');
    chunks.push(b);
    counts.push(inChunk);
    bytes += b.length;
  }
  return { chunks, counts, events: count, bytes };
}

function* flood(count: number, startUs: number, seed: number): Generator<SynthEvent> {
  const r = prng(seed);
  // 10 µs apart in event time: 100,000 attackers within one second.
  for (let i = 0; i < count; i++) yield scannerEvent(i, startUs + i * 10, r);
}

class Subscriber {
  private inbox = '';
  subscribed = false;

  constructor(readonly socket: Socket, private readonly onSubscribed: () => void) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', () => { /* the daemon going away ends the run; the bench notices */ });
    socket.write(AUTH_REQUEST);
  }

  private onData(d: Buffer): void {
    this.inbox += d.toString('latin1');
    for (;;) {
      const end = this.inbox.indexOf('\n\n');
      if (end === -1) return;
      const command = this.inbox.slice(0, end).split('\n', 1)[0]!.trim();
      this.inbox = this.inbox.slice(end + 2).replace(/^[\r\n]+/, '');
      this.handle(command);
    }
  }

  private handle(command: string): void {
    if (command.startsWith('auth ')) {
      this.socket.write(commandReply(command.slice(5) === 'ClueCon' ? '+OK accepted' : '-ERR invalid'));
    } else if (command.startsWith('event ')) {
      this.socket.write(commandReply('+OK event listener enabled json'));
      this.subscribed = true;
      this.onSubscribed();
    } else if (command.startsWith('api ')) {
      this.socket.write(apiResponse(command === 'api show registrations as json' ? '{"row_count": 0}\n' : '-ERR Command not found!\n'));
    } else if (command.startsWith('exit')) {
      this.socket.end(commandReply('+OK bye'));
    } else {
      this.socket.write(commandReply('-ERR command not found'));
    }
  }
}

/** Writes every chunk: as fast as the socket drains, or (rate) each chunk when its events are due. */
async function writeAll(socket: Socket, framed: Framed, rate: number | null): Promise<{ lastWriteNs: number; flushedNs: number }> {
  let lastWriteNs = 0;
  const startNs = nowNs();
  let sent = 0;
  for (let i = 0; i < framed.chunks.length; i++) {
    if (rate !== null) {
      // The chunk's first event is due at sent / rate seconds after the start.
      const dueNs = startNs + (sent / rate) * 1e9;
      const waitMs = (dueNs - nowNs()) / 1e6;
      if (waitMs >= 1) await new Promise((resolve) => setTimeout(resolve, waitMs));
    }
    lastWriteNs = nowNs();
    sent += framed.counts[i]!;
    if (!socket.write(framed.chunks[i]!)) await new Promise<void>((resolve) => socket.once('drain', resolve));
  }
  // An empty write's callback runs once everything before it was handed to the kernel.
  const flushedNs = await new Promise<number>((resolve) => socket.write('', () => resolve(nowNs())));
  return { lastWriteNs, flushedNs };
}

function heartbeat(): Buffer {
  const t = Date.now();
  return eventFrame('json', JSON.stringify({
    'Event-Name': 'HEARTBEAT', 'Core-UUID': 'db5b5fab-8f4d-3e27-dda1-494c73cf256d', 'FreeSWITCH-Hostname': 'pbx1',
    'FreeSWITCH-IPv4': '192.0.2.10', 'FreeSWITCH-IPv6': '::1', 'Event-Date-Timestamp': String(t * 1000), 'Event-Info': 'System Ready',
  }));
}

async function main(): Promise<void> {
  const loaded = new Map<string, Framed>();
  let subscriber: Subscriber | null = null;
  const server = createServer((socket) => {
    subscriber = new Subscriber(socket, () => say({ event: 'subscribed' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  say({ event: 'listening', port: typeof address === 'object' && address ? address.port : 0 });
  // FreeSWITCH sends HEARTBEAT every 20 s; the daemon's watchdog expects them.
  setInterval(() => { if (subscriber?.subscribed) subscriber.socket.write(heartbeat()); }, 20_000).unref();

  const handle = async (c: Command): Promise<void> => {
    switch (c.cmd) {
      case 'load': {
        const events = c.kind === 'mixed' ? mixedTrace({ events: c.events, seed: c.seed, startUs: c.startUs })
          : c.kind === 'flood' ? flood(c.events, c.startUs, c.seed)
            : ipv6Spray(c.events, c.startUs, 100_000, c.seed);
        const f = frames(events);
        loaded.set(c.name, f);
        say({ event: 'loaded', name: c.name, events: f.events, bytes: f.bytes });
        return;
      }
      case 'blast': {
        const s = subscriber as Subscriber | null;
        const framed = loaded.get(c.name);
        if (!s || !framed) throw new Error(`blast ${c.name}: ${s ? 'not loaded' : 'no subscriber'}`);
        const startNs = nowNs();
        const { lastWriteNs, flushedNs } = await writeAll(s.socket, framed, c.rate ?? null);
        say({ event: 'blasted', name: c.name, startNs, lastWriteNs, flushedNs });
        return;
      }
      case 'paced': {
        const s = subscriber as Subscriber | null;
        if (!s) throw new Error('paced: no subscriber');
        const r = prng(c.seed);
        const renderer = new EventRenderer();
        const prepared = Array.from({ length: c.count }, (_, i) => {
          const e = scannerEvent(i, c.startUs + i * c.gapMs * 1000, r);
          return { ip: e.ip, frame: Buffer.from(frameText(renderer.body(e)), 'utf8') };
        });
        const sent: Array<[string, number]> = [];
        for (const p of prepared) {
          // The deciding event leaves this process now: the latency clock starts here.
          const t = nowNs();
          s.socket.write(p.frame);
          sent.push([p.ip, t]);
          await new Promise((resolve) => setTimeout(resolve, c.gapMs));
        }
        say({ event: 'paced', sent });
        return;
      }
      case 'quit':
        process.exit(0);
    }
  };

  let queue: Promise<void> = Promise.resolve();
  createInterface({ input: process.stdin }).on('line', (line) => {
    if (line.trim() === '') return;
    queue = queue.then(() => handle(JSON.parse(line) as Command)).catch((err: unknown) => say({ event: 'error', message: String(err) }));
  }).on('close', () => process.exit(0));
}

main().catch((err: unknown) => {
  process.stderr.write(`replay-server: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(2);
});
