// A scripted fake FreeSWITCH connection for the event source, driven by the one fake clock of
// the tests (support/fake-timers.ts): exact delays instead of wall-clock sampling
// (test/esl-reconnect.test.ts, test/esl-liveness.test.ts).
import type { EslConnector, EslLink, EslLinkHandlers } from '../../lib/esl/index.js';
import { FakeTimers } from './fake-timers.js';

export { FakeTimers };


export interface FakeLink {
  readonly handlers: EslLinkHandlers;
  readonly openedAt: number;
  readonly commands: string[];
  destroyedWith: string | null;
}

/** A FreeSWITCH whose behaviour per connection the test scripts. */
export class FakeSwitch {
  readonly links: FakeLink[] = [];
  /**
   * 'refuse': connection refused; 'accept': auth ok; 'wrong-password'; 'acl'; 'silent': TCP up,
   * nothing said; 'slam': TCP up, then closed at once.
   */
  mode: 'refuse' | 'accept' | 'wrong-password' | 'acl' | 'silent' | 'slam' = 'refuse';

  constructor(private readonly timers: FakeTimers) {}

  readonly connect: EslConnector = (_host, _port, handlers) => {
    const fake: FakeLink = { handlers, openedAt: this.timers.now, commands: [], destroyedWith: null };
    this.links.push(fake);
    let closed = false;
    const close = (reason: string): void => {
      if (closed) return;
      closed = true;
      handlers.onClosed(reason);
    };
    const link: EslLink = {
      command: (line, onReply) => {
        fake.commands.push(line);
        if (line.startsWith('auth ')) {
          onReply(this.mode === 'wrong-password' ? '-ERR invalid' : '+OK accepted');
        } else {
          onReply('+OK event listener enabled json');
        }
      },
      api: (command, onResponse) => { fake.commands.push(`api ${command}`); onResponse('{"row_count": 0}\n'); },
      close: () => close('closed by fsguard'),
      destroy: (reason) => { fake.destroyedWith = reason; close(reason); },
    };
    // Connection outcomes happen "later", as with a socket.
    this.timers.setTimeout(() => {
      if (closed) return;
      switch (this.mode) {
        case 'refuse': close('socket error ECONNREFUSED'); break;
        case 'acl': handlers.onTcpConnected(); handlers.onRudeRejection('Access Denied, go away.\n'); break;
        case 'silent': handlers.onTcpConnected(); break;
        case 'slam': handlers.onTcpConnected(); close('closed by FreeSWITCH'); break;
        default: handlers.onTcpConnected(); handlers.onAuthRequest();
      }
    }, 1);
    return link;
  };

  /** Delays between consecutive connection attempts. */
  gaps(): number[] {
    return this.links.slice(1).map((l, i) => l.openedAt - this.links[i]!.openedAt);
  }
}
