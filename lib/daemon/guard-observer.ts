// What the guard tells others after it acted (status, notifications). Observers are called
// synchronously on the ban path, so each must return at once: queue, never wait, never throw.
import type { BanDecision, PolicyAlert } from '../policy/types.js';

/** What FreeSWITCH says about itself in its HEARTBEAT events. */
export interface SwitchInfo {
  readonly hostname: string;
  readonly version: string;
  /** FreeSWITCH's own uptime, when it said so. */
  readonly uptimeMs: number | null;
}

export type ConnectionState = 'connected' | 'disconnected' | 'rejected';

export interface GuardObserver {
  /** A ban was decided and queued for the kernel (`seconds` as written). */
  banned?(decision: BanDecision, seconds: number, atMs: number): void;
  /** A ban the guard knew left the kernel: its time ran out, or it was removed by hand. */
  unbanned?(target: string, rule: string, how: 'expired' | 'lifted', atMs: number): void;
  alerted?(alert: PolicyAlert, atMs: number): void;
  connection?(state: ConnectionState, detail: string, atMs: number): void;
  heartbeat?(info: SwitchInfo, atMs: number): void;
}
