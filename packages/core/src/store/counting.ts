import type { OciStore } from '@task-cache/oci';

/** The store methods {@link countingStore} counts. */
export type CountedMethod =
  | 'fetchBlob'
  | 'blobExists'
  | 'pushBlob'
  | 'fetchManifest'
  | 'pushManifest'
  | 'tag'
  | 'listTags'
  | 'deleteManifest';

/** A store wrapped by {@link countingStore}. */
export type CountingStore<S extends OciStore = OciStore> = S & {
  /** Calls per method so far (every method starts at 0). */
  readonly counts: Record<CountedMethod, number>;
  /** Sets every count back to 0. */
  resetCounts(): void;
};

const METHODS: readonly CountedMethod[] = [
  'fetchBlob',
  'blobExists',
  'pushBlob',
  'fetchManifest',
  'pushManifest',
  'tag',
  'listTags',
  'deleteManifest',
];

/**
 * Wraps a store and counts the calls of each method (after oras-go's `storageTracker`), so a
 * test can assert, e.g., that a cache hit made no pushes: `expect(s.counts.pushBlob).toBe(0)`.
 * Other members (and the extra members of the wrapped store) pass through unchanged.
 */
export function countingStore<S extends OciStore>(store: S): CountingStore<S> {
  const counts = Object.fromEntries(METHODS.map((m) => [m, 0])) as Record<CountedMethod, number>;
  const wrapped = Object.create(store) as CountingStore<S>;
  for (const method of METHODS) {
    const fn = (store as unknown as Record<string, unknown>)[method];
    if (typeof fn !== 'function') continue;
    Object.defineProperty(wrapped, method, {
      value: (...args: unknown[]) => {
        counts[method]++;
        return (fn as (...a: unknown[]) => unknown).apply(store, args);
      },
      enumerable: true,
    });
  }
  Object.defineProperty(wrapped, 'counts', { value: counts, enumerable: true });
  Object.defineProperty(wrapped, 'resetCounts', {
    value: () => {
      for (const m of METHODS) counts[m] = 0;
    },
  });
  return wrapped;
}
