/** Step 3: restore — the looked-up entry (or, after a peer finished, the key's) into the task dir. */
import type { OciStore } from '@task-cache/oci';
import type { ResolvedEntry, RestoreEntryResult } from '../../entry/types.js';
import { isTiered } from '../../tier/tiered.js';
import { admitEntry } from '../../trust/admit.js';
import type { CallContext } from '../context.js';

/** What to restore: an entry the lookup resolved, or the tag to resolve. */
export type RestoreSource = { entry: ResolvedEntry } | { tag: string };

/**
 * Restores (when `shouldRestore` agrees); `undefined` when not restored: a miss, the policy, a
 * refused entry (another task's, or untrusted), or trouble (a warning; the outputs are left as
 * they were). A tag is resolved and checked like a lookup's entry first.
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
  if (policy.shouldRestore && !(await policy.shouldRestore({ task, key, store: store.location }))) {
    call.outcome.missReason = 'not-restored';
    return undefined;
  }
  const t = performance.now();
  let entry: ResolvedEntry | undefined;
  if ('entry' in source) entry = source.entry;
  else {
    const found = await call.guard(
      store,
      'RESTORE_FAILED',
      'restore',
      (s) =>
        cache.entries.lookupEntry(store, {
          tag: source.tag,
          limits: cache.limits,
          ...(s ? { signal: s } : {}),
        }),
      cache.timeouts.lookupMs,
    );
    entry = found && admitEntry(call, found) ? found : undefined;
  }
  const result =
    entry &&
    (await call.guard(
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
          entry,
          concurrency: policy.concurrency,
          stateDir: cache.basesDir,
          onProgress: call.progress,
          ...(opSignal ? { signal: opSignal } : {}),
        }),
      cache.timeouts.restoreMs,
    ));
  stats.restoreMs += performance.now() - t;
  if (result && entry) {
    stats.chunksFetched = result.chunksFetched;
    stats.bytesFetched = result.bytesFetched;
    stats.files = result.files;
    const built = entry.config.buildDurationMs;
    const timeSavedMs =
      typeof built === 'number' && Number.isFinite(built) ? Math.max(0, built - stats.restoreMs) : undefined;
    if (timeSavedMs !== undefined) call.outcome.timeSavedMs = timeSavedMs;
    const tier = isTiered(store) ? store.servedBy(entry.tag) : undefined;
    if (tier !== undefined) call.outcome.tier = tier;
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
      ...(timeSavedMs !== undefined ? { timeSavedMs } : {}),
      ...(tier !== undefined ? { tier } : {}),
    });
  } else if (entry) {
    call.outcome.missReason = 'not-restored';
  }
  return result;
}
