/**
 * `cache.run()`: key → lookup → restore on a hit; on a miss lock → build → save → release. Each
 * step is one module of ./steps; this file is only their order and the decisions between them.
 */
import type { OciStore } from '@task-cache/oci';
import { CacheConfigError } from '../errors.js';
import { explainKey } from '../explain/explain.js';
import { removeStaleStaging } from '../internal/scratch.js';
import { markInUse } from '../tier/prune.js';
import { type CacheContext, type CallContext, createCallContext, newStats } from './context.js';
import { checkRunOptions } from './options.js';
import { checkSourcesAndOutputs } from './outputs.js';
import { isUpToDate, removeStamp, snapshotOutputs, stampPath, writeStamp } from './stamp.js';
import { buildStep } from './steps/build.js';
import { keyStep } from './steps/key.js';
import { lockStep } from './steps/lock.js';
import { lookupStep } from './steps/lookup.js';
import { holdLease } from './steps/release.js';
import { type RestoreSource, restoreStep } from './steps/restore.js';
import { saveStep } from './steps/save.js';
import { warmStep } from './steps/warm.js';
import { describe } from './trouble.js';
import type { BuildFunction, NotSavedReason, RunOptions, RunResult } from './types.js';

/** Runs one task through the cache of `cache` (see `Cache.run`). */
export async function runTask<T>(
  cache: CacheContext,
  o: RunOptions,
  build: BuildFunction<T>,
): Promise<RunResult<T>> {
  const started = performance.now();
  const override = checkRunOptions(o, build as BuildFunction<unknown>);
  if (cache.closed) throw new CacheConfigError('CACHE_ERR_CLOSED', 'run: the cache is closed');
  const policy = cache.policy(override);
  const stats = newStats();
  const signal = o.signal ?? new AbortController().signal;
  signal.throwIfAborted();
  let call: CallContext | undefined;
  let storeLocation = '';
  const finish = (r: Omit<RunResult<T>, 'stats'>): RunResult<T> => {
    stats.totalMs = performance.now() - started;
    const { missReason, explanation, timeSavedMs, tier } = call?.outcome ?? {};
    const extra =
      r.status === 'restored'
        ? { ...(timeSavedMs !== undefined ? { timeSavedMs } : {}), ...(tier !== undefined ? { tier } : {}) }
        : { ...(missReason ? { missReason } : {}), ...(explanation ? { explanation } : {}) };
    const result: RunResult<T> = { ...r, ...extra, stats };
    if (r.reason !== 'disabled') {
      const { value: _value, leaseLost: _lost, ...rest } = result;
      cache.runLog.record({ time: new Date().toISOString(), task: o.task, store: storeLocation, ...rest });
    }
    return result;
  };
  const buildOnly = async (key: string, reason: NotSavedReason): Promise<RunResult<T>> =>
    finish({ status: 'built', key, reason, value: await buildStep(build, { signal, key }, stats) });

  // 1. Disabled → just build.
  if (!cache.enabled) return buildOnly('', 'disabled');

  // Staging directories left by a killed restore of this task are removed (best effort).
  await removeStaleStaging(o.dir);

  // 2. Key.
  const { key, files, inputs } = await keyStep(cache, o, stats);
  call = createCallContext(cache, { task: o.task, key, policy, stats, signal: o.signal });
  // Sources matching nothing warn; generates overlapping sources are refused — before the build.
  await checkSourcesAndOutputs(call, o, files);

  // 2b. Up to date: the outputs on disk are exactly those of the entry `key` (run/stamp.ts) →
  // nothing to restore, no store call. Not with `force`, nor with a `shouldRestore` policy (it
  // decides per store, and no store is asked here).
  const stamp = stampPath(cache.stateDir, o.task, o.dir, o.generates);
  if (!policy.force && !policy.shouldRestore) {
    const t = performance.now();
    const { upToDate, files: count } = isUpToDate(stamp, key, o.dir, o.generates);
    stats.restoreMs += performance.now() - t;
    if (upToDate) {
      stats.files = count;
      cache.emit({ type: 'up-to-date', task: o.task, key, files: count });
      return finish({ status: 'restored', key, reason: 'up-to-date' });
    }
  }

  const store = await call.openStore();
  storeLocation = store?.location ?? '';
  if (policy.readOnlyReason !== undefined)
    cache.emit({ type: 'read-only', task: o.task, key, reason: policy.readOnlyReason });
  const explain = (s: OciStore) => () =>
    explainKey(s, {
      task: o.task,
      key,
      dir: o.dir,
      inputs,
      basesDir: cache.basesDir,
      trustedKeys: cache.trustedKeys,
      signal: o.signal,
    });
  // NOTE: the key's entry is marked in use (local stores) before the lookup and until the run
  // ends: a concurrent prune of any process keeps it while it is restored or saved.
  const use = await markInUse(store, key);
  try {
    const restoreFrom = async (
      source: RestoreSource,
      from: OciStore | undefined = store,
    ): Promise<RunResult<T> | undefined> => {
      if (!from) return undefined;
      removeStamp(stamp);
      if (!(await restoreStep(call, from, o, source))) return undefined;
      writeStamp(stamp, key, o.dir, o.generates);
      return finish({
        status: 'restored',
        key,
        ...(cache.readScopeCount > 0 ? { scope: from.location } : {}),
      });
    };
    // Scoped reads: after the own store misses, each read scope in order (never written).
    const lookupScopes = async (recheck: boolean): Promise<RunResult<T> | undefined> => {
      for (let i = 0; i < cache.readScopeCount; i++) {
        if (call.outcome.missReason === 'key-collision') return undefined;
        let scope: OciStore;
        try {
          scope = await cache.readScope(i, o.signal);
        } catch (error) {
          signal.throwIfAborted();
          call.warn('LOOKUP_FAILED', `cannot open read scope ${i}: ${describe(error).message}`, error);
          continue;
        }
        const entry = await lookupStep(call, scope, undefined, recheck);
        const restored = entry ? await restoreFrom({ entry }, scope) : undefined;
        if (restored) return restored;
      }
      return undefined;
    };
    const lookupAndRestore = async (recheck = false): Promise<RunResult<T> | undefined> => {
      if (!store) return undefined;
      if (policy.force) {
        call.outcome.missReason = 'forced';
        return undefined;
      }
      const entry = await lookupStep(call, store, explain(store), recheck);
      return (entry ? await restoreFrom({ entry }) : undefined) ?? (await lookupScopes(recheck));
    };

    // 3. Lookup; hit → restore the entry the lookup resolved. No lock is taken.
    const hit = await lookupAndRestore();
    if (hit) return hit;
    if (!store) return buildOnly(key, 'save-failed');
    if (policy.readOnly) return buildOnly(key, 'read-only');

    // 4. Miss → lock. A peer that finished meanwhile saved the entry: restore it.
    const locked = cache.noLock
      ? ({ kind: 'none' } as const)
      : await lockStep(call, store, o.lockKey ?? cache.lockKey ?? `lock:${key}`, signal);
    if (locked.kind === 'peer-finished') {
      const restored = await restoreFrom({ tag: key });
      if (restored) return restored;
      // The peer's entry is not there after all: build without the lock.
    }

    const held = holdLease(locked.kind === 'acquired' ? locked.lease : undefined);
    try {
      // Acquired: a peer may have pushed while we waited.
      if (held.lease) {
        const restored = await lookupAndRestore(true);
        if (restored) {
          await held.release('built');
          return restored;
        }
      }

      // The outputs are about to change (warm start, build): the stamp no longer holds.
      removeStamp(stamp);
      // Warm start: the task's newest entry into the outputs; the run stays a miss.
      const restoredFrom = o.fallback === 'latest' ? await warmStep(call, store, o) : undefined;

      // 5. Build. A failure rejects with the build's own error; the lock is released `failed`.
      let value: T;
      try {
        value = await buildStep(build, { signal, key }, stats);
      } catch (error) {
        await held.release('failed');
        throw error;
      }
      signal.throwIfAborted();
      held.check();

      // 6. Save (outputs missing → nothing saved, with a warning). A lost lease does not stop the
      // save: entries are content-addressed and the tag is pushed last, so a concurrent builder's
      // identical entry is harmless.
      const before = snapshotOutputs(o.dir, o.generates);
      const saved = await saveStep(call, store, o, files, held.lost, inputs);
      if ('saved' in saved && before) writeStamp(stamp, key, o.dir, o.generates, before);

      // 7. Release.
      await held.release('saved' in saved ? 'built' : 'failed');
      if (held.lost())
        call.warn(
          'LEASE_LOST',
          'saved' in saved
            ? 'the lock lease was lost during the build; the result was saved anyway (entries are content-addressed)'
            : 'the lock lease was lost during the build',
          held.lease?.signal.reason,
        );
      const base = {
        key,
        value,
        ...(held.lost() ? { leaseLost: true } : {}),
        ...(restoredFrom === undefined ? {} : { restoredFrom }),
      };
      return 'saved' in saved
        ? finish({ status: 'saved', ...base })
        : finish({ status: 'built', reason: saved.reason, ...base });
    } finally {
      held.dispose();
      await held.release('failed');
    }
  } finally {
    await use?.release();
  }
}
