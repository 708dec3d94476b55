// Turns how an nft run ended into a typed error. nft's JSON mode reports errors without a
// position ("internal:0:0-0: Error: ..."), so the kind is read from the strerror text
// (the runner forces LC_ALL=C). Messages below were observed with nft 1.0.6.
import type { NftRunResult } from './runner.js';

export type NftErrorKind =
  /** The nft binary does not exist at the configured path. Fatal. */
  | 'not-installed'
  /** Not root / no CAP_NET_ADMIN. Fatal. */
  | 'permission'
  /** Worth retrying the same transaction: EAGAIN, ENOBUFS, EBUSY, EINTR, fork failure, timeout. */
  | 'transient'
  /** The netlink batch exceeds the socket buffer (EMSGSIZE): split it, it is not the elements. */
  | 'too-large'
  /** Our table or set does not exist (someone ran `nft flush ruleset`, or setup never ran). */
  | 'missing-table'
  /** Deleting an element that is not in the set. */
  | 'missing-element'
  /** `create` of an element that already exists (EEXIST). */
  | 'exists'
  /** nft or the kernel refused the content (overlapping interval, bad value...). */
  | 'rejected';

export class NftError extends Error {
  override readonly name = 'NftError';

  constructor(
    readonly kind: NftErrorKind,
    message: string,
    /** nft's own error line (without the `internal:0:0-0:` noise), or the spawn error. */
    readonly detail: string,
    /** Full stderr of the run, for logs. */
    readonly stderr: string = '',
  ) {
    super(message);
  }

  /** Nothing fsguard can do about it at run time: the daemon should exit with `message`. */
  get fatal(): boolean {
    return this.kind === 'not-installed' || this.kind === 'permission';
  }
}

const TRANSIENT_SPAWN_CODES = new Set(['EAGAIN', 'ENOMEM', 'EMFILE', 'ENFILE', 'EINTR']);
const TRANSIENT_TEXT = /Resource temporarily unavailable|No buffer space available|Device or resource busy|Interrupted system call/;
const PERMISSION_TEXT = /Operation not permitted|Permission denied/;

/** The first line of nft's stderr that carries the error, stripped of location noise. */
export function nftErrorLine(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
  const line = lines.find((l) => l.includes('Error')) ?? lines[0] ?? '';
  return line.replace(/^internal:\d+:\d+-\d+:\s*/, '').replace(/^netlink:\s*/, '').slice(0, 500);
}

function permissionHint(binary: string, detail: string): string {
  return `nft (${binary}) was refused: ${detail}. Run fsguard as root, or give it CAP_NET_ADMIN ` +
    `(systemd: AmbientCapabilities=CAP_NET_ADMIN)`;
}

/** Null when the run succeeded; otherwise what went wrong, typed. */
export function classifyRun(result: NftRunResult, binary: string): NftError | null {
  switch (result.kind) {
    case 'spawn-failed': {
      if (result.code === 'ENOENT') {
        return new NftError('not-installed',
          `nft not found (${binary}): install nftables (apt-get install -y nftables) or set the nft binary path in the config`,
          result.message);
      }
      if (result.code === 'EACCES' || result.code === 'EPERM') {
        return new NftError('permission', permissionHint(binary, result.message), result.message);
      }
      const kind = TRANSIENT_SPAWN_CODES.has(result.code) ? 'transient' : 'not-installed';
      return new NftError(kind, `could not start nft (${binary}): ${result.message}`, result.message);
    }
    case 'killed': {
      const why = result.timedOut ? 'timed out and was killed' : `was killed by ${result.signal}`;
      return new NftError('transient', `nft ${why}`, why, result.stderr);
    }
    case 'exited': {
      if (result.exitCode === 0) return null;
      const detail = nftErrorLine(result.stderr) || `exit status ${result.exitCode}`;
      const text = result.stderr;
      if (PERMISSION_TEXT.test(text)) return new NftError('permission', permissionHint(binary, detail), detail, text);
      if (/Message too long/.test(text)) return new NftError('too-large', `nft: ${detail}`, detail, text);
      if (TRANSIENT_TEXT.test(text)) return new NftError('transient', `nft: ${detail}`, detail, text);
      // The userspace cache lookup of a missing table/set says just "No such file or
      // directory"; the kernel refusing to delete a missing element says "Could not
      // process rule: No such file or directory", and for interval sets nft itself says
      // "element does not exist".
      if (/element does not exist|Could not process rule: No such file or directory/.test(text)) {
        return new NftError('missing-element', `nft: ${detail}`, detail, text);
      }
      if (/No such file or directory/.test(text)) return new NftError('missing-table', `nft: ${detail}`, detail, text);
      if (/File exists/.test(text)) return new NftError('exists', `nft: ${detail}`, detail, text);
      return new NftError('rejected', `nft: ${detail}`, detail, text);
    }
  }
}
