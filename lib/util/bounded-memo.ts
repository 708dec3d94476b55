// A memo that an input flood cannot grow: the parsed addresses of a stream, the scanner verdicts
// of user agents, the one shared copy of each user name the policy stores.

/** A Map that starts over when it reaches its capacity, which only costs the memo, never a result. */
export class BoundedMemo<K, V> {
  private readonly entries = new Map<K, V>();

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: K): V | undefined {
    return this.entries.get(key);
  }

  set(key: K, value: V): void {
    if (this.entries.size >= this.capacity) this.entries.clear();
    this.entries.set(key, value);
  }
}
