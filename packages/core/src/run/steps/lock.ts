/**
 * Step 4: lock — after a miss, `acquireOrWait` on the lock key: this run builds (`acquired`), a
 * peer built meanwhile (`peer-finished`: restore its entry), or the lock cannot help
 * (`unavailable`, `timed-out`: build without it, with a warning).
 */
import type { OciStore } from '@task-cache/oci';
import type { CallContext } from '../context.js';
import { describe, isAbort } from '../trouble.js';
import type { CacheLease, CacheLock } from '../types.js';

/** What the lock step decided. */
export type LockOutcome =
  | { kind: 'acquired'; lease: CacheLease }
  | { kind: 'peer-finished' }
  | { kind: 'none' };

/** Takes (or waits for) the lock of the call's key. */
export async function lockStep(
  call: CallContext,
  store: OciStore,
  lockKey: string,
  signal: AbortSignal,
): Promise<LockOutcome> {
  const { cache, task, key, policy, stats } = call;
  const unavailable = (message: string, cause?: unknown): LockOutcome => {
    cache.emit({ type: 'lock-unavailable', task, key, reason: 'unavailable', message });
    call.warn('LOCK_UNAVAILABLE', `lock unavailable, building without it: ${message}`, cause);
    return { kind: 'none' };
  };
  let lock: CacheLock;
  try {
    lock = await cache.lock();
  } catch (error) {
    if (isAbort(error, call.signal)) throw error;
    return unavailable(describe(error).message, error);
  }
  const t = performance.now();
  let polls = 0;
  const outcome = await lock.acquireOrWait(lockKey, {
    // NOTE: the lock calls isDone before every attempt. The first call comes before the first
    // attempt, right after our own lookup missed: answer it without asking the store. A second
    // call means the lock is held by someone else: this run is now waiting.
    isDone: async (s) => {
      polls += 1;
      if (polls === 1) return false;
      if (polls === 2) cache.emit({ type: 'lock-waiting', task, key, lock: cache.lockLocation });
      if (policy.force) return false;
      try {
        return await cache.entries.hasEntry(store, key, { signal: s });
      } catch {
        return false;
      }
    },
    waitTimeoutMs: policy.lockWaitTimeoutMs,
    signal,
  });
  stats.lockWaitMs = performance.now() - t;
  switch (outcome.kind) {
    case 'acquired': {
      const { lease } = outcome;
      cache.emit({
        type: 'lock-acquired',
        task,
        key,
        ...(lease.fence === undefined ? {} : { fence: String(lease.fence) }),
      });
      return { kind: 'acquired', lease };
    }
    case 'peer-finished':
      cache.emit({ type: 'lock-peer-finished', task, key });
      return { kind: 'peer-finished' };
    case 'timed-out': {
      const message = `waited ${policy.lockWaitTimeoutMs} ms for another job`;
      cache.emit({ type: 'lock-unavailable', task, key, reason: 'timed-out', message });
      call.warn('LOCK_TIMED_OUT', `lock wait timed out (${message}), building without it`);
      return { kind: 'none' };
    }
    case 'unavailable':
      return unavailable(describe(outcome.error ?? 'unavailable').message, outcome.error);
  }
}
