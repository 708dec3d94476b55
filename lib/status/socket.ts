// How `fsguard status` reaches the daemon: a Unix socket (default /run/fsguard/status.sock,
// in the unit's RuntimeDirectory). Mode 0660 and its folder 0750: root and members of the
// daemon's group may read the status, nobody else; no TCP port, so the unit's network
// exposure is unchanged. The protocol is the least there is: connect, read one JSON line,
// the daemon closes. The client sends nothing, so there is nothing to parse on the daemon side.
import { chmodSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from '../obs/logger.js';
import type { StatusReport } from './report.js';

export const SOCKET_MODE = 0o660;
export const FOLDER_MODE = 0o750;
/** A status larger than this is not one (a wrong socket, say). */
const MAX_REPLY_BYTES = 4 * 1024 * 1024;

export class StatusUnavailable extends Error {
  /** ENOENT: no socket (daemon not running, or status.socket differs); ECONNREFUSED: stale socket; EACCES: not root nor in the group. */
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'StatusUnavailable';
  }
}

/** Asks the daemon at `path`; rejects with StatusUnavailable when nobody answers. */
export function readStatus(path: string, timeoutMs = 5000): Promise<StatusReport> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const socket = createConnection({ path });
    const timer = setTimeout(() => socket.destroy(new StatusUnavailable('ETIMEDOUT', `no answer on ${path} within ${timeoutMs / 1000}s`)), timeoutMs);
    socket.on('data', (d: Buffer) => {
      size += d.length;
      if (size > MAX_REPLY_BYTES) socket.destroy(new StatusUnavailable('EPROTO', `${path} answered more than a status`));
      else chunks.push(d);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(err instanceof StatusUnavailable ? err : new StatusUnavailable(err.code ?? 'EIO', `${path}: ${err.code ?? err.message}`));
    });
    socket.on('end', () => {
      clearTimeout(timer);
      try {
        const report = JSON.parse(Buffer.concat(chunks).toString('utf8')) as StatusReport;
        if (typeof report !== 'object' || report === null || typeof report.format !== 'number') throw new Error('not a status');
        resolve(report);
      } catch {
        reject(new StatusUnavailable('EPROTO', `${path} did not answer with a status`));
      }
    });
  });
}

function isLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ path });
    s.on('connect', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

export interface StatusServer {
  close(): Promise<void>;
}

/**
 * Serves the status at `path`. A socket left by a daemon that died is replaced; one a live
 * daemon answers on is not (two daemons on one host is an error worth a log line, not a takeover).
 */
export async function serveStatus(path: string, report: () => Promise<StatusReport>, logger: Logger): Promise<StatusServer | null> {
  const folder = dirname(path);
  try {
    // Under the unit systemd made it (RuntimeDirectory=fsguard, mode 0750); by hand, we do.
    mkdirSync(folder, { mode: FOLDER_MODE, recursive: true });
  } catch (err) {
    logger.error({ socket: path, err: (err as NodeJS.ErrnoException).code ?? String(err) }, 'cannot create the status socket folder: `fsguard status` will not reach this daemon');
    return null;
  }
  if (await isLive(path)) {
    logger.error({ socket: path }, 'another fsguard answers on the status socket: not serving status here');
    return null;
  }
  try { unlinkSync(path); } catch { /* none left over */ }
  const server: Server = createServer((socket) => {
    socket.on('error', () => socket.destroy());
    report().then(
      (r) => socket.end(`${JSON.stringify(r)}\n`),
      (err: unknown) => {
        logger.error({ err: err instanceof Error ? err.message : String(err) }, 'building the status failed');
        socket.destroy();
      },
    );
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => { server.off('error', reject); resolve(); });
    });
    chmodSync(path, SOCKET_MODE);
  } catch (err) {
    logger.error({ socket: path, err: (err as NodeJS.ErrnoException).code ?? String(err) }, 'cannot serve the status socket: `fsguard status` will not reach this daemon');
    server.close();
    return null;
  }
  server.on('error', (err) => logger.error({ socket: path, err: err.message }, 'status socket error'));
  logger.info({ socket: path }, 'status at the Unix socket (fsguard status)');
  return {
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      try { unlinkSync(path); } catch { /* already gone */ }
    }),
  };
}
