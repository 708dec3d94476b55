// The `status` config section: where the daemon answers `fsguard status`.
export interface StatusConfig {
  /** Unix socket path; empty = no status socket. */
  readonly socket: string;
}

export const DEFAULT_STATUS_SOCKET = '/run/fsguard/status.sock';

export const statusSchema = {
  socket: { doc: 'Unix socket the daemon answers `fsguard status` on (mode 0660: root and the daemon\'s group); empty = none', format: String, default: DEFAULT_STATUS_SOCKET },
};

export function statusProblems(s: StatusConfig): string[] {
  if (s.socket && !s.socket.startsWith('/')) return [`status.socket: must be an absolute path, got ${JSON.stringify(s.socket)}`];
  // sun_path is 108 bytes on Linux, the terminating NUL included.
  if (Buffer.byteLength(s.socket) > 107) return [`status.socket: longer than a Unix socket path may be (107 bytes): ${JSON.stringify(s.socket)}`];
  return [];
}
