/**
 * Step 2: lookup — resolves the entry (manifest and config, validated) so the restore can use it
 * as is: a hit costs one manifest GET and one config GET before the chunks. An entry of another
 * task (a key collision) or, with trusted keys, one not validly signed for this key is a miss.
 * A miss is explained when the call asks for it (`policy.explain`).
 */
import type { OciStore } from '@task-cache/oci';
import type { ResolvedEntry } from '../../entry/types.js';
import type { Explanation } from '../../explain/diff.js';
import { admitEntry } from '../../trust/admit.js';
import type { CallContext } from '../context.js';

/**
 * The entry of the call's key, or `undefined` on a miss (or, with a warning, on trouble or a
 * refused entry). `explain` computes the explanation of a miss when the policy asks for one.
 * `recheck` (the lookup repeated under the lock) emits no `lookup` or `miss` event.
 */
export async function lookupStep(
  call: CallContext,
  store: OciStore,
  explain?: () => Promise<Explanation | undefined>,
  recheck = false,
): Promise<ResolvedEntry | undefined> {
  const { cache, task, key, signal, stats, policy } = call;
  const t = performance.now();
  try {
    // NOTE: `recheck` is the second lookup of a run, once the lock is held: its miss was already
    // reported (and explained); only a hit (a peer pushed meanwhile) is news.
    if (!recheck) cache.emit({ type: 'lookup', task, key, store: store.location });
    // NOTE: stays true when the guard skips the store (open breaker) or the lookup throws.
    let failed = true;
    const found = await call.guard(
      store,
      'LOOKUP_FAILED',
      'lookup',
      async (s) => {
        const e = await cache.entries.lookupEntry(store, {
          tag: key,
          limits: cache.limits,
          ...(s ? { signal: s } : {}),
        });
        failed = false;
        return e;
      },
      cache.timeouts.lookupMs,
    );
    const entry = found && admitEntry(call, found) ? found : undefined;
    if (entry) {
      cache.emit({ type: 'hit', task, key });
      return entry;
    }
    call.outcome.missReason ??= failed ? 'unavailable' : 'not-found';
    if (recheck) return undefined;
    if (policy.explain && explain && !failed) {
      const explanation = await explain().catch((error: unknown) => {
        signal?.throwIfAborted();
        void error;
        return undefined;
      });
      if (explanation) call.outcome.explanation = explanation;
    }
    const { missReason: reason, explanation } = call.outcome;
    cache.emit({
      type: 'miss',
      task,
      key,
      ...(reason !== 'not-found' ? { reason } : {}),
      ...(explanation ? { explanation } : {}),
    });
    return undefined;
  } finally {
    stats.lookupMs += performance.now() - t;
  }
}
