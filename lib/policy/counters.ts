// O(1), allocation-free counters for per-source evidence. The policy keeps one of these per
// kind of evidence per source instead of arrays of timestamps, so a source costs the same few
// numbers whether it sent one packet or a million, and memory stays bounded under a flood.

/**
 * A leaky bucket (as in CrowdSec's scenarios): every event pours 1 in, and the level drains
 * linearly at `threshold / window`. A burst of `threshold` events within much less than
 * `window` reaches the threshold; so does any sustained rate above `threshold / window`;
 * a steady trickle below that rate (a phone retrying every 30-60 s) never does.
 */
export class LeakyBucket {
  level = 0;
  atUs = 0;

  /** The level at `nowUs`, draining at `ratePerUs`. Never moves time backwards. */
  value(nowUs: number, ratePerUs: number): number {
    if (this.level === 0) return 0;
    const dt = nowUs - this.atUs;
    if (dt <= 0) return this.level;
    const v = this.level - dt * ratePerUs;
    return v > 0 ? v : 0;
  }

  /** Pours `n` in at `nowUs` and returns the new level. */
  add(nowUs: number, ratePerUs: number, n = 1): number {
    const v = this.value(nowUs, ratePerUs) + n;
    this.level = v;
    if (nowUs > this.atUs) this.atUs = nowUs;
    return v;
  }

  reset(): void {
    this.level = 0;
    this.atUs = 0;
  }
}

/** 32-bit FNV-1a of a string: a deterministic jitter source (replays give the same bans). */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
