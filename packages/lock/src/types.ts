import type { LockUnavailableError } from './errors.js';

/** How a lease holder finished: waiters told `built` check the cache; told `failed`, one of them builds. */
export type ReleaseOutcome = 'built' | 'failed';

/** A held lock. Obtained from {@link Lock.acquireOrWait}. */
export interface Lease {
  /** The lock key. */
  readonly key: string;
  /**
   * Fencing token: strictly increasing per key across acquisitions, also across a Redis restart (seeded
   * from the server clock, in microseconds). A safe integer.
   */
  readonly fence: number;
  /**
   * Aborts with a `LeaseLostError` when the lease is lost (renewal impossible until the local
   * monotonic deadline, token mismatch, lock closed). It does not abort on {@link Lease.release}.
   */
  readonly signal: AbortSignal;
  /** Synchronous: `false` once the lease is lost, its local deadline passed, or it was released. */
  isValid(): boolean;
  /**
   * Compare-and-delete, then publish `outcome` to the waiters. Never throws for backend trouble and is
   * safe to call twice.
   * @param outcome @default 'built'
   * @returns `true` if this call removed the lock, `false` if it was no longer ours or the backend failed.
   */
  release(outcome?: ReleaseOutcome): Promise<boolean>;
}

/** The result of {@link Lock.acquireOrWait}. */
export type AcquireOutcome =
  | { kind: 'acquired'; lease: Lease }
  /** A peer released with `built`, or `isDone()` answered `true`: re-check the cache. */
  | { kind: 'peer-finished' }
  /** The wait timeout passed: proceed without the lock. */
  | { kind: 'timed-out' }
  /** The backend is unreachable, timed out, out of memory or read-only: proceed without the lock. */
  | { kind: 'unavailable'; error: LockUnavailableError };

/** Options of {@link Lock.acquireOrWait}. */
export interface AcquireOptions {
  /**
   * Has the result appeared in the cache meanwhile? Asked before each attempt to acquire and right
   * after a `built` notice. Without it, a `built` notice ends the wait with `peer-finished`.
   * An exception from it rejects `acquireOrWait`.
   * @default undefined
   */
  isDone?: (signal: AbortSignal) => boolean | Promise<boolean>;
  /** Aborting rejects with `signal.reason` promptly. @default undefined */
  signal?: AbortSignal;
  /**
   * How long to wait for a peer before giving up with `timed-out`.
   * @default 1_800_000 (30 minutes)
   */
  waitTimeoutMs?: number;
  /**
   * `'proceed'` returns the `unavailable` outcome; `'throw'` rejects with the {@link LockUnavailableError}.
   * @default 'proceed'
   */
  onUnavailable?: 'proceed' | 'throw';
}

/**
 * A lease lock: Redis (`connectLock` of `@task-cache/lock/redis`), in-process (`createLocalLock`) or lock
 * files (`createFileLock`).
 */
export interface Lock {
  /** The lock key given by the lock URL's path, if any (always `undefined` for local locks). */
  readonly key: string | undefined;
  /**
   * Acquire `key`, or wait for the peer holding it: returns `acquired`, `peer-finished`, `timed-out` or
   * `unavailable`. Rejects with a `LockConfigError` on misconfiguration, with `signal.reason` when
   * aborted, and with a {@link LockUnavailableError} only when `onUnavailable: 'throw'`.
   */
  acquireOrWait(key: string, options?: AcquireOptions): Promise<AcquireOutcome>;
  /** Stops renewals (held leases abort with reason `closed`), closes owned connections. Idempotent; never throws. */
  close(): Promise<void>;
}

/**
 * The narrow capability a consumer of locks needs (what `@task-cache/core`'s `createCache({ lock })`
 * accepts): `acquireOrWait`, and `close` when the object has resources to free. Every {@link Lock} is
 * one; so is a user's own object with these members.
 */
export type LockAcquirer = Pick<Lock, 'acquireOrWait'> & Partial<Pick<Lock, 'close'>>;

/** Wait backoff: full-jitter exponential, also capped by the holder's remaining TTL. */
export interface BackoffOptions {
  /** First delay. @default 100 */
  initialMs?: number;
  /** Cap of the delay. @default 2_000 */
  maxMs?: number;
}

/** Options shared by every lock factory. */
export interface LockOptions {
  /** Lease TTL; the lease is renewed every ttl/3. @default 30_000 */
  ttlMs?: number;
  /** Waiters' backoff. @default { initialMs: 100, maxMs: 2_000 } */
  backoff?: BackoffOptions;
}
