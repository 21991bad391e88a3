/**
 * The lock a layout store takes around each read-modify-write of its `index.json`.
 *
 * The store asks for a narrow capability, a {@link LayoutLocker}, and never implements a
 * cross-process lock itself: that algorithm (lock files with owner PID, host, token and stale
 * breaking) belongs to `@task-cache/lock` as `acquireLockFile`, which has exactly this shape and
 * which `@task-cache/core` passes for every layout it opens. The default here only excludes
 * writers of the same process.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { LockTimeoutError } from '../errors.js';

/** A held lock; `release()` is called exactly once. */
export interface HeldLock {
  release(): Promise<void>;
}

/**
 * The lock a layout store takes around each update of `index.json` (the `locker` option):
 * resolves once the lock named by `path` is held. `staleMs` is the store's `staleLockMs`, for
 * lockers that can find abandoned locks.
 */
export type LayoutLocker = (
  path: string,
  options: { timeoutMs: number; staleMs?: number; signal?: AbortSignal },
) => Promise<HeldLock>;

// NOTE: one queue per lock path in this process: the resource (a file path) is process-wide, so
// is its mutex. Each waiter chains on the promise of the holder before it.
const tails = new Map<string, Promise<void>>();

/**
 * The default {@link LayoutLocker}: a mutex per lock path within this process. It does NOT exclude
 * other processes — pass a cross-process locker (`acquireLockFile` of `@task-cache/lock`) when
 * several processes write the same layout.
 */
export const inProcessLocker: LayoutLocker = async (path, options) => {
  options.signal?.throwIfAborted();
  const before = tails.get(path) ?? Promise.resolve();
  let release!: () => void;
  const mine = new Promise<void>((resolve) => {
    release = resolve;
  });
  const tail = before.then(() => mine);
  tails.set(path, tail);
  const done = () => {
    release();
    if (tails.get(path) === tail) tails.delete(path);
  };
  const timer = new AbortController();
  try {
    const waited = await Promise.race([
      before.then(() => true),
      sleep(options.timeoutMs, false, {
        signal: options.signal ? AbortSignal.any([options.signal, timer.signal]) : timer.signal,
      }),
    ]);
    if (!waited) {
      // Our turn never came: pass it on as soon as it does, so the queue keeps moving.
      before.then(done);
      throw new LockTimeoutError(`timed out after ${options.timeoutMs} ms waiting for lock ${path}`, {
        path,
      });
    }
  } catch (error) {
    if (!(error instanceof LockTimeoutError)) {
      before.then(done);
      options.signal?.throwIfAborted();
    }
    throw error;
  } finally {
    timer.abort();
  }
  let released = false;
  return {
    release: async () => {
      if (released) return;
      released = true;
      done();
    },
  };
};
