/**
 * Warm start (`fallback: 'latest'`): on a miss, before the build, the task's newest entry (the
 * pointer tag `<urlsafe(task)>.latest` every save moves) is restored into the outputs, so an
 * incremental build (TypeScript's `tsbuildinfo`, a bundler's cache directory) starts from the last
 * good state. The run stays a miss: it builds and saves; its result carries `restoredFrom`. The
 * restore remembers that entry as the save's base, so the save pushes only the changed chunks.
 */
import type { OciStore } from '@task-cache/oci';
import { pointerTag } from '../../internal/base.js';
import { markInUse } from '../../tier/prune.js';
import type { CallContext } from '../context.js';

/**
 * Restores the task's newest entry into the outputs; its key, or `undefined` when there is none
 * (or on trouble: a warning, and the build starts cold with the outputs as they were).
 */
export async function warmStep(
  call: CallContext,
  store: OciStore,
  outputs: { dir: string; generates: readonly string[] },
): Promise<string | undefined> {
  const { cache, task, policy, stats, signal } = call;
  const tag = pointerTag(task);
  const use = await markInUse(store, tag);
  const t = performance.now();
  try {
    const entry = await call.guard(store, 'RESTORE_FAILED', 'warm start', () =>
      cache.entries.lookupEntry(store, { tag, ...(signal ? { signal } : {}) }),
    );
    if (!entry) return undefined;
    const restored = await call.guard(store, 'RESTORE_FAILED', 'warm start', () =>
      cache.entries.restoreEntry(store, {
        dir: outputs.dir,
        generates: outputs.generates,
        entry,
        concurrency: policy.concurrency,
        stateDir: cache.basesDir,
        ...(signal ? { signal } : {}),
      }),
    );
    if (!restored) return undefined;
    stats.chunksFetched = restored.chunksFetched;
    stats.bytesFetched = restored.bytesFetched;
    return entry.config.key;
  } finally {
    stats.restoreMs += performance.now() - t;
    await use?.release();
  }
}
