/**
 * Step 6: save — after a successful build: nothing when read-only, when declared outputs are
 * missing (a warning naming them), when `shouldSave` says no or the breaker is open; else the
 * entry, capped by the policy's and the store's `maxEntrySize`.
 */
import type { OciStore } from '@task-cache/oci';
import type { SaveEntryResult } from '../../entry/types.js';
import type { KeyInputs, SourceDigest } from '../../key/checksum.js';
import type { CallContext } from '../context.js';
import { missingOutputs } from '../outputs.js';
import { isEntryTooLarge } from '../trouble.js';
import type { NotSavedReason } from '../types.js';

/** The saved entry, or why nothing was saved. */
export type SaveOutcome = { saved: SaveEntryResult } | { reason: NotSavedReason };

/**
 * `true` when the key already holds an entry this save must not replace: no overwrite unless
 * `force`, or the entry this call found was refused as untrusted (and this save signs), or could
 * not be restored (a damaged entry is replaced). Check, then write: registry-side tag immutability
 * is what makes it airtight (docs/security.md). A failing check lets the save try.
 */
async function taken(call: CallContext, store: OciStore): Promise<boolean> {
  const { cache, key, policy, signal, outcome } = call;
  if (policy.force || outcome.missReason === 'not-restored') return false;
  if (outcome.missReason === 'untrusted' && cache.sign) return false;
  try {
    return await cache.entries.hasEntry(store, key, signal ? { signal } : {});
  } catch (error) {
    signal?.throwIfAborted();
    void error;
    return false;
  }
}

/** Saves the task's outputs under the call's key. */
export async function saveStep(
  call: CallContext,
  store: OciStore,
  o: {
    dir: string;
    generates: readonly string[];
    sources: readonly string[];
    allowBroadGenerates?: boolean;
  },
  files: SourceDigest[] | undefined,
  leaseLost: () => boolean,
  inputs?: KeyInputs,
): Promise<SaveOutcome> {
  const { cache, task, key, policy, stats } = call;
  if (policy.readOnly) return { reason: 'read-only' };
  // The key holds another task's entry: replacing it would only make that task miss in turn.
  if (call.outcome.missReason === 'key-collision') return { reason: 'key-collision' };
  const missing = await missingOutputs(o.dir, o.generates);
  if (missing.length > 0) {
    call.warn(
      'OUTPUTS_MISSING',
      `nothing saved: the build did not produce the declared outputs ${missing.map((m) => JSON.stringify(m)).join(', ')}`,
    );
    return { reason: 'outputs-missing' };
  }
  if (policy.shouldSave && !(await policy.shouldSave({ task, key, store: store.location })))
    return { reason: 'policy' };
  if (call.circuitOpen(store, 'save')) return { reason: 'circuit-open' };
  if (await taken(call, store)) return { reason: 'exists' };
  const storeCap = store.limits?.maxEntrySize;
  const maxEntrySize = storeCap === undefined ? policy.maxEntrySize : Math.min(storeCap, policy.maxEntrySize);
  const t = performance.now();
  let tooLarge = false;
  const saved = await call.guard(
    store,
    'SAVE_FAILED',
    'save',
    async (opSignal) => {
      try {
        return await cache.entries.saveEntry(store, {
          dir: o.dir,
          generates: o.generates,
          protect: o.sources,
          ...(o.allowBroadGenerates ? { allowBroadGenerates: true } : {}),
          tag: key,
          task,
          key,
          ...(files ? { sources: files.map((f) => ({ path: f.path, digest: f.digest })) } : {}),
          ...(inputs ? { inputs: { task, ...inputs } } : {}),
          ...(stats.buildMs > 0 ? { buildDurationMs: stats.buildMs } : {}),
          ...(cache.sign ? { sign: cache.sign } : {}),
          compressionLevel: policy.compressionLevel,
          formatVersion: policy.formatVersion,
          concurrency: policy.concurrency,
          ...(Number.isFinite(maxEntrySize) ? { maxEntrySize } : {}),
          stateDir: cache.basesDir,
          ...(cache.urlFormat ? { format: cache.urlFormat } : {}),
          onFallback: (info) => cache.emit({ type: 'format-fallback', task, key, ...info }),
          onProgress: call.progress,
          ...(opSignal ? { signal: opSignal } : {}),
        });
      } catch (error) {
        tooLarge = isEntryTooLarge(error);
        throw error;
      }
    },
    cache.timeouts.saveMs,
  );
  stats.saveMs += performance.now() - t;
  if (!saved) return { reason: tooLarge ? 'entry-too-large' : 'save-failed' };
  stats.chunksPushed = saved.chunksPushed;
  stats.chunksTotal = saved.chunksTotal;
  stats.bytesPushed = saved.bytesPushed;
  stats.files = saved.files;
  cache.emit({
    type: 'saved',
    task,
    key,
    digest: saved.digest,
    chunksPushed: saved.chunksPushed,
    chunksTotal: saved.chunksTotal,
    bytesPushed: saved.bytesPushed,
    bytesTotal: saved.bytesTotal,
    files: saved.files,
    durationMs: saved.durationMs,
    ...(leaseLost() ? { leaseLost: true } : {}),
  });
  // Bounds the local store in the background (at most once per interval); never awaited.
  cache.pruner.schedule(store);
  return { saved };
}
