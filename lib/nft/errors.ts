// Turns how a libnftables call ended into a typed error. The library reports an error as text
// in the context's error buffer (JSON input has no positions: "internal:0:0-0: Error: ..."),
// and the kernel's reason in it is strerror() text; the regexes below were checked against
// libnftables 1.0.6 in test/nft-errors.test.ts, so a release that words them differently fails there.
import type { NftRunResult } from './libnftables.js';

export type NftErrorKind =
  /** libnftables cannot be loaded. Fatal. */
  | 'not-installed'
  /** Not root / no CAP_NET_ADMIN. Fatal. */
  | 'permission'
  /** Worth retrying the same transaction: EAGAIN, ENOBUFS, EINTR, no context. */
  | 'transient'
  /** The call did not answer within its deadline (a wedged netlink socket); retried on a new context. */
  | 'timeout'
  /** EBUSY: the kernel refused because the object is in use (or the table is owned by another process). */
  | 'busy'
  /** The netlink batch exceeds the socket buffer (EMSGSIZE): split it, it is not the elements. */
  | 'too-large'
  /** Our table or set does not exist (someone ran `nft flush ruleset`, or setup never ran). */
  | 'missing-table'
  /** Deleting an element that is not in the set. */
  | 'missing-element'
  /** `create` of an element that already exists (EEXIST). */
  | 'exists'
  /** A prefix overlapping one already in an interval set. */
  | 'overlap'
  /** The library or the kernel refused the content (bad value, wrong datatype...). */
  | 'rejected'
  /** A table of our name that fsguard did not create: never changed. Fatal. */
  | 'foreign-table'
  /** Our table's layout differs in a way that cannot be repaired without deleting bans. Fatal. */
  | 'layout';

export class NftError extends Error {
  override readonly name = 'NftError';

  constructor(
    readonly kind: NftErrorKind,
    message: string,
    /** The library's own error line (without the `internal:0:0-0:` noise). */
    readonly detail: string,
    /** The whole error text of the call, for logs. */
    readonly errorText: string = '',
  ) {
    super(message);
  }

  /** Nothing fsguard can do about it at run time: the daemon should exit with `message`. */
  get fatal(): boolean {
    return this.kind === 'not-installed' || this.kind === 'permission' || this.kind === 'foreign-table' || this.kind === 'layout';
  }

  /** The same transaction may succeed if tried again. */
  get retryable(): boolean {
    return this.kind === 'transient' || this.kind === 'timeout' || this.kind === 'busy';
  }
}

/** What to tell a user when a cheap libnftables call did not come back within `seconds` (`when`: e.g. " at start"). */
export function unansweredMessage(seconds: number, when = ''): string {
  return `nftables did not answer within ${seconds} s${when} (a libnftables call hung: is the kernel's netlink stuck?)`;
}

const TRANSIENT_TEXT = /Resource temporarily unavailable|No buffer space available|Interrupted system call|Cannot allocate memory/;
const PERMISSION_TEXT = /Operation not permitted|Permission denied/;

/** The first line of the error text that carries the error, stripped of location noise. */
export function nftErrorLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l.length > 0);
  const line = lines.find((l) => l.includes('Error')) ?? lines[0] ?? '';
  return line.replace(/^internal:\d+:\d+-\d+:\s*/, '').replace(/^netlink:\s*/, '').slice(0, 500);
}

function permissionHint(library: string, detail: string): string {
  return `nftables (${library}) refused: ${detail}. Run fsguard as root, or give it CAP_NET_ADMIN ` +
    `(systemd: AmbientCapabilities=CAP_NET_ADMIN)`;
}

/** Null when the call succeeded; otherwise what went wrong, typed. */
export function classifyRun(result: NftRunResult, library: string): NftError | null {
  switch (result.kind) {
    case 'unavailable':
      if (result.permission) return new NftError('permission', permissionHint(library, result.message), result.message);
      return new NftError('not-installed',
        `cannot use libnftables (${library}): ${result.message}; install nftables (apt-get install -y nftables, which brings libnftables1) or set nft.library in the config`,
        result.message);
    case 'timed-out':
      return new NftError('timeout', `a libnftables call did not answer within ${result.afterMs} ms (${result.hungCalls} hung)`, 'timed out');
    case 'overloaded':
      return new NftError('transient', `${result.hungCalls} libnftables calls are hung: not calling it again until one returns`, 'hung calls');
    case 'completed': {
      if (result.ok) return null;
      const text = result.error;
      const detail = nftErrorLine(text) || 'failed without an error message';
      if (PERMISSION_TEXT.test(text)) return new NftError('permission', permissionHint(library, detail), detail, text);
      if (/Message too long/.test(text)) return new NftError('too-large', `nft: ${detail}`, detail, text);
      if (/Device or resource busy/.test(text)) return new NftError('busy', `nft: ${detail}`, detail, text);
      if (TRANSIENT_TEXT.test(text)) return new NftError('transient', `nft: ${detail}`, detail, text);
      if (/interval overlaps|conflicting intervals/.test(text)) return new NftError('overlap', `nft: ${detail}`, detail, text);
      // The cache lookup of a missing table/set says just "No such file or directory"; the
      // kernel refusing to delete a missing element says "Could not process rule: No such
      // file or directory", and for interval sets the library itself says "element does not exist".
      if (/element does not exist|Could not process rule: No such file or directory/.test(text)) {
        return new NftError('missing-element', `nft: ${detail}`, detail, text);
      }
      if (/No such file or directory/.test(text)) return new NftError('missing-table', `nft: ${detail}`, detail, text);
      if (/File exists/.test(text)) return new NftError('exists', `nft: ${detail}`, detail, text);
      return new NftError('rejected', `nft: ${detail}`, detail, text);
    }
  }
}
