// Types for the part of modesl 1.2.1 fsguard uses. modesl ships no types. Members marked
// "internal" are not documented API: lib/esl/modesl-link.ts depends on them to put its own
// frame parser under one Connection instance, and checks them at run time before use.
declare module 'modesl' {
  import type { Socket } from 'node:net';

  /** Header values as modesl's parser hands them over (Content-Length as a number). */
  export type EslHeaderMap = Readonly<Record<string, string | number>>;

  export class Event {
    constructor(headers: EslHeaderMap, body?: string);
    getHeader(name: string): string | null;
    getBody(): string;
  }

  export type EslListener = (...args: unknown[]) => void;

  export class Connection {
    /** Inbound connection: connects at once (net.connect inside the constructor). */
    constructor(host: string, port: number, password: string);
    /** internal: the TCP socket, set in the constructor, null after `end`. */
    socket: Socket | null;
    /** internal: modesl's Parser, created on TCP connect; routes frames into `_onEvent`. */
    parser?: { emit(event: string, ...args: unknown[]): boolean };
    /** Called on `auth/request`; looked up on the instance at connect time. */
    auth: (cb?: (err: Error | null, reply: Event) => void) => void;
    on(event: string, listener: EslListener): this;
    once(event: string, listener: EslListener): this;
    removeAllListeners(event?: string): this;
    /** Writes `command\n\n`; `cb` gets the matching `command/reply`. */
    sendRecv(command: string, cb: (reply: Event) => void): void;
    /** Writes `api command\n\n`; `cb` gets the matching `api/response`. */
    api(command: string, cb: (response: Event) => void): void;
    /** Writes `exit\n\n` and ends the socket. */
    disconnect(): void;
    /** internal: routes one parsed frame to `esl::event::…` listeners and reply callbacks. */
    _onEvent(event: Event, headers: EslHeaderMap, body?: string): void;
  }

  /** modesl's frame parser; fsguard does not use it (tests show why). */
  export class Parser {
    constructor(socket: import('node:events').EventEmitter);
    on(event: string, listener: EslListener): this;
  }

  const modesl: {
    readonly Connection: typeof Connection;
    readonly Event: typeof Event;
    readonly Parser: typeof Parser;
  };
  export default modesl;
}
