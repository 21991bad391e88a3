/**
 * Literal codes of the {@link LockError} family, one per class (undici style, prefixed so that they never
 * collide with another package's codes).
 */
export type LockErrorCode =
  | 'LOCK_ERR_CONFIG'
  | 'LOCK_ERR_UNAVAILABLE'
  | 'LOCK_ERR_LEASE_LOST'
  | 'LOCK_ERR_TIMEOUT';

/**
 * Base class of every error thrown by `@task-cache/lock` (and its `/redis` subpath). Messages never
 * contain a password.
 */
export class LockError extends Error {
  override name = 'LockError';
  /** Literal error code. */
  readonly code: LockErrorCode;

  constructor(code: LockErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/**
 * Why a {@link LockConfigError} was raised: a bad lock `url`, `auth` (NOAUTH / WRONGPASS), `permission`
 * (NOPERM), `tls`, a bad `option`, or a missing optional `dependency` (ioredis for `redis://` locks).
 */
export type LockConfigReason = 'url' | 'auth' | 'permission' | 'tls' | 'option' | 'dependency';

/**
 * Misconfiguration: a bad lock URL or option, `NOAUTH` / `WRONGPASS`, `NOPERM` (an ACL user without
 * permission on the lock keys), `rediss://` pointed at a plaintext port, or `@task-cache/lock/redis` loaded
 * without ioredis installed. Retrying will not help.
 */
export class LockConfigError extends LockError {
  override name = 'LockConfigError';
  /** What is misconfigured. */
  readonly reason: LockConfigReason;

  constructor(reason: LockConfigReason, message: string, options?: { cause?: unknown }) {
    super('LOCK_ERR_CONFIG', message, options);
    this.reason = reason;
  }
}

/**
 * What went wrong in a {@link LockUnavailableError}: the Redis `connection`, a command `timeout`, `oom`
 * (`maxmemory` under `noeviction`), a `readonly` replica, or file-system `io` of a lock file.
 */
export type LockUnavailableReason = 'connection' | 'timeout' | 'oom' | 'readonly' | 'io';

/**
 * The lock backend cannot serve the request right now (unreachable, command timeout, `OOM` under
 * `noeviction`, a `READONLY` replica, an unreadable lock directory). Callers normally proceed without the
 * lock.
 */
export class LockUnavailableError extends LockError {
  override name = 'LockUnavailableError';
  /** What went wrong. */
  readonly reason: LockUnavailableReason;

  constructor(reason: LockUnavailableReason, message: string, options?: { cause?: unknown }) {
    super('LOCK_ERR_UNAVAILABLE', message, options);
    this.reason = reason;
  }
}

/** Why a lease was lost. */
export type LeaseLostReason = 'expired' | 'stolen' | 'closed';

/**
 * The reason a lease's `signal` aborts with: the lease `expired` (renewals failed until the local
 * monotonic deadline passed), was `stolen` (the key no longer holds this lease's token, e.g. after a
 * Redis restart or a takeover after expiry), or the lock was `closed` while the lease was held.
 */
export class LeaseLostError extends LockError {
  override name = 'LeaseLostError';
  /** Why the lease was lost. */
  readonly reason: LeaseLostReason;
  /** The lock key. */
  readonly key: string;
  /** The fencing token of the lost lease. */
  readonly fence: number;

  constructor(reason: LeaseLostReason, key: string, fence: number, options?: { cause?: unknown }) {
    super(
      'LOCK_ERR_LEASE_LOST',
      `lease on lock key "${key}" (fence ${fence}) lost: ${describeLost(reason)}`,
      options,
    );
    this.reason = reason;
    this.key = key;
    this.fence = fence;
  }
}

function describeLost(reason: LeaseLostReason): string {
  switch (reason) {
    case 'expired':
      return 'it could not be renewed before its TTL ran out';
    case 'stolen':
      return 'the lock key no longer holds this lease (expired and taken over, or the backend restarted)';
    case 'closed':
      return 'the lock was closed';
  }
}

/**
 * {@link acquireLockFile} waited `timeoutMs` for a live holder of the lock file and gave up. The message
 * names the holder (PID and host) when the lock file says who it is.
 */
export class LockTimeoutError extends LockError {
  override name = 'LockTimeoutError';
  /** The lock file waited for. */
  readonly path: string;

  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super('LOCK_ERR_TIMEOUT', message, options);
    this.path = path;
  }
}
