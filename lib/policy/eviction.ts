// Cutting a full table that a Map keeps in use order (oldest first). Shared by the source
// tracker (unproven sources, proven sources, IPv6 prefixes) and the calls' hosts and prefixes.

/**
 * Drops entries of `map`, oldest first, until it holds `target`: first those `spare` does not
 * protect, then, if that was not enough, the oldest of the rest (memory stays bounded). Why the
 * protected go last: a spray of new addresses must not take a site's or a carrier's proof with
 * it. `added`, the entry its caller just made, is never dropped: the caller goes on with it.
 * `dropped` hears of each entry dropped.
 */
export function cutSparing<T>(
  map: Map<string, T>, target: number, spare: (v: T) => boolean, added: T | null, dropped: ((v: T) => void) | null = null,
): void {
  for (const [k, v] of map) {
    if (map.size <= target) return;
    if (v !== added && !spare(v)) { map.delete(k); dropped?.(v); }
  }
  for (const [k, v] of map) {
    if (map.size <= target) return;
    if (v !== added) { map.delete(k); dropped?.(v); }
  }
}
