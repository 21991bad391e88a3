/**
 * Step 2: lookup — resolves the entry (manifest and config, validated) so the restore can use it
 * as is: a hit costs one manifest GET and one config GET before the chunks.
 */
import type { OciStore } from '@task-cache/oci';
import type { ResolvedEntry } from '../../entry/types.js';
import type { CallContext } from '../context.js';

/** The entry of the call's key, or `undefined` on a miss (or, with a warning, on trouble). */
export async function lookupStep(call: CallContext, store: OciStore): Promise<ResolvedEntry | undefined> {
  const { cache, task, key, stats } = call;
  const t = performance.now();
  try {
    cache.emit({ type: 'lookup', task, key, store: store.location });
    const entry = await call.guard(
      store,
      'LOOKUP_FAILED',
      'lookup',
      (s) =>
        cache.entries.lookupEntry(store, { tag: key, limits: cache.limits, ...(s ? { signal: s } : {}) }),
      cache.timeouts.lookupMs,
    );
    cache.emit({ type: entry ? 'hit' : 'miss', task, key });
    return entry;
  } finally {
    stats.lookupMs += performance.now() - t;
  }
}
