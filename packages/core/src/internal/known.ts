/**
 * Digests known to exist in a store, per store object, for this process: the chunks this
 * process pushed, found by HEAD, or fetched. A save skips the existence check for them. If the
 * store lost one meanwhile (garbage collection), the manifest push answers
 * `MANIFEST_BLOB_UNKNOWN` and the save forgets those digests and retries.
 */
const known = new WeakMap<object, Set<string>>();

/** The set of digests known to exist in `store`. */
export function knownDigests(store: object): Set<string> {
  let set = known.get(store);
  if (set === undefined) {
    set = new Set();
    known.set(store, set);
  }
  return set;
}
