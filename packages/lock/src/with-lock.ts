import type { AcquireOptions, Lease, Lock } from './types.js';

/** The result of {@link withLock}. */
export type WithLockResult<T> =
  | { kind: 'acquired' | 'timed-out' | 'unavailable'; value: T }
  | { kind: 'peer-finished' };

/**
 * Runs `fn` under `lock` for `key`: with the lease when acquired (released `built` when `fn` resolves,
 * `failed` when it throws — the error is rethrown), without a lease when the lock timed out or is
 * unavailable (the caller proceeds without the lock), and not at all when a peer finished (check the
 * cache). `fn` should stop when `lease.signal` aborts.
 */
export async function withLock<T>(
  lock: Lock,
  key: string,
  fn: (lease: Lease | undefined) => Promise<T>,
  options: AcquireOptions = {},
): Promise<WithLockResult<T>> {
  const outcome = await lock.acquireOrWait(key, options);
  if (outcome.kind === 'peer-finished') return { kind: 'peer-finished' };
  if (outcome.kind !== 'acquired') return { kind: outcome.kind, value: await fn(undefined) };
  let value: T;
  try {
    value = await fn(outcome.lease);
  } catch (error) {
    await outcome.lease.release('failed');
    throw error;
  }
  await outcome.lease.release('built');
  return { kind: 'acquired', value };
}
