// Which messages the policy has already been given, by origin (node, incarnation, sequence):
// the one place that makes "nothing counted twice" true. A message can reach a node twice —
// its own event judged locally during an outage and then read back from the stream, an append
// whose reply was lost and that was sent again — and is judged the first time only.
//
// Per origin it keeps a floor (every sequence number up to it was seen) and the numbers seen
// above it. Appends of one origin arrive nearly in order, so the set stays tiny; a number that
// never comes (dropped from a full buffer) would pin the floor, so past MAX_AHEAD the floor
// gives up on the oldest gap.
import type { OriginId } from './codec.js';

const MAX_AHEAD = 4096;
/** Incarnations remembered; the least recently seen is forgotten beyond this. */
const MAX_ORIGINS = 1024;

interface OriginRecord {
  floor: number;
  readonly ahead: Set<number>;
}

export class OriginLedger {
  private readonly origins = new Map<string, OriginRecord>();
  private last: { key: string; rec: OriginRecord } | null = null;

  /** True the first time this origin id is offered; false for a repeat. */
  admit(origin: OriginId): boolean {
    const rec = this.recordOf(origin);
    const s = origin.seq;
    if (s <= rec.floor || rec.ahead.has(s)) return false;
    if (s === rec.floor + 1) {
      rec.floor = s;
      while (rec.ahead.delete(rec.floor + 1)) rec.floor++;
    } else {
      rec.ahead.add(s);
      if (rec.ahead.size > MAX_AHEAD) {
        const lowest = Math.min(...rec.ahead);
        rec.floor = lowest;
        rec.ahead.delete(lowest);
        while (rec.ahead.delete(rec.floor + 1)) rec.floor++;
      }
    }
    return true;
  }

  /** Whether this origin id was admitted already. */
  has(origin: OriginId): boolean {
    const rec = this.origins.get(keyOf(origin));
    return rec !== undefined && (origin.seq <= rec.floor || rec.ahead.has(origin.seq));
  }

  private recordOf(origin: OriginId): OriginRecord {
    const key = keyOf(origin);
    if (this.last && this.last.key === key) return this.last.rec;
    let rec = this.origins.get(key);
    if (rec) {
      // Keep the map in least-recently-seen order.
      this.origins.delete(key);
      this.origins.set(key, rec);
    } else {
      rec = { floor: 0, ahead: new Set() };
      this.origins.set(key, rec);
      if (this.origins.size > MAX_ORIGINS) this.origins.delete(this.origins.keys().next().value as string);
    }
    this.last = { key, rec };
    return rec;
  }
}

function keyOf(o: OriginId): string {
  return `${o.node}\u0000${o.incarnation}`;
}
