/** Step 3: restore — the looked-up entry (or, after a peer finished, the key's) into the task dir. */
import type { OciStore } from '@task-cache/oci';
import type { ResolvedEntry, RestoreEntryResult } from '../../entry/types.js';
import type { CallContext } from '../context.js';

/** What to restore: an entry the lookup resolved, or the tag to resolve. */
export type RestoreSource = { entry: ResolvedEntry } | { tag: string };

/**
 * Restores (when `shouldRestore` agrees); `undefined` when not restored: a miss, the policy, or
 * trouble (a warning; the outputs are left as they were).
 */
export async function restoreStep(
  call: CallContext,
  store: OciStore,
  outputs: {
    dir: string;
    generates: readonly string[];
    sources: readonly string[];
    allowBroadGenerates?: boolean;
  },
  source: RestoreSource,
): Promise<RestoreEntryResult | undefined> {
  const { cache, task, key, policy, stats } = call;
  if (policy.shouldRestore && !(await policy.shouldRestore({ task, key, store: store.location })))
    return undefined;
  const t = performance.now();
  const result = await call.guard(
    store,
    'RESTORE_FAILED',
    'restore',
    (opSignal) =>
      cache.entries.restoreEntry(store, {
        dir: outputs.dir,
        generates: outputs.generates,
        // A restore never writes, replaces or removes a source file (issue 16).
        protect: outputs.sources,
        ...(outputs.allowBroadGenerates ? { allowBroadGenerates: true } : {}),
        ...source,
        concurrency: policy.concurrency,
        stateDir: cache.basesDir,
        onProgress: call.progress,
        ...(opSignal ? { signal: opSignal } : {}),
      }),
    cache.timeouts.restoreMs,
  );
  stats.restoreMs += performance.now() - t;
  if (result) {
    stats.chunksFetched = result.chunksFetched;
    stats.bytesFetched = result.bytesFetched;
    stats.files = result.files;
    cache.emit({
      type: 'restored',
      task,
      key,
      digest: result.digest,
      chunksFetched: result.chunksFetched,
      bytesFetched: result.bytesFetched,
      files: result.files,
      removed: result.removed,
      durationMs: result.durationMs,
    });
  }
  return result;
}
