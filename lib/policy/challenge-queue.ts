// The challenges awaiting an answer, across all sources, in arrival order: the policy's only
// timer. Each entry's deadline is its time plus the (shared) answer timeout, so the queue is in
// deadline order and the next deadline is its head.
import type { RuleSettings } from './compiled-settings.js';

/**
 * A FIFO of challenges awaiting an answer, in arrival order, across all sources: a ring of
 * parallel arrays indexed by a sequence number. It holds the source's key, not its state, so an
 * evicted source is not kept alive by its pending challenges (under a spray at 100,000 events/s
 * that kept 150,000 evicted sources and their prefixes in memory, beyond every cap). A source
 * that is evicted hands its still-pending challenges over as orphans: they count for its prefix.
 *
 * The queue holds every challenge of the last answerTimeout of event time (200,000 entries
 * under the bench's spray), so an entry is kept small: an orphan's call-id is never looked at
 * again, and its slot holds the prefix key instead (a flag tells which); an orphan that counts
 * for no prefix (its prefix is no longer tracked) keeps no strings at all.
 */
export class ChallengeQueue {
  private keys: string[] = new Array<string>(1024).fill('');
  /** The call-id, or for an orphan the prefix key it counts for ('' for none). */
  private callIds: string[] = new Array<string>(1024).fill('');
  private orphaned = new Uint8Array(1024);
  private times = new Float64Array(1024);
  /** The settings of the profile the challenge came from (its expiry is judged with them). */
  private settings: (RuleSettings | null)[] = new Array<RuleSettings | null>(1024).fill(null);
  private mask = 1023;
  /** Ring index and sequence number of the oldest entry. */
  private headIdx = 0;
  private headSeq = 0;
  private count = 0;

  get length(): number {
    return this.count;
  }

  /** Appends a challenge; returns its sequence number. */
  push(key: string, callId: string, timeUs: number, settings: RuleSettings): number {
    if (this.count > this.mask) this.grow();
    const i = (this.headIdx + this.count) & this.mask;
    this.keys[i] = key;
    this.callIds[i] = callId;
    this.orphaned[i] = 0;
    this.times[i] = timeUs;
    this.settings[i] = settings;
    return this.headSeq + this.count++;
  }

  private grow(): void {
    const cap = (this.mask + 1) * 2;
    const keys = new Array<string>(cap).fill('');
    const callIds = new Array<string>(cap).fill('');
    const orphaned = new Uint8Array(cap);
    const times = new Float64Array(cap);
    const settings = new Array<RuleSettings | null>(cap).fill(null);
    for (let k = 0; k < this.count; k++) {
      const i = (this.headIdx + k) & this.mask;
      keys[k] = this.keys[i]!;
      callIds[k] = this.callIds[i]!;
      orphaned[k] = this.orphaned[i]!;
      times[k] = this.times[i]!;
      settings[k] = this.settings[i]!;
    }
    this.keys = keys;
    this.callIds = callIds;
    this.orphaned = orphaned;
    this.times = times;
    this.settings = settings;
    this.mask = cap - 1;
    this.headIdx = 0;
  }

  private index(seq: number): number {
    const d = seq - this.headSeq;
    return d >= 0 && d < this.count ? (this.headIdx + d) & this.mask : -1;
  }

  /** Time of a queued challenge (every pending challenge is still queued). */
  timeOf(seq: number): number {
    const i = this.index(seq);
    return i < 0 ? 0 : this.times[i]!;
  }

  /** The source of this challenge was evicted: it counts for `prefixKey` ('' for nothing). */
  orphan(seq: number, prefixKey: string): void {
    const i = this.index(seq);
    if (i < 0) return;
    this.orphaned[i] = 1;
    this.callIds[i] = prefixKey;
    if (prefixKey === '') this.keys[i] = '';
  }

  oldestTime(): number {
    return this.times[this.headIdx]!;
  }

  oldestSeq(): number {
    return this.headSeq;
  }

  oldestKey(): string {
    return this.keys[this.headIdx]!;
  }

  /** Call-id of the oldest entry (not an orphan). */
  oldestCallId(): string {
    return this.callIds[this.headIdx]!;
  }

  /** The prefix key an orphaned oldest entry counts for ('' none), or null if not orphaned. */
  oldestOrphan(): string | null {
    const i = this.headIdx;
    return this.orphaned[i] === 1 ? this.callIds[i]! : null;
  }

  /** Settings of the oldest entry's profile. */
  oldestSettings(): RuleSettings {
    return this.settings[this.headIdx]!;
  }

  dropOldest(): void {
    const i = this.headIdx;
    this.settings[i] = null;
    this.keys[i] = '';
    this.callIds[i] = '';
    this.headIdx = (i + 1) & this.mask;
    this.headSeq++;
    this.count--;
  }
}
